"""A real OpenStack client against the plane: openstacksdk in the config-tools image, OS_CLOUD=controlplane.

    python3 cloud.py exercise    # token, project and user, image round trip, flavor, server, network
    python3 cloud.py keep        # resources meant to outlive an upgrade (named "survivor")
    python3 cloud.py survived    # they are still there, and the image still downloads intact

Each step prints one JSON line: step, the container it exercises, ok, seconds, detail. The first
failing step ends the run with exit 1. Every wait is bounded: API calls by api_timeout, server
builds and deletions by explicit limits.
"""

import hashlib
import json
import os
import sys
import time
import uuid

import openstack

API_TIMEOUT = 60
SERVER_ACTIVE_SECONDS = 240
IMAGE_BYTES = 1 << 20
SURVIVOR = "survivor"


class Steps:
    def __init__(self):
        self.began = time.monotonic()

    def run(self, step, container, action):
        start = time.monotonic()
        try:
            detail = action()
        except Exception as error:  # the step's failure, reported as data; then stop
            self.emit(step, container, False, start, f"{type(error).__name__}: {error}")
            sys.exit(1)
        self.emit(step, container, True, start, detail)

    @staticmethod
    def emit(step, container, ok, start, detail):
        print(json.dumps({"step": step, "container": container, "ok": ok,
                          "seconds": round(time.monotonic() - start, 2), "detail": str(detail)[:600]}), flush=True)


def token(conn):
    subject = conn.auth_token
    reply = conn.identity.get("/auth/tokens", headers={"X-Subject-Token": subject})
    if reply.status_code != 200:
        raise RuntimeError(f"validating the token: HTTP {reply.status_code}")
    user = reply.json()["token"]["user"]["name"]
    return f"token issued and validated for {user} ({len(subject)} chars)"


def project_and_user(conn, name):
    project = conn.identity.create_project(name=name, domain_id="default")
    password = uuid.uuid4().hex
    user = conn.identity.create_user(name=name, password=password, domain_id="default",
                                     default_project_id=project.id)
    conn.identity.assign_project_role_to_user(project, user, conn.identity.find_role("member"))
    as_user = openstack.connect(auth_url=conn.config.auth["auth_url"], username=name, password=password,
                                project_name=name, user_domain_name="Default", project_domain_name="Default",
                                region_name=conn.config.region_name, api_timeout=API_TIMEOUT)
    as_user.authorize()
    return f"project {project.id} and user {user.id}; the user got a token scoped to the project"


def upload_image(conn, name, data):
    image = conn.image.create_image(name=name, disk_format="raw", container_format="bare", data=data,
                                    visibility="public")
    image = conn.image.get_image(image.id)
    if image.status != "active":
        raise RuntimeError(f"image {image.id} is {image.status} after upload")
    return image


def download_matches(conn, image):
    """The image's bytes, downloaded again, against glance's own md5 and sha512 of what it stored."""
    data = conn.image.download_image(image)
    data = data if isinstance(data, bytes) else data.content
    md5, sha512 = hashlib.md5(data).hexdigest(), hashlib.sha512(data).hexdigest()
    if (md5, sha512) != (image.checksum, image.hash_value):
        raise RuntimeError(f"downloaded {len(data)} bytes: md5 {md5}, glance says {image.checksum}")
    return data


def image_round_trip(conn, name):
    data = os.urandom(IMAGE_BYTES)
    image = upload_image(conn, name, data)
    if download_matches(conn, image) != data:
        raise RuntimeError("the downloaded bytes differ from the uploaded ones")
    return image, f"image {image.id}: {len(data)} bytes up and down, md5 {image.checksum}"


def boot(conn, name, image, flavor):
    server = conn.compute.create_server(name=name, image_id=image.id, flavor_id=flavor.id, networks="none")
    return conn.compute.wait_for_server(server, status="ACTIVE", failures=["ERROR"], interval=2,
                                        wait=SERVER_ACTIVE_SECONDS)


