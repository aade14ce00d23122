"""End to end: `compile_python=True` images get bytecode layers compiled by the image's Python, reproducibly."""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from aptrepo import DEFAULT_PACKAGES, AptRepo, DebSpec, FileSpec, serve_directory
from e2e_repo import layout_files, make_repo, run_pants

pytestmark = pytest.mark.e2e

PY311 = "/usr/bin/python3.11"
if not os.path.exists(PY311):
    pytest.skip("the fixture's image Python is 3.11 (python3.11 3.11.2-6): needs /usr/bin/python3.11 to compile with",
                allow_module_level=True)

DIST = "usr/lib/python3/dist-packages"
FIXTURE_MODULES = (
    FileSpec(f"/{DIST}/fixturemod/__init__.py", b"from fixturemod.core import answer\n"),
    FileSpec(f"/{DIST}/fixturemod/core.py", b"KINDS = frozenset({'a', 'b', 'c'})\n\ndef answer():\n    return 42\n"),
    FileSpec(f"/{DIST}/fixturemod-1.0.egg-info/PKG-INFO", b"Name: fixturemod\n"),
    FileSpec("/usr/share/doc/python3-fixturemod/example.py", b"print('documentation, not compiled')\n"),
)
PACKAGES = [
    *(dataclasses.replace(spec, files=(FileSpec("/usr/lib/python3.11/fixture_stdlib.py", b"STDLIB = True\n"),))
      if spec.name == "libpython3.11-stdlib" else spec for spec in DEFAULT_PACKAGES),
    DebSpec("python3-fixturemod", "1.0-1", architecture="all", depends="python3", files=FIXTURE_MODULES),
    DebSpec("python3-extramod", "2.0-1", architecture="all", depends="python3",
            files=(FileSpec(f"/{DIST}/extramod.py", b"EXTRA = 2\n"),)),
]
IMAGES = {
    "images/users.yaml": "groups: {}\nusers: {}\n",
    "images/py/BUILD": 'oci_image(packages=["python3", "python3-fixturemod"], compile_python=True)\n',
    "images/nopy/BUILD": 'oci_image(packages=["python3", "python3-fixturemod"])\n',
    "images/child/BUILD": 'oci_image(parent="//images/py", packages=["python3-extramod"], compile_python=True)\n',
}
PY_PYCS = {f"{DIST}/fixturemod/__pycache__/__init__.cpython-311.pyc",
           f"{DIST}/fixturemod/__pycache__/core.cpython-311.pyc",
           "usr/lib/python3.11/__pycache__/fixture_stdlib.cpython-311.pyc"}


@pytest.fixture(scope="module")
def built(tmp_path_factory, apt_keys):
    root = tmp_path_factory.mktemp("apt")
    with serve_directory(root) as url:
        apt = AptRepo(root=root, suite="fixture", key=apt_keys.trusted, packages=tuple(PACKAGES),
                      url=url).build(apt_keys.deb_cache)
        work = tmp_path_factory.mktemp("bytecode")
        sources = yaml.safe_dump({"architectures": ["amd64"], "sources": [{
            "name": "fixture", "url": apt.url, "suites": ["fixture"], "components": ["main"],
            "keyring": str(apt_keys.trusted.keyring)}]})
        repo = make_repo(work / "repo", {**IMAGES, "3rdparty/debian/sources.yaml": sources})
        env = {"XDG_CACHE_HOME": str(work / "xdg")}
        lock = run_pants(repo, "generate-lockfiles", "--resolve=debian", store=work / "store", env=env)
        assert lock.returncode == 0, lock.output
        package = run_pants(repo, "package", "::", f"--debian-deb-cache={work / 'debs'}", store=work / "store",
                            env=env)
        assert package.returncode == 0, package.output
        yield repo, package, env, work


def image(repo: Path, name: str) -> tuple[dict, dict]:
    layout = repo / f"dist/images.{name}/{name}"
    top = json.loads((layout / "index.json").read_text())["manifests"][0]
    manifest = json.loads((layout / "blobs/sha256" / top["digest"][7:]).read_text())
    config = json.loads((layout / "blobs/sha256" / manifest["config"]["digest"][7:]).read_text())
    return manifest, config


