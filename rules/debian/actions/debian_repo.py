"""Fetch and verify apt indexes: InRelease checked by gpgv, Packages.xz checked against it.

Only text that gpgv wrote out (`gpgv --output`) is ever parsed: the bytes outside
the signed part of an InRelease file are attacker-controlled.  Every index is
checked for size and sha256 against the verified Release before it is
decompressed.  Works with http://, https:// and file:// mirrors (urllib).
"""

from __future__ import annotations

import base64
import datetime
import gc
import hashlib
import lzma
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from . import deb822
from .debian_version import compare_versions

Log = Callable[[str], None]


def log_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class RepositoryError(Exception):
    """Base of everything that stops an apt index from being trusted or read."""


class FetchFailed(RepositoryError):
    """A URL could not be read (HTTP error, no route, missing file)."""

    def __init__(self, url: str, reason: str):
        super().__init__(f"Could not fetch {url}: {reason}. Check the mirror URL and suite in the sources manifest.")
        self.url = url


class GpgvNotFound(RepositoryError):
    """gpgv is not installed."""


class KeyringNotFound(RepositoryError):
    """The keyring of a source is missing or unreadable."""


class MissingSignature(RepositoryError):
    """InRelease carries no signature at all."""


class BadSignature(RepositoryError):
    """A signature does not verify (or only expired/revoked keys signed)."""


class UnknownSigningKey(RepositoryError):
    """Signed, but by no key of the source's keyring."""


class SuiteMismatch(RepositoryError):
    """The signed Release is for another suite than the one asked for."""


class ReleaseExpired(RepositoryError):
    """The signed Release is past its Valid-Until date."""


class IndexNotListed(RepositoryError):
    """The signed Release does not list the Packages index asked for."""


class SizeMismatch(RepositoryError):
    """An index's size differs from the signed Release."""


class HashMismatch(RepositoryError):
    """An index's sha256 differs from the signed Release."""


@dataclass(frozen=True)
class AptSource:
    """One entry of the sources manifest: a mirror, its suites and components, and the keyring that signs it."""

    name: str
    url: str
    suites: Tuple[str, ...]
    components: Tuple[str, ...]
    architectures: Tuple[str, ...]
    keyring: str

    @classmethod
    def from_json(cls, value: Mapping, default_architectures: Sequence[str] = ("amd64",)) -> "AptSource":
        return cls(
            name=str(value["name"]),
            url=str(value["url"]).rstrip("/"),
            suites=tuple(value["suites"]),
            components=tuple(value["components"]),
            architectures=tuple(value.get("architectures") or default_architectures),
            keyring=str(value["keyring"]),
        )

    def suite_url(self, suite: str) -> str:
        return f"{self.url}/dists/{suite}"


@dataclass(frozen=True)
class PackageRecord:
    """One binary package of a Packages index, with where it came from."""

    name: str
    version: str
    architecture: str
    filename: str = ""
    sha256: str = ""
    size: int = 0
    depends: str = ""
    pre_depends: str = ""
    recommends: str = ""
    provides: str = ""
    conflicts: str = ""
    breaks: str = ""
    essential: bool = False
    priority: str = "optional"
    installed_size: Optional[int] = None
    multi_arch: str = "no"
    source_package: str = ""
    source_version: str = ""
    source: str = ""  # the name of the manifest source
    suite: str = ""
    component: str = ""
    mirror_url: str = ""


@dataclass(frozen=True)
class VerifiedRelease:
    url: str
    release: deb822.Release
    signers: Tuple[str, ...]  # fingerprints of the keys with good signatures


