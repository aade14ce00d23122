"""Services only: each service image, run as kolla-ansible runs it, answers a real request.

The checks are bench/service_checks.py; run them with `./run-tests -m services` after
`./pants package ::`. Each test runs one service's check under podman from the layouts in dist/ (or
$SERVICE_CHECKS_DIST) and fails with the check's report: the image, the command and the last lines of
the service container's log. Without podman or without the layouts the test is skipped, saying which.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import benchscripts

REPO_ROOT = Path(__file__).resolve().parents[2]
DIST = Path(os.environ.get("SERVICE_CHECKS_DIST", REPO_ROOT / "dist"))

pytestmark = pytest.mark.services

service_checks = benchscripts.load("service_checks", "service_checks")


@pytest.mark.parametrize("service", list(service_checks.CHECKS))
def test_service_answers_a_real_request(service):
    podman = shutil.which("podman")
    if podman is None:
        pytest.skip("needs podman")
    missing = service_checks.missing_layouts(service, str(DIST))
    if missing:
        pytest.skip(f"no OCI layout at {', '.join(missing)} (run ./pants package :: first)")
    result = service_checks.run_check(service, podman, str(DIST))
    assert result.ok, (f"{service}: {result.what} failed after {result.seconds:.0f} s\n"
                       f"image {result.image}, command: {' '.join(result.command)}\n"
                       f"{result.detail}\n{result.logs}")


# The source variants (images/source/: OpenStack from PyPI in /var/lib/kolla/venv) of the services that have one.
SOURCE_VARIANTS = ("keystone", "nova-api", "placement-api")


@pytest.mark.parametrize("service", SOURCE_VARIANTS)
def test_source_variant_answers_a_real_request(service):
    podman = shutil.which("podman")
    if podman is None:
        pytest.skip("needs podman")
    missing = service_checks.missing_layouts(service, str(DIST), "source")
    if missing:
        pytest.skip(f"no OCI layout at {', '.join(missing)} (run ./pants package :: first)")
    result = service_checks.run_check(service, podman, str(DIST), "source")
    assert result.ok, (f"{service} (source): {result.what} failed after {result.seconds:.0f} s\n"
                       f"image {result.image}, command: {' '.join(result.command)}\n"
                       f"{result.detail}\n{result.logs}")
