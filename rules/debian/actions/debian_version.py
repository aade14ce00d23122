"""Debian version ordering (as dpkg orders versions) and relation fields (Depends, Provides, ...).

Versions are `[epoch:]upstream[-revision]`.  Upstream and revision compare
piecewise: a run of non-digits compares character by character with letters
before other characters and `~` before everything, even the end of the string
(so 1.0~rc1 < 1.0); then a run of digits compares numerically.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import List, Optional, Tuple


class InvalidVersion(ValueError):
    pass


class InvalidRelation(ValueError):
    pass


@dataclass(frozen=True)
class Version:
    epoch: int
    upstream: str
    revision: str

    def __str__(self) -> str:
        epoch = f"{self.epoch}:" if self.epoch else ""
        revision = f"-{self.revision}" if self.revision else ""
        return f"{epoch}{self.upstream}{revision}"


_VERSION_CHARS = re.compile(r"[A-Za-z0-9.+~:-]+\Z")


@functools.lru_cache(maxsize=65536)
def parse_version(text: str) -> Version:
    """Split a version; a missing epoch is 0 and a missing revision is "" (which sorts as "0")."""
    value = text.strip()
    if not value or not _VERSION_CHARS.match(value):
        raise InvalidVersion(f"invalid Debian version {text!r}")
    epoch = 0
    if ":" in value:
        epoch_text, _, value = value.partition(":")
        if not epoch_text.isdigit():
            raise InvalidVersion(f"invalid Debian version {text!r}: the epoch must be a number")
        epoch = int(epoch_text)
    upstream, dash, revision = value.rpartition("-")
    if not dash:
        upstream, revision = value, ""
    elif not revision:
        raise InvalidVersion(f"invalid Debian version {text!r}: the revision after '-' is empty")
    if not upstream:
        raise InvalidVersion(f"invalid Debian version {text!r}: the upstream version is empty")
    return Version(epoch, upstream, revision)


def compare_versions(a: str, b: str) -> int:
    """<0, 0 or >0 as version `a` sorts before, equal to or after `b`."""
    if a == b:
        return 0
    left, right = parse_version(a), parse_version(b)
    if left.epoch != right.epoch:
        return -1 if left.epoch < right.epoch else 1
    return _compare_part(left.upstream, right.upstream) or _compare_part(left.revision, right.revision)


version_key = functools.cmp_to_key(compare_versions)


def _char_order(char: str) -> int:
    # dpkg's order(): '~' first, then the end of a run (0), then letters, then other characters.
    if char == "~":
        return -1
    if char.isalpha():
        return ord(char)
    return ord(char) + 256


_RUNS = re.compile(r"(\D*)(\d*)")


def _runs(part: str) -> List[Tuple[str, int]]:
    """'1.2~rc3' -> [('', 1), ('.', 2), ('~rc', 3)]; a missing digit run counts as 0."""
    return [(letters, int(digits or 0)) for letters, digits in _RUNS.findall(part) if letters or digits]


def _compare_part(a: str, b: str) -> int:
    left, right = _runs(a), _runs(b)
    for index in range(max(len(left), len(right))):
        letters_a, number_a = left[index] if index < len(left) else ("", 0)
        letters_b, number_b = right[index] if index < len(right) else ("", 0)
        difference = _compare_letters(letters_a, letters_b)
        if difference:
            return difference
        if number_a != number_b:
            return -1 if number_a < number_b else 1
    return 0


def _compare_letters(a: str, b: str) -> int:
    # The shorter run is padded with "end of run", which sorts after '~' and before anything else.
    for index in range(max(len(a), len(b))):
        order_a = _char_order(a[index]) if index < len(a) else 0
        order_b = _char_order(b[index]) if index < len(b) else 0
        if order_a != order_b:
            return -1 if order_a < order_b else 1
    return 0


OPERATORS = ("<<", "<=", "=", ">=", ">>")
# '<' and '>' are obsolete spellings that dpkg still reads as '<=' and '>='.
_OBSOLETE_OPERATORS = {"<": "<=", ">": ">="}


def version_satisfies(version: str, op: Optional[str], required: Optional[str]) -> bool:
    """Whether `version` meets `op required` (no operator: any version does)."""
    if op is None or required is None:
        return True
    difference = compare_versions(version, required)
    if op == "=":
        return difference == 0
    if op == ">=":
        return difference >= 0
    if op == "<=":
        return difference <= 0
    if op == ">>":
        return difference > 0
    if op == "<<":
        return difference < 0
    raise InvalidRelation(f"unknown version operator {op!r}")


@dataclass(frozen=True)
class Relation:
    """One alternative of a relation field: `name[:arch] [(op version)]`.

    `arch` is the Multi-Arch qualifier without its colon ("any", "native"), or None.
    Architecture restrictions `[...]` and build profiles `<...>` are dropped.
    """

    name: str
    arch: Optional[str] = None
    op: Optional[str] = None
    version: Optional[str] = None

    def allows(self, version: Optional[str]) -> bool:
        """Whether a package (or a Provides) at `version` meets the version part; None is an unversioned Provides."""
        if self.op is None:
            return True
        return version is not None and version_satisfies(version, self.op, self.version)

    def __str__(self) -> str:
        name = f"{self.name}:{self.arch}" if self.arch else self.name
        return f"{name} ({self.op} {self.version})" if self.op else name


Alternatives = Tuple[Relation, ...]

_RELATION = re.compile(
    r"""\s*
    (?P<name>[A-Za-z0-9][A-Za-z0-9+.\-]*)
    (?::(?P<arch>[A-Za-z0-9\-]+))?
    \s*
    (?:\(\s*(?P<op><<|<=|>=|>>|=|<|>)\s*(?P<version>[^\s)]+)\s*\))?
    \s*
    (?:\[[^\]]*\]\s*)?
    (?:<[^>]*>\s*)*
    \Z""",
    re.VERBOSE,
)


@functools.lru_cache(maxsize=65536)
def parse_relations(text: str) -> Tuple[Alternatives, ...]:
    """Parse a Depends-style field: comma-separated groups of `|`-separated alternatives.

    'a (>= 1) | b, c:any' -> ((Relation('a', None, '>=', '1'), Relation('b')), (Relation('c', 'any'),))
    """
    groups = []
    for group_text in text.split(","):
        if not group_text.strip():
            continue  # a trailing comma is accepted by dpkg
        groups.append(tuple(_parse_alternative(alternative, text) for alternative in group_text.split("|")))
    return tuple(groups)


def _parse_alternative(text: str, field: str) -> Relation:
    match = _RELATION.match(text)
    if match is None:
        raise InvalidRelation(f"cannot parse {text.strip()!r} in the relation field {field.strip()!r}")
    op = match.group("op")
    version = match.group("version")
    if version is not None:
        try:
            parse_version(version)  # reject garbage early, with the field in the message
        except InvalidVersion as e:
            raise InvalidRelation(f"{e} in the relation field {field.strip()!r}") from None
    return Relation(
        name=match.group("name").lower(),
        arch=match.group("arch"),
        op=_OBSOLETE_OPERATORS.get(op, op),
        version=version,
    )
