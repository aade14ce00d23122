"""/etc/ld.so.cache from package layers, checked against the real ldconfig (glibc 2.36) on the same tree."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import struct
import subprocess
import tarfile
from pathlib import Path

import pytest
import specs

from debbuild import DebTree
from elfbuild import EM_386, EM_AARCH64, EM_ARM, shared_object
from debian.actions import build_system_layer
from debian.actions.build_package_layer import DebSpec, PackageLayerSpec, build_package_layer
from debian.actions.debcontents import merged_usr_root_links
from debian.actions.pathfilter import PathFilter
from debian.actions.elf import ElfError, SharedObject, read_shared_object
from debian.actions.ldcache import (
    GENERATOR,
    ImageTree,
    Node,
    build_ld_cache,
    cache_bytes,
    ldconfig_flag,
    libcmp,
    string_table,
)
from oci.actions.tarlayer import DIR, FILE, SYMLINK

LDCONFIG = shutil.which("ldconfig") or ("/sbin/ldconfig" if os.path.exists("/sbin/ldconfig") else None)
needs_ldconfig = pytest.mark.skipif(LDCONFIG is None, reason="ldconfig (glibc) is not installed")
MULTIARCH = "usr/lib/x86_64-linux-gnu"
# A header that points past the end: the layer records the error, ldconfig skips the file.
DAMAGED = shared_object("libdamaged.so.1")[:16] + struct.pack("<HHIQQQIHHHHHH", 3, 62, 1, 0, 9999, 0, 0, 64, 56,
                                                                1, 0, 0, 0)


def libc_package() -> DebTree:
    tree = DebTree("libc6", "2.36-9")
    tree.file("lib/x86_64-linux-gnu/libc.so.6", shared_object("libc.so.6", needed=("ld-linux-x86-64.so.2",)))
    tree.file("lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", shared_object("ld-linux-x86-64.so.2", needed=()))
    tree.file("lib/x86_64-linux-gnu/libm.so.6", shared_object("libm.so.6"))
    tree.file("etc/ld.so.conf.d/x86_64-linux-gnu.conf",
              b"# Multiarch support\n/usr/local/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n")
    tree.symlinks["lib64/ld-linux-x86-64.so.2"] = "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    return tree


def libc_bin_package() -> DebTree:
    tree = DebTree("libc-bin", "2.36-9")
    tree.file("etc/ld.so.conf", b"include /etc/ld.so.conf.d/*.conf\n\n")
    tree.file("etc/ld.so.conf.d/libc.conf", b"# libc default configuration\n/usr/local/lib\n")
    return tree


def libs_package() -> DebTree:
    tree = DebTree("libfoo1", "1.2.3-1")
    tree.file(f"{MULTIARCH}/libfoo.so.1.2.3", shared_object("libfoo.so.1"))
    tree.file(f"{MULTIARCH}/libbar.so.2.0", shared_object("libbar.so.2"))  # no soname link: ldconfig makes one
    tree.file(f"{MULTIARCH}/libnosoname.so.7", shared_object(None))
    tree.file(f"{MULTIARCH}/libexe.so.1", shared_object("libexe.so.1", e_type=2))
    tree.file(f"{MULTIARCH}/libc.so", b"/* GNU ld script */\nGROUP ( /lib/x86_64-linux-gnu/libc.so.6 )\n")
    tree.file(f"{MULTIARCH}/libdamaged.so.1", DAMAGED)
    tree.file(f"{MULTIARCH}/libarm64.so.1", shared_object("libarm64.so.1", machine=EM_AARCH64))
    tree.file(f"{MULTIARCH}/notalib.so.1", shared_object("notalib.so.1"))
    tree.file("usr/lib/libold.so.3", shared_object("libold.so.3", machine=EM_386, elf_class=32))
    tree.file("usr/lib/libplain.so.3", shared_object("libplain.so.3", machine=EM_386, elf_class=32, needed=()))
    tree.file("usr/lib/x86_64-linux-gnu/private/libprivate.so.0", shared_object("libprivate.so.0"))
    tree.symlinks.update({
        f"{MULTIARCH}/libfoo.so.1": "libfoo.so.1.2.3",
        f"{MULTIARCH}/libfoo.so": "libfoo.so.1",  # a development link: cached under its own name
        f"{MULTIARCH}/libother.so": "libfoo.so.1.2.3",  # not a prefix of the soname: counts as libfoo.so.1
        f"{MULTIARCH}/libbar.so.2.0.x": "../x86_64-linux-gnu/libbar.so.2.0",
        f"{MULTIARCH}/libdangling.so.1": "libmissing.so.1",
        f"{MULTIARCH}/libprivate.so.0": "private/libprivate.so.0",
    })
    tree.hardlinks[f"{MULTIARCH}/libfoo-hard.so.1"] = f"{MULTIARCH}/libfoo.so.1.2.3"
    return tree


def private_dir_package() -> DebTree:
    """A directory named in ld.so.conf.d by a package of another layer than the one holding its library."""
    return DebTree("private-conf", "1").file("etc/ld.so.conf.d/private.conf", b"/usr/lib/x86_64-linux-gnu/private/\n")


def deb_spec(path: Path) -> dict:
    data = path.read_bytes()
    name = path.name.split("_")[0]
    return {"path": str(path), "name": name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    """Two package layers and the packages/ + extras/ a system layer sandbox would get; the layers' root too."""
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    work = tmp_path_factory.mktemp("ldcache")
    debs = work / "debs"
    debs.mkdir()
    layers = [[libc_package(), libc_bin_package()], [libs_package(), private_dir_package()]]
    root = work / "root"
    root.mkdir()
    sandbox = work / "sandbox"
    (sandbox / "packages").mkdir(parents=True)
    for index, trees in enumerate(layers):
        out = work / f"layer{index}"
        out.mkdir()
        spec = PackageLayerSpec(tuple(DebSpec(**deb_spec(t.build(debs))) for t in trees), specs.settings(),
                                PathFilter(), specs.accounts())
        result = build_package_layer(spec, str(out))
        blob = (out / "blobs" / "sha256" / result.digest.split(":")[1]).read_bytes()
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
            tar.extractall(root)
        shutil.copy(out / "packages.json", sandbox / "packages" / f"{index}.json")
        if (out / "extras").exists():
            shutil.copytree(out / "extras", sandbox / "extras", dirs_exist_ok=True)
    for entry in merged_usr_root_links():
        if entry.kind == SYMLINK:
            os.symlink(entry.target, root / entry.path)
    return work


