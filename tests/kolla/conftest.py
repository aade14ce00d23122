"""Fixtures of the Kolla runtime contract tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kollaroot import FakeImage


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