# Canonical spelling of the fields a record needs, by their lower-case name.
PACKAGE_FIELDS = {name.lower(): name for name in (
    "Package", "Version", "Architecture", "Filename", "SHA256", "Size", "Depends", "Pre-Depends", "Recommends",
    "Provides", "Conflicts", "Breaks", "Essential", "Priority", "Installed-Size", "Multi-Arch", "Source",
)}
REQUIRED_PACKAGE_FIELDS = ("Package", "Version", "Architecture", "Filename", "SHA256", "Size")
# Field names as the archive spells them; a paragraph using only these needs no case folding.
USUAL_SPELLINGS = frozenset(PACKAGE_FIELDS.values()) | {
    "Maintainer", "Original-Maintainer", "Description", "Description-md5", "Homepage", "Section", "MD5sum",
    "Tag", "Replaces", "Suggests", "Enhances", "Built-Using", "Static-Built-Using",
    "Build-Ids", "Protected", "Important", "Ruby-Versions", "Go-Import-Path", "Lua-Versions", "Python-Version",
}


def fetch(url: str, timeout: float = 120.0) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read()
    except urllib.error.HTTPError as e:
        raise FetchFailed(url, f"HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        raise FetchFailed(url, str(getattr(e, "reason", e))) from None


def verify_inrelease(data: bytes, keyring: str, url: str) -> Tuple[str, Tuple[str, ...]]:
    """Check the clear-signed `data` with gpgv; return the signed text and the signing fingerprints."""
    gpgv = shutil.which("gpgv", path=os.environ.get("PATH", os.defpath) + os.pathsep + "/usr/bin:/bin")
    if gpgv is None:
        raise GpgvNotFound("gpgv is needed to verify apt indexes; install the gpgv package.")
    keyring = os.path.abspath(keyring)
    if not os.path.isfile(keyring):
        raise KeyringNotFound(f"The keyring {keyring} for {url} does not exist; fix `keyring` in the sources manifest.")
    with tempfile.TemporaryDirectory(prefix="inrelease-") as scratch:
        keyring = _binary_keyring(keyring, scratch)
        signed = os.path.join(scratch, "InRelease")
        verified = os.path.join(scratch, "Release")
        with open(signed, "wb") as f:
            f.write(data)
        result = subprocess.run(
            [gpgv, "--status-fd", "1", "--keyring", keyring, "--output", verified, signed],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={"LC_ALL": "C", "GNUPGHOME": scratch},
        )
        status = _gpgv_status(result.stdout.decode("utf-8", "replace"))
        signers = _check_signatures(status, result.returncode, url, keyring, result.stderr.decode("utf-8", "replace"))
        with open(verified, "rb") as f:
            text = f.read()
    return _decode(text, url), signers


ARMOR_BEGIN = b"-----BEGIN PGP PUBLIC KEY BLOCK-----"


def _binary_keyring(path: str, scratch: str) -> str:
    """gpgv reads only binary keyrings; an ASCII-armored one (.asc) is decoded into `scratch` first."""
    with open(path, "rb") as f:
        data = f.read()
    if ARMOR_BEGIN not in data[:1024]:
        return path
    binary = os.path.join(scratch, "keyring.gpg")
    with open(binary, "wb") as f:
        f.write(dearmor(data, path))
    return binary


def dearmor(data: bytes, source: str) -> bytes:
    """The packets of every armored block in `data` (headers and the CRC line skipped)."""
    packets = []
    for block in data.split(ARMOR_BEGIN)[1:]:
        body = block.split(b"-----END", 1)[0]
        lines = body.strip().splitlines()
        if b"" in (line.strip() for line in lines):  # armor headers end at the first blank line
            lines = lines[[line.strip() for line in lines].index(b"") + 1:]
        encoded = b"".join(line.strip() for line in lines if not line.startswith(b"="))
        try:
            packets.append(base64.b64decode(encoded, validate=True))
        except ValueError:
            raise KeyringNotFound(f"The keyring {source} is ASCII-armored but not valid base64.") from None
    return b"".join(packets)


def _gpgv_status(output: str) -> List[Tuple[str, List[str]]]:
    lines = []
    for line in output.splitlines():
        if line.startswith("[GNUPG:] "):
            keyword, *args = line[len("[GNUPG:] "):].split()
            lines.append((keyword, args))
    return lines


def _check_signatures(status: List[Tuple[str, List[str]]], returncode: int, url: str, keyring: str,
                      stderr: str) -> Tuple[str, ...]:
    """Like apt: at least one good signature from the keyring and no bad one.

    gpgv also fails when some signatures are by keys outside the keyring (the
    archive signs with several keys); that alone is not a reason to refuse.
    """
    keywords = {keyword for keyword, _ in status}
    details = stderr.strip().replace("\n", "\n    ")
    if "NODATA" in keywords or "NEWSIG" not in keywords:
        raise MissingSignature(
            f"{url} carries no OpenPGP signature, so it cannot be trusted. The mirror may be broken or not an "
            f"apt repository; check the URL.\n    {details}"
        )
    if "BADSIG" in keywords:
        raise BadSignature(
            f"{url} has a BAD signature: it was modified after signing (or the download was corrupted). Do not "
            f"use this mirror until it is fixed.\n    {details}"
        )
    for keyword in ("EXPKEYSIG", "REVKEYSIG"):
        if keyword in keywords and "VALIDSIG" not in keywords:
            what = "an expired" if keyword == "EXPKEYSIG" else "a revoked"
            raise BadSignature(f"{url} is signed only with {what} key. Update the keyring {keyring}.\n    {details}")
    if "ERROR" in keywords:
        raise BadSignature(f"gpgv could not process {url} (two messages in one file?); refusing it.\n    {details}")
    signers = tuple(sorted(args[0] for keyword, args in status if keyword == "VALIDSIG" and args))
    if not signers:
        missing = sorted({args[0] for keyword, args in status if keyword in ("NO_PUBKEY", "ERRSIG") and args})
        raise UnknownSigningKey(
            f"{url} is signed by key {', '.join(missing) or '(unknown)'}, which is not in the keyring {keyring}. "
            f"Add the archive's signing key to the keyring (after checking its fingerprint) or fix the keyring "
            f"path in the sources manifest.\n    {details}"
        )
    if returncode != 0 and "NO_PUBKEY" not in keywords:
        raise BadSignature(f"gpgv refused {url} (exit status {returncode}).\n    {details}")
    return signers


def _decode(data: bytes, url: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise deb822.MalformedIndex(url, f"not UTF-8 ({e})") from None


def fetch_release(source: AptSource, suite: str, now: Optional[datetime.datetime] = None,
                  log: Log = log_to_stderr) -> VerifiedRelease:
    """Fetch `dists/<suite>/InRelease`, verify it, and check that it is the suite asked for and still valid."""
    url = f"{source.suite_url(suite)}/InRelease"
    log(f"Fetching {url}")
    text, signers = verify_inrelease(fetch(url), source.keyring, url)
    release = deb822.parse_release(text, url)
    if suite not in (release.suite, release.codename):
        # A validly signed file of another suite (say an older one) must not stand in for this one.
        raise SuiteMismatch(
            f"{url} is signed for suite {release.suite!r} (codename {release.codename!r}), not {suite!r}. "
            "The mirror may be misconfigured or replaying another suite."
        )
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if release.expired(now):
        raise ReleaseExpired(
            f"{url} expired at {release.valid_until} (it is now {now:%Y-%m-%d %H:%M} UTC). The mirror is stale "
            "or someone is replaying an old Release; try another mirror."
        )
    return VerifiedRelease(url, release, signers)


def fetch_index(source: AptSource, suite: str, verified: VerifiedRelease, component: str, architecture: str,
                cache_dir: Optional[str] = None, log: Log = log_to_stderr) -> bytes:
    """The verified, compressed bytes of `<component>/binary-<arch>/Packages.xz`."""
    path = f"{component}/binary-{architecture}/Packages.xz"
    expected = verified.release.files.get(path)
    if expected is None:
        raise IndexNotListed(
            f"{verified.url} does not list {path}. The suite has components "
            f"{', '.join(verified.release.components) or '(none listed)'} and architectures "
            f"{', '.join(verified.release.architectures) or '(none listed)'}; fix the sources manifest."
        )
    cached = _read_cache(cache_dir, expected)
    if cached is not None:
        log(f"Using cached {source.suite_url(suite)}/{path}")
        return cached
    url = f"{source.suite_url(suite)}/{path}"
    log(f"Fetching {url} ({expected.size / 1e6:.1f} MB)")
    data = _fetch_by_hash_or_name(source, suite, path, expected, verified.release.acquire_by_hash)
    check_file(data, expected, url)
    _write_cache(cache_dir, expected, data)
    return data


def _fetch_by_hash_or_name(source: AptSource, suite: str, path: str, expected: deb822.ReleaseFile,
                           by_hash: bool) -> bytes:
    # by-hash URLs do not change under us while the mirror updates; fall back to the name if absent.
    if by_hash:
        directory = path.rsplit("/", 1)[0]
        try:
            return fetch(f"{source.suite_url(suite)}/{directory}/by-hash/SHA256/{expected.sha256}")
        except FetchFailed:
            pass
    return fetch(f"{source.suite_url(suite)}/{path}")


def check_file(data: bytes, expected: deb822.ReleaseFile, url: str) -> None:
    if len(data) != expected.size:
        raise SizeMismatch(
            f"{url} is {len(data)} bytes but the signed Release says {expected.size}. The mirror is probably "
            "being updated (retry in a few minutes) or the download was truncated or tampered with."
        )
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected.sha256:
        raise HashMismatch(
            f"{url} has sha256 {digest} but the signed Release says {expected.sha256}. The mirror is probably "
            "being updated (retry in a few minutes) or the file was tampered with."
        )


def _cache_path(cache_dir: str, expected: deb822.ReleaseFile) -> str:
    return os.path.join(cache_dir, f"{expected.sha256}.xz")


def _read_cache(cache_dir: Optional[str], expected: deb822.ReleaseFile) -> Optional[bytes]:
    if not cache_dir:
        return None
    try:
        with open(_cache_path(cache_dir, expected), "rb") as f:
            data = f.read()
    except OSError:
        return None
    # A damaged cache entry is just a miss.
    if len(data) == expected.size and hashlib.sha256(data).hexdigest() == expected.sha256:
        return data
    return None


def _write_cache(cache_dir: Optional[str], expected: deb822.ReleaseFile, data: bytes) -> None:
    if not cache_dir:
        return
    os.makedirs(cache_dir, exist_ok=True)
    target = _cache_path(cache_dir, expected)
    temporary = f"{target}.tmp-{os.getpid()}"
    with open(temporary, "wb") as f:
        f.write(data)
    os.replace(temporary, target)


def decompress_xz(data: bytes, url: str) -> str:
    try:
        return _decode(lzma.decompress(data), url)
    except (lzma.LZMAError, zlib.error) as e:
        raise deb822.MalformedIndex(url, f"cannot decompress: {e}") from None


def parse_packages(text: str, source: AptSource, suite: str, component: str, url: str) -> List[PackageRecord]:
    """The records of a Packages index, in file order."""
    # The records live on; skipping the cyclic GC while creating some 60,000 of them saves a third of the time.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return [package_record(p, source, suite, component, url) for p in deb822.parse_paragraphs(text, url)]
    finally:
        if was_enabled:
            gc.enable()


def package_record(paragraph: Dict[str, str], source: AptSource, suite: str, component: str,
                   url: str) -> PackageRecord:
    fields = _with_usual_spelling(paragraph, url)
    missing = [name for name in REQUIRED_PACKAGE_FIELDS if name not in fields]
    if missing:
        raise deb822.MalformedIndex(url, f"package {fields.get('Package', '?')} lacks {', '.join(missing)}")
    source_package, source_version = _source_field(fields.get("Source", ""), fields["Package"], fields["Version"])
    try:
        size = int(fields["Size"])
        installed_size = int(fields["Installed-Size"]) if "Installed-Size" in fields else None
    except ValueError:
        raise deb822.MalformedIndex(url, f"package {fields['Package']} has a non-numeric size") from None
    return PackageRecord(
        name=fields["Package"],
        version=fields["Version"],
        architecture=fields["Architecture"],
        filename=fields["Filename"],
        sha256=fields["SHA256"],
        size=size,
        depends=fields.get("Depends", ""),
        pre_depends=fields.get("Pre-Depends", ""),
        recommends=fields.get("Recommends", ""),
        provides=fields.get("Provides", ""),
        conflicts=fields.get("Conflicts", ""),
        breaks=fields.get("Breaks", ""),
        essential=fields.get("Essential", "no").lower() == "yes",
        priority=fields.get("Priority", "optional"),
        installed_size=installed_size,
        multi_arch=fields.get("Multi-Arch", "no"),
        source_package=source_package,
        source_version=source_version,
        source=source.name,
        suite=suite,
        component=component,
        mirror_url=source.url,
    )


def _with_usual_spelling(paragraph: Dict[str, str], url: str) -> Dict[str, str]:
    unusual = paragraph.keys() - USUAL_SPELLINGS
    if not any(name.lower() in PACKAGE_FIELDS for name in unusual):
        return paragraph
    try:
        return deb822.fold_field_names(paragraph, PACKAGE_FIELDS)
    except ValueError as e:
        raise deb822.MalformedIndex(url, f"package {paragraph.get('Package', '?')}: {e}") from None


def _source_field(value: str, package: str, version: str) -> Tuple[str, str]:
    """`Source: name (version)`; the name or version is the binary's own when left out."""
    if not value:
        return package, version
    name, _, rest = value.partition(" ")
    rest = rest.strip()
    if rest.startswith("(") and rest.endswith(")"):
        return name, rest[1:-1].strip()
    return name, version


@dataclass(frozen=True)
class IndexStats:
    url: str
    packages: int
    compressed_size: int


@dataclass(frozen=True)
class LoadedPackages:
    records: Tuple[PackageRecord, ...]
    indexes: Tuple[IndexStats, ...] = field(default=())


def load_packages(source: AptSource, architecture: str, cache_dir: Optional[str] = None,
                  now: Optional[datetime.datetime] = None, log: Log = log_to_stderr) -> LoadedPackages:
    """Every package of `architecture` (and `all`) in all suites and components of `source`, verified."""
    records: List[PackageRecord] = []
    stats: List[IndexStats] = []
    for suite in source.suites:
        verified = fetch_release(source, suite, now=now, log=log)
        for component in source.components:
            data = fetch_index(source, suite, verified, component, architecture, cache_dir=cache_dir, log=log)
            url = f"{source.suite_url(suite)}/{component}/binary-{architecture}/Packages.xz"
            started = time.monotonic()
            found = parse_packages(decompress_xz(data, url), source, suite, component, url)
            log(f"  {len(found)} packages in {suite}/{component}/binary-{architecture} "
                f"(read in {time.monotonic() - started:.1f} s)")
            records.extend(r for r in found if r.architecture in (architecture, "all"))
            stats.append(IndexStats(url, len(found), len(data)))
    return LoadedPackages(tuple(records), tuple(stats))


def newest_by_name(records: Iterable[PackageRecord]) -> Dict[str, PackageRecord]:
    """One record per package name: the highest version; on a tie the first one seen (manifest order)."""
    newest: Dict[str, PackageRecord] = {}
    for record in records:
        current = newest.get(record.name)
        if current is None or compare_versions(record.version, current.version) > 0:
            newest[record.name] = record
    return newest
