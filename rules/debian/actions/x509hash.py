"""OpenSSL's subject-name hash of a certificate, for the `<hash>.<n>` links in /etc/ssl/certs.

`openssl rehash` (run by update-ca-certificates) links `%08x.N` to each file
holding exactly one certificate, where the hash is X509_NAME_hash_ex: the first
four bytes, little-endian, of the SHA-1 of the subject's canonical encoding
(crypto/x509/x_name.c, x509_name_canon and asn1_string_canon):
- each RDN becomes a DER SET OF its attributes, the SETs simply concatenated
  (no outer SEQUENCE);
- string values of the types below become UTF8String, with leading and trailing
  whitespace removed, inner runs of whitespace collapsed to one space and ASCII
  letters lowercased; other types are kept as they are;
- SET OF members are in DER order (sorted by their encodings).
Only the DER structure needed to reach the subject is read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from typing import List, Optional, Tuple

# Universal tags of the string types OpenSSL canonicalizes, and how their contents decode.
STRING_CODECS = {
    0x0C: "utf-8",  # UTF8String
    0x13: "latin-1",  # PrintableString
    0x14: "latin-1",  # T61String (OpenSSL reads it as Latin-1)
    0x16: "latin-1",  # IA5String
    0x1A: "latin-1",  # VisibleString
    0x1C: "utf-32-be",  # UniversalString
    0x1E: "utf-16-be",  # BMPString
}
UTF8STRING, SEQUENCE, SET = 0x0C, 0x30, 0x31
C_SPACE = b" \t\n\v\f\r"  # C's isspace in the C locale
PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN (CERTIFICATE|X509 CERTIFICATE|TRUSTED CERTIFICATE)-----(.*?)-----END \1-----", re.S)


class CertificateError(ValueError):
    """A certificate whose DER cannot be read."""


@dataclass(frozen=True)
class Tlv:
    tag: int
    content: bytes
    encoded: bytes  # tag, length and content as they were


def read_tlv(data: bytes, offset: int) -> Tuple[Tlv, int]:
    """One DER element at `offset` (single-byte tags only, which X.509 names use); returns it and the next offset."""
    if offset + 2 > len(data):
        raise CertificateError("truncated DER element")
    tag, first = data[offset], data[offset + 1]
    if tag & 0x1F == 0x1F:
        raise CertificateError(f"multi-byte DER tag at offset {offset}")
    start = offset + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or start + count > len(data):
            raise CertificateError(f"bad DER length at offset {offset}")
        length = int.from_bytes(data[start:start + count], "big")
        start += count
    end = start + length
    if end > len(data):
        raise CertificateError(f"DER element at offset {offset} runs past the end")
    return Tlv(tag, data[start:end], data[offset:end]), end


def children(tlv: Tlv) -> List[Tlv]:
    items, offset = [], 0
    while offset < len(tlv.content):
        item, offset = read_tlv(tlv.content, offset)
        items.append(item)
    return items


def subject_of(der: bytes) -> Tlv:
    """Certificate -> tbsCertificate -> subject (after the optional [0] version, serial, algorithm, issuer, validity)."""
    certificate, _ = read_tlv(der, 0)
    if certificate.tag != SEQUENCE:
        raise CertificateError("a certificate is a SEQUENCE")
    tbs = children(certificate)[0] if children(certificate) else None
    if tbs is None or tbs.tag != SEQUENCE:
        raise CertificateError("no tbsCertificate")
    fields = children(tbs)
    if fields and fields[0].tag == 0xA0:
        fields = fields[1:]
    if len(fields) < 5 or fields[4].tag != SEQUENCE:
        raise CertificateError("no subject name in tbsCertificate")
    return fields[4]


def der(tag: int, content: bytes) -> bytes:
    length = len(content)
    if length < 0x80:
        return bytes([tag, length]) + content
    size = (length.bit_length() + 7) // 8
    return bytes([tag, 0x80 | size]) + length.to_bytes(size, "big") + content


def canonical_value(value: Tlv) -> bytes:
    """asn1_string_canon: the value as a canonical UTF8String, or unchanged if it is not a string type."""
    codec = STRING_CODECS.get(value.tag)
    if codec is None:
        return der(value.tag, value.content)
    try:
        text = value.content.decode(codec).encode("utf-8")
    except UnicodeError as error:
        raise CertificateError(f"a name attribute is not valid {codec}: {error}") from None
    text = text.strip(C_SPACE)
    out = bytearray()
    index = 0
    while index < len(text):
        byte = text[index]
        if byte in C_SPACE:
            out.append(0x20)
            while index < len(text) and text[index] in C_SPACE:
                index += 1
            continue
        out.append(byte + 32 if 0x41 <= byte <= 0x5A else byte)
        index += 1
    return der(UTF8STRING, bytes(out))


def canonical_name(name: Tlv) -> bytes:
    """x509_name_canon's encoding of a Name: each RDN as a DER SET of canonical attributes, concatenated."""
    encoded = b""
    for rdn in children(name):
        if rdn.tag != SET:
            raise CertificateError("a name's RDN is not a SET")
        attributes = []
        for attribute in children(rdn):
            parts = children(attribute)
            if attribute.tag != SEQUENCE or len(parts) != 2 or parts[0].tag != 0x06:
                raise CertificateError("a name attribute is not SEQUENCE { OID, value }")
            attributes.append(der(SEQUENCE, parts[0].encoded + canonical_value(parts[1])))
        encoded += der(SET, b"".join(sorted(attributes, key=der_set_order)))
    return encoded


def der_set_order(encoding: bytes) -> tuple:
    """OpenSSL orders SET OF members by memcmp over the shorter length, then the shorter first."""
    return encoding, len(encoding)


def subject_hash(der_certificate: bytes) -> str:
    """`openssl x509 -subject_hash`: 8 lowercase hex digits."""
    digest = hashlib.sha1(canonical_name(subject_of(der_certificate))).digest()
    return f"{int.from_bytes(digest[:4], 'little'):08x}"


def pem_certificates(pem: bytes) -> List[bytes]:
    """The DER of each certificate in a PEM file; a block that is not base64 raises CertificateError."""
    found = []
    for match in PEM_CERTIFICATE.finditer(pem):
        body = b"".join(line for line in match.group(2).split() if b":" not in line)  # drop RFC 1421 headers
        try:
            found.append(base64.b64decode(body, validate=True))
        except (binascii.Error, ValueError) as error:
            raise CertificateError(f"a PEM block is not base64: {error}") from None
    return found


def single_certificate(pem: bytes) -> Optional[bytes]:
    """The certificate of a file with exactly one (what `openssl rehash` links); None otherwise."""
    certificates = pem_certificates(pem)
    return certificates[0] if len(certificates) == 1 else None
