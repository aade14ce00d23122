"""Declarative replacements for what maintainer scripts would write at install time.

Each function takes what the image's packages ship (their file lists and a few
extracted files) and returns the entries dpkg's postinst scripts would have
left behind, the same way every time.
"""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

from oci.actions.tarlayer import DIR, FILE, SYMLINK, Entry
from .x509hash import CertificateError, single_certificate, subject_hash

MERGED_USR_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
CA_CERT_DIR = "usr/share/ca-certificates"
CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"
NSSWITCH_TEMPLATE = "usr/share/base-files/nsswitch.conf"


def merged_usr(path: str) -> str:
    """An image path as it is after the /usr merge (`/bin/sh` is `/usr/bin/sh`)."""
    path = path.lstrip("/")
    top = path.split("/", 1)[0]
    return f"usr/{path}" if top in MERGED_USR_DIRS else path


@dataclass(frozen=True)
class AlternativeLink:
    link: str
    name: str
    path: str


@dataclass(frozen=True)
class Alternative:
    """One `update-alternatives --install` from a postinst, with its slaves."""

    link: str
    name: str
    path: str
    priority: int
    slaves: tuple[AlternativeLink, ...] = ()

    @classmethod
    def from_json(cls, value: Mapping) -> "Alternative":
        return cls(value["link"], value["name"], value["path"], int(value["priority"]),
                   tuple(AlternativeLink(s["link"], s["name"], s["path"]) for s in value.get("slaves") or ()))


def choose_alternatives(candidates: Iterable[Alternative], installed: set[str]) -> list[Alternative]:
    """update-alternatives' auto mode: per name, the installed candidate of highest priority.

    Ties go to the lexically first path so the choice never depends on install order.
    """
    best: dict[str, Alternative] = {}
    for candidate in candidates:
        if merged_usr(candidate.path) not in installed:
            continue
        current = best.get(candidate.name)
        if current is None or (-candidate.priority, candidate.path) < (-current.priority, current.path):
            best[candidate.name] = candidate
    return [best[name] for name in sorted(best)]


def alternative_entries(chosen: Sequence[Alternative], all_candidates: Sequence[Alternative],
                        installed: set[str]) -> list[Entry]:
    """The link -> /etc/alternatives/name -> path chains, and dpkg's admin files for them."""
    entries = []
    for alternative in chosen:
        links = [AlternativeLink(alternative.link, alternative.name, alternative.path)]
        links += [s for s in alternative.slaves if merged_usr(s.path) in installed]
        for link in links:
            entries.append(Entry(merged_usr(link.link), SYMLINK, 0o777, target=f"/etc/alternatives/{link.name}"))
            entries.append(Entry(f"etc/alternatives/{link.name}", SYMLINK, 0o777, target=link.path))
        same_name = [c for c in all_candidates if c.name == alternative.name and merged_usr(c.path) in installed]
        entries.append(Entry(f"var/lib/dpkg/alternatives/{alternative.name}", FILE, 0o644,
                             data=alternatives_admin_file(alternative, same_name)))
    return entries


def alternatives_admin_file(master: Alternative, candidates: Sequence[Alternative]) -> bytes:
    """The file update-alternatives keeps in /var/lib/dpkg/alternatives, in auto mode."""
    slave_names = sorted({s.name: s.link for c in candidates for s in c.slaves}.items())
    lines = ["auto", master.link]
    for name, link in slave_names:
        lines += [name, link]
    lines.append("")
    for candidate in sorted(set(candidates), key=lambda c: c.path):
        lines += [candidate.path, str(candidate.priority)]
        slaves = {s.name: s.path for s in candidate.slaves}
        lines += [slaves.get(name, "") for name, _ in slave_names]
    lines.append("")
    return ("\n".join(lines) + "\n").encode()


