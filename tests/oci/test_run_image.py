"""End to end: `pants run` of an image with podman, and `oci_image_tarball` loaded by `podman load`.

The e2e repository's images hold no shell, so these use a tiny image made of Debian's static
busybox (package busybox-static).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from e2e_repo import REPO_ROOT, make_repo, run_pants

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path("/bin/busybox").exists(), reason="needs /bin/busybox (apt-get install busybox-static)"),
]

HELLO = "oci-e2e-hello"
SHELL = "oci-e2e-shell"
PODMAN_RUN = ["podman", "--runtime", "runc", "run", "--rm", "--network=none",
              "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]

FILES = {
    "images/hello/BUILD": f"""\
image_files(name="busybox", sources=["busybox"], destination="/bin", mode="0755")
oci_image(files=[":busybox"], entrypoint=["/bin/busybox", "echo"], cmd=["hello from busybox"], repository="{HELLO}")
oci_image_tarball(name="docker", image=":hello")
oci_image_tarball(name="oci", image=":hello", format="oci-archive")
""",
    "images/shell/BUILD": f"""\
oci_image(parent="//images/hello", entrypoint=["/bin/busybox", "sh", "-c"], env={{"GREETING": "hi"}},
          repository="{SHELL}")
""",
}


def podman_rmi(*names: str) -> None:
    subprocess.run(["podman", "rmi", "--force", "--ignore", *names], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    base = tmp_path_factory.mktemp("run")
    root = make_repo(base / "repo", FILES)
    shutil.copy2("/bin/busybox", root / "images/hello/busybox")
    store = base / "store"
    build = run_pants(root, "package", "::", store=store)
    assert build.returncode == 0, build.output
    yield root, store
    podman_rmi(f"localhost/{HELLO}:latest", f"localhost/{SHELL}:latest")


def test_run_prints_what_the_entrypoint_prints(repo):
    root, store = repo
    run = run_pants(root, "run", "images/hello", store=store)
    assert run.returncode == 0, run.output
    assert "hello from busybox" in run.output.splitlines()


def test_run_passes_arguments_and_exit_code(repo):
    root, store = repo
    run = run_pants(root, "run", "images/shell", "--", 'echo "$GREETING from the shell"; exit 3', store=store)
    assert run.returncode == 3, run.output
    assert "hi from the shell" in run.output.splitlines()


def test_docker_archive_loads_and_runs(repo):
    root, _ = repo
    archive = root / "dist/images.hello/docker.tar"
    podman_rmi(f"localhost/{HELLO}:latest")
    loaded = subprocess.run(["podman", "load", "-i", str(archive)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert loaded.returncode == 0, loaded.stdout
    assert f"Loaded image: localhost/{HELLO}:latest" in loaded.stdout
    ran = subprocess.run([*PODMAN_RUN, f"localhost/{HELLO}:latest"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    assert ran.returncode == 0 and ran.stdout.strip() == "hello from busybox", ran.stdout


def layout_digest(root: Path) -> str:
    index = json.loads((root / "dist/images.hello/hello/index.json").read_text())
    return index["manifests"][0]["digest"]


def test_oci_archive_holds_the_layout(repo):
    root, _ = repo
    raw = subprocess.run(["skopeo", "inspect", "--raw", f"oci-archive:{root}/dist/images.hello/oci.tar:latest"],
                         stdout=subprocess.PIPE, check=True).stdout
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == layout_digest(root)


def test_docker_archive_is_normalized(repo):
    root, _ = repo
    with tarfile.open(root / "dist/images.hello/docker.tar") as tar:
        members = tar.getmembers()
        manifest = json.load(tar.extractfile("manifest.json"))
    names = [m.name for m in members]
    assert names == ["blobs", "blobs/sha256", *sorted(n for n in names if n.startswith("blobs/sha256/")),
                     "manifest.json"]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}
    assert manifest[0]["RepoTags"] == [f"{HELLO}:latest"]


def test_archive_bytes_do_not_depend_on_the_host(repo, tmp_path):
    """The action rewritten elsewhere, from a copy with other mtimes and umask, gives the same bytes."""
    root, _ = repo
    layout = tmp_path / "layout with spaces"
    shutil.copytree(root / "dist/images.hello/hello", layout)
    for path in layout.rglob("*"):
        os.utime(path, (1_234_567_890, 1_234_567_890))
    for name, archive_format, tags in (("docker.tar", "docker-archive", [f"{HELLO}:latest"]),
                                       ("oci.tar", "oci-archive", [])):
        output = tmp_path / name
        command = [sys.executable, "-m", "oci.actions.write_archive", "--format", archive_format,
                   "--layout", str(layout), "--output", str(output), "--mtime=0",
                   *[arg for tag in tags for arg in ("--repo-tag", tag)]]
        subprocess.run(["sh", "-c", 'umask 077 && exec "$@"', "sh", *command], check=True,
                       env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "rules"), "TZ": "Asia/Kolkata"})
        assert output.read_bytes() == (root / "dist/images.hello" / name).read_bytes(), name