def system_layer(image: Path, monkeypatch) -> dict:
    monkeypatch.chdir(image / "sandbox")
    return {e.path: e for e in build_system_layer.system_entries(specs.system_layer())}


def real_ldconfig(image: Path, tmp_path: Path) -> Path:
    """Run glibc's ldconfig on a copy of the layers' root (it creates soname links there)."""
    root = tmp_path / "root"
    shutil.copytree(image / "root", root, symlinks=True)
    subprocess.run([LDCONFIG, "-r", str(root)], check=True, capture_output=True)
    return root


def listing(cache: Path) -> list:
    """`ldconfig -p -C cache` without its first line (which names the file)."""
    out = subprocess.run([LDCONFIG, "-p", "-C", str(cache)], check=True, capture_output=True, text=True).stdout
    return out.splitlines()[1:]


def generator_of(cache: bytes) -> str:
    offset = struct.unpack_from("<I", cache, 32)[0]
    _, count, _, _, start, size = struct.unpack_from("<IIIIII", cache, offset)
    return cache[start:start + size].decode()


def with_generator(cache: bytes, generator: str) -> bytes:
    """The cache with another generator string (and its size) in the extension section."""
    offset = struct.unpack_from("<I", cache, 32)[0]
    return cache[:offset + 20] + struct.pack("<I", len(generator)) + generator.encode()


