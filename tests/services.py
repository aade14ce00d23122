"""Loopback services for end-to-end tests: a Docker registry (Debian's docker-registry) and BuildGrid."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

REPO_ROOT = Path(__file__).resolve().parents[1]
BUILDGRID_START = REPO_ROOT / "ci" / "buildgrid" / "start.sh"
BUILDGRID_STOP = REPO_ROOT / "ci" / "buildgrid" / "stop.sh"


def free_port() -> int:
    """A port nothing listens on right now (the kernel's pick, released at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Registry:
    address: str  # host:port, as written in an oci_image's `registries`
    log: Path

    def blob_uploads(self) -> int:
        """How many blob uploads the registry has started: a push of known blobs starts none."""
        return sum(1 for line in self.log.read_text().splitlines() if "POST /v2/" in line and "/blobs/uploads/" in line)


REGISTRY_CONFIG = """\
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: {address}
{auth}"""

HTPASSWD_AUTH = """\
auth:
  htpasswd:
    realm: e2e
    path: {path}
"""


def wait_for_registry(address: str, process: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry on {address} exited with {process.returncode}")
        try:
            urllib.request.urlopen(f"http://{address}/v2/", timeout=1)
            return
        except urllib.error.HTTPError:
            return  # 401 from a registry with auth: it is up
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"docker-registry did not answer on {address} within {timeout}s")


@contextmanager
def docker_registry(workdir: Path, htpasswd: str | None = None) -> Iterator[Registry]:
    """Debian's docker-registry on 127.0.0.1, storing under `workdir`, optionally with htpasswd auth."""
    workdir.mkdir(parents=True, exist_ok=True)
    address = f"127.0.0.1:{free_port()}"
    auth = ""
    if htpasswd is not None:
        (workdir / "htpasswd").write_text(htpasswd)
        auth = HTPASSWD_AUTH.format(path=workdir / "htpasswd")
    config = workdir / "config.yml"
    config.write_text(REGISTRY_CONFIG.format(root=workdir / "data", address=address, auth=auth))
    log = workdir / "registry.log"
    with open(log, "w") as log_file:
        process = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log_file, stderr=subprocess.STDOUT)
    try:
        wait_for_registry(address, process)
        yield Registry(address, log)
    finally:
        process.terminate()
        process.wait(timeout=10)


@dataclass(frozen=True)
class BuildGrid:
    address: str  # grpc://127.0.0.1:PORT
    instance: str
    data: Path

    def pants_options(self, *, write: bool) -> tuple[str, ...]:
        return (
            "--remote-cache-read", f"--remote-cache-write={'true' if write else 'false'}",
            f"--remote-store-address={self.address}", f"--remote-instance-name={self.instance}",
        )


def python313_available() -> bool:
    candidates = [os.environ.get("BUILDGRID_PYTHON", ""), "python3.13", *map(str, Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")).glob(
        "versions/3.13*/bin/python3.13"))]
    for candidate in filter(None, candidates):
        try:
            if subprocess.run([candidate, "-c", "import sys; sys.exit(sys.version_info[:2] < (3, 13))"]).returncode == 0:
                return True
        except OSError:
            continue
    return False


@contextmanager
def buildgrid(data: Path, instance: str = "main") -> Iterator[BuildGrid]:
    """A cache-only BuildGrid on loopback, started and stopped with the scripts CI uses."""
    port = free_port()
    env = {**os.environ, "BGD_INSTANCE": instance}
    result = subprocess.run([str(BUILDGRID_START), str(port), str(data)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"ci/buildgrid/start.sh failed:\n{result.stdout}")
    try:
        yield BuildGrid(f"grpc://127.0.0.1:{port}", instance, data)
    finally:
        subprocess.run([str(BUILDGRID_STOP), str(data)], check=False)
