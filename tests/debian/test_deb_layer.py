"""Debian packages to layers: reading .debs, merged /usr, hostile members, dpkg metadata, determinism."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "rules"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import specs  # noqa: E402
from debbuild import DebTree, ar_archive, control_tar, hand_made_deb, tar_bytes, tar_member  # noqa: E402
from debian.actions.build_package_layer import DebMismatch, PackageLayerSpec, build_package_layer  # noqa: E402
from debian.actions.deb822 import parse_paragraphs  # noqa: E402
from debian.actions.debfile import (  # noqa: E402
    ArchiveFormatError,
    CompressedDataError,
    DebArchive,
    DebError,
    UnsupportedCompression,
)
from debian.actions.debcontents import DebInput, HostileMember, merged_usr_root_links, relocated_symlink_target  # noqa: E402,E501
from debian.actions.deblayer import DuplicatePackage, FileConflict, package_layer  # noqa: E402
from debian.actions.maintscripts import scan_maintainer_scripts  # noqa: E402
from debian.actions.shell import tokenize  # noqa: E402
from oci.actions.assemble_image import assemble  # noqa: E402
from oci.actions.build_layer import write_layer_files  # noqa: E402
from oci.actions.specs import LayerDescriptor  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
needs_dpkg_deb = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb is not installed")
LONG_DIR = "usr/share/tool/" + "d" * 150
LONG_FILE = LONG_DIR + "/" + "f" * 120 + ".txt"
POSTINST = """#!/bin/sh
set -e
# update-alternatives --install /usr/bin/commented out 1
case "$1" in
    configure|abort-upgrade)
        update-alternatives --quiet --install /usr/bin/tool-alt tool-alt \\
            /usr/bin/tool 50 \\
            --slave /usr/share/man/man1/tool-alt.1.gz tool-alt.1.gz /usr/share/man/man1/tool.1.gz
        if ! getent passwd tool >/dev/null; then
            adduser --system --group --home /var/lib/tool --no-create-home --gecos "Tool daemon" tool
        fi
        ;;
esac
ldconfig
"""


def tool_package() -> DebTree:
    tree = DebTree("tool", "1.2-3", extra_fields={"Essential": "no", "Homepage": "https://example.org",
                                                    "Section": "utils", "Priority": "optional"})
    tree.file("bin/tool", b"#!/bin/sh\necho tool\n", 0o755)
    tree.file("usr/bin/tool-setuid", b"\x7fELF setuid\n", 0o4755)
    tree.file("sbin/helper", b"helper\n", 0o755)
    tree.file("lib/x86_64-linux-gnu/libtool.so.1", b"\x7fELF lib\n")
    tree.file("usr/share/tool/data.txt", b"data\n")
    tree.file("bin/tool-z", b"the same inode\n", 0o755)
    tree.file("etc/tool.conf", b"setting = 1\n")
    tree.file(LONG_FILE, b"long name\n")
    tree.dirs.update({"var/lib/tool": 0o2775, "var/tmp/tool": 0o1777})
    tree.symlinks.update({
        "lib/x86_64-linux-gnu/libtool.so": "libtool.so.1",
        "bin/rel": "../usr/share/tool/data.txt",
        "usr/bin/abs": "/bin/tool",
        "usr/share/tool/long-link": "/" + LONG_FILE,
    })
    tree.hardlinks["usr/bin/tool-a"] = "bin/tool-z"
    tree.scripts["postinst"] = POSTINST
    tree.conffiles.append("/etc/tool.conf")
    tree.triggers = "activate-noawait ldconfig\n"
    return tree


def other_package() -> DebTree:
    tree = DebTree("libother", "2.0", extra_fields={"Multi-Arch": "same"})
    tree.file("usr/lib/x86_64-linux-gnu/libother.so.2", b"\x7fELF other\n")
    tree.file("usr/share/common/same.txt", b"shared by two packages\n")
    return tree


@pytest.fixture(scope="module")
def debs(tmp_path_factory) -> dict:
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    out = tmp_path_factory.mktemp("debs")
    tool = tool_package()
    tool.file("usr/share/common/same.txt", b"shared by two packages\n")
    clash = DebTree("clash").file("usr/share/tool/data.txt", b"other data\n")
    return {"tool": tool.build(out), "libother": other_package().build(out), "clash": clash.build(out)}


def deb_spec(path: Path, name: str) -> dict:
    data = path.read_bytes()
    return {"path": str(path), "name": name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


NO_FILTER = {"excludes": [], "includes": []}


def layer_spec(debs: dict, names) -> dict:
    """A PackageLayerSpec as its JSON, for tests that change a field."""
    return {"debs": [deb_spec(debs[n], n) for n in names], "path_filter": NO_FILTER,
            "settings": {"mtime": 1700000000, "level": 6, "created_by": "packages " + " ".join(names)},
            "accounts": specs.accounts().to_json()}


def build(tmp_path: Path, spec: dict, subdir: str = "out") -> tuple:
    out = tmp_path / subdir
    out.mkdir()
    result = build_package_layer(PackageLayerSpec.from_json(spec), str(out)).to_json()
    blob = (out / "blobs" / "sha256" / result["digest"].split(":")[1]).read_bytes()
    return result, blob, json.loads((out / "packages.json").read_text()), out


def tar_of(blob: bytes) -> tuple:
    """Members by name, and a reader of a member's bytes."""
    tar = tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob)))
    members = {m.name.rstrip("/"): m for m in tar.getmembers()}
    return members, lambda name: tar.extractfile(members[name]).read()


