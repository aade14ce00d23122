"""The bytecode layer action: which modules it compiles, with what, and that the .pycs are valid and reproducible."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import specs

from debian.actions.build_bytecode_layer import (
    BytecodeLayerSpec,
    Compiler,
    CompileError,
    build_bytecode_layer,
    parse_bcep,
)
from debian.bytecode import ImagePython, check_compilers, image_pythons
from oci.pycompile import BytecodeCompiler, compiler_probe
from oci.actions.tarlayer import DIR, FILE, HARDLINK, SYMLINK, Entry, write_layer
from oci.errors import ImageBuildError

REPO_ROOT = Path(__file__).resolve().parents[2]
PY311 = next((p for p in ("/usr/bin/python3.11", shutil.which("python3.11")) if p and os.path.exists(p)), None)
needs_311 = pytest.mark.skipif(PY311 is None, reason="needs a python3.11 on this machine to compile with")
DIST = "usr/lib/python3/dist-packages"

PACKAGE_ENTRIES = [
    Entry(f"{DIST}/pkg", DIR, 0o750, 0, 42, "root", "staff"),
    Entry(f"{DIST}/pkg/__init__.py", FILE, data=b"from .mod import VALUE\n"),
    Entry(f"{DIST}/pkg/mod.py", FILE, data=b"VALUE = 42\nNAMES = frozenset({'alpha', 'beta', 'gamma', 'delta'})\n"),
    Entry(f"{DIST}/pkg/tool.py", FILE, 0o755, data=b"#!/usr/bin/python3\nprint('tool')\n"),
    Entry(f"{DIST}/pkg/same.py", HARDLINK, target=f"{DIST}/pkg/mod.py"),
    Entry(f"{DIST}/pkg/skipme.py", FILE, data=b"SKIPPED = True\n"),
    Entry(f"{DIST}/pkg/shipped.py", FILE, data=b"SHIPPED = True\n"),
    Entry(f"{DIST}/pkg/__pycache__/shipped.cpython-311.pyc", FILE, data=b"not ours"),
    Entry(f"{DIST}/broken.py", FILE, data=b"def broken(:\n"),
    Entry(f"{DIST}/data.txt", FILE, data=b"not a module\n"),
    Entry("usr/lib/python3.11/stdmod.py", FILE, data=b"import os\n"),
    Entry("usr/lib/python3.11/alias.py", SYMLINK, 0o777, target="stdmod.py"),
    Entry("usr/lib/python3.11/sitecustomize.py", SYMLINK, 0o777, target="/etc/python3.11/sitecustomize.py"),
    Entry("etc/python3.11/sitecustomize.py", FILE, data=b"# conffile\n"),
    Entry("usr/lib/python3.12/other.py", FILE, data=b"OTHER = 1\n"),
    Entry("usr/share/pkg/private.py", FILE, data=b"PRIVATE = 1\n"),
    Entry("usr/share/python3/bcep/pkg", FILE, data=(
        b"# py3compile exclusions\n"
        b"re|-3.6|/usr/lib/python3/dist-packages/pkg|.*/mod.py\n"  # older Pythons only: mod.py is compiled
        b"re||/usr/lib/python3/dist-packages/pkg|.*/skipme.py\n"
    )),
]
COMPILED = {
    f"{DIST}/pkg/__pycache__/__init__.cpython-311.pyc", f"{DIST}/pkg/__pycache__/mod.cpython-311.pyc",
    f"{DIST}/pkg/__pycache__/tool.cpython-311.pyc", f"{DIST}/pkg/__pycache__/same.cpython-311.pyc",
    "usr/lib/python3.11/__pycache__/stdmod.cpython-311.pyc", "usr/lib/python3.11/__pycache__/alias.cpython-311.pyc",
}


def package_layer(directory: Path, entries=PACKAGE_ENTRIES) -> Path:
    blob = directory / "package-layer.tar.gz"
    with open(blob, "wb") as out:
        write_layer(entries, out)
    return blob


def spec(blob: Path, *compilers: Compiler) -> BytecodeLayerSpec:
    return BytecodeLayerSpec(str(blob), tuple(compilers or [Compiler(PY311, "3.11")]),
                             specs.settings("packages pkg=1.0"))


def build(spec: BytecodeLayerSpec, out_dir: str) -> tuple:
    """The layer's descriptor as layer.json holds it (or None), and the compile results."""
    layer, results = build_bytecode_layer(spec, out_dir)
    return (layer.to_json() if layer else None), results


