"""dpkg's database of one package, as dpkg writes it once the package is installed.

For scanners and for dpkg itself: var/lib/dpkg/status.d/<pkg> (the status paragraph) and
<pkg>.md5sums, and var/lib/dpkg/info/<pkg>.list, with `<pkg>:<arch>` for Multi-Arch: same
packages.  The paths in .md5sums and .list are the merged-/usr paths, the places the files
really are.
"""

from __future__ import annotations

from typing import List

from oci.actions.tarlayer import FILE, Entry, path_key

from .debcontents import InstalledPackage, merged_usr_path
from .debfile import strip_dot_slash


DPKG_STATUS_DIR = "var/lib/dpkg/status.d"


DPKG_INFO_DIR = "var/lib/dpkg/info"


# The order in which dpkg writes a status paragraph (lib/dpkg/parse.c); other fields follow in file order.
DPKG_FIELD_ORDER = (
    "Package", "Essential", "Protected", "Status", "Priority", "Section", "Installed-Size", "Origin",
    "Maintainer", "Bugs", "Architecture", "Multi-Arch", "Source", "Version", "Config-Version", "Replaces",
    "Provides", "Depends", "Pre-Depends", "Recommends", "Suggests", "Breaks", "Conflicts", "Enhances",
    "Conffiles", "Description", "Triggers-Pending", "Triggers-Awaited",
)


def dpkg_metadata_entries(package: InstalledPackage) -> List[Entry]:
    name = package.dpkg_name
    return [
        Entry(f"{DPKG_STATUS_DIR}/{name}", FILE, 0o644, data=status_paragraph(package).encode()),
        Entry(f"{DPKG_STATUS_DIR}/{name}.md5sums", FILE, 0o644, data=md5sums_text(package).encode()),
        Entry(f"{DPKG_INFO_DIR}/{name}.list", FILE, 0o644, data=file_list_text(package).encode()),
    ]


def status_paragraph(package: InstalledPackage) -> str:
    """The control paragraph as dpkg records an installed package: Status added, fields in dpkg's order."""
    fields = {k: v for k, v in package.control.fields.items() if k not in ("Status", "Conffiles")}
    fields["Status"] = "install ok installed"
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
    md5_by_path = {f.path: f.md5 for f in package.files if f.md5}
    lines = []
    for conffile in package.control.conffiles:
        path = merged_usr_path(strip_dot_slash(conffile))
        if path in md5_by_path:
            lines.append(f"/{path} {md5_by_path[path]}")
    return lines


def md5sums_text(package: InstalledPackage) -> str:
    """The .deb's md5sums at merged-/usr paths; computed from the contents if the .deb has none."""
    if package.control.md5sums:
        pairs = [(s.md5, merged_usr_path(s.path)) for s in package.control.md5sums]
    else:
        pairs = [(f.md5, f.path) for f in package.files if f.md5]
    return "".join(f"{md5}  {path}\n" for md5, path in pairs)


def file_list_text(package: InstalledPackage) -> str:
    """info/<pkg>.list: "/." then every path, as dpkg writes it.

    dpkg keeps archive order; after the merged-/usr move that order would put
    /usr/bin before /usr, so the paths are sorted like the layer instead.
    """
    return "/.\n" + "".join(f"/{path}\n" for path in sorted((f.path for f in package.files), key=path_key))
