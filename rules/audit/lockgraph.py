"""Why is a package in an image: dependency paths over the lock's edges.

Pure functions over the lock data (see rules/debian/actions/debian_lock.py for its
format): each locked package lists the packages chosen for its Depends (with
Pre-Depends) and Recommends; each image's request records what it declared, whether
it follows Recommends and takes the Essential set, and its package-declaring parent.
A path starts at something an image of the chain declared and follows those edges,
the way the lock's closure was computed.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Iterable, Mapping, Optional, Sequence


@dataclass(frozen=True)
class Root:
    """A package an image asked for: by name in `packages`, or as part of Debian's Essential set."""

    image: str
    package: str
    essential: bool
    follow_recommends: bool

    def describe(self) -> str:
        how = "takes the Essential set (essential=True), which has" if self.essential else "declares"
        return f"{self.image} {how} {self.package}"


@dataclass(frozen=True)
class DependencyPath:
    root: Root
    packages: tuple[str, ...]  # from the root's package to the one asked about

    def describe(self) -> str:
        return f"{self.root.describe()}: {' -> '.join(self.packages)}"


@dataclass(frozen=True)
class LockGraph:
    depends: Mapping[str, tuple[str, ...]]
    recommends: Mapping[str, tuple[str, ...]]
    essential: frozenset
    requests: Mapping[str, Mapping]  # address -> {packages, recommends, essential, parent}
    requested: Mapping[str, tuple[str, ...]]  # address -> resolved names it asked for

    @classmethod
    def from_lock(cls, data: Mapping, architecture: str) -> "LockGraph":
        packages = (data.get("architectures") or {}).get(architecture) or {}
        images = data.get("images") or {}
        return cls(
            depends={name: tuple(info.get("depends") or ()) for name, info in packages.items()},
            recommends={name: tuple(info.get("recommends") or ()) for name, info in packages.items()},
            essential=frozenset(name for name, info in packages.items() if info.get("essential")),
            requests=dict(data.get("requests") or {}),
            requested={address: tuple(((entry or {}).get(architecture) or {}).get("requested") or ())
                       for address, entry in images.items()},
        )

    def declaring_image(self, chain: Sequence[str]) -> Optional[str]:
        """The nearest image of `chain` (root first, image last) that has a package request in the lock."""
        for address in reversed(chain):
            if address in self.requests:
                return address
        return None

    def roots(self, chain: Sequence[str]) -> list[Root]:
        """What the image and its ancestors declared, nearest image first."""
        found = []
        address = self.declaring_image(chain)
        while address:
            request = self.requests.get(address) or {}
            follow = bool(request.get("recommends"))
            found += [Root(address, name, False, follow) for name in sorted(self.requested.get(address, ()))]
            if request.get("essential"):
                found += [Root(address, name, True, follow) for name in sorted(self.essential)]
            address = request.get("parent")
        return found

    def edges(self, name: str, follow_recommends: bool) -> Iterable[str]:
        yield from self.depends.get(name, ())
        if follow_recommends:
            yield from self.recommends.get(name, ())

    def why(self, chain: Sequence[str], package: str) -> Optional[DependencyPath]:
        """The shortest path to `package` from what the chain declared; explicit requests win ties."""
        best: Optional[DependencyPath] = None
        for root in sorted(self.roots(chain), key=lambda r: r.essential):
            path = self.shortest_path(root.package, package, root.follow_recommends)
            if path is not None and (best is None or len(path) < len(best.packages)):
                best = DependencyPath(root, tuple(path))
        return best

    def shortest_path(self, start: str, goal: str, follow_recommends: bool) -> Optional[list[str]]:
        previous: dict = {start: None}
        queue = collections.deque([start])
        while queue:
            name = queue.popleft()
            if name == goal:
                path = [name]
                while previous[path[-1]] is not None:
                    path.append(previous[path[-1]])
                return path[::-1]
            for following in self.edges(name, follow_recommends):
                if following not in previous:
                    previous[following] = name
                    queue.append(following)
        return None