def ca_bundle(certificates: Mapping[str, bytes], owners: Mapping[str, str] = {},
              warnings: list | None = None) -> list[Entry]:
    """update-ca-certificates: every shipped certificate in one bundle, a .pem link each, and their hash links.

    `certificates` maps image paths under usr/share/ca-certificates to their PEM bytes; `owners`
    names the package of each, for the `warnings` about certificates that cannot be read.
    """
    if not certificates:
        return []
    parts = []
    entries = []
    pems = {}
    for path in sorted(certificates):
        pem = certificates[path]
        parts.append(pem if pem.endswith(b"\n") else pem + b"\n")
        name = posixpath.basename(path)[: -len(".crt")].replace(" ", "_") + ".pem"
        entries.append(Entry(f"etc/ssl/certs/{name}", SYMLINK, 0o777, target=f"/{path}"))
        pems[name] = (path, pem)
    entries.append(Entry(CA_BUNDLE, FILE, 0o644, data=b"".join(parts)))
    return entries + hash_links(pems, owners, warnings)


def hash_links(pems: Mapping[str, tuple], owners: Mapping[str, str] = {}, warnings: list | None = None) -> list[Entry]:
    """`openssl rehash /etc/ssl/certs`: `<subject hash>.<n>` -> each .pem holding exactly one certificate.

    Names are taken in byte order, so the n of colliding hashes never depends on a
    directory's order; a certificate identical to an earlier one gets no link, as
    rehash skips duplicates.  A certificate that cannot be read gets no link, as
    rehash skips it; a warning names its package and file.
    """
    taken: dict = {}
    seen = set()
    entries = []
    for name in sorted(pems, key=lambda n: n.encode()):
        path, pem = pems[name]
        try:
            der = single_certificate(pem)
            subject = subject_hash(der) if der is not None else None
        except CertificateError as error:
            if warnings is not None:
                warnings.append(f"{owners.get(path, 'a package')}: /{path}: {error}; no hash link for it "
                                "(openssl rehash skips it too)")
            continue
        if der is None or hashlib.sha1(der).digest() in seen:
            continue
        seen.add(hashlib.sha1(der).digest())
        number = taken.get(subject, 0)
        taken[subject] = number + 1
        entries.append(Entry(f"etc/ssl/certs/{subject}.{number}", SYMLINK, 0o777, target=name))
    return entries


DEFAULT_NSSWITCH = b"""\
passwd:         files
group:          files
shadow:         files
gshadow:        files

hosts:          files dns
networks:       files

protocols:      db files
services:       db files
ethers:         db files
rpc:            db files

netgroup:       nis
"""


def nsswitch(template: bytes | None) -> Entry:
    """base-files' postinst copies its template to /etc/nsswitch.conf when there is none."""
    return Entry("etc/nsswitch.conf", FILE, 0o644, data=template if template is not None else DEFAULT_NSSWITCH)


# base-files' postinst installs these templates where nothing is yet; debianutils does /etc/shells.
TEMPLATES = {
    "usr/share/base-files/profile": ("etc/profile", 0o644),
    "usr/share/base-files/dot.profile": ("root/.profile", 0o644),
    "usr/share/base-files/dot.bashrc": ("root/.bashrc", 0o644),
    "usr/share/base-files/motd": ("etc/motd", 0o644),
    "usr/share/base-files/info.dir": ("usr/share/info/dir", 0o644),
    "usr/share/debianutils/shells": ("etc/shells", 0o644),
}


def installed_templates(read: Callable[[str], bytes | None]) -> list[Entry]:
    entries = []
    for template, (path, mode) in sorted(TEMPLATES.items()):
        content = read(template)
        if content is not None:
            entries.append(Entry(path, FILE, mode, data=content))
    if entries:
        entries.append(Entry("root", DIR, 0o700))
    return entries


def localtime(zone: str, installed: set[str]) -> list[Entry]:
    """tzdata's postinst: /etc/localtime and /etc/timezone for the configured zone."""
    zone_file = f"usr/share/zoneinfo/{zone}"
    if zone_file not in installed:
        return []
    return [
        Entry("etc/localtime", SYMLINK, 0o777, target=f"/{zone_file}"),
        Entry("etc/timezone", FILE, 0o644, data=f"{zone}\n".encode()),
    ]
