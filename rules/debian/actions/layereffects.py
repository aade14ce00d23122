"""Apply each package's maintainer-script effects inside its own package layer.

The effects go where the package's files are, so every image that adds the layer shares them:
owners and modes of the package's paths change in place, directories and copies become new
entries of the layer.  Packages are planned one by one in name order, each on the layer's
paths; two packages that make the same path differently are refused, as two packages
shipping it differently are.  What was applied, skipped (upgrade-only) and left unapplied is
recorded per package under `script_effects` in packages.json, for the system layer's check
and for audits.
"""

from __future__ import annotations

import collections.abc
import dataclasses
from typing import AbstractSet, Dict, Iterator, List, Mapping, Sequence, Set, Tuple

from oci.actions.tarlayer import DIR, FILE, HARDLINK, Entry

from .accounts import AccountIds
from .debcontents import InstalledPackage
from .deblayer import FileConflict
from .scriptcommands import HANDLED_KINDS, scan_commands
from .scripteffects import FinalEntry, PackageInput, PathState, Plan, final_entries, first_path, plan

TMPFILES_DIRS = ("usr/lib/tmpfiles.d/",)
UNIT_DIRS = ("usr/lib/systemd/system/",)  # /lib/systemd/system after the merged-/usr move


def read_text(entry: Entry, by_path: Mapping[str, Entry]) -> str:
    if entry.kind == HARDLINK:
        entry = by_path[entry.target]
    stream, size = entry.opener() if entry.opener else (None, 0)
    if stream is None:
        return (entry.data or b"").decode("utf-8", "replace")
    with stream:
        return stream.read(size).decode("utf-8", "replace")


def kind_effects(package: InstalledPackage) -> List[dict]:
    """The scanner's findings of kinds no rule handles, with their path: the policy judges them per image."""
    return [{"script": e.script, "command": e.command, "kind": e.kind, "path": first_path(e.command)}
            for e in package.findings.effects if e.kind not in HANDLED_KINDS]


class PathsBut(collections.abc.Set):
    """The layer's paths but one package's own, as a view: a copy per package made a layer of
    thousands of paths quadratic. Valid while that package is planned, before its effects land."""

    def __init__(self, paths: AbstractSet[str], own: AbstractSet[str]):
        self.paths = paths
        self.own = own

    def __contains__(self, path: object) -> bool:
        return path in self.paths and path not in self.own

    def __iter__(self) -> Iterator[str]:
        return (p for p in self.paths if p not in self.own)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def package_input(package: InstalledPackage, by_path: Mapping[str, Entry], layer_paths: AbstractSet[str]
                  ) -> PackageInput:
    """The package's paths as the layer holds them now (earlier packages' effects included).

    `layer_paths` is every key of `by_path` as an absolute path.
    """
    own = [by_path[f.path] for f in package.files if f.path in by_path]
    files = tuple(PathState("/" + e.path, e.kind, e.mode, e.uid, e.gid) for e in own)
    texts = {"/" + e.path: e for e in own if e.kind in (FILE, HARDLINK)}
    tmpfiles = {p: read_text(e, by_path) for p, e in texts.items()
                if p.startswith(tuple("/" + d for d in TMPFILES_DIRS)) and p.endswith(".conf")}
    units = {p: read_text(e, by_path) for p, e in texts.items()
             if p.startswith(tuple("/" + d for d in UNIT_DIRS)) and p.endswith(".service")}
    others = PathsBut(layer_paths, {f.path for f in files})
    return PackageInput(package.name, scan_commands(package.control.scripts, package.name), files, tmpfiles, units,
                        others)


def apply_effects(packages: Sequence[InstalledPackage], entries: Sequence[Entry], ids: AccountIds
                  ) -> Tuple[List[Entry], Dict[Tuple[str, str], dict]]:
    """The layer's entries with every package's effects applied, and each package's record."""
    by_path: Dict[str, Entry] = {e.path: e for e in entries}
    layer_paths: Set[str] = {"/" + p for p in by_path}
    made: Dict[str, Tuple[FinalEntry, str]] = {}
    records: Dict[Tuple[str, str], dict] = {}
    for package in packages:
        package_in = package_input(package, by_path, layer_paths)
        result = plan(package_in, ids)
        finals = final_entries(package_in, result)
        for final in finals:
            path = final.path.lstrip("/")
            by_path[path] = effect_entry(final, by_path, made, package.name)
            layer_paths.add("/" + path)
        records[(package.name, package.control.architecture)] = dict(record(result, finals),
                                                                     by_kind=kind_effects(package))
    return [by_path[p] for p in sorted(by_path)], records


def effect_entry(final: FinalEntry, by_path: Mapping[str, Entry], made: Dict[str, Tuple[FinalEntry, str]],
                 package: str) -> Entry:
    path = final.path.lstrip("/")
    earlier = made.get(path)
    if earlier is not None and earlier[0] != final:
        raise FileConflict(f"{final.path}: the maintainer scripts of {earlier[1]} and {package} leave it "
                           f"differently ({describe(earlier[0])} and {describe(final)})")
    made[path] = (final, package)
    existing = by_path.get(path)
    if final.source is not None:
        source = by_path[final.source.lstrip("/")]
        source = by_path[source.target] if source.kind == HARDLINK else source
        return Entry(path, FILE, final.mode, final.uid, final.gid, data=source.data, source=source.source,
                     opener=source.opener)
    if final.kind == FILE and existing is None:  # touch: an empty file
        return Entry(path, FILE, final.mode, final.uid, final.gid, data=b"")
    if existing is None:
        return Entry(path, DIR, final.mode, final.uid, final.gid)
    # owner names in the tar header would disagree with the new ids: numeric only, as runtimes read them
    return dataclasses.replace(existing, mode=final.mode, uid=final.uid, gid=final.gid, uname="", gname="")


def describe(final: FinalEntry) -> str:
    return f"{final.kind} {final.uid}:{final.gid} {final.mode:04o}"


def record(result: Plan, finals: Sequence[FinalEntry]) -> dict:
    """packages.json's `script_effects` of one package."""
    value = result.to_json()
    return {
        "applied": [{"path": f.path, "kind": f.kind, "uid": f.uid, "gid": f.gid, "mode": f"{f.mode:04o}",
                     **({"source": f.source} if f.source else {})} for f in finals],
        "removed": [r.path for r in result.removals],
        "commands": value,
        "needs": value.pop("needs"),
        "absent": value.pop("absent"),
        "unapplied": value.pop("unapplied"),
        "skipped": value.pop("skipped"),
    }