@pytest.fixture(scope="module")
def tool_layer(debs, tmp_path_factory):
    return build(tmp_path_factory.mktemp("layer"), layer_spec(debs, ["tool", "libother"]))


# ---------------------------------------------------------------- layout of the layer


def test_merged_usr_moves_root_dirs_under_usr(tool_layer):
    members, read = tar_of(tool_layer[1])
    assert not [n for n in members if n.split("/")[0] in ("bin", "sbin", "lib", "lib64")]
    assert read("usr/bin/tool") == b"#!/bin/sh\necho tool\n"
    assert read("usr/sbin/helper") == b"helper\n"
    assert members["usr/lib/x86_64-linux-gnu/libtool.so"].linkname == "libtool.so.1"


def test_moved_relative_symlink_is_rewritten_and_absolute_kept(tool_layer):
    members, _ = tar_of(tool_layer[1])
    assert members["usr/bin/rel"].issym() and members["usr/bin/rel"].linkname == "../share/tool/data.txt"
    assert members["usr/bin/abs"].linkname == "/bin/tool"


@pytest.mark.parametrize("original, moved, target, expected", [
    ("bin/a", "usr/bin/a", "b", "b"),
    ("bin/a", "usr/bin/a", "../usr/bin/b", "b"),
    ("bin/a", "usr/bin/a", "../sbin/b", "../sbin/b"),
    ("lib/x/a.so", "usr/lib/x/a.so", "../../usr/lib/y/a.so", "../y/a.so"),
    ("bin/a", "usr/bin/a", "/usr/bin/b", "/usr/bin/b"),
    ("usr/bin/a", "usr/bin/a", "../../bin/b", "../../bin/b"),
    ("bin/a", "usr/bin/a", "../etc/b", "../../etc/b"),
    ("bin/a", "usr/bin/a", "../../../etc/b", "../../../etc/b"),  # '..' stops at the root: still /etc/b
])
def test_relocated_symlink_target(original, moved, target, expected):
    assert relocated_symlink_target(original, moved, target) == expected


def test_root_links_for_the_base_layer():
    links = {e.path: e.target for e in merged_usr_root_links() if e.kind == "symlink"}
    assert links == {"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib32": "usr/lib32",
                     "lib64": "usr/lib64", "libx32": "usr/libx32"}


def test_hardlinks_stay_hardlinks(tool_layer):
    members, read = tar_of(tool_layer[1])
    first, second = members["usr/bin/tool-a"], members["usr/bin/tool-z"]
    assert first.isreg() and read("usr/bin/tool-a") == b"the same inode\n"
    assert second.type == tarfile.LNKTYPE and second.linkname == "usr/bin/tool-a"


def test_special_mode_bits_are_kept(tool_layer):
    members, _ = tar_of(tool_layer[1])
    assert members["usr/bin/tool-setuid"].mode == 0o4755
    assert members["var/lib/tool"].mode == 0o2775
    assert members["var/tmp/tool"].mode == 0o1777


def test_long_names_round_trip(tool_layer):
    members, read = tar_of(tool_layer[1])
    assert read(LONG_FILE) == b"long name\n"
    assert members["usr/share/tool/long-link"].linkname == "/" + LONG_FILE


def test_owners_and_mtimes_are_normalized(tool_layer):
    members, _ = tar_of(tool_layer[1])
    assert {(m.uid, m.gid) for m in members.values()} == {(0, 0)}
    assert {m.mtime for m in members.values()} == {1700000000}


# ---------------------------------------------------------------- dpkg database


def test_status_paragraph(tool_layer):
    _, read = tar_of(tool_layer[1])
    text = read("var/lib/dpkg/status.d/tool").decode()
    paragraph, = parse_paragraphs(text)
    assert list(paragraph)[:4] == ["Package", "Essential", "Status", "Priority"]
    assert paragraph["Status"] == "install ok installed"
    assert paragraph["Version"] == "1.2-3"
    assert list(paragraph)[-2:] == ["Description", "Homepage"]  # unknown fields after dpkg's own
    conf_md5 = hashlib.md5(b"setting = 1\n").hexdigest()
    assert paragraph["Conffiles"] == f"\n /etc/tool.conf {conf_md5}"


def test_md5sums_use_merged_usr_paths(tool_layer):
    _, read = tar_of(tool_layer[1])
    lines = read("var/lib/dpkg/info/tool.md5sums").decode().splitlines()
    sums = dict(reversed(line.split("  ", 1)) for line in lines)
    assert sums["usr/bin/tool"] == hashlib.md5(b"#!/bin/sh\necho tool\n").hexdigest()
    assert LONG_FILE in sums and "usr/bin/tool-a" in sums
    assert not [p for p in sums if p.startswith(("bin/", "lib/", "sbin/"))]