def test_packages_json_records_libraries_and_damage(image):
    packages = {p["name"]: p for f in sorted((image / "sandbox" / "packages").iterdir())
                for p in json.loads(f.read_text())["packages"]}
    records = {r["path"]: r for r in packages["libfoo1"]["shared_objects"]}
    assert records[f"{MULTIARCH}/libfoo.so.1.2.3"]["soname"] == "libfoo.so.1"
    assert records[f"{MULTIARCH}/libfoo-hard.so.1"]["soname"] == "libfoo.so.1"  # a hardlink has the content's facts
    assert records[f"{MULTIARCH}/libnosoname.so.7"]["soname"] is None
    assert "past the end" in records[f"{MULTIARCH}/libdamaged.so.1"]["error"]
    assert f"{MULTIARCH}/libc.so" not in records and f"{MULTIARCH}/libexe.so.1" not in records  # script, executable
    assert f"{MULTIARCH}/notalib.so.1" not in records  # ldconfig only looks at lib*.so* and ld-*.so*
    libc = {r["path"]: r for r in packages["libc6"]["shared_objects"]}
    # the generic kind comes from DT_NEEDED libc.so.6 (libm) or a known interpreter; libc itself needs neither
    assert (libc[f"{MULTIARCH}/libm.so.6"]["libc_flag"], libc[f"{MULTIARCH}/libc.so.6"]["libc_flag"]) == (3, 1)


@needs_ldconfig
def test_cache_is_byte_identical_to_ldconfig(image, tmp_path, monkeypatch):
    entries = system_layer(image, monkeypatch)
    ours = entries["etc/ld.so.cache"].data
    assert generator_of(ours) == GENERATOR
    root = real_ldconfig(image, tmp_path)
    theirs = (root / "etc/ld.so.cache").read_bytes()
    # Only the generator section differs: ours names this tool, ldconfig names its glibc build.
    assert with_generator(ours, generator_of(theirs)) == theirs
    (tmp_path / "ours.cache").write_bytes(ours)
    assert listing(tmp_path / "ours.cache") == listing(root / "etc/ld.so.cache")[:-1] + [f"Cache generated by: {GENERATOR}"]


