"""The control plane: the whole set deployed from dist/ as kolla-ansible deploys it, proved by a real client.

Run with `./run-tests -m controlplane` after `./pants package ::`. One plane (deploy/controlplane.py,
containers and volumes prefixed `cptest_`) is brought up for the module and removed afterwards, also
on failure. A failing step fails its test with the step, the container it exercised, that
container's state, health and log tail.
"""

from __future__ import annotations

import pytest

import benchscripts
from planes import DIST, assert_uwsgi_workers, deployed, running

from deploy import controlplane as cp

pytestmark = pytest.mark.controlplane

bench = benchscripts.load("controlplane", "controlplane_bench")


@pytest.fixture(scope="module")
def plane(tmp_path_factory):
    with running(tmp_path_factory.mktemp("controlplane"), "cptest_") as (plane, _):
        yield plane


@pytest.fixture(scope="module")
def survivors(plane):
    """Resources made once for the upgrade tests (cloud.py keep: project, user, image, server, network)."""
    kept = deployed(cp.verify, plane, "keep")
    assert all(s["ok"] for s in kept), kept
    return kept


def inspect(plane, name: str, template: str) -> str:
    return plane.podman.ok(["inspect", "--format", template, name], 30, name, "inspect").strip()


def test_every_container_is_healthy_in_one_network_namespace(plane):
    rows = cp.status(plane)
    assert [name for name, _, healthy in rows if not healthy] == [], rows
    owner = plane.network_owner
    assert inspect(plane, owner, "{{.HostConfig.NetworkMode}}") == "none"
    owner_id = inspect(plane, owner, "{{.Id}}")
    for service in cp.SERVICES[1:]:
        name = plane.container(service.name)
        assert inspect(plane, name, "{{.HostConfig.NetworkMode}}") == f"container:{owner_id}", name
        env = inspect(plane, name, "{{json .Config.Env}}")
        assert '"KOLLA_CONFIG_STRATEGY=COPY_ALWAYS"' in env and '"KOLLA_SERVICE_NAME=' in env, name
        mounts = inspect(plane, name, '{{range .Mounts}}{{.Destination}}={{.RW}} {{end}}').split()
        assert f"{cp.KOLLA_CONFIG_DIR}=false" in mounts, (name, mounts)


def test_services_run_as_their_images_users(plane):
    for service in ("memcached", "rabbitmq", "nova_compute", "neutron_server", "glance_api"):
        name = plane.container(service)
        image_user = inspect(plane, inspect(plane, name, "{{.Image}}"), "{{.Config.User}}")
        assert plane.podman.ok(["exec", name, "id", "-un"], 30, name, "id").strip() == image_user, service


def test_uwsgi_services_run_the_deployments_worker_count(plane):
    assert_uwsgi_workers(plane, ("keystone", "placement_api"))


EXERCISE = ["token", "project and user", "image upload and download", "flavor", "server ACTIVE, listed, deleted",
            "network and subnet", "clean up"]


def test_a_real_client_exercises_the_cloud(plane):
    steps = deployed(cp.verify, plane, "exercise")
    assert [s["step"] for s in steps] == EXERCISE
    assert all(s["ok"] for s in steps), steps
    assert "ACTIVE on controlplane" in steps[4]["detail"]


def test_an_upgraded_keystone_keeps_the_clouds_data(plane, survivors, tmp_path):
    drill = deployed(bench.upgrade_drill, plane, str(tmp_path), "keystone", False)
    assert drill["new_image"] != drill["old_image"]
    assert [step for step, _ in drill["upgrade_steps"]] == ["KOLLA_UPGRADE", "restart", "KOLLA_FINISH_UPGRADE"]
    assert drill["new_file_seen"], f"{drill['new_file']} is not in the upgraded keystone container"
    assert [s["step"] for s in drill["survived"]] == ["token", "survivor user", "survivor image downloads intact",
                                                       "survivor server ACTIVE", "survivor network"]
    assert all(s["ok"] for s in drill["survived"]), drill["survived"]


def test_keystone_moves_from_debians_package_to_the_source_image(plane, survivors):
    """Kolla's own move (Antelope dropped package images): keystone 22 from Debian's package replaced by
    keystone 30 from PyPI (images/source/keystone) through KOLLA_UPGRADE and KOLLA_FINISH_UPGRADE, on the
    same database; the cloud's data survives and a client exercises it again."""
    layout = DIST / "images.source.keystone" / "keystone"
    if not (layout / "index.json").is_file():
        pytest.skip(f"no OCI layout at {layout} (run ./pants package :: first)")
    steps = deployed(cp.upgrade, plane, "keystone", str(layout))
    assert [step for step, _ in steps] == ["KOLLA_UPGRADE", "restart", "KOLLA_FINISH_UPGRADE"]
    version = plane.podman.ok(["exec", plane.container("keystone"), "keystone-manage", "--version"], 60,
                              "keystone", "keystone-manage --version").strip().splitlines()[-1]
    assert version.startswith("30."), version
    survived = deployed(cp.verify, plane, "survived")
    assert all(s["ok"] for s in survived) and len(survived) == 5, survived
    exercised = deployed(cp.verify, plane, "exercise")
    assert [s["step"] for s in exercised] == EXERCISE and all(s["ok"] for s in exercised), exercised
