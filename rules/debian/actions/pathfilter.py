"""Leave documentation and translations out of package layers, as dpkg's path-exclude does.

Patterns are shell globs matched against the absolute merged-/usr path; `*` also matches
`/`, as in dpkg (fnmatch without FNM_PATHNAME), so `/usr/share/doc/*` covers every depth.
A path is left out when an exclude pattern matches it and no include pattern does.
A directory is left out only when it is excluded and nothing below it stays, as dpkg keeps
an excluded directory that still holds something.

Unlike dpkg, whose database keeps listing what path-exclude left out, the layer's database
(info/<pkg>.list, .md5sums and the stanza's Conffiles, dpkgdb.py) names only what the layer
holds: `dpkg --verify` is then clean, and `dpkg -S` never names a file the image lacks.  The
system layer writes the same patterns to /etc/dpkg/dpkg.cfg.d/ for dpkg runs on top of the image.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import posixpath
import re
from dataclasses import dataclass
from typing import Dict, Iterable, List, Sequence, Set, Tuple

from oci.actions.tarlayer import DIR, FILE, HARDLINK, Entry


class PatternError(ValueError):
    """A path pattern that cannot mean what its author wants."""


@dataclass(frozen=True)
class PathFilter:
    excludes: Tuple[str, ...] = ()
    includes: Tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for pattern in self.excludes + self.includes:
            if not pattern.startswith("/"):
                raise PatternError(f"path pattern {pattern!r} must be absolute, like '/usr/share/doc/*'")

    @classmethod
    def from_json(cls, value: dict) -> "PathFilter":
        return cls(tuple(value["excludes"]), tuple(value["includes"]))

    def to_json(self) -> dict:
        return {"excludes": list(self.excludes), "includes": list(self.includes)}

    def __bool__(self) -> bool:
        return bool(self.excludes)

    def excluded(self, path: str) -> bool:
        absolute = "/" + path
        return (any(fnmatch.fnmatchcase(absolute, p) for p in self.excludes)
                and not any(fnmatch.fnmatchcase(absolute, p) for p in self.includes))


def is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def glob_matches(pattern: str, paths: Iterable[str]) -> List[str]:
    """The paths an fnmatch glob matches, sorted; the glob is compiled once (a layer has thousands of paths)."""
    match = re.compile(fnmatch.translate(pattern)).match
    return sorted(p for p in paths if match(p))


def filter_entries(entries: Sequence[Entry], path_filter: PathFilter) -> List[Entry]:
    """`entries` without what `path_filter` leaves out; a hardlink that stays keeps its content."""
    if not path_filter:
        return list(entries)
    dropped = {e.path for e in entries if e.kind != DIR and path_filter.excluded(e.path)}
    kept_below = _ancestors(e.path for e in entries if e.kind != DIR and e.path not in dropped)
    dropped |= {e.path for e in entries
                if e.kind == DIR and e.path not in kept_below and path_filter.excluded(e.path)}
    return _rehome_hardlinks([e for e in entries if e.path not in dropped], entries)


def _ancestors(paths: Iterable[str]) -> Set[str]:
    result: Set[str] = set()
    for path in paths:
        parent = posixpath.dirname(path)
        while parent and parent not in result:
            result.add(parent)
            parent = posixpath.dirname(parent)
    return result


def _rehome_hardlinks(kept: List[Entry], everything: Sequence[Entry]) -> List[Entry]:
    """Hardlinks whose target file was left out: the first of each group becomes the file."""
    kept_paths = {e.path for e in kept}
    files = {e.path: e for e in everything if e.kind == FILE}
    new_home: Dict[str, str] = {}
    result = []
    for entry in kept:
        if entry.kind == HARDLINK and entry.target not in kept_paths:
            home = new_home.setdefault(entry.target, entry.path)
            if home == entry.path:
                original = files[entry.target]
                entry = dataclasses.replace(original, path=entry.path, mode=entry.mode, uid=entry.uid,
                                            gid=entry.gid, uname=entry.uname, gname=entry.gname)
            else:
                entry = dataclasses.replace(entry, target=home)
        result.append(entry)
    return result
