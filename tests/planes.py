"""A control plane for a test module: brought up from dist/, removed afterwards, failures as test failures."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path
from typing import Iterator, Sequence, Tuple

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DIST = Path(os.environ.get("SERVICE_CHECKS_DIST", REPO_ROOT / "dist"))
sys.path.insert(0, str(REPO_ROOT))

from deploy import controlplane as cp  # noqa: E402
from deploy.podman import DeployError, Podman  # noqa: E402


def deployed(action, *args):
    """`action(*args)`, with a failed deployment step reported as the test's failure."""
    try:
        return action(*args)
    except DeployError as error:
        pytest.fail(f"{error.container}: {error.step}: {error.reason}\n{error.logs}", pytrace=False)


@contextlib.contextmanager
def running(state_dir: Path, prefix: str, source: Sequence[str] = ()) -> Iterator[Tuple[cp.Plane, cp.UpReport]]:
    """A plane whose containers and volumes are named `prefix...`; skipped without podman or the layouts."""
    podman = shutil.which("podman")
    if podman is None:
        pytest.skip("needs podman")
    plane = cp.Plane(Podman(podman), str(DIST), str(state_dir), prefix, tuple(source))
    layouts = sorted({plane.layout(s.image) for s in cp.SERVICES} | {plane.layout(cp.CLIENT_IMAGE)})
    missing = [layout for layout in layouts if not os.path.isfile(os.path.join(layout, "index.json"))]
    if missing:
        pytest.skip(f"no OCI layouts at {', '.join(missing)} (run ./pants package :: first)")
    cp.down(plane)  # what a failed earlier run left
    try:
        yield plane, deployed(cp.up, plane)
    finally:
        cp.down(plane)


def assert_uwsgi_workers(plane: cp.Plane, services: Sequence[str]) -> None:
    """Each uWSGI service runs globals.ini's `workers` workers beside its master."""
    workers = int(cp.settings(plane)["workers"])
    for service in services:
        name = plane.container(service)
        count = plane.podman.ok(["exec", name, "pgrep", "-c", "-f", "uwsgi-core"], 30, name, "pgrep").strip()
        assert int(count) == workers + 1, (service, count)
