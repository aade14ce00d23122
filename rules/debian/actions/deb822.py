"""Parse deb822 text: Packages indexes, Release/InRelease files and control files.

Hand-rolled because it has to be fast: the bookworm main amd64 Packages index is
50 MB and about 64,000 paragraphs.  Field names keep the spelling of the file;
`fold_field_names` gives the canonical spelling for the rare file that uses
another case (policy says field names are case-insensitive).
"""

from __future__ import annotations

import bisect
import datetime
import email.utils
import operator
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Mapping, Optional, Tuple


class MalformedIndex(ValueError):
    """The text is not valid deb822 (or lacks a field that the file type requires)."""

    def __init__(self, source: str, reason: str, line: Optional[int] = None):
        where = f"{source}, line {line}" if line is not None else source
        super().__init__(f"{where}: {reason}")
        self.source = source
        self.line = line
        self.reason = reason


def parse_paragraphs(text: str, source: str = "<text>") -> Iterator[Dict[str, str]]:
    """Yield each paragraph as {field name: value}.

    A continuation line is appended to the value after a newline, with its
    leading whitespace kept (Descriptions need it; hash tables ignore it).
    Paragraphs are separated by lines that are empty or only whitespace.
    `source` names the file in errors.
    """
    # Most paragraphs of an index take a fast path; finding the few that cannot
    # with one scan of the whole text is cheaper than checking each paragraph.
    awkward = _positions(text, _AWKWARD)
    continued = _positions(text, ("\n ",))
    start = 0
    length = len(text)
    while start < length:
        # Coarse split on "\n\n"; the careful parser also splits on whitespace-only lines.
        end = text.find("\n\n", start)
        if end < 0:
            end = length
        block = text[start:end]
        fields = None
        if block and block[0] not in " \t\n#" and block[-1] != " " and not _any_within(awkward, start, end):
            fields = _simple_paragraph(block, _any_within(continued, start, end))
        if fields is not None:
            yield fields
        else:
            yield from _paragraphs_in_block(text, start, end, source)
        start = end + 2


# What the fast path cannot parse: tabs, comments, trailing whitespace (also
# whitespace-only lines), extra spaces after the colon, NUL and CR.
_AWKWARD = ("\t", "\n#", " \n", ":  ", "\x00", "\r")


def _positions(text: str, markers: Tuple[str, ...]) -> List[int]:
    found: List[int] = []
    for marker in markers:
        at = text.find(marker)
        while at >= 0:
            found.append(at)
            at = text.find(marker, at + 1)
    found.sort()
    return found


def _any_within(positions: List[int], start: int, end: int) -> bool:
    index = bisect.bisect_left(positions, start)
    return index < len(positions) and positions[index] <= end


_split_field = operator.methodcaller("split", ": ", 1)


def _simple_paragraph(block: str, continued: bool) -> Optional[Dict[str, str]]:
    """The fast path for a paragraph of `Field: value` lines and plain continuation lines.

    Continuation lines ride along their field's line as NUL-joined text.  Returns
    None when a line does not fit (no ": ", an empty name, a colon before the
    first ": ") or a field repeats; the careful parser then produces the result
    or the error.
    """
    if continued:
        block = block.replace("\n ", "\x00 ")
    lines = block.split("\n")
    try:
        fields = dict(map(_split_field, lines))
    except ValueError:
        return None
    if len(fields) != len(lines) or "" in fields or ":" in "".join(fields):
        return None
    if continued:
        for name, value in fields.items():
            if "\x00" in value:
                fields[name] = value.replace("\x00", "\n")
    return fields


