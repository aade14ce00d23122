"""The contract for real: the built memcached image started as kolla-ansible starts it, under podman.

Needs `./pants package ::` (dist/images.memcached/memcached) and podman; skipped without them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from kollaroot import REPO

pytestmark = pytest.mark.services

LAYOUT = REPO / "dist" / "images.memcached" / "memcached"
IMAGE = f"oci:{LAYOUT}:latest"
PODMAN = ["podman", "--runtime", "runc"]
LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
COMMAND = "memcached -p 11211 -m 64 -c 1024 -l 127.0.0.1"

CLIENT = """
import socket, sys
s = socket.create_connection(("127.0.0.1", 11211), timeout=5)
s.sendall(b"set kolla 0 0 8\\r\\ncontract\\r\\nget kolla\\r\\n")
data = b""
while not data.endswith(b"END\\r\\n"):
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
sys.stdout.write(data.decode())
"""


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory) -> Path:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    if not (LAYOUT / "index.json").exists():
        pytest.skip(f"{LAYOUT} is not built (./pants package images/memcached)")
    path = tmp_path_factory.mktemp("memcached-config")
    (path / "config.json").write_text(json.dumps({"command": COMMAND, "config_files": [
        {"source": "/var/lib/kolla/config_files/memcached.env", "dest": "/etc/memcached.env",
         "owner": "memcached", "perm": "0600"}]}))
    (path / "memcached.env").write_text("MEMCACHED_TEST=1\n")
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def memcached(config_dir):
    name = f"kolla-memcached-{uuid.uuid4().hex[:8]}"
    started = podman("run", "-d", "--name", name, "--network=none", *LIMITS,
                     "-e", "KOLLA_CONFIG_STRATEGY=COPY_ALWAYS", "-e", "KOLLA_SERVICE_NAME=memcached",
                     "-v", f"{config_dir}:/var/lib/kolla/config_files:ro", IMAGE, timeout=300)
    assert started.returncode == 0, started.stderr
    try:
        deadline = time.monotonic() + 30
        while True:
            health = podman("exec", name, "healthcheck_listen", "memcached", "11211")
            if health.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        yield name, health
    finally:
        podman("rm", "-f", "-t", "2", name)


def test_default_cmd_runs_the_config_json_command(memcached):
    name, _ = memcached
    logs = podman("logs", name)
    assert f"Running command: '{COMMAND}'" in logs.stdout + logs.stderr
    top = podman("exec", name, "cat", "/proc/1/cmdline")
    assert top.stdout.split("\0")[:3] == ["/usr/bin/dumb-init", "--single-child", "--"]


def test_it_serves(memcached):
    name, _ = memcached
    client = podman("run", "--rm", "--network", f"container:{name}", *LIMITS, "--entrypoint", "python3",
                    IMAGE, "-c", CLIENT)
    assert client.returncode == 0, client.stderr
    assert client.stdout.splitlines() == ["STORED", "VALUE kolla 0 8", "contract", "END"]


def test_healthcheck_listen(memcached):
    _, health = memcached
    assert health.returncode == 0, health.stderr


def test_config_file_in_place_and_check_unchanged(memcached):
    name, _ = memcached
    listing = podman("exec", name, "stat", "-c", "%a %U:%G", "/etc/memcached.env", "/var/log/kolla")
    assert listing.stdout.split("\n")[:2] == ["600 memcached:memcached", "2775 root:kolla"]
    check = podman("exec", "-u", "root", name, "kolla_set_configs", "--check")
    assert check.returncode == 0, check.stderr
    assert "unchanged" in check.stderr


def test_runs_as_kollas_memcached_user_in_the_kolla_group(memcached):
    name, _ = memcached
    ids = podman("exec", name, "id")
    assert ids.stdout.strip() == "uid=42457(memcached) gid=42457(memcached) groups=42457(memcached),42400(kolla)"


def test_a_malformed_config_stops_the_container_with_exit_1(tmp_path, config_dir):
    (tmp_path / "config.json").write_text('{"command": "memcached", "config_files": [{"dest": "/etc/x"}]}')
    tmp_path.chmod(0o755)
    result = podman("run", "--rm", "--network=none", *LIMITS, "-e", "KOLLA_CONFIG_STRATEGY=COPY_ALWAYS",
                    "-v", f"{tmp_path}:/var/lib/kolla/config_files:ro", IMAGE)
    assert result.returncode == 1
    assert ("/var/lib/kolla/config_files/config.json: config_files[0].source: required key missing"
            in result.stdout + result.stderr)


def test_without_a_strategy_the_container_refuses_to_start(config_dir):
    result = podman("run", "--rm", "--network=none", *LIMITS,
                    "-v", f"{config_dir}:/var/lib/kolla/config_files:ro", IMAGE)
    assert result.returncode == 1
    assert "KOLLA_CONFIG_STRATEGY is unset" in result.stdout + result.stderr
