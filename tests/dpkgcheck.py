"""Run the host's dpkg on an image unpacked with umoci: the database the image carries, read by dpkg itself."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Iterable, List, Set

DPKG_ENV = {**os.environ, "COLUMNS": "200", "LC_ALL": "C.UTF-8"}  # dpkg -l truncates to the terminal's width


def unpack(layout: Path, tag: str, bundle: Path) -> Path:
    """`umoci unpack` the image (it checks every diff_id and applies whiteouts); returns the root."""
    result = subprocess.run(["umoci", "unpack", "--rootless", "--image", f"{layout}:{tag}", str(bundle)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert result.returncode == 0, result.stdout
    return bundle / "rootfs"


def dpkg(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["dpkg", f"--root={root}", *args], capture_output=True, text=True, env=DPKG_ENV)


def installed_names(root: Path) -> List[str]:
    """`dpkg -l`: the name (arch-qualified where dpkg qualifies it) of every package in state ii."""
    listing = dpkg(root, "-l")
    assert listing.returncode == 0, listing.stderr
    return [line.split()[1] for line in listing.stdout.splitlines() if line.startswith("ii ")]


def verify_complaints(root: Path) -> List[str]:
    """`dpkg --verify`'s lines ("??5?????? c /etc/x"); dpkg 1.21 exits 0 with or without them."""
    result = dpkg(root, "--verify")
    assert result.returncode == 0 and result.stderr == "", result
    return result.stdout.splitlines()


def complaint_path(line: str) -> str:
    """`??5?????? c /etc/x` -> `/etc/x`: nine check columns, a space, `c` for a conffile or a space, a space."""
    return line[12:]


def rewritten_status(root: Path, scratch: Path) -> bytes:
    """The status file as dpkg writes it back (`--set-selections` with no input rewrites the database)."""
    admin = scratch / "admin"
    shutil.copytree(root / "var/lib/dpkg", admin, symlinks=True)
    (admin / "updates").mkdir(exist_ok=True)
    result = subprocess.run(["dpkg", f"--admindir={admin}", "--force-architecture", "--set-selections"],
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, env=DPKG_ENV)
    assert result.returncode == 0, result.stderr
    return (admin / "status").read_bytes()


def declared_paths(layout: Path, tag: str = "latest") -> Set[str]:
    """Absolute paths of the files the image chain declares (its `files of ...` layers)."""
    index = json.loads((layout / "index.json").read_text())
    descriptor = next(m for m in index["manifests"]
                      if m.get("annotations", {}).get("org.opencontainers.image.ref.name", tag) == tag)
    manifest = json.loads(blob(layout, descriptor["digest"]).read_text())
    config = json.loads(blob(layout, manifest["config"]["digest"]).read_text())
    steps = [h for h in config["history"] if not h.get("empty_layer")]
    paths: Set[str] = set()
    for layer, step in zip(manifest["layers"], steps):
        if step.get("created_by", "").startswith("files of "):
            paths |= set(tar_files(blob(layout, layer["digest"])))
    return paths


def tar_files(path: Path) -> Iterable[str]:
    with tarfile.open(path, "r:*") as tar:
        return ["/" + m.name.lstrip("./") for m in tar if m.isfile()]


def blob(layout: Path, digest: str) -> Path:
    return layout / "blobs/sha256" / digest.split(":", 1)[1]
