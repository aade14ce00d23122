"""The CVEs a package update fixes, from the new .deb's own changelog.

    python -m debian.actions.deb_changelog spec.json > result.json

spec.json: {"packages": [{"name", "source", "old_version" (null for a package new to the image),
                          "new_version", "deb": "<path of the new .deb>"}]}
result:    {"packages": {"<name>": {"changelog": "<member>" | null, "from_package": "<name>",
                                    "entries": ["<version>", ...], "cves": ["CVE-YYYY-N", ...],
                                    "note": "<why nothing was read>" | absent}}}

Decisions:
- The changelog is read from the new .deb (`usr/share/doc/<pkg>/changelog.Debian.gz`, and the
  binNMU one `changelog.Debian.<arch>.gz`), never from an image: images may leave
  /usr/share/doc out (`[debian].path_excludes`), the .deb always has it.
- The entries counted are those after the old version up to and including the new one, in
  dpkg's version order, so a security upload that carries several fixes reports all of them and
  an entry older than the locked version (already in the image) reports none.
- Library packages often ship their doc directory as a symlink to another package of the same
  source (`/usr/share/doc/libfoo1 -> libfoo-common`). Then the changelog of a package of the same
  source in the same request is used, and `from_package` says which; without one the package gets
  a note instead of a guess.
- A package new to the image (no old version) fixes nothing: it gets no entries.
- CVE IDs are `CVE-YYYY-NNNN+` anywhere in an entry's text (Debian's security uploads write them in
  the entry body), reported once each, sorted by year and number.
"""

from __future__ import annotations

import gzip
import json
import re
import sys
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from .debfile import DebArchive, DebError
from .debian_version import compare_versions

HEADER = re.compile(r"^(?P<source>[a-z0-9][a-z0-9+.-]*) \((?P<version>[^()\s]+)\) [^;]*;.*$")
CVE = re.compile(r"\bCVE-(\d{4})-(\d{4,})\b")
CHANGELOG_LIMIT = 64 * 1024 * 1024  # uncompressed; a changelog beyond this is refused, not read


@dataclass(frozen=True)
class ChangelogEntry:
    version: str
    text: str


@dataclass(frozen=True)
class PackageUpdate:
    name: str
    source: str
    old_version: Optional[str]
    new_version: str
    deb: str

    @classmethod
    def from_json(cls, value: Mapping) -> "PackageUpdate":
        return cls(value["name"], value.get("source") or value["name"], value.get("old_version"),
                   value["new_version"], value["deb"])


@dataclass(frozen=True)
class DocFiles:
    """What a .deb holds under its usr/share/doc/<name>: changelog texts, or a symlink elsewhere."""

    changelogs: Tuple[Tuple[str, str], ...] = ()  # (member, text), binNMU changelog first
    doc_symlink: str = ""


@dataclass(frozen=True)
class UpdateReport:
    changelog: Optional[str]
    from_package: str
    entries: Tuple[str, ...] = ()
    cves: Tuple[str, ...] = ()
    note: str = ""

    def to_json(self) -> dict:
        value = {"changelog": self.changelog, "from_package": self.from_package, "entries": list(self.entries),
                 "cves": list(self.cves)}
        if self.note:
            value["note"] = self.note
        return value


def parse_changelog(text: str) -> List[ChangelogEntry]:
    """Entries in file order (newest first, as Debian writes them)."""
    entries: List[ChangelogEntry] = []
    version, lines = None, []  # type: Optional[str], List[str]
    for line in text.splitlines():
        match = HEADER.match(line)
        if match:
            if version is not None:
                entries.append(ChangelogEntry(version, "\n".join(lines)))
            version, lines = match.group("version"), [line]
        elif version is not None:
            lines.append(line)
    if version is not None:
        entries.append(ChangelogEntry(version, "\n".join(lines)))
    return entries


def entries_between(entries: Iterable[ChangelogEntry], old: Optional[str], new: str) -> List[ChangelogEntry]:
    """Entries with old < version <= new; none for a package that had no old version."""
    if old is None:
        return []
    return [e for e in entries if compare_versions(e.version, old) > 0 and compare_versions(e.version, new) <= 0]


def cve_ids(entries: Iterable[ChangelogEntry]) -> Tuple[str, ...]:
    found = {(int(year), int(number)) for entry in entries for year, number in CVE.findall(entry.text)}
    return tuple(f"CVE-{year}-{number:04d}" for year, number in sorted(found))


def member_path(name: str) -> str:
    return name[2:] if name.startswith("./") else name.lstrip("/")


def read_doc_files(deb: str, package: str, label: str) -> DocFiles:
    doc = f"usr/share/doc/{package}"
    wanted = re.compile(re.escape(doc) + r"/changelog\.Debian(\.[a-z0-9-]+)?\.gz$")
    changelogs, symlink = [], ""
    with DebArchive(deb, label) as archive:
        for info, content in archive.data_members():
            path = member_path(info.name)
            if path == doc and info.issym():
                symlink = info.linkname
            elif content is not None and wanted.match(path):
                if info.size > CHANGELOG_LIMIT:
                    raise DebError(label, f"{path} is {info.size} bytes, more than a changelog should be")
                data = gzip.decompress(content.read())[:CHANGELOG_LIMIT]
                changelogs.append((path, data.decode("utf-8", "replace")))
    # The binNMU changelog (changelog.Debian.<arch>.gz) holds the newest entries: read it first.
    changelogs.sort(key=lambda item: (item[0].endswith("changelog.Debian.gz"), item[0]))
    return DocFiles(tuple(changelogs), symlink)


def report_from(update: PackageUpdate, docs: DocFiles, owner: str) -> UpdateReport:
    entries = [entry for _, text in docs.changelogs for entry in parse_changelog(text)]
    chosen = entries_between(entries, update.old_version, update.new_version)
    member = docs.changelogs[-1][0] if docs.changelogs else None
    return UpdateReport(member, owner, tuple(e.version for e in chosen), cve_ids(chosen))


def report_updates(updates: Sequence[PackageUpdate]) -> Dict[str, UpdateReport]:
    docs = {u.name: read_doc_files(u.deb, u.name, f"{u.name} {u.new_version} ({u.deb})") for u in updates}
    by_source: Dict[str, List[str]] = {}
    for update in updates:
        if docs[update.name].changelogs:
            by_source.setdefault(update.source, []).append(update.name)
    reports = {}
    for update in updates:
        own = docs[update.name]
        owner = update.name if own.changelogs else next(iter(sorted(by_source.get(update.source, ()))), None)
        if owner is None:
            where = f"a symlink to {own.doc_symlink}" if own.doc_symlink else "absent"
            reports[update.name] = UpdateReport(
                None, update.name,
                note=f"no changelog in the .deb (usr/share/doc/{update.name} is {where}) nor in another updated "
                     f"package of source {update.source}")
            continue
        reports[update.name] = report_from(update, docs[owner], owner)
    return reports


def main(argv: Sequence[str]) -> int:
    with open(argv[0], encoding="utf-8") as f:
        spec = json.load(f)
    updates = [PackageUpdate.from_json(p) for p in spec["packages"]]
    try:
        reports = report_updates(updates)
    except (DebError, OSError, EOFError, ValueError) as error:
        print(f"error: reading a changelog failed: {error}", file=sys.stderr)
        return 1
    json.dump({"packages": {name: r.to_json() for name, r in sorted(reports.items())}}, sys.stdout,
              sort_keys=True, separators=(",", ":"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
