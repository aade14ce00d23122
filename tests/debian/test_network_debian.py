"""Network only: a small real image from Debian's mirror runs python3 under podman.

Run with `./run-tests -m network`. It resolves base-files, libc6 and python3 against
bookworm, verifies InRelease with the Debian archive keyring, builds twice from
separate caches and checks the digests match.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from e2e_repo import REPO_ROOT, layout_files, make_repo, run_pants

pytestmark = [pytest.mark.network, pytest.mark.e2e]

IMAGES = {
    "images/users.yaml": (REPO_ROOT / "images/users.yaml").read_text(),
    "3rdparty/debian/sources.yaml": (REPO_ROOT / "3rdparty/debian/sources.yaml").read_text(),
    "3rdparty/debian/accepted-script-effects.yaml":
        (REPO_ROOT / "3rdparty/debian/accepted-script-effects.yaml").read_text(),
    "images/python/BUILD": 'oci_image(packages=["base-files", "libc6", "python3"], '
                           'entrypoint=["/usr/bin/python3"])\n',
}
PODMAN = ["podman", "--runtime", "runc", "run", "--rm", "--network=none",
          "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


@pytest.mark.skipif(shutil.which("podman") is None, reason="needs podman")
def test_real_python_image_runs_and_rebuilds_identically(tmp_path):
    first = make_repo(tmp_path / "a", IMAGES)
    lock = run_pants(first, "generate-lockfiles", "--resolve=debian", store=tmp_path / "store-a")
    assert lock.returncode == 0, lock.output
    build = run_pants(first, "package", "::", store=tmp_path / "store-a")
    assert build.returncode == 0, build.output

    second = make_repo(tmp_path / "b", {**IMAGES, "3rdparty/debian/lock.yaml":
                                        (first / "3rdparty/debian/lock.yaml").read_text()})
    rebuild = run_pants(second, "package", "::", store=tmp_path / "store-b", umask=0o077)
    assert rebuild.returncode == 0, rebuild.output
    assert layout_files(first / "dist") == layout_files(second / "dist")

    layout = first / "dist/images.python/python"
    run = subprocess.run([*PODMAN, f"oci:{layout}:latest", "-c",
                          "import ssl, json; print(json.dumps([ssl.OPENSSL_VERSION[:7]]))"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == '["OpenSSL"]'


def qemu_aarch64_registered() -> bool:
    return Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists()


@pytest.mark.skipif(shutil.which("podman") is None or not qemu_aarch64_registered(),
                    reason="needs podman and qemu-user-static registered for aarch64 (binfmt_misc)")
def test_arm64_image_from_the_same_lock_runs_under_qemu(tmp_path):
    sources = IMAGES["3rdparty/debian/sources.yaml"].replace("architectures: [amd64]",
                                                            "architectures: [amd64, arm64]")
    files = {**IMAGES, "3rdparty/debian/sources.yaml": sources,
             "images/python/BUILD": 'oci_image(packages=["base-files", "libc6", "python3"], '
                                    'entrypoint=["/usr/bin/python3"], platforms=["linux/amd64", "linux/arm64"])\n'}
    repo = make_repo(tmp_path / "repo", files)
    for goal in (("generate-lockfiles", "--resolve=debian"), ("package", "::")):
        run = run_pants(repo, *goal, store=tmp_path / "store")
        assert run.returncode == 0, run.output
    layout = repo / "dist/images.python/python"
    run = subprocess.run([*PODMAN, "--platform", "linux/arm64", f"oci:{layout}:latest", "-c",
                          "import platform; print(platform.machine())"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "aarch64"