def layer_members(out_dir: Path, layer: dict) -> dict[str, tuple[tarfile.TarInfo, bytes | None]]:
    blob = out_dir / "blobs/sha256" / layer["digest"].split(":")[1]
    members = {}
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob.read_bytes()))) as tar:
        for info in tar:
            members[info.name] = (info, tar.extractfile(info).read() if info.isfile() else None)
    return members


def run_python(python: str, code: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True,
                          **kwargs)


@needs_311
def test_compiles_what_debian_would_with_the_image_python(tmp_path):
    layer, results = build(spec(package_layer(tmp_path)), str(tmp_path))
    members = layer_members(tmp_path, layer)
    pycs = {name for name in members if name.endswith(".pyc")}
    assert pycs == COMPILED
    assert [path for path, _ in results[0].failed] == [f"/{DIST}/broken.py"]
    assert results[0].version.startswith("3.11.")
    assert layer["created_by"] == f"python bytecode (unchecked-hash, CPython {results[0].version}) of packages pkg=1.0"
    # The package's own directory keeps its mode and owner; __pycache__ is what py_compile makes as root.
    pkg, _ = members[f"{DIST}/pkg"]
    assert (pkg.mode, pkg.uid, pkg.gid, pkg.gname) == (0o750, 0, 42, "staff")
    cache, _ = members[f"{DIST}/pkg/__pycache__"]
    assert (cache.type, cache.mode, cache.uid) == (tarfile.DIRTYPE, 0o755, 0)
    assert members[f"{DIST}/pkg/__pycache__/tool.cpython-311.pyc"][0].mode == 0o644
    assert all(info.mtime == 0 for info, _ in members.values())


@needs_311
def test_pycs_are_unchecked_hash_of_their_source_and_python_uses_them(tmp_path):
    layer, _ = build(spec(package_layer(tmp_path)), str(tmp_path))
    root = tmp_path / "root"
    for blob in (tmp_path / "package-layer.tar.gz", tmp_path / "blobs/sha256" / layer["digest"].split(":")[1]):
        with tarfile.open(blob) as tar:
            tar.extractall(root)
    # Header as importlib checks it: magic of 3.11, flags 0b01 (hash-based, unchecked), source hash, and the
    # code's file name is the module's path in the image, not the build sandbox's.
    check = run_python(PY311, (
        "import importlib.util, marshal, sys\n"
        "pyc, source, image_path = sys.argv[1:4]\n"
        "data = open(pyc, 'rb').read()\n"
        "assert data[:4] == importlib.util.MAGIC_NUMBER, data[:4]\n"
        "assert int.from_bytes(data[4:8], 'little') == 0b01, data[4:8]\n"
        "assert data[8:16] == importlib.util.source_hash(open(source, 'rb').read())\n"
        "assert marshal.loads(data[16:]).co_filename == image_path, marshal.loads(data[16:]).co_filename\n"
        "print('ok')\n"
    ), str(root / DIST / "pkg/__pycache__/mod.cpython-311.pyc"), str(root / DIST / "pkg/mod.py"), f"/{DIST}/pkg/mod.py")
    assert check.stdout == b"ok\n"
    # -B: Python may not write a cache (a non-root process in an image cannot either); -v says where code came from.
    imported = run_python(PY311, "import sys; sys.path.insert(0, sys.argv[1]); import pkg; print(pkg.VALUE)",
                          str(root / DIST), env={"PYTHONVERBOSE": "1", "PYTHONDONTWRITEBYTECODE": "1"})
    assert imported.stdout == b"42\n"
    stderr = imported.stderr.decode()
    for module in ("__init__", "mod"):
        assert f"{root / DIST}/pkg/__pycache__/{module}.cpython-311.pyc matches {root / DIST}/pkg/{module}.py" in stderr


@needs_311
def test_same_bytes_whatever_the_host_state(tmp_path):
    blob = package_layer(tmp_path)
    first, _ = build(spec(blob), str(tmp_path))
    (tmp_path / "second").mkdir()
    (tmp_path / "spec.json").write_text(json.dumps(spec(blob).to_json()))
    # Another run in a fresh process: other umask, time zone, locale, hash seed, cwd and action interpreter.
    env = {"PYTHONPATH": str(REPO_ROOT / "rules"), "TZ": "Asia/Kolkata", "LC_ALL": "C", "PYTHONHASHSEED": "123",
           "PATH": os.environ.get("PATH", "")}
    subprocess.run(["sh", "-c", f'umask 077 && exec "$0" -B -m debian.actions.build_bytecode_layer "$1"',
                    sys.executable, str(tmp_path / "spec.json")], cwd=tmp_path / "second", env=env, check=True)
    second = json.loads((tmp_path / "second/layer.json").read_text())
    assert second == first


