"""A fake image root for the Kolla runtime contract tests, and where the contract scripts are."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / "images" / "python-base" / "bin"
SET_CONFIGS = BIN / "kolla_set_configs"


@dataclass
class FakeImage:
    """A directory standing for the image's /, with accounts for the test's own uid and gid."""

    root: Path
    uid: int
    gid: int

    def path(self, image_path: str) -> Path:
        return self.root / image_path.lstrip("/")

    def write(self, image_path: str, text: str = "", mode: int = 0o644) -> Path:
        path = self.path(image_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
        return path

    def config(self, data, name: str = "config.json") -> Path:
        text = data if isinstance(data, str) else json.dumps(data)
        return self.write(f"/var/lib/kolla/config_files/{name}", text)

    def run(self, *args: str, strategy: str | None = "COPY_ALWAYS", env: dict | None = None):
        environment = {k: v for k, v in os.environ.items() if k != "KOLLA_CONFIG_STRATEGY"}
        environment["KOLLA_SET_CONFIGS_ROOT"] = str(self.root)
        if strategy is not None:
            environment["KOLLA_CONFIG_STRATEGY"] = strategy
        environment.update(env or {})
        return subprocess.run([sys.executable, str(SET_CONFIGS), *args], env=environment,
                              capture_output=True, text=True, timeout=60)


# A fixture, imported by the test modules: a conftest.py here would shadow tests/conftest.py for
# the modules that import from it.
@pytest.fixture
def image(tmp_path: Path) -> FakeImage:
    root = tmp_path / "root"
    uid, gid = os.getuid(), os.getgid()
    fake = FakeImage(root, uid, gid)
    # "svc" is the test's own account (chown to it needs no privileges); group kolla has the same gid.
    fake.write("/etc/passwd", f"root:x:0:0:root:/root:/bin/sh\nsvc:x:{uid}:{gid}::/nonexistent:/usr/sbin/nologin\n")
    fake.write("/etc/group", f"root:x:0:\nsvc:x:{gid}:\nkolla:x:{gid}:svc\n")
    fake.path("/run").mkdir(parents=True)
    return fake
