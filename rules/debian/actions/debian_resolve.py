"""Resolve requested Debian packages into a closed set over one architecture's package universe.

Like apt's own first choice, without backtracking: each dependency group is
satisfied by a package already chosen if it can be, else by a preferred or
the first satisfiable alternative.  Pre-Depends and Depends are hard; Recommends are
followed only when asked for, and one that cannot be met is skipped.
Excluded packages (reviewed by the image's author) are never chosen: a dependency
that only they could meet is dropped and recorded, as `dpkg --force-depends` would
leave it unmet.  Conflicts and Breaks are checked on the result, without
backtracking: two chosen packages that exclude each other are an error, since
their files would be unpacked side by side.

The work list is processed first in, first out from the requests in the
order given, so the result depends only on the inputs, not on hashing.
"""

from __future__ import annotations

import collections
import difflib
from dataclasses import dataclass, field
from typing import Deque, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from .debian_repo import PackageRecord
from .debian_version import Alternatives, InvalidRelation, Relation, parse_relations

# usrmerge converts a live system (and pulls in perl); images are built merged already.
DEFAULT_PREFERENCES = ("usr-is-merged",)

# Among several providers of a virtual package, a more basic priority wins (then the name).
PRIORITY_RANK = {"required": 0, "important": 1, "standard": 2, "optional": 3, "extra": 4}


class ResolutionError(Exception):
    pass


class UnknownPackage(ResolutionError):
    def __init__(self, name: str, suggestions: Sequence[str], purpose: str = ""):
        hint = f" Did you mean {', '.join(suggestions)}?" if suggestions else ""
        purpose = f" {purpose}" if purpose else ""
        super().__init__(f"There is no package named {name!r}{purpose} in the configured apt sources.{hint}")
        self.name = name
        self.suggestions = tuple(suggestions)


class PackageConflict(ResolutionError):
    def __init__(self, package: str, field_name: str, relation: str, other: str, other_version: str):
        super().__init__(
            f"{package} {field_name}: {relation}, and {other} {other_version} is in the same image. "
            f"Ask for an alternative explicitly, or leave one of them out with `exclude_packages`.")
        self.package, self.field_name, self.other = package, field_name, other


class Unsatisfiable(ResolutionError):
    def __init__(self, chain: Sequence[str], relation: str, available: Mapping[str, Sequence[str]]):
        lines = [f"Cannot satisfy {relation!r}, needed by:", "  " + " -> ".join(chain) if chain else "  (the request)"]
        for name, versions in available.items():
            lines.append(f"  {name}: {', '.join(versions) if versions else 'not in the configured apt sources'}")
        super().__init__("\n".join(lines))
        self.chain = tuple(chain)
        self.relation = relation
        self.available = {name: tuple(versions) for name, versions in available.items()}


@dataclass(frozen=True)
class Provider:
    """A package that provides a virtual name, at a version (None for an unversioned Provides)."""

    package: str
    version: Optional[str]


@dataclass(frozen=True)
class Universe:
    """The packages of one architecture (arch-specific and `all`), one record per name.

    `provided_by` maps a virtual name to the packages whose Provides name it;
    their Provides are parsed in full only when the name is looked up, which
    keeps building the universe of a 60,000-package index fast.
    """

    packages: Mapping[str, PackageRecord] = field(hash=False)
    provided_by: Mapping[str, Tuple[str, ...]] = field(hash=False)

    @classmethod
    def from_records(cls, records: Iterable[PackageRecord]) -> "Universe":
        packages = {record.name: record for record in records}
        provided_by: Dict[str, set] = {}
        for record in packages.values():
            if record.provides:
                for virtual in _provided_names(record.provides):
                    provided_by.setdefault(virtual, set()).add(record.name)
        return cls(packages, {virtual: tuple(sorted(names)) for virtual, names in provided_by.items()})

    def providers(self, virtual: str) -> List[Provider]:
        """The packages that provide `virtual`, by name, with the version they provide."""
        found = []
        for name in self.provided_by.get(virtual, ()):
            record = self.packages[name]
            for group in _relations(record, "Provides", record.provides):
                found.extend(Provider(name, relation.version) for relation in group if relation.name == virtual)
        return found

    def candidates(self, relation: Relation) -> List[str]:
        """Packages that satisfy `relation`: the real package of that name first, then providers by name.

        The Multi-Arch qualifier (`:any`, `:native`) is recorded but not checked: a
        universe holds one architecture, whose packages satisfy both.
        """
        found = []
        real = self.packages.get(relation.name)
        if real is not None and relation.allows(real.version):
            found.append(real.name)
        for provider in self.providers(relation.name):
            # A versioned relation is met only by a versioned Provides (policy 7.5).
            if relation.allows(provider.version) and provider.package not in found:
                found.append(provider.package)
        return found

    def available(self, name: str) -> List[str]:
        """What exists under `name`, for error messages: versions of the real package and of providers."""
        found = []
        real = self.packages.get(name)
        if real is not None:
            found.append(f"{real.version} ({real.suite or 'index'})")
        for provider in self.providers(name):
            provided = f" = {provider.version}" if provider.version else ""
            found.append(f"provided by {provider.package}{provided}")
        return found

    def essential(self) -> List[str]:
        return sorted(name for name, record in self.packages.items() if record.essential)


