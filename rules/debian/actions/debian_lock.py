"""Resolve the packages of every image into a lock: `python3 -m debian.actions.debian_lock request.json lock.json`.

The request names the apt sources and what each image asks for:

    {"sources": [{"name", "url", "suites", "components", "architectures", "keyring"}],
     "architectures": ["amd64"],
     "images": {"<address>": {"packages": [...], "recommends": bool, "essential": bool, "parent": "<address>" | null,
                              "exclude": {"<package>": "<reason>"} (optional)}}}

For each architecture the indexes of all sources are fetched and verified, the
newest version of each package across suites is kept, and the union of all
requests is resolved once, so that every image gets the same version of a
package.  An image's closure is what its own requests (and its parents') reach
in that resolution.  The lock (see `build_lock`) pins sha256, size and URL of
every package.  An image's exclusions hold for its descendants too, unless one
asks for the package itself.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Dict, List, Mapping, Optional, Sequence

from .debian_repo import AptSource, Log, PackageRecord, RepositoryError, load_packages, log_to_stderr, newest_by_name
from .debian_resolve import Resolution, ResolutionError, Universe, requested_names, resolve, unknown_exclusion
from .debian_version import compare_versions
from .deb822 import MalformedIndex

LOCK_VERSION = 1


class LockRequestError(ValueError):
    pass


def build_lock(request: Mapping, cache_dir: Optional[str] = None, log: Log = log_to_stderr) -> dict:
    """The lock for `request` (the JSON document described in the module docstring)."""
    architectures = list(request.get("architectures") or ["amd64"])
    sources = [AptSource.from_json(source, architectures) for source in request["sources"]]
    images: Mapping[str, Mapping] = request.get("images") or {}
    check_parents(images)
    lock: dict = {"version": LOCK_VERSION, "architectures": {}, "images": {address: {} for address in images},
                  "requests": {address: dict(image) for address, image in images.items()}}
    universes = []
    for architecture in architectures:
        universe = load_universe(sources, architecture, cache_dir, log)
        universes.append(universe)
        packages: dict = {}
        for address in parents_first(images):
            image = images[address]
            parent = image.get("parent")
            inherited = lock["images"][parent][architecture]["closure"] if parent else []
            try:
                resolution = resolve_image(universe, image, inherited, excluded_for(images, address))
            except (ResolutionError, LockRequestError) as e:
                e.args = (f"{address} ({architecture}): {e}",)
                raise
            lock["images"][address][architecture] = image_entry(resolution, image)
            for name, record in resolution.packages.items():
                # The image that first chose a package (an ancestor, by the order) records its edges.
                packages.setdefault(name, locked_package(record, resolution))
        lock["architectures"][architecture] = dict(sorted(packages.items()))
        log(f"{architecture}: {len(packages)} packages for {len(images)} images")
    check_exclusions_exist(images, universes)
    return lock


def check_exclusions_exist(images: Mapping[str, Mapping], universes: Sequence[Universe]) -> None:
    """A misspelt exclusion would silently exclude nothing: refuse names no architecture has."""
    for address in sorted(images):
        for name in sorted(images[address].get("exclude") or ()):
            error = unknown_exclusion(name, universes)
            if error is not None:
                raise LockRequestError(f"{address}: {error}")


def parents_first(images: Mapping[str, Mapping]) -> List[str]:
    """Image addresses ordered so that each comes after its parent; ties by address."""
    def depth(address: str) -> int:
        parent = images[address].get("parent")
        return 0 if not parent else 1 + depth(parent)
    return sorted(images, key=lambda address: (depth(address), address))


def check_parents(images: Mapping[str, Mapping]) -> None:
    for address in images:
        seen = [address]
        parent = images[address].get("parent")
        while parent:
            if parent not in images:
                raise LockRequestError(f"{address}: its parent {parent} is not among the images of the request.")
            if parent in seen:
                raise LockRequestError(f"Images form a parent cycle: {' -> '.join(seen + [parent])}.")
            seen.append(parent)
            parent = images[parent].get("parent")


def load_universe(sources: Sequence[AptSource], architecture: str, cache_dir: Optional[str], log: Log) -> Universe:
    records: List[PackageRecord] = []
    for source in sources:
        if architecture in source.architectures:
            records.extend(load_packages(source, architecture, cache_dir=cache_dir, log=log).records)
    if not records:
        raise LockRequestError(f"No apt source has packages for architecture {architecture}.")
    return Universe.from_records(newest_by_name(records).values())


def excluded_for(images: Mapping[str, Mapping], address: str) -> Dict[str, str]:
    """The image's exclusions and its ancestors', less what the image asks for by name."""
    image = images[address]
    parent = image.get("parent")
    excluded = dict(excluded_for(images, parent)) if parent else {}
    excluded.update(image.get("exclude") or {})
    for text in image.get("packages") or ():
        for name in requested_names(text):
            excluded.pop(name, None)
    return excluded


def resolve_image(universe: Universe, image: Mapping, inherited: Sequence[str],
                  excluded: Mapping[str, str]) -> Resolution:
    """One image's packages on top of its parent's closure, which it may use but never changes."""
    already = sorted(set(image.get("exclude") or ()) & set(inherited))
    if already:
        raise LockRequestError(f"it excludes {', '.join(already)}, which its parent images already install: "
                               "leave it out of the parent instead")
    return resolve(
        universe,
        sorted(image.get("packages") or ()),
        include_recommends=bool(image.get("recommends")),
        include_essential=bool(image.get("essential")),
        inherited=inherited,
        excluded=sorted(set(excluded) - set(inherited)),
    )


def image_entry(resolution: Resolution, image: Mapping) -> dict:
    """What the image asks for itself (resolved names), its whole closure, parents included, and
    the dependencies its exclusions left unmet."""
    requested = sorted({resolution.requested[text] for text in image.get("packages") or ()})
    entry = {"requested": requested, "closure": sorted(resolution.packages)}
    if resolution.dropped_depends:
        entry["dropped_depends"] = sorted(resolution.dropped_depends)
    return entry


def locked_package(record: PackageRecord, resolution: Resolution) -> dict:
    return {
        "version": record.version,
        "architecture": record.architecture,
        "sha256": record.sha256,
        "size": record.size,
        "url": record.filename,
        "source": record.source,
        "suite": record.suite,
        "depends": list(resolution.depends[record.name]),
        "recommends": list(resolution.recommends[record.name]),
        "essential": record.essential,
        "installed_size": record.installed_size,
        "multi_arch": record.multi_arch,
        "source_package": record.source_package,
        "source_version": record.source_version,
    }


def diff_locks(old: Optional[Mapping], new: Mapping) -> str:
    """A readable summary of what changed between two locks, per architecture."""
    old_architectures = (old or {}).get("architectures") or {}
    new_architectures = new.get("architectures") or {}
    sections = []
    for architecture in sorted(set(old_architectures) | set(new_architectures)):
        lines = _package_changes(old_architectures.get(architecture) or {}, new_architectures.get(architecture) or {})
        if lines:
            sections.append(f"{architecture}:\n" + "\n".join(lines))
    return "\n".join(sections) if sections else "No package changes."


def _package_changes(old: Mapping[str, Mapping], new: Mapping[str, Mapping]) -> List[str]:
    lines = []
    for name in sorted(set(old) | set(new)):
        before, after = old.get(name), new.get(name)
        if before is None:
            lines.append(f"  added       {name} {after['version']}")
        elif after is None:
            lines.append(f"  removed     {name} {before['version']}")
        else:
            change = compare_versions(after["version"], before["version"])
            if change > 0:
                lines.append(f"  upgraded    {name} {before['version']} -> {after['version']}")
            elif change < 0:
                lines.append(f"  downgraded  {name} {before['version']} -> {after['version']}")
            elif after["sha256"] != before["sha256"]:
                lines.append(f"  rebuilt     {name} {after['version']} (same version, new sha256)")
    return lines


def write_json(path: str, value: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=1, sort_keys=True)
        f.write("\n")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m debian.actions.debian_lock", description=__doc__.split("\n")[0])
    parser.add_argument("request", help="the lock request (JSON)")
    parser.add_argument("output", help="where to write the lock (JSON)")
    parser.add_argument("--cache-dir", help="keep downloaded indexes here, by sha256")
    parser.add_argument("--previous", help="an older lock to print a diff against")
    args = parser.parse_args(argv)
    with open(args.request, encoding="utf-8") as f:
        request = json.load(f)
    try:
        lock = build_lock(request, cache_dir=args.cache_dir)
    except (RepositoryError, ResolutionError, MalformedIndex, LockRequestError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    write_json(args.output, lock)
    if args.previous:
        with open(args.previous, encoding="utf-8") as f:
            print(diff_locks(json.load(f), lock), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
