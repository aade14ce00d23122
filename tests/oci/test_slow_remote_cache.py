"""End to end: a remote cache that accepts connections and never answers must not hold a build.

The cache is a loopback TCP server that accepts gRPC connections and reads them without ever
replying. The build runs with the settings CI uses (ci/remote-cache.toml). Its action interpreter
is a wrapper that sleeps 2 s first, so that every step outlives the 1.5 s ActionCache lookup
timeout: the lookups time out while the steps run locally.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from e2e_repo import REPO_ROOT, layout_files, make_repo, run_pants, stats_counters

pytestmark = pytest.mark.e2e

CI_SETTINGS = REPO_ROOT / "ci" / "remote-cache.toml"
SLOW_PYTHON = "#!/bin/sh\n/bin/sleep 2\nexec /usr/bin/python3 \"$@\"\n"


@contextmanager
def unresponsive_server() -> Iterator[str]:
    """grpc://127.0.0.1:PORT that accepts connections, reads everything and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    connections: list[socket.socket] = []
    stop = threading.Event()

    def drain(connection: socket.socket) -> None:
        while not stop.is_set() and connection.recv(65536):
            pass

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                return
            connections.append(connection)
            threading.Thread(target=drain, args=(connection,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"grpc://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        server.close()
        for connection in connections:
            connection.close()


@pytest.fixture
def slow(tmp_path) -> Path:
    """A search path whose python3 sleeps 2 s before running the action."""
    directory = tmp_path / "slow-python"
    directory.mkdir()
    (directory / "python3").write_text(SLOW_PYTHON)
    (directory / "python3").chmod(0o755)
    return directory


def test_unresponsive_remote_cache_falls_back_to_local_work_in_bounded_time(tmp_path, slow):
    reference = make_repo(tmp_path / "reference")
    plain = run_pants(reference, "package", "::", store=tmp_path / "store-reference")
    assert plain.returncode == 0, plain.output

    repo = make_repo(tmp_path / "repo")
    with unresponsive_server() as address:
        started = time.monotonic()
        run = run_pants(repo, f"--pants-config-files=+['{CI_SETTINGS}']", f"--remote-store-address={address}",
                        f"--python-bootstrap-search-path=['{slow}']", "--stats-log", "package", "::",
                        store=tmp_path / "store")
        elapsed = time.monotonic() - started
    assert run.returncode == 0, run.output
    # 8 steps of about 2 s on 2 cores plus Pants' start: about 40 s here; a build that waited on
    # the cache would take the store timeouts (10 s, twice) per step or hang.
    assert elapsed < 100, f"{elapsed:.0f} s\n{run.output}"
    assert len({p for p in run.processes if p.startswith(("Build ", "Assemble "))}) == 8, run.output
    counters = stats_counters(run.output)
    assert counters["remote_cache_requests"] == 8 + 1, counters  # and the Process compiling the actions
    assert counters["remote_cache_requests_cached"] == 0, counters
    assert counters["remote_cache_request_timeouts"] >= 8 + 1, counters  # every lookup gave up
    assert layout_files(repo / "dist") == layout_files(reference / "dist")


def test_ci_build_warns_when_cache_lookups_time_out(tmp_path, slow):
    """ci/build-changed.sh counts the lookups Pants dropped and warns, since Pants itself does not."""
    repo = make_repo(tmp_path / "repo")
    (repo / "ci").mkdir()
    for name in ("build-changed.sh", "remote-cache.toml"):
        shutil.copy2(REPO_ROOT / "ci" / name, repo / "ci" / name)
    git = ["git", "-c", "user.name=CI", "-c", "user.email=ci@example.org", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "--quiet"], cwd=repo, check=True)
    subprocess.run([*git, "add", "--all"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "--quiet", "--message", "e2e"], cwd=repo, check=True)
    with (repo / "pants.toml").open("a") as f:
        f.write("\n# an edit outside any target: build-changed builds everything\n")
    store = tmp_path / "store"
    with unresponsive_server() as address:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PANTS_")}
        env["PANTS_REMOTE_STORE_ADDRESS"] = address
        run = subprocess.run(
            ["./ci/build-changed.sh", "HEAD", "--no-pantsd", "--no-dynamic-ui", f"--local-store-dir={store}",
             f"--named-caches-dir={store}-named", "--pants-config-files=+['ci/remote-cache.toml']",
             f"--python-bootstrap-search-path=['{slow}']"],
            cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert run.returncode == 0, run.stdout
    timeouts = stats_counters(run.stdout)["remote_cache_request_timeouts"]
    assert timeouts >= 8, run.stdout
    assert f"build-changed: warning: {timeouts} remote cache lookups timed out at {address}" in run.stdout
    assert (repo / "dist/images.app/app/index.json").is_file()