def server_lifecycle(conn, name, image, flavor):
    began = time.monotonic()
    server = boot(conn, name, image, flavor)
    active = time.monotonic() - began
    if server.id not in {s.id for s in conn.compute.servers()}:
        raise RuntimeError(f"server {server.id} is ACTIVE but not listed")
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, interval=2, wait=120)
    return f"server {server.id} ACTIVE on {server.hypervisor_hostname or server.compute_host} after {active:.1f} s, " \
           "listed, deleted"


def network_and_subnet(conn, name, cidr):
    network = conn.network.create_network(name=name)
    subnet = conn.network.create_subnet(network_id=network.id, name=name, ip_version=4, cidr=cidr)
    if subnet.id not in {s.id for s in conn.network.subnets(network_id=network.id)}:
        raise RuntimeError(f"subnet {subnet.id} not listed")
    return network, f"network {network.id} ({network.provider_network_type} {network.provider_segmentation_id}), " \
                    f"subnet {subnet.cidr}"


def exercise(conn, steps):
    name = f"cp-{uuid.uuid4().hex[:8]}"
    steps.run("token", "keystone", lambda: token(conn))
    steps.run("project and user", "keystone", lambda: project_and_user(conn, name))
    image = {}
    steps.run("image upload and download", "glance_api", lambda: keep_first(image, image_round_trip(conn, name)))
    flavor = {}
    steps.run("flavor", "nova_api", lambda: keep_first(flavor, (
        conn.compute.create_flavor(name=name, ram=256, vcpus=1, disk=1), f"flavor {name}")))
    steps.run("server ACTIVE, listed, deleted", "nova_compute",
              lambda: server_lifecycle(conn, name, image["value"], flavor["value"]))
    network = {}
    steps.run("network and subnet", "neutron_server",
              lambda: keep_first(network, network_and_subnet(conn, name, "10.10.0.0/24")))
    steps.run("clean up", "nova_api", lambda: clean_up(conn, image["value"], flavor["value"], network["value"]))


def keep_first(box, pair):
    box["value"] = pair[0]
    return pair[1]


def clean_up(conn, image, flavor, network):
    conn.network.delete_network(network)
    conn.compute.delete_flavor(flavor)
    conn.image.delete_image(image)
    return "network, flavor and image deleted"


def keep(conn, steps):
    steps.run("survivor project and user", "keystone", lambda: project_and_user(conn, SURVIVOR))
    image = {}
    steps.run("survivor image", "glance_api", lambda: keep_first(image, image_round_trip(conn, SURVIVOR)))
    flavor = conn.compute.create_flavor(name=SURVIVOR, ram=256, vcpus=1, disk=1)
    steps.run("survivor server ACTIVE", "nova_compute",
              lambda: f"server {boot(conn, SURVIVOR, image['value'], flavor).id} ACTIVE")
    steps.run("survivor network", "neutron_server",
              lambda: network_and_subnet(conn, SURVIVOR, "10.20.0.0/24")[1])


def survived(conn, steps):
    steps.run("token", "keystone", lambda: token(conn))
    steps.run("survivor user", "keystone", lambda: f"user {conn.identity.find_user(SURVIVOR, ignore_missing=False).id}")
    steps.run("survivor image downloads intact", "glance_api", lambda: "%d bytes, md5 matches" % len(
        download_matches(conn, conn.image.find_image(SURVIVOR, ignore_missing=False))))
    steps.run("survivor server ACTIVE", "nova_api", lambda: still_active(conn))
    steps.run("survivor network", "neutron_server",
              lambda: f"network {conn.network.find_network(SURVIVOR, ignore_missing=False).id}")


def still_active(conn):
    server = conn.compute.find_server(SURVIVOR, ignore_missing=False)
    server = conn.compute.get_server(server.id)
    if server.status != "ACTIVE":
        raise RuntimeError(f"server {server.id} is {server.status}")
    return f"server {server.id} ACTIVE"


SCENARIOS = {"exercise": exercise, "keep": keep, "survived": survived}

if __name__ == "__main__":
    connection = openstack.connect(api_timeout=API_TIMEOUT)
    SCENARIOS[sys.argv[1]](connection, Steps())