@dataclass(frozen=True)
class Resolution:
    """The chosen packages and why each is there.

    `depends[name]` and `recommends[name]` are the chosen packages that meet that
    package's Pre-Depends + Depends and its Recommends (empty unless followed).
    `requested` maps each request as written to the package that satisfied it.
    `introduced_by[name]` is the package whose dependency first pulled it in (None for a root).
    """

    packages: Mapping[str, PackageRecord] = field(hash=False)
    depends: Mapping[str, Tuple[str, ...]] = field(hash=False)
    recommends: Mapping[str, Tuple[str, ...]] = field(hash=False)
    requested: Mapping[str, str] = field(hash=False)
    essential: Tuple[str, ...] = ()
    introduced_by: Mapping[str, Optional[str]] = field(default_factory=dict, hash=False)
    skipped_recommends: Tuple[str, ...] = ()
    dropped_depends: Tuple[str, ...] = ()  # "pkg Depends: relation", left unmet because of an exclusion

    def closure(self, roots: Iterable[str], follow_recommends: bool = False) -> List[str]:
        """Sorted names reachable from `roots` along dependency edges (and Recommends edges if asked)."""
        seen = set()
        stack = list(roots)
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            stack.extend(self.depends.get(name, ()))
            if follow_recommends:
                stack.extend(self.recommends.get(name, ()))
        return sorted(seen)

    def why(self, name: str) -> List[str]:
        """The chain of packages from a root to `name`."""
        chain = [name]
        while self.introduced_by.get(chain[-1]) is not None:
            chain.append(self.introduced_by[chain[-1]])
        return chain[::-1]


def parse_request(text: str) -> Alternatives:
    """A request is one relation group: 'python3', 'python3 (>= 3.11)' or 'mawk | gawk'."""
    try:
        groups = parse_relations(text)
    except InvalidRelation as e:
        raise ResolutionError(f"Cannot read the package request {text!r}: {e}") from None
    if len(groups) != 1:
        raise ResolutionError(f"A package request names one package (or alternatives with '|'), got {text!r}.")
    return groups[0]


def requested_names(text: str) -> List[str]:
    """The package names one request (`parse_request`) may be met by, e.g. ['mawk', 'gawk'] for 'mawk | gawk'."""
    return [relation.name for relation in parse_request(text)]


def resolve(universe: Universe, requests: Sequence[str], include_recommends: bool = False,
            include_essential: bool = False, preferences: Sequence[str] = DEFAULT_PREFERENCES,
            inherited: Sequence[str] = (), excluded: Iterable[str] = ()) -> Resolution:
    """Choose packages for `requests` and everything they depend on; see the module docstring.

    `inherited` packages (a parent image's closure) count as chosen already: alternatives
    prefer them and they are not resolved again, so a child never changes its parent's choices.
    `excluded` packages are never chosen for a dependency (names this universe lacks are
    ignored: another architecture may have them; see `unknown_exclusions`).
    """
    resolver = _Resolver(universe, include_recommends, tuple(preferences), frozenset(excluded))
    for name in sorted(inherited):
        resolver.chosen[name] = None
    requested = {text: resolver.add_request(text) for text in requests}
    essential = universe.essential() if include_essential else []
    for name in essential:
        resolver.add(name, parent=None)
    resolver.run()
    check_conflicts(universe, resolver.chosen)
    return Resolution(
        packages={name: universe.packages[name] for name in sorted(resolver.chosen)},
        depends={name: tuple(resolver.depends[name]) for name in sorted(resolver.chosen)},
        recommends={name: tuple(resolver.recommends[name]) for name in sorted(resolver.chosen)},
        requested=requested,
        essential=tuple(essential),
        introduced_by=dict(sorted(resolver.chosen.items())),
        skipped_recommends=tuple(resolver.skipped_recommends),
        dropped_depends=tuple(resolver.dropped_depends),
    )


def unknown_exclusion(name: str, universes: Sequence[Universe]) -> Optional[UnknownPackage]:
    """The error for an excluded name that no architecture's universe has, else None."""
    if any(name in universe.packages for universe in universes):
        return None
    names = sorted({known for universe in universes for known in universe.packages})
    return UnknownPackage(name, difflib.get_close_matches(name, names, n=5), "to exclude")


