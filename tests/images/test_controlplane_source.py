"""The control plane with keystone, placement and nova from source (Kolla's images), proved by a real client.

Run with `./run-tests -m controlplane` after `./pants package ::` (or images/source:: and the Debian
images). One plane (deploy/controlplane.py, `up` with source=("keystone", "nova", "placement");
containers and volumes prefixed `cpsrc_`, so it never meets the Debian plane of test_controlplane.py,
`cptest_`) is brought up for the module and removed afterwards, also on failure: keystone 30,
placement 16 and nova 34 (api, conductor, scheduler, compute) from PyPI in /var/lib/kolla/venv,
beside bookworm's glance and neutron. Placement comes along because nova 34's compute reports
os-traits 3.9 traits that bookworm's placement 8 (os-traits 2.9) refuses, so no server could be
scheduled. A failing step fails its test with the step, the container it exercised, that
container's state, health and log tail.
"""

from __future__ import annotations

import pytest

import benchscripts
from planes import DIST, assert_uwsgi_workers, deployed, running

from deploy import controlplane as cp

pytestmark = pytest.mark.controlplane

bench = benchscripts.load("controlplane", "controlplane_bench")

SOURCE = ("keystone", "nova", "placement")
NOVA = ("nova_api", "nova_scheduler", "nova_conductor", "nova_compute")
EXERCISE = ["token", "project and user", "image upload and download", "flavor", "server ACTIVE, listed, deleted",
            "network and subnet", "clean up"]


@pytest.fixture(scope="module")
def plane(tmp_path_factory):
    with running(tmp_path_factory.mktemp("controlplane-source"), "cpsrc_", SOURCE) as (plane, report):
        print(f"\nsource plane up:\n{report.render()}")
        yield plane


def in_container(plane, service: str, *argv: str) -> str:
    name = plane.container(service)
    return plane.podman.ok(["exec", name, *argv], 60, name, " ".join(argv)).strip()


def test_keystone_placement_and_nova_run_their_source_images_and_the_rest_debians(plane):
    rows = cp.status(plane)
    assert [name for name, _, healthy in rows if not healthy] == [], rows
    for service in cp.SERVICES:
        variant = "images.source." if service.name.split("_")[0] in SOURCE else "images."
        layout = DIST / f"{variant}{service.image}" / service.image
        running = plane.podman.state(plane.container(service.name)).image
        assert running == plane.podman.load(str(layout)), (service.name, layout)
    assert in_container(plane, "keystone", "keystone-manage", "--version").splitlines()[-1].startswith("30.")
    placement = in_container(plane, "placement_api", "python3", "-c",
                             "import importlib.metadata as m; print(m.version('openstack-placement'))")
    assert placement.startswith("16."), placement
    for service in NOVA:
        assert in_container(plane, service, "nova-manage", "--version").splitlines()[-1].startswith("34."), service
        assert in_container(plane, service, "sh", "-c", "command -v nova-manage") == \
            "/var/lib/kolla/venv/bin/nova-manage", service


def test_source_uwsgi_services_run_the_deployments_worker_count(plane):
    assert_uwsgi_workers(plane, ("keystone", "placement_api", "nova_api"))


def test_nova_rootwrap_is_the_venvs_through_kollas_sudoers_rule(plane):
    """sudo lets nova run the venv's nova-rootwrap with /etc/nova/rootwrap.conf, and rootwrap reads the
    wheel's filters: a command no filter allows is refused by rootwrap (exit 99), not by sudo."""
    name = plane.container("nova_compute")
    argv = ["exec", name, "sudo", "-n", "/var/lib/kolla/venv/bin/nova-rootwrap", "/etc/nova/rootwrap.conf", "id"]
    refused = plane.podman.run(argv, 60)
    output = refused.stdout.decode(errors="replace")
    assert refused.returncode == 99 and "Unauthorized command" in output, (refused.returncode, output)
    filters = in_container(plane, "nova_compute", "ls", "/var/lib/kolla/venv/etc/nova/rootwrap.d")
    assert "compute.filters" in filters.split(), filters


def test_a_real_client_exercises_the_source_cloud(plane):
    steps = deployed(cp.verify, plane, "exercise")
    print("\n" + "\n".join(f"  {s['step']:32} {s['seconds']:6.1f} s  {s['detail']}" for s in steps))
    assert [s["step"] for s in steps] == EXERCISE
    assert all(s["ok"] for s in steps), steps
    assert "ACTIVE on controlplane" in steps[4]["detail"]


def test_an_upgraded_source_nova_api_keeps_the_clouds_data(plane, tmp_path):
    """images/source/nova-api rebuilt with a new declared file, and nova_api upgraded to it as
    kolla-ansible does (KOLLA_UPGRADE: the venv's nova-manage api_db sync, then the new container):
    the server, image, user and network made before survive, and nova still lists the server ACTIVE."""
    drill = deployed(bench.upgrade_drill, plane, str(tmp_path), "nova_api")
    assert all(s["ok"] for s in drill["kept"]), drill["kept"]
    assert drill["new_image"] != drill["old_image"]
    assert drill["new_image"] == plane.podman.load(str(tmp_path / "repo/dist/images.source.nova-api/nova-api"))
    assert [step for step, _ in drill["upgrade_steps"]] == ["KOLLA_UPGRADE", "restart"]
    assert drill["new_file_seen"], f"{drill['new_file']} is not in the upgraded nova_api container"
    assert in_container(plane, "nova_api", "nova-manage", "--version").splitlines()[-1].startswith("34.")
    assert [s["step"] for s in drill["survived"]] == ["token", "survivor user", "survivor image downloads intact",
                                                       "survivor server ACTIVE", "survivor network"]
    assert all(s["ok"] for s in drill["survived"]), drill["survived"]
