"""Refuse declared files that clash with packages: `python -m debian.actions.check_declared_files spec.json`.

spec: {"image": address, "files": [{"path", "source", "origin", "overridable", "can_override"}],
"inherited": [{"path", "source", "origin", "image"}]}; the packages of the image and its parents are
read from `packages/*.json` (what build_package_layer wrote for each package layer of the chain), the
image's own packages alone from `new/packages/*.json`.

A declared file (the files layer comes last) may replace:
- a package's conffile: dpkg itself treats those as the administrator's to edit;
- any other package file or symlink only when its `image_files` target lists the path in
  `overrides`, so that the replacement is visible in review.
It may never replace a directory, nor go below a package's symlink (a files layer would turn
/bin -> usr/bin into a real directory) or below a package's file.  Every problem is listed, then
exit 1.  Nothing is written: success is the empty output.

The other direction: a file declared by a parent ("inherited") sits in a files layer that comes
before this image's package layers, so a new package shipping that path (a file, symlink or
directory there, a path below it, or a symlink or file at one of its parent directories) would
silently replace it.  That is always refused: `overrides` cannot reorder layers.
"""

from __future__ import annotations

import glob
import json
import os
import posixpath
import sys
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

# Root links of a merged-/usr system; the system layer writes them, so no packages.json lists them.
MERGED_USR_LINKS = {name: f"usr/{name}" for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32")}
DIR, SYMLINK = "dir", "symlink"
ROOT_LINKS = "the merged-/usr root links"
KIND_WORDS = {DIR: "directory", SYMLINK: "symlink"}  # anything else (file, hardlink) reads "file"


@dataclass(frozen=True)
class Owner:
    package: str  # "name version", or a description for the root links
    kind: str
    target: str = ""
    conffile: bool = False


@dataclass(frozen=True)
class Declared:
    path: str  # image path without the leading "/"
    source: str
    origin: str  # the target that declares it
    can_override: bool  # the target has an `overrides` field (image_files) rather than a plain `file`
    overridable: bool  # ... and lists this path in it

    def to_json(self) -> dict:
        return {"path": self.path, "source": self.source, "origin": self.origin, "can_override": self.can_override,
                "overridable": self.overridable}

    @staticmethod
    def from_json(value: Mapping) -> "Declared":
        return Declared(value["path"].lstrip("/"), value["source"], value["origin"], bool(value["can_override"]),
                        bool(value["overridable"]))

    @property
    def label(self) -> str:
        return label(self.path, self.source, self.origin)


@dataclass(frozen=True)
class DeclaredFile:
    """A file of an image's files layer, as the images built on it see it (before their packages)."""

    path: str
    source: str
    origin: str
    image: str  # the parent image whose files layer holds it

    def to_json(self) -> dict:
        return {"path": self.path, "source": self.source, "origin": self.origin, "image": self.image}

    @staticmethod
    def from_json(value: Mapping) -> "DeclaredFile":
        return DeclaredFile(value["path"].lstrip("/"), value["source"], value["origin"], value["image"])

    @property
    def label(self) -> str:
        return label(self.path, self.source, self.origin)


@dataclass(frozen=True)
class DeclaredFilesSpec:
    image: str
    files: Tuple[Declared, ...]  # this image's
    inherited: Tuple[DeclaredFile, ...]  # the parents', checked against this image's new packages

    def to_json(self) -> dict:
        return {"image": self.image, "files": [f.to_json() for f in self.files],
                "inherited": [f.to_json() for f in self.inherited]}

    @staticmethod
    def from_json(value: Mapping) -> "DeclaredFilesSpec":
        return DeclaredFilesSpec(value["image"], tuple(Declared.from_json(v) for v in value["files"]),
                                 tuple(DeclaredFile.from_json(v) for v in value["inherited"]))


def label(path: str, source: str, origin: str) -> str:
    return f"/{path} (from {source}, {origin})"


def merged_usr(path: str) -> str:
    top = path.split("/", 1)[0]
    return f"usr/{path}" if top in MERGED_USR_LINKS else path


def load_owners(packages_dir: str) -> Dict[str, List[Owner]]:
    """Image path -> every package that installs something there, over the chain's package layers."""
    owners: Dict[str, List[Owner]] = {}
    for name in sorted(glob.glob(os.path.join(packages_dir, "*.json"))):
        with open(name, encoding="utf-8") as f:
            for package in json.load(f)["packages"]:
                add_package(owners, package)
    if owners:
        for link, target in MERGED_USR_LINKS.items():
            owners.setdefault(link, []).append(Owner(ROOT_LINKS, SYMLINK, target))
    return owners


def add_package(owners: Dict[str, List[Owner]], package: Mapping) -> None:
    label = f"{package['name']} {package['version']}"
    conffiles = {merged_usr(path.lstrip("/")) for path in package.get("conffiles", ())}
    for entry in package.get("files", ()):
        path = entry["path"]
        owners.setdefault(path, []).append(Owner(label, entry["kind"], entry.get("target", ""), path in conffiles))
    for path in package.get("dpkg_metadata", ()):
        owners.setdefault(path, []).append(Owner(label, "file"))


def packages_of(owners: Sequence[Owner]) -> str:
    return ", ".join(sorted({o.package for o in owners}))


def link_target(link: str, target: str) -> str:
    return posixpath.normpath(target.lstrip("/") if target.startswith("/")
                              else posixpath.join(posixpath.dirname(link), target))


def problems_of(declared: Declared, owners: Mapping[str, List[Owner]]) -> List[str]:
    move = f"change the `destination` of {declared.origin}"
    parts = declared.path.split("/")
    for depth in range(1, len(parts)):
        ancestor = "/".join(parts[:depth])
        above = [o for o in owners.get(ancestor, ()) if o.kind != DIR]
        if not above:
            continue
        if above[0].kind == SYMLINK:
            real = posixpath.join(link_target(ancestor, above[0].target), *parts[depth:])
            return [f"{declared.label} goes below /{ancestor}, a symlink to {above[0].target} of "
                    f"{packages_of(above)}: the files layer would replace the link with a directory. "
                    f"Declare it at its real path /{real} ({move})."]
        return [f"{declared.label} goes below /{ancestor}, a file of {packages_of(above)}. Fix: {move}."]
    here = owners.get(declared.path, ())
    if not here:
        return []
    if any(o.kind == DIR for o in here):
        return [f"{declared.label} would replace the directory /{declared.path} of "
                f"{packages_of([o for o in here if o.kind == DIR])}. Fix: {move}."]
    if all(o.conffile for o in here) or declared.overridable:
        return []
    what = "symlink" if here[0].kind == SYMLINK else "file"
    if declared.can_override:
        fix = (f"if the replacement is deliberate, add \"/{declared.path}\" to the `overrides` of "
               f"{declared.origin}; otherwise {move}")
    else:
        fix = (f"if the replacement is deliberate, declare it with an `image_files` target that lists "
               f"\"/{declared.path}\" in `overrides`; otherwise move it")
    return [f"{declared.label} would replace the {what} /{declared.path} installed by {packages_of(here)} "
            f"(not a conffile). Fix: {fix}."]


def check(files: Iterable[Declared], owners: Mapping[str, List[Owner]]) -> List[str]:
    return [problem for declared in sorted(files, key=lambda d: d.path) for problem in problems_of(declared, owners)]


def first_below(owners: Mapping[str, List[Owner]]) -> Dict[str, str]:
    """Each directory some owned path goes below -> the first such path (for "a path below it")."""
    below: Dict[str, str] = {}
    for path in sorted(owners):
        parts = path.split("/")
        for depth in range(1, len(parts)):
            below.setdefault("/".join(parts[:depth]), path)
    return below


def replaced_by(declared: DeclaredFile, owners: Mapping[str, List[Owner]],
                below: Mapping[str, str]) -> Optional[Tuple[str, List[Owner], str]]:
    """(what replaces the inherited file, its owners, the real path if a symlink moves it) or None."""
    parts = declared.path.split("/")
    for depth in range(1, len(parts)):
        ancestor = "/".join(parts[:depth])
        above = [o for o in owners.get(ancestor, ()) if o.kind != DIR]
        if above and above[0].kind == SYMLINK:
            real = posixpath.join(link_target(ancestor, above[0].target), *parts[depth:])
            return f"the symlink /{ancestor} -> {above[0].target}", above, real
        if above:
            return f"the file /{ancestor}", above, ""
    here = owners.get(declared.path, ())
    if here:
        kind = next((o.kind for o in here if o.kind == DIR), here[0].kind)
        return f"the {KIND_WORDS.get(kind, 'file')} /{declared.path}", list(here), ""
    if declared.path in below:
        inside = below[declared.path]
        return f"a directory (for /{inside})", list(owners[inside]), ""
    return None


def inherited_problems(declared: DeclaredFile, owners: Mapping[str, List[Owner]], below: Mapping[str, str],
                       image: str) -> List[str]:
    found = replaced_by(declared, owners, below)
    if not found:
        return []
    what, by, real = found
    names = sorted({o.package.split(" ")[0] for o in by if o.package != ROOT_LINKS})
    fixes = [f"declare the file in {image} instead, whose files layer comes after its packages (where "
             f"conffiles and `overrides` apply)"]
    if real:
        fixes.append(f"declare it at its real path /{real}")
    if names:
        fixes.append(f"install {', '.join(names)} in {declared.image}")
    return [f"{declared.label} would be replaced by {what} of {packages_of(by)}: the package "
            f"layers of {image} come after the files layer of {declared.image}, and `overrides` cannot change "
            f"that. Fix: {'; or '.join(fixes)}."]


def check_inherited(files: Iterable[DeclaredFile], owners: Mapping[str, List[Owner]], image: str) -> List[str]:
    """Files declared by the parents against the image's own (new) packages only."""
    files = sorted(files, key=lambda d: d.path)
    below = first_below(owners) if files and owners else {}
    return [problem for declared in files for problem in inherited_problems(declared, owners, below, image)]


def main(argv: List[str]) -> int:
    spec_path, = argv
    with open(spec_path, encoding="utf-8") as f:
        spec = DeclaredFilesSpec.from_json(json.load(f))
    image = spec.image
    problems = check(spec.files, load_owners("packages"))
    lost = check_inherited(spec.inherited, load_owners("new/packages"), image)
    report(f"{image}: {len(problems)} declared file(s) clash with the image's packages:", problems)
    report(f"{image}: {len(lost)} declared file(s) of its parents clash with the image's packages:", lost)
    return 1 if problems or lost else 0


def report(heading: str, problems: List[str]) -> None:
    if problems:
        print(heading, file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
