"""kolla_start and the extend-start hooks, with a stand-in `sudo` on PATH and a fake image root."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from kollaroot import BIN, REPO, image  # noqa: F401 (fixture)

FAKE_SUDO = '#!/bin/sh\n[ "$1" = -E ] && shift\necho "sudo $*" >> "$SUDO_LOG"\nexec "$@"\n'


@pytest.fixture
def start(image, tmp_path: Path):
    """Runs kolla_start with the repository's contract scripts and a fake sudo first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("kolla_start", "kolla_set_configs", "kolla_copy_cacerts", "kolla_extend_start"):
        shutil.copy(BIN / name, bin_dir / name)
    (bin_dir / "sudo").write_text(FAKE_SUDO)
    (bin_dir / "sudo").chmod(0o755)
    sudo_log = tmp_path / "sudo.log"

    def run(env=None, extend_start: str | None = None):
        if extend_start is not None:
            (bin_dir / "kolla_extend_start").write_text(extend_start)
        environment = {"PATH": f"{bin_dir}:/usr/bin:/bin", "KOLLA_SET_CONFIGS_ROOT": str(image.root),
                       "KOLLA_CONFIG_STRATEGY": "COPY_ALWAYS", "SUDO_LOG": str(sudo_log)}
        environment.update(env or {})
        result = subprocess.run(["sh", str(bin_dir / "kolla_start")], env=environment, capture_output=True,
                                text=True, timeout=60)
        result.sudo = sudo_log.read_text().splitlines() if sudo_log.exists() else []
        return result

    return run


def test_runs_set_configs_then_cacerts_through_sudo_then_execs_the_command(image, start):
    image.config({"command": "echo serving on 11211"})
    result = start()
    assert result.returncode == 0, result.stderr
    assert result.sudo == ["sudo kolla_set_configs", "sudo kolla_copy_cacerts"]
    assert result.stdout.splitlines()[-1] == "serving on 11211"
    assert "Running command: 'echo serving on 11211'" in result.stdout


def test_extend_start_may_add_args(image, start):
    image.config({"command": "echo serving"})
    result = start(extend_start='ARGS="--with-args"\n')
    assert result.stdout.splitlines()[-1] == "serving --with-args"


def test_extend_start_skipped_with_kolla_skip_extend_start(image, start):
    image.config({"command": "echo serving"})
    result = start(env={"KOLLA_SKIP_EXTEND_START": ""}, extend_start="echo hook ran; exit 3\n")
    assert result.returncode == 0
    assert "hook ran" not in result.stdout


def test_a_refused_configuration_stops_the_start(image, start):
    image.config({"command": "echo serving"})
    result = start(env={"KOLLA_CONFIG_STRATEGY": "NOPE"})
    assert result.returncode == 1
    assert "serving" not in result.stdout
    assert "KOLLA_CONFIG_STRATEGY is 'NOPE'" in result.stderr


def hook(image: str) -> str:
    return (REPO / "images" / image / "kolla_extend_start").read_text()


def fake_tool(tmp_path: Path, name: str) -> None:
    """A stand-in for a service tool that logs its arguments."""
    path = tmp_path / "bin" / name
    path.write_text(f'#!/bin/sh\necho "{name} $*"\n')
    path.chmod(0o755)


@pytest.mark.parametrize("env, calls", [
    ({}, None),
    ({"KOLLA_BOOTSTRAP": ""}, ["keystone-manage db_sync"]),
    ({"KOLLA_UPGRADE": ""}, ["keystone-manage db_sync --expand", "keystone-manage db_sync --migrate"]),
    ({"KOLLA_FINISH_UPGRADE": ""}, ["keystone-manage db_sync --contract"]),
])
def test_keystone_hook(image, start, tmp_path, env, calls):
    fake_tool(tmp_path, "keystone-manage")
    image.config({"command": "echo serving"})
    result = start(env=env, extend_start=hook("keystone"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    if calls is None:
        assert lines[-1] == "serving"
    else:
        assert [line for line in lines if line.startswith("keystone-manage")] == calls
        assert "serving" not in lines  # a one-off job: exit 0 instead of serving


def test_mariadb_bootstrap_passes_bootstrap_args_and_exits(image, start, tmp_path):
    fake_tool(tmp_path, "mariadb-install-db")
    image.config({"command": "echo serving"})
    result = start(env={"KOLLA_BOOTSTRAP": "", "BOOTSTRAP_ARGS": "--auth-root-authentication-method=socket"},
                   extend_start=hook("mariadb"))
    assert result.returncode == 0, result.stderr
    expected_user = "--user=mysql " if os.getuid() == 0 else ""
    assert result.stdout.splitlines()[-1] == (
        f"mariadb-install-db {expected_user}--datadir=/var/lib/mysql --skip-test-db "
        "--auth-root-authentication-method=socket")
