"""Merge the packages of one layer into its entries, as dpkg --unpack would lay them out.

- two packages may ship the same path only with identical contents (directories with the same
  mode and owner, identical files or links); anything else is a conflict naming both packages;
- no path may sit below a symlink or a file of the layer (refused as a write through it);
- each package's dpkg database files (dpkgdb.py) are part of the layer: their paths are claimed
  like its files, and they are written after the path filter (pathfilter.py), so that they list
  only what the layer holds.
Reading a .deb is debcontents.py's part.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import posixpath
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Sequence, Tuple

from oci.actions.tarlayer import DIR, SYMLINK, Entry

from .debcontents import DebInput, HostileMember, InstalledPackage, PackageFile, read_package
from .dpkgdb import dpkg_metadata_entries, status_paragraph
from .pathfilter import PathFilter, filter_entries


class FileConflict(ValueError):
    """Two packages of one layer install different things at the same path."""


class DuplicatePackage(ValueError):
    """The same package (name and architecture) twice in one layer."""


@dataclass(frozen=True)
class PackageLayer:
    entries: Tuple[Entry, ...]  # the layer: files the path filter keeps, and the dpkg database files
    packages: Tuple[InstalledPackage, ...]  # by name, then architecture; with the files the layer holds
    unfiltered: Tuple[Entry, ...]  # every file of the packages, before the path filter


def package_layer(debs: Sequence[DebInput], spool_dir: str, path_filter: PathFilter = PathFilter()) -> PackageLayer:
    """Read `debs` and merge them into one layer's entries; the order of `debs` does not matter.

    File contents are spooled to `spool_dir`, which must outlive the writing of the layer.
    """
    packages, entries = merge_debs(debs, spool_dir)
    return filtered_layer(packages, entries, entries, path_filter)


def merge_debs(debs: Sequence[DebInput], spool_dir: str) -> Tuple[List[InstalledPackage], List[Entry]]:
    """The packages of `debs`, by name then architecture, and their merged files."""
    packages = sorted((read_package(deb, os.path.join(spool_dir, f"{index}.spool")) for index, deb in enumerate(debs)),
                      key=lambda p: (p.name, p.control.architecture))
    check_unique_packages(packages)
    return packages, merge_packages(packages)


def filtered_layer(packages: Sequence[InstalledPackage], entries: Sequence[Entry], unfiltered: Sequence[Entry],
                   path_filter: PathFilter) -> PackageLayer:
    """The layer: `entries` (the merged files, with script effects applied) that the path filter keeps, then
    the dpkg database files of what it holds."""
    kept = filter_entries(entries, path_filter)
    installed = only_installed(packages, kept) if path_filter else list(packages)
    metadata = [entry for package in installed for entry in dpkg_metadata_entries(package)]
    return PackageLayer(tuple(kept + metadata), tuple(installed), tuple(unfiltered))


def only_installed(packages: Sequence[InstalledPackage], entries: Sequence[Entry]) -> List[InstalledPackage]:
    """Each package with the files the layer holds, as it holds them (a hardlink may have become the file)."""
    in_layer = {entry.path: entry for entry in entries}
    return [dataclasses.replace(package, files=tuple(dataclasses.replace(f, entry=in_layer[f.path])
                                                     for f in package.files if f.path in in_layer))
            for package in packages]


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
    """The packages' files; the paths of their database files are claimed too, so no file may take them."""
    owners: Dict[str, Owned] = {}
    database = set()
    for package in packages:
        metadata = [PackageFile(e, e.path, hashlib.sha256(e.data or b"").hexdigest(), size=len(e.data or b""))
                    for e in dpkg_metadata_entries(package)]
        for file in package.files:
            claim(owners, file, package.label)
        for file in metadata:
            claim(owners, file, f"the dpkg database entry of {package.label}")
            database.add(file.path)
    check_parents(owners)
    return [file.entry for path, (file, _) in owners.items() if path not in database]


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
    """packages.json: what each package installed, with the dpkg database files that record it, its
    stanza and what its maintainer scripts' effects did (layereffects.py).

    `status_paragraph` is the package's stanza, for the image's var/lib/dpkg/status (the system layer
    reads packages.json, not the layers).
    """
    return {"packages": [dict(package.to_json(), dpkg_metadata=sorted(e.path for e in dpkg_metadata_entries(package)),
                              status_paragraph=status_paragraph(package),
                              script_effects=effects[(package.name, package.control.architecture)])
                         for package in packages]}
