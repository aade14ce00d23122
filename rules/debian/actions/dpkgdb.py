"""dpkg's database, as dpkg writes it once packages are installed: per package, and per image.

Per package (in its package layer), named `<pkg>`, or `<pkg>:<arch>` for Multi-Arch: same:
- var/lib/dpkg/status.d/<pkg>: the status stanza, for per-layer scanners (trivy pairs it with
  the .md5sums of the same layer, in status.d/ or info/);
- var/lib/dpkg/info/<pkg>.list, <pkg>.md5sums and, when the package has conffiles, <pkg>.conffiles:
  what dpkg -L/-S, dpkg --verify and syft read.
Per image (in its system layer, `image_database_entries`): var/lib/dpkg/status with every
package of the chain, info/format, and an opaque whiteout over status.d/ so that the image's
filesystem holds exactly dpkg's own database and no scanner counts a package twice.

Decisions:
- paths are the merged-/usr paths, where the files really are;
- .list, .md5sums and Conffiles name only what the layer holds: files the path filter left
  out are not listed (dpkg lists them), so that `dpkg --verify` is clean and `dpkg -S` never
  names a file the image lacks;
- the status file is byte for byte what dpkg 1.21 writes back (lib/dpkg/dump.c writedb):
  stanzas sorted by name, then unqualified before arch-qualified (pkg_sorter_by_nonambig_name_arch),
  each followed by one blank line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, List, Mapping, Sequence

from oci.actions.tarlayer import FILE, Entry, path_key

from .debcontents import InstalledPackage, merged_usr_path
from .debfile import strip_dot_slash


DPKG_ADMIN_DIR = "var/lib/dpkg"
DPKG_STATUS_DIR = f"{DPKG_ADMIN_DIR}/status.d"
DPKG_INFO_DIR = f"{DPKG_ADMIN_DIR}/info"
DPKG_STATUS = f"{DPKG_ADMIN_DIR}/status"
# dpkg's database format 1 (multiarch): without it dpkg looks for info files of Multi-Arch: same
# packages without their ":arch" and a writing dpkg would try to convert the directory.
INFO_FORMAT = Entry(f"{DPKG_INFO_DIR}/format", FILE, 0o644, data=b"1\n")
# OCI/AUFS opaque whiteout: status.d/ of the layers below is hidden from the merged filesystem.
STATUS_D_OPAQUE = Entry(f"{DPKG_STATUS_DIR}/.wh..wh..opq", FILE, 0o644, data=b"")
INSTALLED = "install ok installed"


# The order in which dpkg writes a status paragraph (lib/dpkg/parse.c); other fields follow in file order.
DPKG_FIELD_ORDER = (
    "Package", "Essential", "Protected", "Status", "Priority", "Section", "Installed-Size", "Origin",
    "Maintainer", "Bugs", "Architecture", "Multi-Arch", "Source", "Version", "Config-Version", "Replaces",
    "Provides", "Depends", "Pre-Depends", "Recommends", "Suggests", "Breaks", "Conflicts", "Enhances",
    "Conffiles", "Description", "Triggers-Pending", "Triggers-Awaited",
)


def dpkg_metadata_entries(package: InstalledPackage) -> List[Entry]:
    """The database files of `package` as its layer holds it (files the path filter left out are gone)."""
    name = package.dpkg_name
    entries = [
        Entry(f"{DPKG_STATUS_DIR}/{name}", FILE, 0o644, data=status_paragraph(package).encode()),
        Entry(f"{DPKG_INFO_DIR}/{name}.list", FILE, 0o644, data=file_list_text(package).encode()),
        Entry(f"{DPKG_INFO_DIR}/{name}.md5sums", FILE, 0o644, data=md5sums_text(package).encode()),
    ]
    conffiles = conffile_lines(package)
    if conffiles:
        text = "".join(line.rsplit(" ", 1)[0] + "\n" for line in conffiles)
        entries.append(Entry(f"{DPKG_INFO_DIR}/{name}.conffiles", FILE, 0o644, data=text.encode()))
    return entries


def status_paragraph(package: InstalledPackage) -> str:
    """The control paragraph as dpkg records an installed package: Status added, fields in dpkg's order."""
    fields = {k: v for k, v in package.control.fields.items() if k not in ("Status", "Conffiles")}
    fields["Status"] = INSTALLED
    conffiles = conffile_lines(package)
    if conffiles:
        fields["Conffiles"] = "".join("\n " + line for line in conffiles)
    known = [name for name in DPKG_FIELD_ORDER if name in fields]
    others = [name for name in fields if name not in DPKG_FIELD_ORDER]
    return "".join(format_field(name, fields[name]) for name in known + others)


