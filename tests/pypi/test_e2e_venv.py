"""End to end with the PyPI source: lock small wheels served on 127.0.0.1 with Pants' own
`generate-lockfiles`, build venv layers over a fixture Debian chain, and check the bytes, the
parent-aware layers, the refusals and that a perturbed rebuild (path, umask, TZ, locale, clock,
source mtimes, action interpreter) is identical. Offline once ./pants has bootstrapped Pants and Pex."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from aptrepo import DEFAULT_PACKAGES, AptRepo, DebSpec, FileSpec, serve_directory
from e2e_repo import layout_files, make_repo, python39_dir, run_pants
from elfbuild import shared_object
from wheelbuild import WheelSpec, build_wheel, write_simple_index

pytestmark = pytest.mark.e2e

VENV = "var/lib/kolla/venv"
SITE = f"{VENV}/lib/python3.11/site-packages"
EXT = "fastmod/_speed.cpython-311-x86_64-linux-gnu.so"
WHEELS = [
    WheelSpec("greet", "1.0", files={"greet/__init__.py": b"def main():\n    print('hello')\n"},
              requires=("Colour_Util>=2",), console_scripts={"greet": "greet:main"}),
    WheelSpec("colour-util", "2.0", files={"colour_util.py": b"RED = 1\n"}),
    WheelSpec("fastmod", "1.0", tag="cp311-cp311-manylinux_2_17_x86_64",
              files={"fastmod/__init__.py": b"from ._speed import *\n",
                     EXT: shared_object(None, needed=("libfixture.so.1", "libc.so.6"))}, executables=(EXT,)),
]
LIBFIXTURE = DebSpec("libfixture1", "1.0-1", depends="libc6", multi_arch="same", files=(
    FileSpec("/usr/lib/x86_64-linux-gnu/libfixture.so.1", shared_object("libfixture.so.1"), 0o644),))
# The default fixture's libc.so.6 is a few bytes that only look like ELF; the venv's check reads real objects.
LIBC6 = dataclasses.replace(next(p for p in DEFAULT_PACKAGES if p.name == "libc6"), files=(
    FileSpec("/lib/x86_64-linux-gnu/libc.so.6", shared_object("libc.so.6", needed=()), 0o755),))
PACKAGES = (*(p for p in DEFAULT_PACKAGES if p.name != "libc6"), LIBC6, LIBFIXTURE)
IMAGES = {
    "images/base/BUILD": 'oci_image(packages=["python3"])\n',
    "images/app/BUILD": 'oci_image(parent="//images/base", python_requirements=["greet"])\n',
    "images/fast/BUILD": 'oci_image(parent="//images/app", packages=["libfixture1"], '
                         'python_requirements=["greet", "fastmod"])\n',
    "refused/nolib/BUILD": 'oci_image(parent="//images/base", python_requirements=["fastmod"])\n',
    "refused/nopython/BUILD": 'oci_image(python_requirements=["colour-util"])\n',
    "3rdparty/python/BUILD": 'python_requirements(name="openstack", source="requirements.txt", resolve="openstack")\n',
    "3rdparty/python/requirements.txt": "greet\nfastmod\ncolour-util\n",
    "3rdparty/python/upper-constraints.txt": "greet===1.0\ncolour-util===2.0\nfastmod===1.0\n",
}
IMAGE_DIRS = {"base": "images.base/base", "app": "images.app/app", "fast": "images.fast/fast"}


def bootstrap_env(work: Path) -> dict:
    """The machine's bootstrapped Pants and Pex (./pants made them once), a wheel cache of the test's own."""
    cache = os.environ.get("PANTS_BOOTSTRAP_CACHE", str(Path.home() / ".cache/oci-pants"))
    return {"PANTS_BOOTSTRAP_CACHE": cache, "PANTS_PYPI_WHEEL_CACHE": str(work / "wheels")}


@pytest.fixture(scope="module")
def built(tmp_path_factory, apt_keys):
    work = tmp_path_factory.mktemp("pypi")
    (work / "apt").mkdir()
    (work / "index").mkdir()
    built_wheels = [(spec.name, build_wheel(spec, work)) for spec in WHEELS]
    write_simple_index(work / "index", built_wheels)
    with serve_directory(work / "apt") as apt_url, serve_directory(work / "index") as index_url:
        apt = AptRepo(root=work / "apt", suite="fixture", key=apt_keys.trusted, url=apt_url,
                      packages=PACKAGES).build(apt_keys.deb_cache)
        sources = yaml.safe_dump({"architectures": ["amd64"], "sources": [{
            "name": "fixture", "url": apt.url, "suites": [apt.suite], "components": ["main"],
            "keyring": apt_keys.trusted.keyring}]})
        repo = make_repo(work / "repo", {**IMAGES, "3rdparty/debian/sources.yaml": sources})
        env = {**bootstrap_env(work), "TZ": "UTC"}
        index = f"--python-repos-indexes=['{index_url}/simple/']"
        store = work / "store"
        for resolve in ("debian", "openstack"):
            lock = run_pants(repo, "generate-lockfiles", f"--resolve={resolve}", index, store=store, env=env)
            assert lock.returncode == 0, lock.output
        args = ("package", "images::", f"--debian-deb-cache={work / 'debs'}")
        package = run_pants(repo, *args, store=store, env=env)
        assert package.returncode == 0, package.output
        yield repo, package, work, index_url, args


def layers(repo: Path, image: str) -> list[dict[str, tuple[tarfile.TarInfo, bytes]]]:
    """Each layer of an image, in order, as {path: (member, bytes)}."""
    layout = repo / "dist" / IMAGE_DIRS[image]
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((layout / "blobs/sha256" / index["manifests"][0]["digest"].split(":")[1]).read_text())
    result = []
    for descriptor in manifest["layers"]:
        with tarfile.open(layout / "blobs/sha256" / descriptor["digest"].split(":")[1]) as tar:
            result.append({m.name: (m, tar.extractfile(m).read() if m.isfile() else b"") for m in tar.getmembers()})
    return result


def test_the_lock_is_pants_own_with_hashes_under_the_constraints(built):
    repo, *_ = built
    text = (repo / "3rdparty/python/openstack.lock").read_text()
    assert text.startswith("// This lockfile was autogenerated by Pants")
    lock = json.loads("".join(line for line in text.splitlines(True) if not line.startswith("//")))
    locked = {r["project_name"]: r for r in lock["locked_resolves"][0]["locked_requirements"]}
    assert {name: r["version"] for name, r in locked.items()} == {"greet": "1.0", "colour-util": "2.0", "fastmod": "1.0"}
    assert all(a["algorithm"] == "sha256" and len(a["hash"]) == 64 for r in locked.values() for a in r["artifacts"])
    assert "greet===1.0" in lock["constraints"]


def test_the_venv_layer_runs_on_the_image_interpreter_with_fixed_shebangs_and_records(built):
    repo, *_ = built
    venv_layer = layers(repo, "app")[-1]
    assert venv_layer[f"{VENV}/bin/python"][0].linkname == "/usr/bin/python3.11"
    cfg = venv_layer[f"{VENV}/pyvenv.cfg"][1].decode()
    assert "include-system-site-packages = true" in cfg and "executable = /usr/bin/python3.11" in cfg
    assert venv_layer[f"{VENV}/bin/greet"][1].startswith(b"#!/var/lib/kolla/venv/bin/python3\n")
    assert venv_layer[f"{SITE}/colour_util.py"][1] == b"RED = 1\n"
    record = venv_layer[f"{SITE}/greet-1.0.dist-info/RECORD"][1].decode().splitlines()
    assert record == sorted(record) and "../../../bin/greet," in "\n".join(record)
    assert venv_layer[f"{SITE}/greet-1.0.dist-info/INSTALLER"][1] == b"oci-pants\n"
    assert not [p for p in venv_layer if p.endswith((".pyc", "direct_url.json"))]
    assert {m.mtime for m, _ in venv_layer.values()} == {0} and {m.uid for m, _ in venv_layer.values()} == {0}


def test_a_child_venv_layer_adds_only_what_its_parent_lacks(built):
    repo, *_ = built
    app, fast = layers(repo, "app"), layers(repo, "fast")
    assert [list(layer) for layer in fast[: len(app)]] == [list(layer) for layer in app]
    own_venv = fast[-1]
    assert {p[len(SITE) + 1:].split("/")[0] for p in own_venv if p.startswith(SITE + "/")} == {
        "fastmod", "fastmod-1.0.dist-info"}
    assert f"{VENV}/pyvenv.cfg" not in own_venv
    assert own_venv[f"{SITE}/{EXT}"][0].mode == 0o755


def test_a_wheel_linking_a_library_the_image_lacks_is_refused_by_name(built):
    repo, _, work, _, args = built
    run = run_pants(repo, "package", "refused/nolib", *args[2:], store=work / "store", env=bootstrap_env(work))
    assert run.returncode != 0
    assert f"fastmod 1.0: /{SITE}/{EXT} needs libfixture.so.1" in run.output
    assert "Add the Debian package that ships each library" in run.output


def test_a_venv_in_an_image_without_the_interpreter_is_refused(built):
    repo, _, work, _, args = built
    run = run_pants(repo, "package", "refused/nopython", *args[2:], store=work / "store", env=bootstrap_env(work))
    assert run.returncode != 0
    assert "refused/nopython:nopython asks for `python_requirements`, but no Debian package" in run.output
    assert "/usr/bin/python3.11" in run.output


def test_a_perturbed_rebuild_elsewhere_is_bit_identical(built, tmp_path):
    repo, package, work, _, args = built
    other = tmp_path / "a" / "much" / "deeper" / "checkout"
    shutil.copytree(repo, other, ignore=shutil.ignore_patterns("dist", ".pants.d", ".pids"), symlinks=True)
    for path in other.rglob("*"):
        os.utime(path, (1_000_000_000, 1_000_000_000), follow_symlinks=False)  # other source mtimes
    env = {**bootstrap_env(tmp_path), "TZ": "Pacific/Chatham", "LC_ALL": "C"}
    faketime = ("faketime", "2033-03-03 03:03:03") if shutil.which("faketime") else ()
    # Another action interpreter too (Python 3.9 instead of the host's python3), as tests/oci/test_e2e_build.py.
    rebuilt = run_pants(other, *args[:2], f"--debian-deb-cache={work / 'debs'}",
                        "--python-bootstrap-search-path=['" + python39_dir() + "']", store=tmp_path / "store",
                        env=env, umask=0o077, wrapper=faketime)
    assert rebuilt.returncode == 0, rebuilt.output
    assert "Build the venv layer of images/app:app" in rebuilt.output  # built again, not a cache hit
    assert layout_files(other / "dist") == layout_files(repo / "dist")


def test_the_sbom_lists_the_venv_distributions_with_pypi_purls(built):
    from packageurl import PackageURL

    repo, _, work, _, args = built
    run = run_pants(repo, "sbom", "images/fast", *args[2:], store=work / "store", env=bootstrap_env(work))
    assert run.returncode == 0, run.output
    path = repo / "dist/images.fast/fast.spdx.json"
    validated = subprocess.run([str(Path(sys.executable).parent / "pyspdxtools"), "-i", str(path)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert validated.returncode == 0 and "invalid" not in validated.stdout, validated.stdout
    sbom = json.loads(path.read_text())
    python = {p["SPDXID"]: p for p in sbom["packages"] if p["SPDXID"].startswith("SPDXRef-pypi")}
    purls = sorted(p["externalRefs"][0]["referenceLocator"] for p in python.values())
    assert purls == ["pkg:pypi/colour-util@2.0", "pkg:pypi/fastmod@1.0", "pkg:pypi/greet@1.0"]
    assert all(str(PackageURL.from_string(purl)) == purl for purl in purls)
    lock = (repo / "3rdparty/python/openstack.lock").read_text()
    for package in python.values():  # the checksum is the locked wheel's
        assert package["checksums"][0]["checksumValue"] in lock
    contains = {r["relatedSpdxElement"] for r in sbom["relationships"] if r["relationshipType"] == "CONTAINS"}
    assert set(python) <= contains
