"""Merge the packages of one layer into its entries, as dpkg --unpack would lay them out.

- two packages may ship the same path only with identical contents (directories with the same
  mode and owner, identical files or links); anything else is a conflict naming both packages;
- no path may sit below a symlink or a file of the layer (refused as a write through it);
- each package's dpkg database files (dpkgdb.py) are part of the layer, claimed like its files.
Reading a .deb is debcontents.py's part.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Sequence, Tuple

from oci.actions.tarlayer import DIR, SYMLINK, Entry

from .debcontents import DebInput, HostileMember, InstalledPackage, PackageFile, read_package
from .dpkgdb import dpkg_metadata_entries


class FileConflict(ValueError):
    """Two packages of one layer install different things at the same path."""


class DuplicatePackage(ValueError):
    """The same package (name and architecture) twice in one layer."""


@dataclass(frozen=True)
class PackageLayer:
    entries: Tuple[Entry, ...]
    packages: Tuple[InstalledPackage, ...]  # by name, then architecture


def package_layer(debs: Sequence[DebInput], spool_dir: str) -> PackageLayer:
    """Read `debs` and merge them into one layer's entries; the order of `debs` does not matter.

    File contents are spooled to `spool_dir`, which must outlive the writing of the layer.
    """
    packages = sorted((read_package(deb, os.path.join(spool_dir, f"{index}.spool")) for index, deb in enumerate(debs)),
                      key=lambda p: (p.name, p.control.architecture))
    check_unique_packages(packages)
    return PackageLayer(tuple(merge_packages(packages)), tuple(packages))


def check_unique_packages(packages: Sequence[InstalledPackage]) -> None:
    seen: Dict[Tuple[str, str], InstalledPackage] = {}
    for package in packages:
        key = (package.name, package.control.architecture)
        if key in seen:
            raise DuplicatePackage(f"{package.name}:{key[1]} is in this layer twice: {seen[key].label} and "
                                   f"{package.label}")
        seen[key] = package


Owned = Tuple[PackageFile, str]  # a file and the label of what installs it


def merge_packages(packages: Sequence[InstalledPackage]) -> List[Entry]:
    owners: Dict[str, Owned] = {}
    for package in packages:
        metadata = [PackageFile(e, e.path, hashlib.sha256(e.data or b"").hexdigest(), size=len(e.data or b""))
                    for e in dpkg_metadata_entries(package)]
        for file in package.files:
            claim(owners, file, package.label)
        for file in metadata:
            claim(owners, file, f"the dpkg database entry of {package.label}")
    check_parents(owners)
    return [file.entry for file, _ in owners.values()]


def claim(owners: Dict[str, Owned], file: PackageFile, origin: str) -> None:
    existing = owners.get(file.path)
    if existing is None:
        owners[file.path] = (file, origin)
        return
    other, other_origin = existing
    kinds = {other.entry.kind, file.entry.kind}
    if kinds == {DIR, SYMLINK}:  # dpkg would keep the link and unpack the directory's contents through it
        new = (file, origin)
        (link, link_origin), (directory, directory_origin) = (existing, new) if other.entry.kind == SYMLINK \
            else (new, existing)
        raise HostileMember(directory_origin, directory.member, f"would be written through {link.describe()} at "
                                                                f"/{link.path} (from {link_origin})")
    if other.identity != file.identity:
        raise FileConflict(f"/{file.path} is installed by {other_origin} as {other.describe()} and by {origin} as "
                           f"{file.describe()}; dpkg would refuse this too (unless one Replaces the other): "
                           "put the packages in different images or drop one")


def check_parents(owners: Mapping[str, Owned]) -> None:
    """No path may sit below a symlink or a file of this layer: extracting it would write through the link."""
    for path, (file, origin) in owners.items():
        parent = posixpath.dirname(path)
        while parent:
            owner = owners.get(parent)
            if owner is not None and owner[0].entry.kind != DIR:
                parent_file, parent_origin = owner
                raise HostileMember(origin, file.member, f"would be written through {parent_file.describe()} at "
                                                         f"/{parent} (from {parent_origin})")
            parent = posixpath.dirname(parent)


def layer_packages_json(packages: Iterable[InstalledPackage], effects: Mapping[Tuple[str, str], dict]) -> dict:
    """packages.json: what each package installed, with the dpkg database files that record it and what
    its maintainer scripts' effects did (layereffects.py)."""
    return {"packages": [dict(package.to_json(), dpkg_metadata=sorted(e.path for e in dpkg_metadata_entries(package)),
                              script_effects=effects[(package.name, package.control.architecture)])
                         for package in packages]}
