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
from e2e_repo import faketime, layout_files, make_repo, python39_dir, run_pants
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
# Debian's copy of colour_util, the module colour-util's wheel installs: two copies when both are in a chain.
PYTHON3_COLOUR = DebSpec("python3-colour-util", "2.0-1", depends="python3", files=(
    FileSpec("/usr/lib/python3/dist-packages/colour_util.py", b"RED = 1\n", 0o644),))
PACKAGES = (*(p for p in DEFAULT_PACKAGES if p.name != "libc6"), LIBC6, LIBFIXTURE, PYTHON3_COLOUR)
IMAGES = {
    "images/base/BUILD": 'oci_image(packages=["python3"])\n',
    "images/app/BUILD": 'oci_image(parent="//images/base", python_requirements=["greet"])\n',
    "images/fast/BUILD": 'oci_image(parent="//images/app", packages=["libfixture1"], '
                         'python_requirements=["greet", "fastmod"])\n',
    "images/compiled/BUILD": 'oci_image(parent="//images/base", python_requirements=["greet"], compile_python=True)\n',
    "images/tool/BUILD": 'oci_image(parent="//images/base", python_requirements=["colour-util"], '
                         'python_resolve="tools")\n',
    "refused/nolib/BUILD": 'oci_image(parent="//images/base", python_requirements=["fastmod"])\n',
    "refused/forward/BUILD": 'oci_image(parent="//images/base", packages=["python3-colour-util"], '
                             'python_requirements=["greet"])\n',
    "refused/reverse/BUILD": 'oci_image(parent="//images/app", packages=["python3-colour-util"])\n',
    "refused/nopython/BUILD": 'oci_image(python_requirements=["colour-util"])\n',
    "3rdparty/python/BUILD": 'python_requirements(name="openstack", source="requirements.txt", resolve="openstack")\n',
    "3rdparty/python/requirements.txt": "greet\nfastmod\ncolour-util\n",
    "3rdparty/python/upper-constraints.txt": "greet===1.0\ncolour-util===2.0\nfastmod===1.0\n",
    # A second resolve, for update-cost across resolves.
    "3rdparty/python/tools/BUILD": 'python_requirements(name="tools", source="requirements.txt", resolve="tools")\n',
    "3rdparty/python/tools/requirements.txt": "colour-util\n",
    "3rdparty/python/tools/constraints.txt": "colour-util===2.0\n",
}
RESOLVES = ('resolves = { openstack = "3rdparty/python/openstack.lock" }',
            'resolves = { openstack = "3rdparty/python/openstack.lock", tools = "3rdparty/python/tools.lock" }')
CONSTRAINTS = ('resolves_to_constraints_file = { openstack = "3rdparty/python/upper-constraints.txt" }',
               'resolves_to_constraints_file = { openstack = "3rdparty/python/upper-constraints.txt", '
               'tools = "3rdparty/python/tools/constraints.txt" }')
IMAGE_DIRS = {"base": "images.base/base", "app": "images.app/app", "fast": "images.fast/fast",
              "compiled": "images.compiled/compiled", "tool": "images.tool/tool"}


def with_second_resolve(repo: Path) -> None:
    config = (repo / "pants.toml").read_text()
    for old, new in (RESOLVES, CONSTRAINTS):
        assert old in config, f"pants.toml no longer has {old!r}"
        config = config.replace(old, new)
    (repo / "pants.toml").write_text(config)


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
        with_second_resolve(repo)
        env = {**bootstrap_env(work), "TZ": "UTC"}
        index = f"--python-repos-indexes=['{index_url}/simple/']"
        # Pex's vendored pip: Pants' default pip is fetched from the index on first use, and this
        # index serves only the fixture wheels, so a machine with an empty ~/.pex could not lock.
        vendored_pip = "--python-pip-version=20.3.4-patched"
        store = work / "store"
        for resolve in ("debian", "openstack", "tools"):
            lock = run_pants(repo, "generate-lockfiles", f"--resolve={resolve}", index, vendored_pip,
                             store=store, env=env)
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
    # Another action interpreter too (Python 3.9 instead of the host's python3), as tests/oci/test_e2e_build.py.
    # /usr/bin after it only for python3.11, which compiles images/compiled's .pycs (compile_python).
    rebuilt = run_pants(other, *args[:2], f"--debian-deb-cache={work / 'debs'}",
                        "--python-bootstrap-search-path=['" + python39_dir() + "', '/usr/bin']",
                        store=tmp_path / "store",
                        env=env, umask=0o077, wrapper=faketime("2033-03-03 03:03:03"))
    assert rebuilt.returncode == 0, rebuilt.output
    assert "Build the venv layer of images/app:app" in rebuilt.output  # built again, not a cache hit
    assert "Build the venv layer of images/compiled:compiled" in rebuilt.output  # the .pycs too
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