@needs_ldconfig
def test_cache_lists_exactly_the_expected_libraries(image, tmp_path, monkeypatch):
    (tmp_path / "ours.cache").write_bytes(system_layer(image, monkeypatch)["etc/ld.so.cache"].data)
    found = [re.match(r"\s+(\S+) \((.*)\) => (\S+)", line).groups() for line in listing(tmp_path / "ours.cache")[:-1]]
    assert found == [
        ("libprivate.so.0", "libc6,x86-64", "/usr/lib/x86_64-linux-gnu/private/libprivate.so.0"),
        ("libprivate.so.0", "libc6,x86-64", "/lib/x86_64-linux-gnu/libprivate.so.0"),
        ("libplain.so.3", "ELF", "/lib/libplain.so.3"),
        ("libold.so.3", "libc6", "/lib/libold.so.3"),
        ("libnosoname.so.7", "libc6,x86-64", "/lib/x86_64-linux-gnu/libnosoname.so.7"),
        ("libm.so.6", "libc6,x86-64", "/lib/x86_64-linux-gnu/libm.so.6"),
        ("libfoo.so.1", "libc6,x86-64", "/lib/x86_64-linux-gnu/libfoo.so.1"),
        ("libfoo.so", "libc6,x86-64", "/lib/x86_64-linux-gnu/libfoo.so"),
        ("libc.so.6", "libc6,x86-64", "/lib/x86_64-linux-gnu/libc.so.6"),
        ("libbar.so.2", "libc6,x86-64", "/lib/x86_64-linux-gnu/libbar.so.2"),
        ("ld-linux-x86-64.so.2", "libc6,x86-64", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
    ]


@needs_ldconfig
def test_soname_links_are_the_ones_ldconfig_creates(image, tmp_path, monkeypatch):
    entries = system_layer(image, monkeypatch)
    root = real_ldconfig(image, tmp_path)
    created = {str(p.relative_to(root)): os.readlink(p) for p in root.rglob("*")
               if p.is_symlink() and not (image / "root" / p.relative_to(root)).is_symlink()}
    ours = {path: e.target for path, e in entries.items() if e.kind == SYMLINK and path.startswith("usr/lib/")}
    assert created == ours == {f"{MULTIARCH}/libbar.so.2": "libbar.so.2.0.x"}


@needs_ldconfig
def test_arm64_cache_reads_back_with_aarch64_flags(tmp_path):
    nodes = {"usr/lib/aarch64-linux-gnu/libz.so.1": Node(FILE), "lib": Node(SYMLINK, "usr/lib")}
    objects = {"usr/lib/aarch64-linux-gnu/libz.so.1": SharedObject(64, EM_AARCH64, 0, "libz.so.1", 3)}
    cache = build_ld_cache(ImageTree(nodes), objects, lambda path: None, "arm64")
    (tmp_path / "arm64.cache").write_bytes(cache_bytes(cache.entries, GENERATOR))
    assert listing(tmp_path / "arm64.cache")[0] == "\tlibz.so.1 (libc6,AArch64) => /lib/aarch64-linux-gnu/libz.so.1"


def test_flags_per_architecture():
    def facts(data: bytes) -> SharedObject:
        return read_shared_object(io.BytesIO(data), len(data))

    x86_64, aarch64 = facts(shared_object("a.so.1")), facts(shared_object("a.so.1", machine=EM_AARCH64))
    armhf = facts(shared_object("a.so.1", machine=EM_ARM, elf_class=32, e_flags=0x05000400))
    assert (ldconfig_flag(x86_64, "amd64"), ldconfig_flag(aarch64, "amd64")) == (0x0303, None)
    assert (ldconfig_flag(aarch64, "arm64"), ldconfig_flag(armhf, "arm64")) == (0x0A03, 0x0903)
    big = facts(shared_object("a.so.1", big_endian=True))
    assert big.soname == "a.so.1"


def test_damaged_elf_raises_elf_error():
    with pytest.raises(ElfError, match="past the end"):
        read_shared_object(io.BytesIO(DAMAGED), len(DAMAGED))
    assert read_shared_object(io.BytesIO(b"GROUP ( x )"), 11) is None


@pytest.mark.parametrize("left, right, sign", [
    ("libfoo.so.10", "libfoo.so.9", 1), ("libfoo.so.1", "libfoo.so.1.2", -1), ("libz3.so", "libzstd.so", 1),
    ("libfoo.so.01", "libfoo.so.1", 0), ("liba.so", "libb.so", -1),
])
def test_libcmp(left, right, sign):
    result = libcmp(left, right)
    assert (result > 0) - (result < 0) == sign


def test_string_table_shares_tails():
    table, offsets = string_table([b"libc.so.6", b"/lib/x86_64-linux-gnu/libc.so.6", b"libm.so.6"])
    assert table == b"libm.so.6\0/lib/x86_64-linux-gnu/libc.so.6\0"  # reversed strings, descending
    assert offsets[b"libc.so.6"] == len(b"libm.so.6\0/lib/x86_64-linux-gnu/")


def test_include_loops_are_refused_with_the_file_named(tmp_path):
    conf = {"etc/ld.so.conf": b"include ld.so.conf\n"}
    tree = ImageTree({"etc/ld.so.conf": Node(FILE), "usr/lib": Node(DIR)})
    with pytest.raises(build_system_layer.LdCacheError, match="/etc/ld.so.conf: `include` nests"):
        build_ld_cache(tree, {}, conf.get, "amd64")