def test_file_list_is_written_as_dpkg_does(tool_layer):
    _, read = tar_of(tool_layer[1])
    paths = read("var/lib/dpkg/info/tool.list").decode().splitlines()
    assert paths[0] == "/."
    assert {"/usr", "/usr/bin", "/usr/bin/tool", "/usr/bin/tool-a", "/etc/tool.conf", "/" + LONG_FILE} <= set(paths)
    assert len(paths) == len(set(paths))
    assert paths.index("/usr") < paths.index("/usr/bin") < paths.index("/usr/bin/tool")


def test_multi_arch_same_uses_arch_qualified_names(tool_layer):
    members, _ = tar_of(tool_layer[1])
    assert "var/lib/dpkg/status.d/libother:amd64" in members
    assert "var/lib/dpkg/info/libother:amd64.list" in members
    assert "var/lib/dpkg/info/libother:amd64.md5sums" in members


def test_md5sums_and_conffiles_are_in_info_as_dpkg_keeps_them(tool_layer):
    members, read = tar_of(tool_layer[1])
    assert not [name for name in members if name.startswith("var/lib/dpkg/status.d/") and "." in name.rsplit("/")[-1]]
    assert read("var/lib/dpkg/info/tool.conffiles") == b"/etc/tool.conf\n"
    assert "var/lib/dpkg/info/libother:amd64.conffiles" not in members  # no conffiles, no file


def test_packages_json(tool_layer):
    packages = {p["name"]: p for p in tool_layer[2]["packages"]}
    tool = packages["tool"]
    assert (tool["version"], tool["architecture"], tool["multi_arch"]) == ("1.2-3", "amd64", "no")
    files = {f["path"]: f for f in tool["files"]}
    assert files["usr/bin/tool-setuid"]["mode"] == 0o4755
    assert files["usr/bin/tool"]["sha256"] == hashlib.sha256(b"#!/bin/sh\necho tool\n").hexdigest()
    assert files["usr/bin/rel"]["target"] == "../share/tool/data.txt"
    scripts = tool["maintainer_scripts"]
    assert scripts["alternatives"][0]["link"] == "/usr/bin/tool-alt"
    assert scripts["users"][0]["name"] == "tool"
    assert packages["libother"]["dpkg_name"] == "libother:amd64"


# ---------------------------------------------------------------- conflicts and integrity


def test_identical_files_and_dirs_are_merged(tool_layer):
    members, read = tar_of(tool_layer[1])
    assert read("usr/share/common/same.txt") == b"shared by two packages\n"


def test_conflicting_files_name_both_packages(debs, tmp_path):
    with pytest.raises(FileConflict) as error:
        build(tmp_path, layer_spec(debs, ["tool", "clash"]))
    message = str(error.value)
    assert "/usr/share/tool/data.txt" in message and "tool 1.2-3" in message and "clash 1.0" in message


@pytest.mark.parametrize("field, wrong", [("sha256", "0" * 64), ("size", 12345)])
def test_lock_mismatch_is_refused(debs, tmp_path, field, wrong):
    spec = layer_spec(debs, ["tool"])
    expected = spec["debs"][0][field]
    spec["debs"][0][field] = wrong
    with pytest.raises(DebMismatch) as error:
        build(tmp_path, spec)
    message = str(error.value)
    assert message.startswith("tool:") and str(wrong) in message and "regenerate the lock" in message
    assert (str(expected) in message) if field == "size" else (hashlib.sha256(debs["tool"].read_bytes())
                                                                .hexdigest() in message)


def test_the_same_package_twice_is_refused(debs, tmp_path):
    with pytest.raises(DuplicatePackage, match="tool:amd64 is in this layer twice"):
        package_layer([DebInput(str(debs["tool"])), DebInput(str(debs["tool"]))], str(tmp_path))


def test_a_deb_that_is_not_the_locked_package_is_refused(debs, tmp_path):
    with pytest.raises(DebError, match="the control file says this is package 'tool'"):
        package_layer([DebInput(str(debs["tool"]), "libother")], str(tmp_path))


def test_extras_for_the_system_layer(tmp_path):
    members = DIR_MEMBERS + [
        tar_member("./usr/share/base-passwd/passwd.master", data=b"root:*:0:0:root:/root:/bin/sh\n"),
        tar_member("./usr/share/ca-certificates/mozilla/A.crt", data=b"PEM A\n"),
        tar_member("./usr/share/ca-certificates/mozilla/B.crt", tarfile.LNKTYPE,
                   linkname="./usr/share/ca-certificates/mozilla/A.crt"),
        tar_member("./usr/share/doc/x", data=b"not wanted\n"),
    ]
    deb = hand_made_deb(tmp_path / "base.deb", "base", members)
    spec = {"debs": [deb_spec(deb, "base")], "path_filter": NO_FILTER, "settings": specs.settings().to_json(),
            "accounts": specs.accounts().to_json()}
    _, _, _, out = build(tmp_path, spec)
    extras = sorted(str(p.relative_to(out / "extras")) for p in (out / "extras").rglob("*") if p.is_file())
    assert extras == ["usr/share/base-passwd/passwd.master", "usr/share/ca-certificates/mozilla/A.crt",
                      "usr/share/ca-certificates/mozilla/B.crt"]
    assert (out / "extras/usr/share/ca-certificates/mozilla/B.crt").read_bytes() == b"PEM A\n"