def _paragraphs_in_block(text: str, start: int, end: int, source: str) -> Iterator[Dict[str, str]]:
    fields: Dict[str, str] = {}
    name = ""
    for number, line in enumerate(text[start:end].split("\n")):
        if not line or line.isspace():
            if fields:
                yield fields
                fields, name = {}, ""
            continue
        first = line[0]
        if first == " " or first == "\t":
            if not name:
                raise _error(text, start, number, source, "continuation line outside of a field")
            fields[name] += "\n" + line.rstrip()
            continue
        if first == "#":  # comments are allowed in control files
            continue
        colon = line.find(":")
        if colon <= 0:
            raise _error(text, start, number, source, f"expected 'Field: value', got {line[:60]!r}")
        name = line[:colon]
        if name in fields:
            raise _error(text, start, number, source, f"field {name!r} appears twice in one paragraph")
        fields[name] = line[colon + 1:].strip()
    if fields:
        yield fields


def _error(text: str, block_start: int, line_in_block: int, source: str, reason: str) -> MalformedIndex:
    # Line numbers are counted only when there is an error, to keep the happy path fast.
    line = text.count("\n", 0, block_start) + line_in_block + 1
    return MalformedIndex(source, reason, line)


def fold_field_names(paragraph: Mapping[str, str], canonical: Mapping[str, str]) -> Dict[str, str]:
    """Rename fields whose lower-cased name is a key of `canonical` ({"pre-depends": "Pre-Depends"})."""
    folded: Dict[str, str] = {}
    for name, value in paragraph.items():
        name = canonical.get(name.lower(), name)
        if name in folded:
            raise ValueError(f"field {name!r} appears twice (in different letter case)")
        folded[name] = value
    return folded


@dataclass(frozen=True)
class ReleaseFile:
    """One line of a Release file's SHA256 table."""

    sha256: str
    size: int


@dataclass(frozen=True)
class Release:
    """The parts of a (verified) Release file that fetching and locking need."""

    suite: str
    codename: str
    date: str
    valid_until: Optional[str]
    acquire_by_hash: bool
    architectures: Tuple[str, ...]
    components: Tuple[str, ...]
    files: Mapping[str, ReleaseFile] = field(hash=False)

    def expired(self, now: datetime.datetime) -> bool:
        return self.valid_until is not None and parse_release_date(self.valid_until) < now


RELEASE_FIELDS = {name.lower(): name for name in (
    "Suite", "Codename", "Date", "Valid-Until", "Acquire-By-Hash", "Architectures", "Components", "SHA256",
)}


def parse_release(text: str, source: str = "Release") -> Release:
    """Parse the text of a Release file (or the verified text of an InRelease file)."""
    paragraphs = list(parse_paragraphs(text, source))
    if len(paragraphs) != 1:
        raise MalformedIndex(source, f"a Release file has one paragraph, this one has {len(paragraphs)}")
    fields = fold_field_names(paragraphs[0], RELEASE_FIELDS)
    if "SHA256" not in fields:
        raise MalformedIndex(source, "no SHA256 table; indexes cannot be verified without it")
    if "Suite" not in fields and "Codename" not in fields:
        raise MalformedIndex(source, "neither Suite nor Codename is set")
    return Release(
        suite=fields.get("Suite", ""),
        codename=fields.get("Codename", ""),
        date=fields.get("Date", ""),
        valid_until=fields.get("Valid-Until"),
        acquire_by_hash=fields.get("Acquire-By-Hash", "no").lower() == "yes",
        architectures=tuple(fields.get("Architectures", "").split()),
        components=tuple(fields.get("Components", "").split()),
        files=parse_hash_table(fields["SHA256"], source),
    )


def parse_hash_table(value: str, source: str) -> Dict[str, ReleaseFile]:
    """Parse the lines of a hash field: `<sha256> <size> <path>`."""
    files: Dict[str, ReleaseFile] = {}
    for line in value.split("\n"):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3 or not parts[1].isdigit() or len(parts[0]) != 64:
            raise MalformedIndex(source, f"bad SHA256 line {line.strip()!r}; expected '<sha256> <size> <path>'")
        digest, size, path = parts
        files[path] = ReleaseFile(digest.lower(), int(size))
    return files


def parse_release_date(value: str) -> datetime.datetime:
    """Release dates are RFC 2822 dates in UTC ("Sat, 10 Jun 2023 08:53:28 UTC")."""
    parsed = email.utils.parsedate_to_datetime(value.replace("UTC", "+0000"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed
