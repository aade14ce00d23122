"""OpenSSL subject hashes and /etc/ssl/certs hash links, checked against the real openssl."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from debian.actions.sysfiles import ca_bundle, hash_links
from oci.actions.tarlayer import SYMLINK
from debian.actions.x509hash import CertificateError, single_certificate, subject_hash

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
MOZILLA = Path("/usr/share/ca-certificates/mozilla")
CONFIG = """\
[req]
distinguished_name = dn
string_mask = {mask}
[dn]
"""
# Subjects that exercise the canonical form: case, runs of whitespace, multi-valued RDNs, IA5String, T61String
# and BMPString (string_mask default), UTF8String with non-ASCII letters, a tab inside a value.
SUBJECTS = [
    ("/CN=  Mixed   CASE  Name  /O=Example   Org/C=DE", "utf8only", []),
    ("/CN=a b+OU=Second  VALUE/O=multi", "utf8only", ["-multivalue-rdn"]),
    ("/DC=Example/DC=COM/emailAddress=Admin@Example.COM/CN=dc", "utf8only", []),
    ("/CN=Ünïcödé  NÄME/O=Ärger GmbH", "default", ["-utf8"]),
    ("/CN=日本語 Name/O=Grüße", "default", ["-utf8"]),
    ("/CN=Printable Only/serialNumber=12 34/C=FR", "default", []),
    ("/CN=Tab\tIn Name/O=x", "utf8only", []),
]


def make_certificate(directory: Path, name: str, subject: str, mask: str, options) -> Path:
    config = directory / f"{name}.cnf"
    config.write_text(CONFIG.format(mask=mask))
    path = directory / f"{name}.pem"
    subprocess.run([OPENSSL, "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", str(directory / f"{name}.key"), "-out", str(path), "-days", "1",
                    "-config", str(config), "-subj", subject, *options],
                   check=True, capture_output=True)
    return path


def openssl_hash(path: Path) -> str:
    return subprocess.run([OPENSSL, "x509", "-subject_hash", "-noout", "-in", str(path)], check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory) -> list:
    if OPENSSL is None:
        pytest.skip("openssl is not installed")
    directory = tmp_path_factory.mktemp("certs")
    return [make_certificate(directory, f"cert{i}", subject, mask, options)
            for i, (subject, mask, options) in enumerate(SUBJECTS)]


@needs_openssl
def test_subject_hash_matches_openssl_on_odd_names(fixtures):
    for path in fixtures:
        assert subject_hash(single_certificate(path.read_bytes())) == openssl_hash(path), path


@needs_openssl
@pytest.mark.skipif(not MOZILLA.is_dir(), reason="no /usr/share/ca-certificates/mozilla on this machine")
def test_subject_hash_matches_openssl_for_every_mozilla_certificate():
    paths = sorted(MOZILLA.glob("*.crt"))
    assert paths
    mismatches = [p.name for p in paths if subject_hash(single_certificate(p.read_bytes())) != openssl_hash(p)]
    assert mismatches == []


@needs_openssl
def test_hash_links_match_openssl_rehash(fixtures, tmp_path):
    # a collision (same subject, another key) and an identical copy, which rehash skips
    collision = make_certificate(tmp_path, "collision", SUBJECTS[0][0], "utf8only", [])
    pems = {f"{p.stem}.pem": p.read_bytes() for p in fixtures}
    pems["collision.pem"] = collision.read_bytes()
    pems["zz-copy.pem"] = fixtures[1].read_bytes()
    pems["bundle.pem"] = fixtures[2].read_bytes() + fixtures[3].read_bytes()  # two certificates: no link
    certs = tmp_path / "etc-ssl-certs"
    certs.mkdir()
    for name, data in pems.items():
        (certs / name).write_bytes(data)
    subprocess.run([OPENSSL, "rehash", str(certs)], check=True, capture_output=True)
    theirs = {p.name: os.readlink(p) for p in certs.iterdir() if p.is_symlink()}
    ours = {e.path.split("/")[-1]: e.target for e in hash_links({n: (n, d) for n, d in pems.items()})}
    # rehash numbers collisions in directory order; ours in name order. The groups must agree.
    assert grouped(ours) == grouped(theirs)
    first = openssl_hash(fixtures[0])
    assert (ours[f"{first}.0"], ours[f"{first}.1"]) == ("cert0.pem", "collision.pem")
    assert "zz-copy.pem" not in ours.values() and "bundle.pem" not in ours.values()


def grouped(links: dict) -> dict:
    groups: dict = {}
    for name, target in links.items():
        groups.setdefault(name.split(".")[0], set()).add(target)
    return groups


@pytest.mark.skipif(not MOZILLA.is_dir() or not Path("/etc/ssl/certs").is_dir(), reason="no CA store here")
def test_bundle_links_agree_with_this_hosts_update_ca_certificates():
    certificates = {f"usr/share/ca-certificates/mozilla/{p.name}": p.read_bytes() for p in MOZILLA.glob("*.crt")}
    ours = {e.path.split("/")[-1]: e.target for e in ca_bundle(certificates)
            if e.kind == SYMLINK and not e.target.startswith("/")}
    host = {p.name: os.readlink(p) for p in Path("/etc/ssl/certs").iterdir()
            if p.is_symlink() and len(p.name) > 9 and p.name[8] == "." and os.readlink(p).endswith(".pem")}
    shared = {name for name, target in host.items() if target in set(ours.values())}
    if not shared:
        pytest.skip("this host's /etc/ssl/certs has no hash links to the mozilla certificates")
    assert {n: ours.get(n) for n in shared} == {n: host[n] for n in shared}


def test_damaged_certificate_gets_no_link_and_a_warning_naming_package_and_file():
    broken = b"-----BEGIN CERTIFICATE-----\nMIIBkTCB+wIJ\n-----END CERTIFICATE-----\n"
    with pytest.raises(CertificateError, match="runs past the end"):
        subject_hash(single_certificate(broken))
    warnings: list = []
    entries = ca_bundle({"usr/share/ca-certificates/x/bad.crt": broken},
                        {"usr/share/ca-certificates/x/bad.crt": "ca-certificates"}, warnings)
    assert [e.path for e in entries] == ["etc/ssl/certs/bad.pem", "etc/ssl/certs/ca-certificates.crt"]
    assert warnings == ["ca-certificates: /usr/share/ca-certificates/x/bad.crt: DER element at offset 0 runs past "
                        "the end; no hash link for it (openssl rehash skips it too)"]
