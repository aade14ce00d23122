"""A base package bump that really happened: the same package in bookworm and in bookworm-security.

The lock takes the highest version across suites, so a package whose lock entry says
`suite: bookworm-security` (or bookworm-updates) also exists, older, in bookworm itself, and the
mirror still has that .deb (the point release references it). Switching the lock entry between
the two versions is exactly what a security update does to a lock: same package names and
closures, a different .deb. For the Kolla-style peer the same switch is `apt-get install
openssl=<old>` in the base image's RUN line versus plain `openssl`.

Standard library only (Python 3.9+).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence

import benchlib as B

MIRROR = "http://deb.debian.org/debian"


@dataclass(frozen=True)
class Version:
    name: str
    version: str
    sha256: str
    size: int
    url: str  # pool/... path on the mirror
    suite: str
    source: str = "debian"  # the sources.yaml entry whose URL the path is under
    source_version: str = ""


def current_versions(lock: dict, names: Sequence[str]) -> List[Version]:
    packages = lock["architectures"]["amd64"]
    return [Version(n, str(packages[n]["version"]), packages[n]["sha256"], int(packages[n]["size"]),
                    packages[n]["url"], packages[n]["suite"], packages[n]["source"],
                    str(packages[n].get("source_version") or packages[n]["version"])) for n in names]


def packages_of_source(lock: dict, image: str, source: str) -> List[str]:
    packages = lock["architectures"]["amd64"]
    closure = B.image_closure(lock, image)
    names = sorted(n for n in closure if packages[n].get("source_package") == source)
    if not names:
        updated = sorted({packages[n].get("source_package") for n in closure if packages[n].get("suite") != "bookworm"})
        raise SystemExit(f"error: no package of source {source} in {image}; sources with updates there: {updated}")
    if any(packages[n].get("suite") == "bookworm" for n in names):
        raise SystemExit(f"error: {source} has no update over bookworm in the lock, so bookworm has no other version")
    return names


def older_versions(work: Path, names: Sequence[str], deb_dir: Path) -> List[Version]:
    """The bookworm (point release) version of each package; its .deb downloaded into deb_dir, verified."""
    index = B.suite_packages(MIRROR, "bookworm", work)
    out = []
    for name in names:
        stanzas = index.get(name)
        if not stanzas:
            raise SystemExit(f"error: {name} is not in bookworm main")
        stanza = stanzas[-1]
        source_field = stanza.get("Source", "")
        source_version = source_field.split("(", 1)[1].rstrip(")").strip() if "(" in source_field else stanza["Version"]
        version = Version(name, stanza["Version"], stanza["SHA256"], int(stanza["Size"]), stanza["Filename"], "bookworm",
                          "debian", source_version)
        target = deb_dir / f"{version.sha256}.deb"
        if not target.exists():
            print(f"  downloading {name} {version.version} (bookworm) for the bump")
            B.fetch(f"{MIRROR}/{version.url}", target.with_suffix(".tmp"))
            if B.sha256_file(target.with_suffix(".tmp")) != version.sha256:
                raise SystemExit(f"error: {name} {version.version}: sha256 does not match the signed index")
            os.replace(target.with_suffix(".tmp"), target)
        out.append(version)
    return out


def lock_with(lock_text: str, versions: Sequence[Version]) -> str:
    for v in versions:
        lock_text = B.replace_lock_package(lock_text, v.name, {
            "version": v.version, "sha256": v.sha256, "size": str(v.size), "url": v.url, "suite": v.suite,
            "source": v.source, "source_version": v.source_version or v.version})
    return lock_text


def describe(old: Sequence[Version], new: Sequence[Version]) -> str:
    by_name: Dict[str, Version] = {v.name: v for v in new}
    return ", ".join(f"{v.name} {v.version} -> {by_name[v.name].version}" for v in old)