def test_cli_reports_errors_without_traceback(debs, tmp_path):
    spec = layer_spec(debs, ["tool"])
    spec["debs"][0]["sha256"] = "0" * 64
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    result = run_cli(sys.executable, tmp_path / "spec.json", tmp_path)
    assert result.returncode == 1
    assert "does not match the lock" in result.stderr and "Traceback" not in result.stderr


# ---------------------------------------------------------------- hostile and broken .debs


def hostile(tmp_path: Path, name: str, members) -> Path:
    return hand_made_deb(tmp_path / f"{name}.deb", name, members)


DIR_MEMBERS = [tar_member("./", tarfile.DIRTYPE, mode=0o755), tar_member("./usr/", tarfile.DIRTYPE, mode=0o755)]
HOSTILE_CASES = {
    "dotdot": ([tar_member("./usr/../../etc/evil", data=b"x")], "./usr/../../etc/evil", "'..'"),
    "absolute": ([tar_member("/etc/evil", data=b"x")], "/etc/evil", "absolute"),
    "chardev": ([tar_member("./dev/null", tarfile.CHRTYPE)], "./dev/null", "character device"),
    "blockdev": ([tar_member("./dev/sda", tarfile.BLKTYPE)], "./dev/sda", "block device"),
    "fifo": ([tar_member("./run/pipe", tarfile.FIFOTYPE)], "./run/pipe", "FIFO"),
    "through-symlink": ([tar_member("./usr/lib", tarfile.SYMTYPE, linkname="/etc"),
                         tar_member("./usr/lib/passwd", data=b"x")], "./usr/lib/passwd", "written through"),
    "through-moved-symlink": ([tar_member("./usr/lib", tarfile.SYMTYPE, linkname="/etc"),
                               tar_member("./lib/shadow", data=b"x")], "./lib/shadow", "written through"),
    "long-name": ([tar_member("./usr/" + "x" * 4100, data=b"x")], "./usr/xxxx", "longer than 4096"),
    "missing-hardlink": ([tar_member("./usr/a", tarfile.LNKTYPE, linkname="./usr/nothing")], "./usr/a",
                         "not a file earlier"),
    "escaping-hardlink": ([tar_member("./usr/a", tarfile.LNKTYPE, linkname="../../etc/shadow")], "./usr/a",
                          "escapes"),
    "twice": ([tar_member("./usr/a", data=b"1"), tar_member("./usr/a", data=b"2")], "./usr/a", "second time"),
    "bin-link-replaced": ([tar_member("./bin", tarfile.SYMTYPE, linkname="/tmp")], "./bin", "merged-/usr link"),
    "sparse": ([tar_member("./usr/holes", tarfile.GNUTYPE_SPARSE)], "./usr/holes", "sparse"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_CASES))
def test_hostile_member_is_refused(tmp_path, case):
    members, member, problem = HOSTILE_CASES[case]
    deb = hostile(tmp_path, "evil", DIR_MEMBERS + members)
    with pytest.raises(HostileMember) as error:
        package_layer([DebInput(str(deb), "evil")], str(tmp_path))
    message = str(error.value)
    assert message.startswith("evil") and member in message and problem in message, message


@pytest.mark.parametrize("with_dir_member", [True, False])
def test_write_through_a_symlink_of_another_package(tmp_path, with_dir_member):
    linker = hostile(tmp_path, "linker", DIR_MEMBERS + [tar_member("./usr/data", tarfile.SYMTYPE, linkname="/etc")])
    dir_member = [tar_member("./usr/data/", tarfile.DIRTYPE, mode=0o755)] if with_dir_member else []
    writer = hostile(tmp_path, "writer", DIR_MEMBERS + dir_member + [tar_member("./usr/data/shadow", data=b"x")])
    for order in ([linker, writer], [writer, linker]):
        with pytest.raises(HostileMember) as error:
            package_layer([DebInput(str(p)) for p in order], str(tmp_path))
        assert "./usr/data" in str(error.value) and "symlink to /etc" in str(error.value)
        assert "linker" in str(error.value) and "writer" in str(error.value)


def test_the_usr_merge_link_itself_is_left_to_the_base_layer(tmp_path):
    deb = hostile(tmp_path, "usrmerge", DIR_MEMBERS + [tar_member("./bin", tarfile.SYMTYPE, linkname="usr/bin")])
    layer = package_layer([DebInput(str(deb))], str(tmp_path))
    assert "bin" not in {e.path for e in layer.entries}


