"""The image's dpkg status file: dpkg's order and stanzas, checked against dpkg itself when it is installed."""

from __future__ import annotations

import hashlib
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from debian.actions.debcontents import DebInput, InstalledPackage, PackageFile
from debian.actions.debfile import ControlInfo, Md5sum
from debian.actions.dpkgdb import (
    INFO_FORMAT,
    STATUS_D_OPAQUE,
    StatusError,
    StatusRecord,
    dpkg_metadata_entries,
    dpkg_path_filter_cfg,
    image_database_entries,
    status_file,
    status_paragraph,
)
from debian.actions.maintscripts import ScriptFindings
from oci.actions.tarlayer import FILE, Entry

CONF = b"answer = 42\n"


def installed(name: str, architecture: str = "amd64", multi_arch: str = "", conffiles=(), **fields) -> InstalledPackage:
    control = {"Package": name, "Version": "1.0-1", "Architecture": architecture,
               "Maintainer": "Test <test@example.invalid>", "Installed-Size": "12", "Homepage": "https://example.org",
               "Depends": "libc6 (>= 2.36)", "Priority": "optional", "Section": "misc",
               "Description": f"{name} for tests\n A second line.\n .\n After an empty one."}
    if multi_arch:
        control["Multi-Arch"] = multi_arch
    control.update(fields)
    files = [PackageFile(Entry("etc", "dir", 0o755), "./etc/"),
             PackageFile(Entry(f"usr/bin/{name}", FILE, 0o755, data=b"x"), f"./usr/bin/{name}",
                         md5=hashlib.md5(b"x").hexdigest())]
    files += [PackageFile(Entry(c.lstrip("/"), FILE, 0o644, data=CONF), "." + c, md5=hashlib.md5(CONF).hexdigest())
              for c in conffiles]
    md5sums = tuple(Md5sum(f.md5, f.path) for f in files if f.md5)
    return InstalledPackage(DebInput(f"{name}.deb", name), ControlInfo(control, md5sums, tuple(conffiles)),
                            tuple(files), ScriptFindings())


def record(package: InstalledPackage) -> StatusRecord:
    return StatusRecord(package.name, package.control.architecture, package.control.multi_arch,
                        status_paragraph(package))


PACKAGES = [
    installed("zlib1g", multi_arch="same"),
    installed("libc6", multi_arch="same"),
    installed("libc6", "i386", multi_arch="same"),
    installed("lib-x"),  # "-" sorts before "6" and "c" in bytes, as strcmp does
    installed("lib+x"),
    installed("tool", conffiles=("/etc/tool.conf", "/etc/tool/other.conf")),
    installed("tzdata", "all"),
    installed("wine32", "i386"),  # a foreign architecture
    installed("base-files", Essential="yes"),
]


def names(status: bytes) -> list:
    return [tuple(line.split(": ", 1)[1] for line in stanza.splitlines() if line.startswith(("Package:", "Arch")))
            for stanza in status.decode().split("\n\n") if stanza]


def test_stanzas_are_in_dpkgs_order():
    shuffled = list(PACKAGES)
    random.Random(7).shuffle(shuffled)
    status = status_file([record(p) for p in shuffled], "amd64")
    assert names(status) == [("base-files", "amd64"), ("lib+x", "amd64"), ("lib-x", "amd64"), ("libc6", "amd64"),
                             ("libc6", "i386"), ("tool", "amd64"), ("tzdata", "all"), ("wine32", "i386"),
                             ("zlib1g", "amd64")]
    assert status.endswith(b"After an empty one.\nHomepage: https://example.org\n\n") and b"\n\n\n" not in status
    assert status == status_file([record(p) for p in PACKAGES], "amd64")


def test_stanza_fields_in_dpkgs_order_with_conffiles():
    text = status_paragraph(installed("tool", conffiles=("/etc/tool.conf",), Essential="yes"))
    fields = [line.split(":")[0] for line in text.splitlines() if not line.startswith(" ")]
    assert fields == ["Package", "Essential", "Status", "Priority", "Section", "Installed-Size", "Maintainer",
                      "Architecture", "Version", "Depends", "Conffiles", "Description", "Homepage"]
    assert f"Conffiles:\n /etc/tool.conf {hashlib.md5(CONF).hexdigest()}\nDescription:" in text


def test_multi_arch_same_names_the_database_files_with_the_architecture():
    paths = [e.path for e in dpkg_metadata_entries(installed("libc6", multi_arch="same"))]
    assert paths == ["var/lib/dpkg/status.d/libc6:amd64", "var/lib/dpkg/info/libc6:amd64.list",
                     "var/lib/dpkg/info/libc6:amd64.md5sums"]


def test_conffiles_file_and_md5sums_in_info():
    entries = {e.path: e.data for e in dpkg_metadata_entries(installed("tool", conffiles=("/etc/tool.conf",)))}
    assert entries["var/lib/dpkg/info/tool.conffiles"] == b"/etc/tool.conf\n"
    assert entries["var/lib/dpkg/info/tool.md5sums"] == (f"{hashlib.md5(b'x').hexdigest()}  usr/bin/tool\n"
                                                         f"{hashlib.md5(CONF).hexdigest()}  etc/tool.conf\n").encode()
    assert entries["var/lib/dpkg/info/tool.list"] == b"/.\n/etc\n/etc/tool.conf\n/usr/bin/tool\n"


def test_a_package_twice_is_refused():
    with pytest.raises(StatusError, match="libc6:amd64 is installed twice"):
        status_file([record(PACKAGES[1]), record(PACKAGES[1])], "amd64")


def test_image_entries_hide_status_d_and_declare_format_1():
    entries = image_database_entries([record(p) for p in PACKAGES], "amd64")
    assert [e.path for e in entries] == ["var/lib/dpkg/status", "var/lib/dpkg/info/format",
                                         "var/lib/dpkg/status.d/.wh..wh..opq"]
    assert INFO_FORMAT.data == b"1\n" and STATUS_D_OPAQUE.data == b"" and STATUS_D_OPAQUE.kind == FILE


def test_path_filter_as_dpkg_configuration():
    text = dpkg_path_filter_cfg(["/usr/share/doc/*"], ["/usr/share/doc/*/copyright"]).decode()
    assert text.splitlines()[1:] == ["path-exclude=/usr/share/doc/*", "path-include=/usr/share/doc/*/copyright"]


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="needs dpkg")
def test_dpkg_rewrites_the_status_file_byte_for_byte(tmp_path: Path):
    """dpkg --set-selections with no input reads the database and writes it back in its own format."""
    admin = tmp_path / "admin"
    for directory in ("info", "updates"):
        (admin / directory).mkdir(parents=True)
    (admin / "info/format").write_bytes(INFO_FORMAT.data)
    status = status_file([record(p) for p in PACKAGES], "amd64")
    (admin / "status").write_bytes(status)
    result = subprocess.run(["dpkg", f"--admindir={admin}", "--force-architecture", "--set-selections"],
                            stdin=subprocess.DEVNULL, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (admin / "status-old").read_bytes() == status  # dpkg did rewrite it ...
    assert (admin / "status").read_bytes() == status  # ... to the same bytes
