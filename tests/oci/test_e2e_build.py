"""End to end: `./pants package ::` on a small repository, checked by real OCI tools."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from e2e_repo import IMAGE_DIRS, faketime, layout_files, make_repo, python39_dir, run_pants

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """Two cold builds of the same sources in perturbed environments."""
    base = tmp_path_factory.mktemp("e2e")
    first = make_repo(base / "a")
    second = make_repo(base / "elsewhere" / "with a longer path" / "b")
    for path in second.rglob("*"):
        os.utime(path, (1_000_000_000, 1_000_000_000))  # different source mtimes
    run_a = run_pants(first, "package", "::", store=base / "store-a",
                      env={"TZ": "UTC", "LC_ALL": "C.UTF-8"}, umask=0o022,
                      )
    run_b = run_pants(second, "package", "::", "--python-bootstrap-search-path=['" + python39_dir() + "']",
                      store=base / "store-b", env={"TZ": "Pacific/Chatham", "LC_ALL": "C", "LANG": "POSIX"},
                      umask=0o077, wrapper=faketime("2033-03-03 03:03:03"))
    assert run_a.returncode == 0, run_a.output
    assert run_b.returncode == 0, run_b.output
    return first, second, run_a, run_b, base


def test_every_image_is_built_once(builds):
    _, _, run_a, _, _ = builds
    assert run_a.processes == {
        "Build files layer of images/base:base", "Assemble images/base:base (1 levels)",
        "Build files layer of images/app:app", "Assemble images/app:app (2 levels)",
        "Build files layer of images/worker:worker", "Assemble images/worker:worker (3 levels)",
        "Build files layer of images/tool:tool", "Assemble images/tool:tool (2 levels)",
    }


def test_perturbed_builds_are_bit_identical(builds):
    first, second, _, _, _ = builds
    files_a, files_b = layout_files(first / "dist"), layout_files(second / "dist")
    assert sorted(files_a) == sorted(files_b)
    assert files_a == files_b
    assert len([p for p in files_a if p.endswith("index.json")]) == 4


@pytest.mark.parametrize("image", sorted(IMAGE_DIRS))
def test_oci_image_tool_validates_layout(builds, image):
    layout = builds[0] / "dist" / IMAGE_DIRS[image]
    result = subprocess.run(["oci-image-tool", "validate", "--type", "image", str(layout)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert result.returncode == 0 and "Validation succeeded" in result.stdout, result.stdout


def umoci_unpack(layout: Path, tag: str, bundle: Path) -> Path:
    result = subprocess.run(["umoci", "unpack", "--rootless", "--image", f"{layout}:{tag}", str(bundle)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert result.returncode == 0, result.stdout
    return bundle


def test_umoci_unpacks_child_with_parent_layers(builds, tmp_path):
    bundle = umoci_unpack(builds[0] / "dist" / IMAGE_DIRS["worker"], "latest", tmp_path / "worker")
    rootfs = bundle / "rootfs"
    assert (rootfs / "etc/os-release").read_text() == "ID=example\nVERSION_ID=1\n"
    assert (rootfs / "etc/app/worker.conf").read_text() == "[worker]\nthreads = 4\n"
    assert (rootfs / "etc/app/app.conf").stat().st_mode & 0o7777 == 0o640
    assert (rootfs / "usr/local/bin/app.sh").stat().st_mode & 0o7777 == 0o755
    process = json.loads((bundle / "config.json").read_text())["process"]
    assert process["args"] == ["/usr/local/bin/app.sh", "--worker"]
    assert process["cwd"] == "/var/lib/app"
    assert "APP_ROLE=worker" in process["env"] and "LANG=C.UTF-8" in process["env"]


def test_layout_tags_and_layer_sharing(builds):
    dist = builds[0] / "dist"

    def manifest(image: str) -> dict:
        index = json.loads((dist / IMAGE_DIRS[image] / "index.json").read_text())
        digest = index["manifests"][0]["digest"].split(":")[1]
        return json.loads((dist / IMAGE_DIRS[image] / "blobs/sha256" / digest).read_text())

    index = json.loads((dist / IMAGE_DIRS["app"] / "index.json").read_text())
    assert [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]] == ["1.0", "latest"]
    base, app, worker = manifest("base"), manifest("app"), manifest("worker")
    assert app["layers"][:1] == base["layers"] and worker["layers"][:2] == app["layers"]
    assert len(worker["layers"]) == 3


def assert_no_stray_blobs(layout: Path) -> None:
    index = json.loads((layout / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"]
    manifest = json.loads((layout / "blobs/sha256" / manifest_digest.split(":")[1]).read_text())
    referenced = {manifest_digest, manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])}
    assert {"sha256:" + p.name for p in (layout / "blobs/sha256").iterdir()} == referenced


def test_changing_one_image_rebuilds_only_it_and_its_descendants(builds):
    first, _, _, _, base = builds
    (first / "images/app/app.conf").write_text("[app]\nport = 9090\n")
    before = layout_files(first / "dist" / IMAGE_DIRS["tool"])
    rebuild = run_pants(first, "package", "::", store=base / "store-a")
    assert rebuild.returncode == 0, rebuild.output
    assert rebuild.processes == {
        "Build files layer of images/app:app",
        "Assemble images/app:app (2 levels)",
        "Assemble images/worker:worker (3 levels)",
    }
    assert layout_files(first / "dist" / IMAGE_DIRS["tool"]) == before
    assert_no_stray_blobs(first / "dist" / IMAGE_DIRS["app"])
    noop = run_pants(first, "package", "::", store=base / "store-a")
    assert noop.returncode == 0 and noop.processes == set(), noop.output
