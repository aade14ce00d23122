"""The venv layer's byte work: wheels installed as data, the venv, RECORD, shebangs and the ELF check."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from elfbuild import shared_object
from oci.actions.pycompile import Compiler
from oci.actions.specs import LayerSettings
from pypi.actions.build_venv_layer import VenvError, build_venv_layer
from pypi.actions.elfneeds import elf_needs
from pypi.actions.specs import LockedWheel, VenvLayerSpec
from pypi.actions.wheel import VenvLayout, WheelError, install_wheel, record_hash
from wheelbuild import WheelSpec, build_wheel

LAYOUT = VenvLayout("#!/var/lib/kolla/venv/bin/python3", "3.11")
SITE = "lib/python3.11/site-packages"
EXT = "fastmod/_speed.cpython-311-x86_64-linux-gnu.so"

GREET = WheelSpec(
    "greet", "1.0",
    files={"greet/__init__.py": b"def main():\n    print('hello')\n", "greet/data.txt": b"x\n"},
    requires=("colour-util>=1",),
    console_scripts={"greet": "greet:main", "greet-admin": "greet.admin:cli.run"},
    scripts={"greet-legacy": b"#!python\nimport greet\ngreet.main()\n"},
)


def fastmod(needed=("libfixture.so.1", "libc.so.6"), bundled: bool = False) -> WheelSpec:
    files = {"fastmod/__init__.py": b"from ._speed import *\n", EXT: shared_object(None, needed=needed)}
    if bundled:
        files["fastmod.libs/libfixture-1a2b3c.so.1"] = shared_object("libfixture-1a2b3c.so.1", needed=())
    return WheelSpec("fastmod", "1.0", files=files, tag="cp311-cp311-manylinux_2_17_x86_64",
                     executables=(EXT,))


def installed_paths(wheel: Path, name: str, version: str) -> dict:
    return {f.path: f for f in install_wheel(str(wheel), name, version, LAYOUT).files}


def content(file) -> bytes:
    if file.data is not None:
        return file.data
    stream, _ = file.opener()
    with stream:
        return stream.read()


def test_a_pure_wheel_lands_in_site_packages_with_fixed_shebangs_and_a_sorted_record(tmp_path):
    files = installed_paths(build_wheel(GREET, tmp_path), "greet", "1.0")
    assert content(files[f"{SITE}/greet/__init__.py"]).startswith(b"def main")
    script = content(files["bin/greet"]).decode()
    assert script.splitlines()[0] == "#!/var/lib/kolla/venv/bin/python3"
    assert "from greet import main" in script and "sys.exit(main())" in script
    assert "from greet.admin import cli" in content(files["bin/greet-admin"]).decode()
    assert content(files["bin/greet-legacy"]).startswith(b"#!/var/lib/kolla/venv/bin/python3\nimport greet")
    assert files["bin/greet"].mode == files["bin/greet-legacy"].mode == 0o755
    assert files[f"{SITE}/greet/__init__.py"].mode == 0o644
    assert content(files[f"{SITE}/greet-1.0.dist-info/INSTALLER"]) == b"oci-pants\n"
    assert not [p for p in files if p.endswith(("direct_url.json", ".pyc", "REQUESTED"))]
    rows = list(csv.reader(io.StringIO(content(files[f"{SITE}/greet-1.0.dist-info/RECORD"]).decode())))
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)
    recorded = {r[0]: r for r in rows}
    assert set(recorded) == {os.path.relpath(p, SITE) for p in files}
    assert recorded["../../../bin/greet"][1] == files["bin/greet"].digest
    assert recorded["greet-1.0.dist-info/RECORD"][1:] == ["", ""]


def test_a_member_changed_after_the_wheel_was_built_is_refused(tmp_path):
    wheel = build_wheel(GREET, tmp_path)
    edited = tmp_path / "edited" / wheel.name
    edited.parent.mkdir()
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(edited, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, b"def main():\n    evil()\n" if info.filename == "greet/__init__.py" else data)
    with pytest.raises(WheelError, match="greet/__init__.py is changed from the wheel's RECORD"):
        install_wheel(str(edited), "greet", "1.0", LAYOUT)


def test_a_member_outside_the_venv_and_a_wheel_unlike_its_lock_entry_are_refused(tmp_path):
    escaping = build_wheel(WheelSpec("bad", "1.0", files={"../../etc/passwd": b"root::0:0\n"}), tmp_path)
    with pytest.raises(WheelError, match="would be written outside the venv"):
        install_wheel(str(escaping), "bad", "1.0", LAYOUT)
    with pytest.raises(WheelError, match="METADATA says greet 1.0, not what the lock pins"):
        install_wheel(str(build_wheel(GREET, tmp_path)), "greet", "2.0", LAYOUT)


def test_elf_needs_reads_dt_needed_in_order():
    assert elf_needs(shared_object("libx.so.1", needed=("liba.so.2", "libc.so.6"))).needed == ("liba.so.2", "libc.so.6")
    assert elf_needs(b"#!/bin/sh\n") is None


def venv_spec(tmp_path: Path, wheels, provides=None, chain=(), create=True) -> VenvLayerSpec:
    locked = []
    for spec in wheels:
        built = build_wheel(spec, tmp_path)
        lw = LockedWheel(spec.name, spec.version, f"http://127.0.0.1/{built.name}", "0" * 64)
        target = tmp_path / lw.sandbox_path
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(built, target)
        locked.append(lw)
    provides_path = ""
    if provides is not None:
        (tmp_path / "provides.json").write_text(json.dumps({"sonames": provides, "present_paths": [],
                                                            "python_modules": {}}))
        provides_path = "provides.json"
    return VenvLayerSpec("//images:app", tuple(locked), "var/lib/kolla/venv", "/usr/bin/python3.11", "3.11",
                         create, tuple(chain), provides_path, LayerSettings(0, 6, "pypi"))


def build_in(tmp_path: Path, spec: VenvLayerSpec) -> tuple[dict, dict]:
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        record = build_venv_layer(spec, ".")
    finally:
        os.chdir(cwd)
    return record, json.loads((tmp_path / "layer.json").read_text())


def layer_members(tmp_path: Path, descriptor: dict) -> dict:
    blob = tmp_path / "blobs/sha256" / descriptor["digest"].split(":")[1]
    with tarfile.open(blob) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_the_venv_layer_holds_pyvenv_cfg_the_interpreter_links_and_the_wheels(tmp_path):
    record, descriptor = build_in(tmp_path, venv_spec(tmp_path, [GREET], provides=[]))
    members = layer_members(tmp_path, descriptor)
    venv = "var/lib/kolla/venv"
    assert members[f"{venv}/bin/python"].linkname == "/usr/bin/python3.11"
    assert members[f"{venv}/bin/python3"].linkname == "python"
    assert members[f"{venv}/lib64"].linkname == "lib"
    assert members[f"{venv}/bin/greet"].mode == 0o755 and members[f"{venv}/bin/greet"].uid == 0
    with tarfile.open(tmp_path / "blobs/sha256" / descriptor["digest"].split(":")[1]) as tar:
        cfg = tar.extractfile(f"{venv}/pyvenv.cfg").read().decode()
    assert "include-system-site-packages = true\n" in cfg and "home = /usr/bin\n" in cfg
    assert {m.mtime for m in members.values()} == {0}
    assert not [n for n in members if n.endswith(".pyc")]
    assert record["distributions"][0]["name"] == "greet"


def test_the_same_wheels_give_the_same_layer_whatever_the_umask_and_directory(tmp_path):
    digests = set()
    for index, umask in enumerate((0o022, 0o077)):
        work = tmp_path / f"run{index}" / ("deeper/" * index)
        work.mkdir(parents=True)
        previous = os.umask(umask)
        try:
            digests.add(build_in(work, venv_spec(work, [GREET, fastmod()], provides=["libfixture.so.1", "libc.so.6"]))[1]["digest"])
        finally:
            os.umask(previous)
    assert len(digests) == 1


def test_a_library_no_debian_package_provides_is_named_with_the_fix(tmp_path):
    with pytest.raises(VenvError) as error:
        build_in(tmp_path, venv_spec(tmp_path, [fastmod()], provides=["libc.so.6"]))
    message = str(error.value)
    assert "fastmod 1.0" in message and f"{EXT} needs libfixture.so.1" in message
    assert "libc.so.6" not in message.split("provide:")[1].split("Add")[0]
    assert "`packages`" in message


def test_a_library_the_wheel_bundles_needs_no_debian_package(tmp_path):
    spec = venv_spec(tmp_path, [fastmod(needed=("libfixture-1a2b3c.so.1", "libc.so.6"), bundled=True)],
                     provides=["libc.so.6"])
    record, _ = build_in(tmp_path, spec)
    assert record["libraries"] == ["_speed.cpython-311-x86_64-linux-gnu.so", "libfixture-1a2b3c.so.1"]


def test_a_child_layer_adds_no_venv_and_refuses_a_file_its_parent_owns(tmp_path):
    parent = tmp_path / "parent"
    parent.mkdir()
    parent_record, _ = build_in(parent, venv_spec(parent, [GREET], provides=[]))
    (tmp_path / "child").mkdir()
    chain = tmp_path / "child" / "pypi" / "parent.json"
    chain.parent.mkdir()
    chain.write_text(json.dumps(parent_record))
    child = tmp_path / "child"
    _, descriptor = build_in(child, venv_spec(child, [fastmod(needed=("libc.so.6",))], provides=["libc.so.6"],
                                              chain=("pypi/parent.json",), create=False))
    assert "var/lib/kolla/venv/pyvenv.cfg" not in layer_members(child, descriptor)
    clash = tmp_path / "clash"
    clash.mkdir()
    (clash / "pypi").mkdir()
    (clash / "pypi/parent.json").write_text(json.dumps(parent_record))
    other = WheelSpec("greet-fork", "1.0", files={"greet/__init__.py": b"fork = 1\n"})
    with pytest.raises(VenvError, match=r"greet/__init__.py is installed by both greet 1.0 \(from //images:app\) "
                                        r"and greet-fork 1.0"):
        build_in(clash, venv_spec(clash, [other], provides=[], chain=("pypi/parent.json",), create=False))


PY311 = next((p for p in ("/usr/bin/python3.11", shutil.which("python3.11")) if p and os.path.exists(p)), None)
needs_py311 = pytest.mark.skipif(PY311 is None, reason="needs a python3.11 on the build machine")
BROKEN = WheelSpec("greet", "1.0", files={"greet/__init__.py": b"def main():\n    print('hello')\n",
                                          "greet/py2.py": b"print 'old'\n"},
                   console_scripts={"greet": "greet:main"})


def compiled_spec(work: Path) -> VenvLayerSpec:
    return dataclasses.replace(venv_spec(work, [BROKEN], provides=[]), compiler=Compiler(PY311, "3.11"))


@needs_py311
def test_compile_python_puts_unchecked_hash_pycs_in_the_layer_and_in_record(tmp_path):
    record, descriptor = build_in(tmp_path, compiled_spec(tmp_path))
    venv = "var/lib/kolla/venv"
    pyc = f"{venv}/{SITE}/greet/__pycache__/__init__.cpython-311.pyc"
    with tarfile.open(tmp_path / "blobs/sha256" / descriptor["digest"].split(":")[1]) as tar:
        members = {m.name: m for m in tar.getmembers()}
        data = tar.extractfile(pyc).read()
        record_text = tar.extractfile(f"{venv}/{SITE}/greet-1.0.dist-info/RECORD").read().decode()
        rows = list(csv.reader(io.StringIO(record_text)))
    assert members[pyc].mode == 0o644 and members[pyc].mtime == 0
    assert int.from_bytes(data[4:8], "little") == 0b01  # hash-based, unchecked (PEP 552)
    assert not [n for n in members if "py2" in n and n.endswith(".pyc")]  # does not compile: left out, as pip does
    assert not [n for n in members if n.startswith(f"{venv}/bin/") and "__pycache__" in n]
    recorded = {row[0]: row for row in rows}
    assert recorded["greet/__pycache__/__init__.cpython-311.pyc"][1:] == [record_hash(data), str(len(data))]
    assert [row[0] for row in rows] == sorted(row[0] for row in rows)
    assert f"{SITE}/greet/__pycache__/__init__.cpython-311.pyc" in record["distributions"][0]["files"]
    load = "import marshal, sys; print(marshal.loads(sys.stdin.buffer.read()[16:]).co_filename)"
    code = subprocess.run([PY311, "-c", load], input=data, stdout=subprocess.PIPE, check=True).stdout.decode().strip()
    assert code == f"/{venv}/{SITE}/greet/__init__.py"


@needs_py311
def test_compiled_venv_layers_are_the_same_whatever_the_umask_directory_and_timezone(tmp_path):
    digests = set()
    for index, (umask, tz) in enumerate(((0o022, "UTC"), (0o077, "Pacific/Chatham"))):
        work = tmp_path / f"run{index}" / ("deeper/" * index)
        work.mkdir(parents=True)
        previous, previous_tz = os.umask(umask), os.environ.get("TZ")
        os.environ["TZ"] = tz
        try:
            digests.add(build_in(work, compiled_spec(work))[1]["digest"])
        finally:
            os.umask(previous)
            os.environ.pop("TZ") if previous_tz is None else os.environ.__setitem__("TZ", previous_tz)
    assert len(digests) == 1