@needs_dpkg_deb
def test_truncated_deb(debs, tmp_path):
    data = debs["tool"].read_bytes()
    cut = tmp_path / "cut.deb"
    cut.write_bytes(data[: len(data) - 100])
    with pytest.raises(ArchiveFormatError, match=r"cut\.deb.*truncated: member data\.tar\.xz"):
        DebArchive(str(cut))


@needs_dpkg_deb
def test_corrupt_compressed_data(debs, tmp_path):
    with DebArchive(str(debs["tool"])) as archive:
        member = archive.data_member
    data = bytearray(debs["tool"].read_bytes())
    middle = member.offset + member.size // 2
    data[middle: middle + 16] = b"\x00" * 16
    broken = tmp_path / "broken.deb"
    broken.write_bytes(bytes(data))
    with pytest.raises(CompressedDataError, match=r"broken\.deb.*data\.tar\.xz is corrupt"):
        package_layer([DebInput(str(broken))], str(tmp_path))


@pytest.mark.parametrize("content, message", [
    (b"PK\x03\x04 not an ar archive", "ar magic"),
    (ar_archive([("control.tar.xz", b"")]), "not 'debian-binary'"),
    (ar_archive([("debian-binary", b"3.0\n"), ("control.tar.xz", b""), ("data.tar.xz", b"")]), "only format"),
    (ar_archive([("debian-binary", b"2.0\n"), ("control.tar.xz", b"")]), "expected a control.tar and a data.tar"),
    (ar_archive([("debian-binary", b"2.0\n"), ("data.tar.xz", b""), ("control.tar.xz", b"")]), "unexpected ar member"),
    (b"!<arch>\ndebian-binary   0           0     0     100644  4         XX2.0\n", "bad ar member header"),
])
def test_malformed_ar(tmp_path, content, message):
    path = tmp_path / "bad.deb"
    path.write_bytes(content)
    with pytest.raises(ArchiveFormatError, match=message):
        DebArchive(str(path))


def test_zstd_is_refused_clearly(tmp_path):
    path = tmp_path / "zst.deb"
    path.write_bytes(ar_archive([("debian-binary", b"2.0\n"), ("control.tar.zst", b"\x28\xb5\x2f\xfd"),
                                 ("data.tar.zst", b"")]))
    with pytest.raises(UnsupportedCompression, match=r"zst\.deb: control\.tar\.zst is zstd-compressed"):
        DebArchive(str(path))


@pytest.mark.parametrize("compression", ["gz", "bz2", "none", "xz"])
def test_data_tar_compressions(tmp_path, compression):
    members = DIR_MEMBERS + [tar_member("./usr/file", data=b"payload\n")]
    deb = hand_made_deb(tmp_path / "c.deb", "c", members, compression=compression,
                        control_compression="gz" if compression == "gz" else "xz")
    layer = package_layer([DebInput(str(deb))], str(tmp_path))
    assert "usr/file" in {e.path for e in layer.entries}
    control, = [p for p in layer.packages]
    assert control.name == "c" and control.files[-1].md5 == hashlib.md5(b"payload\n").hexdigest()


def test_missing_md5sums_are_computed(tmp_path):
    deb = hand_made_deb(tmp_path / "c.deb", "c", DIR_MEMBERS + [tar_member("./usr/file", data=b"payload\n")])
    layer = package_layer([DebInput(str(deb))], str(tmp_path))
    md5sums, = [e for e in layer.entries if e.path.endswith("c.md5sums")]
    assert md5sums.data == f"{hashlib.md5(b'payload' + bytes([10])).hexdigest()}  usr/file\n".encode()


def test_a_conffile_hardlinking_a_plain_file_gets_its_md5(tmp_path):
    # With md5sums in the .deb only conffiles are hashed; here the conffile is a hardlink.
    md5 = hashlib.md5(b"setting\n").hexdigest()
    deb = tmp_path / "c.deb"
    deb.write_bytes(ar_archive([
        ("debian-binary", b"2.0\n"),
        ("control.tar.xz", control_tar("c", extra={"md5sums": f"{md5}  usr/share/c/default\n".encode(),
                                                   "conffiles": b"/etc/c.conf\n"})),
        ("data.tar.xz", tar_bytes(DIR_MEMBERS + [
            tar_member("./usr/share/c/default", data=b"setting\n"),
            tar_member("./etc/c.conf", tarfile.LNKTYPE, linkname="./usr/share/c/default")])),
    ]))
    layer = package_layer([DebInput(str(deb))], str(tmp_path))
    status, = [e for e in layer.entries if e.path == "var/lib/dpkg/status.d/c"]
    assert f"\n /etc/c.conf {md5}\n" in status.data.decode()