def check_conflicts(universe: Universe, chosen: Iterable[str]) -> None:
    """Refuse a closure in which a package Conflicts with or Breaks another chosen package."""
    chosen = set(chosen)
    for name in sorted(chosen):
        record = universe.packages[name]
        for field_name, text in (("Conflicts", record.conflicts), ("Breaks", record.breaks)):
            for group in _relations(record, field_name, text):
                for relation in group:
                    # A package may conflict with a virtual name it provides itself (policy 7.6.2).
                    for other in universe.candidates(relation):
                        if other != name and other in chosen:
                            raise PackageConflict(name, field_name, str(relation), other,
                                                  universe.packages[other].version)


class _Resolver:
    """The mutable state of one resolution: chosen packages, their edges, the work list."""

    def __init__(self, universe: Universe, include_recommends: bool, preferences: Tuple[str, ...],
                 excluded: frozenset = frozenset()):
        self.universe = universe
        self.include_recommends = include_recommends
        self.preferences = preferences
        self.excluded = excluded
        self.dropped_depends: List[str] = []
        self.chosen: Dict[str, Optional[str]] = {}  # name -> the package that pulled it in
        self.depends: Dict[str, List[str]] = collections.defaultdict(list)
        self.recommends: Dict[str, List[str]] = collections.defaultdict(list)
        self.skipped_recommends: List[str] = []
        self.queue: Deque[str] = collections.deque()

    def add(self, name: str, parent: Optional[str]) -> None:
        if name not in self.chosen:
            self.chosen[name] = parent
            self.queue.append(name)

    def add_request(self, text: str) -> str:
        group = parse_request(text)
        choice = self.choose(group)
        if choice is None:
            self.raise_for_request(group, text)
        self.add(choice, parent=None)
        return choice

    def run(self) -> None:
        while self.queue:
            name = self.queue.popleft()
            record = self.universe.packages[name]
            for field_name, text in (("Pre-Depends", record.pre_depends), ("Depends", record.depends)):
                for group in _relations(record, field_name, text):
                    self.follow(name, group, field_name, self.depends)
            if self.include_recommends:
                for group in _relations(record, "Recommends", record.recommends):
                    self.follow(name, group, "Recommends", self.recommends)

    def follow(self, name: str, group: Alternatives, field_name: str, edges: Dict[str, List[str]]) -> None:
        choice = self.choose(group)
        if choice is None:
            if field_name == "Recommends":
                self.skipped_recommends.append(f"{name} Recommends: {_group_text(group)}")
                return
            if any(self.universe.candidates(relation) for relation in group):  # only excluded ones
                self.dropped_depends.append(f"{name} {field_name}: {_group_text(group)}")
                return
            raise Unsatisfiable(self.chain(name) + [f"({field_name}: {_group_text(group)})"], _group_text(group),
                                self.available(group))
        if choice != name and choice not in edges[name]:
            edges[name].append(choice)
        self.add(choice, parent=name)

    def choose(self, group: Alternatives) -> Optional[str]:
        options = [[c for c in self.universe.candidates(relation) if c not in self.excluded] for relation in group]
        for candidates in options:
            for candidate in candidates:
                if candidate in self.chosen:
                    return candidate
        everything = [candidate for candidates in options for candidate in candidates]
        for preferred in self.preferences:
            if preferred in everything:
                return preferred
        for relation, candidates in zip(group, options):
            if candidates:
                return self.best_provider(relation, candidates)
        return None

    def best_provider(self, relation: Relation, candidates: List[str]) -> str:
        if candidates[0] == relation.name:
            return candidates[0]  # the real package beats packages that provide its name
        return min(candidates, key=lambda name: (PRIORITY_RANK.get(self.universe.packages[name].priority, 9), name))

    def chain(self, name: str) -> List[str]:
        chain = []
        current: Optional[str] = name
        while current is not None:
            chain.append(f"{current} {self.universe.packages[current].version}")
            current = self.chosen.get(current)
        return chain[::-1]

    def available(self, group: Alternatives) -> Dict[str, List[str]]:
        return {relation.name: self.universe.available(relation.name) for relation in group}

    def raise_for_request(self, group: Alternatives, text: str) -> None:
        if len(group) == 1 and not self.universe.available(group[0].name):
            names = sorted(self.universe.packages) + sorted(self.universe.provided_by)
            raise UnknownPackage(group[0].name, difflib.get_close_matches(group[0].name, names, n=5))
        raise Unsatisfiable([f"(requested: {text})"], text, self.available(group))


def _relations(record: PackageRecord, field_name: str, text: str) -> Tuple[Alternatives, ...]:
    try:
        return parse_relations(text)
    except InvalidRelation as e:
        where = f"{record.name} {record.version} ({record.suite})"
        raise ResolutionError(f"{where} has a malformed {field_name}: {e}") from None


def _provided_names(provides: str) -> List[str]:
    """The names in a Provides field, roughly ('a (= 1), b' -> ['a', 'b']); `providers` parses properly."""
    return [part.split("(", 1)[0].split(":", 1)[0].strip().lower() for part in provides.split(",")]


def _group_text(group: Alternatives) -> str:
    return " | ".join(str(relation) for relation in group)