def format_field(name: str, value: str) -> str:
    first, *continuation = value.split("\n")
    return f"{name}:{' ' + first if first else ''}\n" + "".join(line + "\n" for line in continuation)


def conffile_lines(package: InstalledPackage) -> List[str]:
    """`/path md5` for each conffile the layer holds (dpkg takes --verify's conffile hashes from these)."""
    md5_by_path = {f.path: f.md5 for f in package.files if f.md5}
    lines = []
    for conffile in package.control.conffiles:
        path = merged_usr_path(strip_dot_slash(conffile))
        if path in md5_by_path:
            lines.append(f"/{path} {md5_by_path[path]}")
    return lines


def md5sums_text(package: InstalledPackage) -> str:
    """The .deb's md5sums at merged-/usr paths, for the files the layer holds; computed if the .deb has none."""
    held = {f.path for f in package.files}
    if package.control.md5sums:
        pairs = [(s.md5, merged_usr_path(s.path)) for s in package.control.md5sums]
    else:
        pairs = [(f.md5, f.path) for f in package.files if f.md5]
    return "".join(f"{md5}  {path}\n" for md5, path in pairs if path in held)


def file_list_text(package: InstalledPackage) -> str:
    """info/<pkg>.list: "/." then every path, as dpkg writes it.

    dpkg keeps archive order; after the merged-/usr move that order would put
    /usr/bin before /usr, so the paths are sorted like the layer instead.
    """
    return "/.\n" + "".join(f"/{path}\n" for path in sorted((f.path for f in package.files), key=path_key))


# ---------------------------------------------------------------- the image's status file


@dataclass(frozen=True)
class StatusRecord:
    """What the status file needs of one package (packages.json keeps it for the system layer)."""

    name: str
    architecture: str
    multi_arch: str
    paragraph: str  # status_paragraph(), ending in "\n"

    @classmethod
    def from_json(cls, package: Mapping) -> "StatusRecord":
        return cls(package["name"], package["architecture"], package["multi_arch"], package["status_paragraph"])


class StatusError(ValueError):
    """Packages that cannot share one dpkg database."""


def needs_arch(record: StatusRecord, native: str) -> bool:
    """pkgbin_name_needs_arch(pnaw_nonambig) of lib/dpkg/pkg-show.c."""
    if not record.architecture:
        return False
    if record.multi_arch == "same":
        return True
    return record.architecture not in (native, "all")


def status_file(records: Iterable[StatusRecord], native: str) -> bytes:
    """/var/lib/dpkg/status: one stanza per package in dpkg's order, a blank line after each."""
    seen = {}
    for record in records:
        key = (record.name, record.architecture)
        if key in seen:
            raise StatusError(f"{record.name}:{record.architecture} is installed twice in this image")
        seen[key] = record
    ordered = sorted(seen.values(), key=lambda r: (r.name.encode(), needs_arch(r, native), r.architecture.encode()))
    return b"".join(r.paragraph.encode() + b"\n" for r in ordered)


def image_database_entries(records: Sequence[StatusRecord], native: str) -> List[Entry]:
    """The system layer's part of the database: status, info/format, and status.d/ hidden."""
    return [Entry(DPKG_STATUS, FILE, 0o644, data=status_file(records, native)), INFO_FORMAT, STATUS_D_OPAQUE]


def dpkg_path_filter_cfg(excludes: Sequence[str], includes: Sequence[str]) -> bytes:
    """/etc/dpkg/dpkg.cfg.d/ lines that keep the same files out of packages installed on top of the image."""
    lines = ["# Left out of this image's package layers; dpkg keeps them out of later installs too."]
    lines += [f"path-exclude={p}" for p in excludes] + [f"path-include={p}" for p in includes]
    return ("\n".join(lines) + "\n").encode()