@pytest.mark.parametrize("cut, where", [(2048, "member './usr/big' needs 5000 bytes"), (1100, "inside a member header")])
def test_a_data_tar_cut_short_is_refused(tmp_path, cut, where):
    data = tar_bytes(DIR_MEMBERS + [tar_member("./usr/big", data=b"x" * 5000)], "none")
    deb = tmp_path / "cut.deb"
    deb.write_bytes(ar_archive([("debian-binary", b"2.0\n"), ("control.tar.xz", control_tar("cut")),
                                ("data.tar", data[:cut])]))
    with pytest.raises(CompressedDataError, match=rf"cut\.deb: data\.tar is cut short.*{re.escape(where)}"):
        package_layer([DebInput(str(deb))], str(tmp_path))


def test_an_xz_data_tar_without_its_end_is_refused(tmp_path):
    data = tar_bytes(DIR_MEMBERS + [tar_member("./usr/file", data=os.urandom(4000))], "xz")
    deb = tmp_path / "cut.deb"
    deb.write_bytes(ar_archive([("debian-binary", b"2.0\n"), ("control.tar.xz", control_tar("cut")),
                                ("data.tar.xz", data[:-40])]))
    with pytest.raises(CompressedDataError, match=r"cut\.deb.*data\.tar\.xz is corrupt"):
        package_layer([DebInput(str(deb))], str(tmp_path))


def test_control_file_is_read_with_scripts(tmp_path):
    deb = tmp_path / "s.deb"
    data = tar_bytes(DIR_MEMBERS)
    control = control_tar("s", extra={"postinst": b"#!/bin/sh\nldconfig\n", "md5sums": b"",
                                      "conffiles": b"remove-on-upgrade /etc/old conf\n/etc/x\n"})
    deb.write_bytes(ar_archive([("debian-binary", b"2.0\n"), ("control.tar.xz", control), ("data.tar.xz", data),
                                ("_gpgorigin", b"signature")]))
    with DebArchive(str(deb)) as archive:
        info = archive.control()
    assert info.package == "s" and info.scripts == {"postinst": "#!/bin/sh\nldconfig\n"}
    assert info.conffiles == ("/etc/old conf", "/etc/x")


# ---------------------------------------------------------------- determinism


@needs_dpkg_deb
def test_same_debs_in_any_order_give_the_same_bytes(debs, tmp_path, tool_layer):
    spec = layer_spec(debs, ["libother", "tool"])  # the fixture lists them the other way round
    result, blob, packages, _ = build(tmp_path, spec)
    assert result["digest"] == tool_layer[0]["digest"] and result["diff_id"] == tool_layer[0]["diff_id"]
    assert blob == tool_layer[1] and packages == tool_layer[2]


def run_cli(python: str, spec: Path, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-B", "-m", "debian.actions.build_package_layer", str(spec)], cwd=cwd,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO / "rules"), **(env or {})},
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def pythons() -> list:
    candidates = [sys.executable, "/usr/bin/python3"]
    candidates += sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.*/bin/python3"))
    found = []
    for candidate in candidates:
        if os.path.exists(candidate) and subprocess.run(
                [candidate, "-c", "import sys; sys.exit(sys.version_info < (3, 9))"]).returncode == 0:
            found.append(candidate)
    return found


@needs_dpkg_deb
def test_cli_gives_the_same_layer_on_every_python_and_host_setting(debs, tmp_path, tool_layer):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(layer_spec(debs, ["tool", "libother"])))
    settings = [{"TZ": "UTC", "LC_ALL": "C.UTF-8"}, {"TZ": "Pacific/Chatham", "LC_ALL": "C", "LANG": "POSIX"}]
    outputs = set()
    for index, python in enumerate(pythons()):
        out = tmp_path / f"out{index}"
        out.mkdir()
        result = run_cli(python, spec, out, settings[index % 2])
        assert result.returncode == 0, result.stderr
        outputs.add(((out / "layer.json").read_text(), (out / "packages.json").read_text()))
    assert len(outputs) == 1
    assert json.loads(outputs.pop()[0])["diff_id"] == tool_layer[0]["diff_id"]


# ---------------------------------------------------------------- real OCI tools


def oci_layout(tmp_path: Path, package_out: Path, package_result: dict) -> Path:
    layout = tmp_path / "layout"
    layout.mkdir()
    base = write_layer_files(merged_usr_root_links(), specs.settings("merged /usr", 1700000000), str(layout))
    shutil.copytree(package_out / "blobs", layout / "blobs", dirs_exist_ok=True)
    assemble(specs.image(layers=[base, LayerDescriptor.from_json(package_result)], created_epoch=1700000000),
             str(layout))
    for stray in ("layer.json", "image.json"):
        (layout / stray).unlink()
    return layout