def layer_history(repo: Path, name: str) -> list[tuple[str, str]]:
    manifest, config = image(repo, name)
    return [(layer["digest"], history["created_by"]) for layer, history in zip(manifest["layers"], config["history"])]


def bytecode_layers(repo: Path, name: str) -> list[tuple[str, str]]:
    return [(d, h) for d, h in layer_history(repo, name) if h.startswith("python bytecode")]


def members(repo: Path, name: str, digest: str) -> set[str]:
    blob = repo / f"dist/images.{name}/{name}/blobs/sha256" / digest[7:]
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob.read_bytes()))) as tar:
        return {info.name for info in tar if info.isfile()}


def test_bytecode_layer_holds_the_pycs_of_the_image_python(built):
    repo, *_ = built
    (digest, created_by), = bytecode_layers(repo, "py")
    assert created_by.startswith("python bytecode (unchecked-hash, CPython 3.11.")
    assert "python3-fixturemod=1.0-1" in created_by
    assert members(repo, "py", digest) == PY_PYCS
    history = [h for _, h in layer_history(repo, "py")]
    assert history.index(created_by) == len(history) - 2  # after the package layer, before the system layer


def test_child_compiles_only_what_it_adds_and_off_means_none(built):
    repo, *_ = built
    py_layers, child_layers = bytecode_layers(repo, "py"), bytecode_layers(repo, "child")
    assert child_layers[0] == py_layers[0]  # inherited
    (digest, _), = child_layers[1:]
    assert members(repo, "child", digest) == {f"{DIST}/__pycache__/extramod.cpython-311.pyc"}
    assert bytecode_layers(repo, "nopy") == []
    with_bytecode = [d for d, h in layer_history(repo, "py") if not h.startswith("python bytecode")]
    assert [d for d, _ in layer_history(repo, "nopy")][0] == with_bytecode[0]  # the same package layer


def test_python_loads_the_pycs_without_writing_any(built, tmp_path):
    repo, *_ = built
    bundle = tmp_path / "bundle"
    result = subprocess.run(["umoci", "unpack", "--rootless", "--image", f"{repo}/dist/images.py/py:latest",
                             str(bundle)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert result.returncode == 0, result.stdout
    site = bundle / "rootfs" / DIST
    check = subprocess.run([PY311, "-c", (
        "import importlib.util, sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import fixturemod\n"
        "data = open(fixturemod.core.__cached__, 'rb').read()\n"
        "assert int.from_bytes(data[4:8], 'little') == 0b01  # unchecked hash\n"
        "assert data[8:16] == importlib.util.source_hash(open(fixturemod.core.__file__, 'rb').read())\n"
        "print(fixturemod.answer())\n"), str(site)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={"PYTHONVERBOSE": "1", "PYTHONDONTWRITEBYTECODE": "1"})
    assert check.returncode == 0, check.stderr
    assert check.stdout == "42\n"
    assert f"{site}/fixturemod/__pycache__/core.cpython-311.pyc matches {site}/fixturemod/core.py" in check.stderr


def test_a_second_build_elsewhere_gives_the_same_bytes(built):
    repo, _, env, work = built
    before = layout_files(repo / "dist/images.child/child")
    shutil.rmtree(repo / "dist")
    again = run_pants(repo, "package", "images/child", f"--debian-deb-cache={work / 'debs'}", store=work / "store2",
                      env={**env, "TZ": "Pacific/Chatham", "LC_ALL": "C"}, umask=0o077)
    assert again.returncode == 0, again.output
    assert any(p.startswith("Compile Python 3.11 bytecode") for p in again.processes)  # really rebuilt
    assert layout_files(repo / "dist/images.child/child") == before


def test_missing_interpreter_fails_naming_the_image(built, tmp_path):
    repo, _, env, work = built
    only_python3 = tmp_path / "bin"
    only_python3.mkdir()
    (only_python3 / "python3").symlink_to("/usr/bin/python3")  # runs the actions, but is no python3.11
    run = run_pants(repo, "package", "images/py", f"--python-bootstrap-search-path=['{only_python3}']",
                    f"--debian-deb-cache={work / 'debs'}", store=work / "store3", env=env)
    assert run.returncode != 0
    assert "images/py:py has compile_python=True" in run.output
    assert "needs a Python 3.11 on the build machine" in run.output
