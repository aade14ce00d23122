"""dpkg on the real image set: `./pants package ::` first, then `./run-tests -m realset`.

Each image of dist/ is unpacked with umoci and read by the host's dpkg: `dpkg -l` lists the
image's locked closure, `dpkg --verify` complains only about files the image chain declares
(conffiles it replaces, `overrides`), and dpkg writes the status file back byte for byte.
Two images also run dpkg inside themselves under podman, which applies the opaque whiteouts
of every system layer in the chain.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import dpkgcheck

pytestmark = pytest.mark.realset

REPO = Path(__file__).resolve().parents[2]
DIST = REPO / "dist"
IMAGES = ("base", "python-base", "openstack-base", "keystone", "glance-api", "placement-api", "neutron-server",
          "config-tools", "nova-base", "nova-api", "nova-conductor", "nova-scheduler", "nova-compute", "memcached",
          "mariadb", "rabbitmq")
PODMAN = ("podman", "--runtime", "runc", "run", "--rm", "--network=none", "--ulimit", "nofile=1024:1024",
          "--ulimit", "nproc=1024:1024", "--user", "0", "--entrypoint", "/bin/sh")


@pytest.fixture(scope="module")
def lock() -> dict:
    if not (DIST / "images.base").is_dir():
        pytest.skip(f"no real image set in {DIST} (dist/images.base is missing): run `./pants package ::` first")
    return yaml.safe_load((REPO / "3rdparty/debian/lock.yaml").read_text())


def layout(image: str) -> Path:
    return DIST / f"images.{image}" / image


@pytest.mark.parametrize("image", IMAGES)
def test_dpkg_reads_the_image_and_verifies_it_clean(image, lock, tmp_path):
    root = dpkgcheck.unpack(layout(image), "latest", tmp_path / "bundle")
    try:
        closure = lock["images"][f"images/{image}:{image}"]["amd64"]["closure"]
        listed = dpkgcheck.installed_names(root)
        assert sorted(name.split(":")[0] for name in listed) == sorted(closure)
        assert [p.name for p in (root / "var/lib/dpkg/status.d").iterdir()] == []
        declared = dpkgcheck.declared_paths(layout(image))
        complaints = dpkgcheck.verify_complaints(root)
        assert [line for line in complaints if dpkgcheck.complaint_path(line) not in declared] == []
        assert dpkgcheck.rewritten_status(root, tmp_path) == (root / "var/lib/dpkg/status").read_bytes()
    finally:
        shutil.rmtree(tmp_path / "bundle", ignore_errors=True)


@pytest.mark.skipif(shutil.which("podman") is None, reason="needs podman")
@pytest.mark.parametrize("image", ["base", "nova-api"])
def test_dpkg_inside_the_image_under_podman(image, lock):
    script = "ls -A /var/lib/dpkg/status.d | wc -l; dpkg -l | grep -c '^ii '; dpkg --verify; echo verify=$?"
    result = subprocess.run([*PODMAN, f"oci:{layout(image)}:latest", "-c", script],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert result.returncode == 0, result.stderr
    closure = lock["images"][f"images/{image}:{image}"]["amd64"]["closure"]
    status_d, listed, *complaints, verified = result.stdout.splitlines()
    assert (status_d, listed, verified) == ("0", str(len(closure)), "verify=0"), result.stdout
    declared = dpkgcheck.declared_paths(layout(image))  # e.g. /etc/sudoers of the Kolla contract
    assert [line for line in complaints if dpkgcheck.complaint_path(line) not in declared] == [], result.stdout
