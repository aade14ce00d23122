"""Interrupted and concurrent builds: never a half-written layout, always the right digests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from e2e_repo import IMAGES, layout_files, make_repo, run_pants

pytestmark = pytest.mark.e2e

BIG = {
    **IMAGES,
    "images/big/BUILD": 'image_files(name="blob", sources=["payload.bin"], destination="/opt")\n'
                        'oci_image(parent="//images/base", files=[":blob"])\n',
}


def write_payload(repo: Path) -> None:
    # Incompressible bytes make the layer Process take seconds, long enough to be killed in.
    (repo / "images/big/payload.bin").write_bytes(os.urandom(96 * 1024 * 1024))


def start_pants(repo: Path, store: Path) -> subprocess.Popen:
    return subprocess.Popen(
        ["./pants", "--no-pantsd", "--no-dynamic-ui", f"--local-store-dir={store}",
         f"--named-caches-dir={store}-named", "package", "::"],
        cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )


def kill_when(process: subprocess.Popen, marker: str, timeout: float = 600) -> str:
    """Read output until `marker`, then kill the whole Pants process group."""
    seen = []
    deadline = time.monotonic() + timeout
    for line in process.stdout:
        seen.append(line)
        if marker in line or time.monotonic() > deadline:
            break
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return "".join(seen)


def test_a_build_killed_mid_layer_leaves_no_layout_and_the_next_build_is_right(tmp_path):
    repo = make_repo(tmp_path / "repo", BIG)
    write_payload(repo)
    output = kill_when(start_pants(repo, tmp_path / "store"), "Starting: Build files layer of images/big:big")
    assert "Starting: Build files layer of images/big:big" in output, output
    assert not (repo / "dist/images.big/big").exists()  # nothing half-written

    resumed = run_pants(repo, "package", "::", store=tmp_path / "store")
    assert resumed.returncode == 0, resumed.output
    clean = make_repo(tmp_path / "clean", BIG)
    (clean / "images/big/payload.bin").write_bytes((repo / "images/big/payload.bin").read_bytes())
    fresh = run_pants(clean, "package", "::", store=tmp_path / "clean-store")
    assert fresh.returncode == 0, fresh.output
    assert layout_files(repo / "dist") == layout_files(clean / "dist")


def test_two_builds_at_once_in_one_repo_both_succeed_with_the_same_result(tmp_path):
    repo = make_repo(tmp_path / "repo")
    results = {}

    def build(name: str) -> None:
        results[name] = run_pants(repo, "package", "::", store=tmp_path / "store")

    threads = [threading.Thread(target=build, args=(name,)) for name in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for run in results.values():
        assert run.returncode == 0, run.output
    # Pants clears an output directory before writing it: the second build waits for the first.
    assert sum("waiting up to" in run.output for run in results.values()) == 1
    index = json.loads((repo / "dist/images.app/app/index.json").read_text())
    digest = index["manifests"][0]["digest"]
    assert all(digest in run.output for run in results.values())
    assert (repo / "dist/images.app/app/blobs/sha256" / digest.split(":")[1]).exists()