@pytest.fixture(scope="module")
def unpacked(tool_layer, tmp_path_factory):
    if not (shutil.which("umoci") and shutil.which("oci-image-tool")):
        pytest.skip("umoci or oci-image-tool is not installed")
    tmp_path = tmp_path_factory.mktemp("oci")
    layout = oci_layout(tmp_path, tool_layer[3], tool_layer[0])
    result = subprocess.run(["umoci", "unpack", "--rootless", "--image", f"{layout}:latest", str(tmp_path / "b")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert result.returncode == 0, result.stdout
    return layout, tmp_path / "b" / "rootfs"


def test_oci_image_tool_validates(unpacked):
    result = subprocess.run(["oci-image-tool", "validate", "--type", "image", str(unpacked[0])],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert result.returncode == 0 and "Validation succeeded" in result.stdout, result.stdout


def test_umoci_unpacks_packages_over_the_merged_usr_base(unpacked):
    rootfs = unpacked[1]
    assert os.readlink(rootfs / "bin") == "usr/bin"
    assert (rootfs / "bin/tool").read_bytes() == b"#!/bin/sh\necho tool\n"  # through the root link
    assert (rootfs / "usr/bin/rel").read_bytes() == b"data\n"
    assert (rootfs / "usr/bin/tool-a").stat().st_ino == (rootfs / "usr/bin/tool-z").stat().st_ino
    assert (rootfs / "usr/bin/tool-setuid").stat().st_mode & 0o7777 == 0o4755
    assert (rootfs / LONG_FILE).read_bytes() == b"long name\n"


def test_md5sums_match_the_unpacked_files(unpacked):
    rootfs = unpacked[1]
    for name in ("tool", "libother:amd64"):
        lines = (rootfs / f"var/lib/dpkg/info/{name}.md5sums").read_text().splitlines()
        assert lines
        for line in lines:
            md5, path = line.split("  ", 1)
            assert hashlib.md5((rootfs / path).read_bytes()).hexdigest() == md5, path
        paragraph, = parse_paragraphs((rootfs / f"var/lib/dpkg/status.d/{name}").read_text())
        assert paragraph["Status"] == "install ok installed"


# ---------------------------------------------------------------- maintainer scripts


def test_update_alternatives_with_continuations_and_slaves():
    findings = scan_maintainer_scripts({"postinst": POSTINST}, "activate-noawait ldconfig\n")
    alternative, = findings.alternatives
    assert (alternative.link, alternative.name, alternative.path, alternative.priority) == \
        ("/usr/bin/tool-alt", "tool-alt", "/usr/bin/tool", 50)
    slave, = alternative.slaves
    assert (slave.link, slave.name, slave.path) == \
        ("/usr/share/man/man1/tool-alt.1.gz", "tool-alt.1.gz", "/usr/share/man/man1/tool.1.gz")
    user, = findings.users
    assert (user.name, user.system, user.home, user.user_group, user.gecos, user.create_home) == \
        ("tool", True, "/var/lib/tool", True, "Tool daemon", False)
    assert [(e.kind, e.script) for e in findings.effects] == [("ldconfig", "postinst"), ("ldconfig", "triggers")]
    assert findings.unrecognized == ()


def test_alternative_json_matches_the_system_layer():
    from debian.actions.sysfiles import Alternative
    alternative = scan_maintainer_scripts({"postinst": POSTINST}).alternatives[0]
    assert Alternative.from_json(alternative.to_json()).slaves[0].name == "tool-alt.1.gz"


def test_variables_and_dynamic_values():
    script = """
BLAS=/usr/lib/x86_64-linux-gnu/blas
update-alternatives --install /usr/lib/x86_64-linux-gnu/libblas.so.3 libblas.so.3-x86_64-linux-gnu \\
                    "${BLAS}/libblas.so.3" 10
for i in a b; do
    update-alternatives --install /usr/bin/$i $i /usr/lib/jvm/bin/$i 1711
done
update-alternatives --install /usr/bin/lzma lzma /usr/bin/xz 20 $(slave /usr/bin unlzma unxz)
"""
    findings = scan_maintainer_scripts({"postinst": script})
    assert [(a.link, a.path) for a in findings.alternatives] == [
        ("/usr/lib/x86_64-linux-gnu/libblas.so.3", "/usr/lib/x86_64-linux-gnu/blas/libblas.so.3"),
        ("/usr/bin/lzma", "/usr/bin/xz")]
    reasons = [u.reason for u in findings.unrecognized]
    assert "only known at run time" in reasons[0] and "$(slave" in reasons[1]


def test_accounts_commands():
    script = """
addgroup --system --quiet _ssh
useradd -r -M -g daemon -d /var/lib/x -s /usr/sbin/nologin -c 'X user' -G adm,audio xuser
groupadd -g 42 shadow
adduser --quiet postgres ssl-cert
"""
    findings = scan_maintainer_scripts({"preinst": script})
    assert [(g.name, g.system, g.gid) for g in findings.groups] == [("_ssh", True, None), ("shadow", False, "42")]
    user, = findings.users
    assert (user.name, user.system, user.primary_group, user.home, user.shell, user.gecos, user.create_home) == \
        ("xuser", True, "daemon", "/var/lib/x", "/usr/sbin/nologin", "X user", False)
    assert [(m.user, m.group) for m in findings.memberships] == [
        ("xuser", "adm"), ("xuser", "audio"), ("postgres", "ssl-cert")]


def test_other_effects_heredocs_and_unknown_commands():
    script = """#!/bin/sh
set -e
cat > /etc/generated <<EOF
update-alternatives --install /not/a/command x /y 1
EOF
my_helper() { echo hi; }
my_helper
update-ca-certificates --fresh
py3compile -p foo
dpkg-maintscript-helper supports rm_conffile && dpkg-maintscript-helper rm_conffile /etc/old 1.0~ -- "$@"
deb-systemd-helper enable foo.service >/dev/null || true
dpkg-trigger --no-await foo
update-rc.d foo defaults
frobnicate --all
"""
    findings = scan_maintainer_scripts({"postinst": script})
    assert findings.alternatives == ()
    assert [e.kind for e in findings.effects] == [
        "ca-certificates", "byte-compile", "maintscript-helper", "service", "trigger", "service"]
    assert [u.command for u in findings.unrecognized] == ["frobnicate --all"]


def test_accounts_that_cannot_be_read_are_unrecognized():
    findings = scan_maintainer_scripts({"postinst": "adduser --system \"$NAME\"\nusermod -a -G x y\n"})
    assert [u.reason for u in findings.unrecognized] == ["cannot tell which account this creates"]
    assert [e.kind for e in findings.effects] == ["accounts"]


def test_only_preinst_and_postinst_are_scanned():
    findings = scan_maintainer_scripts({"prerm": "update-alternatives --remove x /y\n", "postrm": "deluser x\n"})
    assert findings == scan_maintainer_scripts({})


def test_tokenizer_keeps_quotes_and_substitutions_in_words():
    tokens = tokenize("""echo "a $(printf ')' "x") b" 'c d'\\\n  e # comment\n""")
    assert tokens == [("word", "echo"), ("word", "a $(printf ')' \"x\") b"), ("word", "c d"), ("word", "e"),
                      ("op", "\n")]


# ---------------------------------------------------------------- path filters (dpkg's path-exclude)


def filtered_layer(debs, tmp_path, excludes, includes=()):
    spec = dict(layer_spec(debs, ["tool", "libother"]), path_filter={"excludes": excludes, "includes": includes})
    return build(tmp_path, spec)


def test_path_filter_leaves_out_files_and_emptied_dirs(debs, tmp_path):
    _, blob, packages_json, _ = filtered_layer(debs, tmp_path, ["/usr/share/tool/*", "/usr/share/common*"],
                                               ["/usr/share/tool/data.txt"])
    members, read = tar_of(blob)
    assert read("usr/share/tool/data.txt") == b"data\n"
    assert "usr/share/tool/long-link" not in members and LONG_FILE not in members
    assert LONG_DIR not in members  # excluded and emptied
    assert "usr/share/common" not in members and "usr/share/common/same.txt" not in members
    assert "usr/share/tool" in members  # still holds data.txt
    # dpkg's database lists only what the layer holds (dpkg would list the left-out files too) ...
    listed = read("var/lib/dpkg/info/tool.list").decode().splitlines()
    assert "/" + LONG_FILE not in listed and "/usr/share/tool/long-link" not in listed
    assert "/usr/share/tool/data.txt" in listed and "/usr/share/tool" in listed and "/" + LONG_DIR not in listed
    summed = [line.split("  ", 1)[1] for line in read("var/lib/dpkg/info/tool.md5sums").decode().splitlines()]
    assert LONG_FILE not in summed and "usr/share/tool/data.txt" in summed and "usr/bin/tool" in summed
    # ... and so does packages.json, for conflict checks and size reports.
    tool_files = {f["path"] for p in packages_json["packages"] if p["name"] == "tool" for f in p["files"]}
    assert LONG_FILE not in tool_files and "usr/share/tool/data.txt" in tool_files


def test_path_filter_keeps_the_content_of_a_hardlink_that_stays(debs, tmp_path):
    _, blob, packages_json, _ = filtered_layer(debs, tmp_path, ["/usr/bin/tool-a"])
    members, read = tar_of(blob)
    assert "usr/bin/tool-a" not in members
    assert members["usr/bin/tool-z"].isreg() and read("usr/bin/tool-z") == b"the same inode\n"
    tool_files = {f["path"]: f for p in packages_json["packages"] if p["name"] == "tool" for f in p["files"]}
    assert tool_files["usr/bin/tool-z"]["kind"] == "file"


def test_path_filter_changes_only_what_it_matches(debs, tmp_path, tool_layer):
    _, blob, _, _ = filtered_layer(debs, tmp_path, ["/nothing/*"])
    assert blob == tool_layer[1]
    assert build(tmp_path, dict(layer_spec(debs, ["tool", "libother"]), path_filter=NO_FILTER), "empty")[1] == \
        tool_layer[1]


def test_path_filter_patterns_must_be_absolute(debs, tmp_path):
    spec = dict(layer_spec(debs, ["tool"]), path_filter={"excludes": ["usr/share/doc/*"], "includes": []})
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    run = subprocess.run([sys.executable, "-m", "debian.actions.build_package_layer", str(tmp_path / "spec.json")],
                         cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(REPO / "rules")),
                         capture_output=True, text=True)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "'usr/share/doc/*' must be absolute" in run.stderr