def test_compile_python_puts_the_venv_pycs_in_its_layer_and_in_record(built):
    repo, *_ = built
    venv_layer = layers(repo, "compiled")[-1]
    pycs = sorted(p for p in venv_layer if p.endswith(".pyc"))
    assert pycs == [f"{SITE}/__pycache__/colour_util.cpython-311.pyc",
                    f"{SITE}/greet/__pycache__/__init__.cpython-311.pyc"]
    data = venv_layer[pycs[1]][1]
    assert int.from_bytes(data[4:8], "little") == 0b01 and venv_layer[pycs[1]][0].mtime == 0  # unchecked-hash
    record = venv_layer[f"{SITE}/greet-1.0.dist-info/RECORD"][1].decode()
    assert "greet/__pycache__/__init__.cpython-311.pyc,sha256=" in record
    assert history_of(repo, "compiled")[-1].endswith("with CPython 3.11 bytecode")


def history_of(repo: Path, image: str) -> list[str]:
    layout = repo / "dist" / IMAGE_DIRS[image]
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((layout / "blobs/sha256" / index["manifests"][0]["digest"].split(":")[1]).read_text())
    config = json.loads((layout / "blobs/sha256" / manifest["config"]["digest"].split(":")[1]).read_text())
    return [h.get("created_by", "") for h in config["history"]]


def test_two_copies_of_a_module_are_refused_both_ways_by_the_build_and_by_lint(built):
    repo, _, work, _, args = built
    env, store = bootstrap_env(work), work / "store"
    forward = run_pants(repo, "package", "refused/forward", *args[2:], store=store, env=env)
    assert forward.returncode != 0
    assert ("colour-util 2.0 of its venv and Debian's python3-colour-util both provide `colour_util`: leave it "
            'out with python_exclude={"colour-util": "Debian\'s python3-colour-util"}') in forward.output
    reverse = run_pants(repo, "package", "refused/reverse", *args[2:], store=store, env=env)
    assert reverse.returncode != 0
    assert ("Debian's python3-colour-util, added here, provides `colour_util`, which colour-util 2.0 of the venv of "
            "images/app:app already has: drop python3-colour-util") in reverse.output
    lint = run_pants(repo, "lint", "--only=pypi-modules", "refused/forward", "refused/reverse", "images/app",
                     *args[2:], store=store, env=env)
    assert lint.returncode == 1, lint.output
    assert "images/app:app (linux/amd64): ok" in lint.output
    assert "refused/forward:forward (linux/amd64): 1 module twice" in lint.output
    assert "refused/reverse:reverse (linux/amd64): 1 module twice" in lint.output
    assert "refused/reverse:reverse: Debian's python3-colour-util, added here" in lint.output


def test_a_lock_older_than_the_constraints_stops_the_build_with_the_fix(built):
    repo, _, work, _, args = built
    constraints = repo / "3rdparty/python/upper-constraints.txt"
    before = constraints.read_text()
    constraints.write_text(before.replace("greet===1.0", "greet===1.1"))
    try:
        run = run_pants(repo, "package", "images/app", *args[2:], store=work / "store", env=bootstrap_env(work))
    finally:
        constraints.write_text(before)
    assert run.returncode != 0
    assert ("images/app:app: the lockfile 3rdparty/python/openstack.lock of Python resolve 'openstack' is stale, "
            "not generated from the resolve's current inputs: constraints added since: greet===1.1; constraints "
            "removed since: greet===1.0") in run.output
    assert "Run ./pants generate-lockfiles --resolve=openstack" in run.output


def test_update_cost_counts_the_bump_of_every_resolve(built, tmp_path):
    repo, _, work, _, args = built
    old_debian = tmp_path / "lock.yaml"
    shutil.copy2(repo / "3rdparty/debian/lock.yaml", old_debian)
    old_openstack = tmp_path / "openstack.lock"
    shutil.copy2(repo / "3rdparty/python/openstack.lock", old_openstack)
    tools = (repo / "3rdparty/python/tools.lock").read_text()
    wheel_hash = json.loads("".join(line for line in tools.splitlines(True) if not line.startswith("//")))[
        "locked_resolves"][0]["locked_requirements"][0]["artifacts"][0]["hash"]
    old_tools = tmp_path / "tools.lock"
    old_tools.write_text(tools.replace(wheel_hash, "0" * 64))  # colour-util's wheel was another before the bump

    def pulled(*python_locks: str) -> dict:
        run = run_pants(repo, "update-cost", f"--update-cost-old-lock={old_debian}", *python_locks, "images::",
                        *args[2:], store=work / "store", env=bootstrap_env(work))
        assert run.returncode == 0, run.output
        report = json.loads((repo / "dist/update-cost/report.json").read_text())
        return {i["address"]: [p["created_by"] for p in i["pulled_layers"]] for i in report["images"]}

    both = pulled(f"--update-cost-old-python-lock=openstack={old_openstack}",
                  f"--update-cost-old-python-lock=tools={old_tools}")
    assert [c.split(":")[0] for c in both["images/tool:tool"]] == ["pypi"]
    assert both["images/app:app"] == [] and both["images/compiled:compiled"] == []  # same wheel, other resolve
    default_only = pulled(f"--update-cost-old-python-lock={old_openstack}")
    assert default_only["images/tool:tool"] == []