# pyenv's shims may fail (no global version): take an installed version directly.
PY310 = next(iter(sorted(Path.home().glob(".pyenv/versions/3.10*/bin/python3.10"))), None) or (
    "/usr/bin/python3.10" if os.path.exists("/usr/bin/python3.10") else None)


@pytest.mark.skipif(PY310 is None, reason="needs a python3.10, whose marshal writes frozensets in hash order")
def test_frozenset_constants_do_not_depend_on_the_hash_seed(tmp_path):
    blob = package_layer(tmp_path, [e for e in PACKAGE_ENTRIES if e.path.startswith(f"{DIST}/pkg/mod")])
    digests = set()
    for attempt in range(3):
        out = tmp_path / str(attempt)
        out.mkdir()
        layer, _ = build(spec(blob, Compiler(str(PY310), "3.10")), str(out))
        digests.add(layer["diff_id"])
    assert len(digests) == 1


@needs_311
def test_no_module_no_layer(tmp_path):
    blob = package_layer(tmp_path, [Entry("usr/share/doc/pkg/README.py", FILE, data=b"# docs\n"),
                                    Entry("usr/lib/python3.12/other.py", FILE, data=b"OTHER = 1\n")])
    layer, results = build(spec(blob), str(tmp_path))
    assert layer is None and results == []
    assert not (tmp_path / "layer.json").exists() and not (tmp_path / "blobs").exists()


@needs_311
def test_an_interpreter_of_another_version_is_refused(tmp_path):
    with pytest.raises(CompileError, match=r"is cpython 3\.11\.\d+, not CPython 3\.12"):
        build(spec(package_layer(tmp_path), Compiler(PY311, "3.12")), str(tmp_path))


def test_bcep_lines_as_py3compile_reads_them():
    first, second, third = parse_bcep(
        "# comment\nre|-3.6|/usr/lib/python3/dist-packages/jinja2|.*/async(support|filters).py\n"
        "dir|3.11|/usr/lib/python3/dist-packages/old\nfile|3.10-|/usr/lib/python3/x.py\nnonsense\n")
    path = "/usr/lib/python3/dist-packages/jinja2/asyncsupport.py"
    assert first.excludes(path, "3.5") and not first.excludes(path, "3.6")
    assert second.excludes("/usr/lib/python3/dist-packages/old/a.py", "3.11")
    assert not second.excludes("/usr/lib/python3/dist-packages/old/a.py", "3.12")
    assert third.excludes("/usr/lib/python3/x.py", "3.12") and not third.excludes("/usr/lib/python3/x.py", "3.9")


def test_image_python_comes_from_the_closure():
    locked = {"python3.11": {"version": "3.11.2-6+deb12u6"}, "libpython3.11-stdlib": {"version": "3.11.2-6+deb12u6"},
              "libpython3.12-minimal": {"version": "3.12.1-1"}, "python3-foo": {"version": "1"},
              "python3": {"version": "3.11.2-1+b1"}}
    assert image_pythons(tuple(locked), locked) == (
        ImagePython("3.11", "python3.11", "3.11.2-6+deb12u6"), ImagePython("3.12", "libpython3.12-minimal", "3.12.1-1"))
    assert image_pythons(("python3-foo",), locked) == ()


def test_missing_interpreter_names_the_image_and_the_fix():
    from pants.engine.addresses import Address
    python = ImagePython("3.11", "python3.11", "3.11.2-6+deb12u6")
    with pytest.raises(ImageBuildError) as error:
        check_compilers(Address("images/app"), (python,), (BytecodeCompiler("3.11", None, "", ("/usr/bin",)),))
    message = str(error.value)
    assert "images/app" in message and "needs a Python 3.11 on the build machine" in message
    assert "python3.11 3.11.2-6+deb12u6" in message and "install python3.11" in message.lower()


@needs_311
def test_probe_accepts_only_its_minor():
    assert subprocess.run([PY311, "-c", compiler_probe("3.11")], stdout=subprocess.PIPE).returncode == 0
    assert subprocess.run([PY311, "-c", compiler_probe("3.12")], stdout=subprocess.PIPE).returncode == 1
