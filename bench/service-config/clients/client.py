"""The client side of bench/service_checks.py: one real request per service, run with python3 inside a
container of our images (openstack-base) that joins the service's network namespace.

    python3 client.py WAIT_SECONDS COMMAND ARGS...

Every command first waits, at most WAIT_SECONDS, for the service's TCP port on 127.0.0.1 to accept a
connection, then makes its request and prints one line starting with "ok:". Anything else exits non-zero
with the reason on stderr. Standard library only, except kombu for the AMQP round trip.
"""

import hashlib
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request
import uuid

HOST = "127.0.0.1"


def wait_port(port, seconds):
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection((HOST, port), timeout=2).close()
            return
        except OSError as error:
            if time.monotonic() > deadline:
                sys.exit(f"nothing accepted connections on {HOST}:{port} within {seconds:.0f} s ({error})")
            time.sleep(0.5)


def http(method, url, body=None, headers=None, seconds=30.0):
    """(status, headers, body) of one request; HTTP errors are returned, not raised."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=seconds) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def expect(status, wanted, what, body):
    if status not in wanted:
        sys.exit(f"{what}: HTTP {status}, wanted {wanted}: {body[:400]!r}")


def memcached(port):
    key, value = b"service-check", os.urandom(8).hex().encode()
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(b"set %s 0 60 %d\r\n%s\r\n" % (key, len(value), value))
        stored = sock.recv(64)
        if stored != b"STORED\r\n":
            sys.exit(f"set: {stored!r}")
        sock.sendall(b"get %s\r\n" % key)
        reply = b""
        while not reply.endswith(b"END\r\n") and len(reply) < 4096:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    wanted = b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (key, len(value), value)
    if reply != wanted:
        sys.exit(f"get: {reply!r}, wanted {wanted!r}")
    print(f"ok: set and get {key.decode()}={value.decode()}")


def amqp(port):
    import kombu  # python3-kombu, in openstack-base

    body = os.urandom(8).hex()
    with kombu.Connection(f"amqp://guest:guest@{HOST}:{port}//", connect_timeout=10) as conn:
        conn.connect()
        version = conn.connection.server_properties.get("version")
        queue = kombu.Queue("service-check", exchange=kombu.Exchange("service-check", type="direct"),
                            routing_key="service-check", auto_delete=True)
        with conn.SimpleQueue(queue) as simple:
            simple.put({"body": body})
            message = simple.get(block=True, timeout=10)
            message.ack()
    if message.payload != {"body": body}:
        sys.exit(f"consumed {message.payload!r}, published {body!r}")
    print(f"ok: published and consumed {body} over AMQP (RabbitMQ {version})")


def keystone(port, password):
    base = f"http://{HOST}:{port}/v3"
    auth = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
    status, headers, body = http("POST", f"{base}/auth/tokens", json.dumps(auth).encode(),
                                 {"Content-Type": "application/json"})
    expect(status, (201,), "POST /v3/auth/tokens", body)
    token = headers["X-Subject-Token"]
    status, headers, body = http("GET", f"{base}/auth/tokens", headers={"X-Auth-Token": token,
                                                                        "X-Subject-Token": token})
    expect(status, (200,), "GET /v3/auth/tokens", body)
    user = json.loads(body)["token"]["user"]["name"]
    print(f"ok: token issued ({len(token)} chars) and validated for user {user}")


def glance(port):
    base = f"http://{HOST}:{port}/v2"
    data = os.urandom(256 * 1024)
    meta = {"name": "service-check", "disk_format": "raw", "container_format": "bare"}
    status, _, body = http("POST", f"{base}/images", json.dumps(meta).encode(), {"Content-Type": "application/json"})
    expect(status, (201,), "POST /v2/images", body)
    image = json.loads(body)["id"]
    status, _, body = http("PUT", f"{base}/images/{image}/file", data,
                           {"Content-Type": "application/octet-stream"})
    expect(status, (204,), "PUT /v2/images/ID/file", body)
    status, _, body = http("GET", f"{base}/images/{image}/file")
    expect(status, (200,), "GET /v2/images/ID/file", body[:100])
    sent, got = hashlib.sha256(data).hexdigest(), hashlib.sha256(body).hexdigest()
    if sent != got:
        sys.exit(f"downloaded sha256 {got} != uploaded {sent}")
    status, _, meta = http("GET", f"{base}/images/{image}")
    expect(status, (200,), "GET /v2/images/ID", meta)
    meta = json.loads(meta)
    hashes = {"checksum": hashlib.md5(data).hexdigest(),
              "os_hash_value": hashlib.new(meta.get("os_hash_algo") or "sha512", data).hexdigest()}
    wrong = {k: (meta.get(k), v) for k, v in hashes.items() if meta.get(k) != v}
    if wrong or meta.get("size") != len(data) or meta.get("status") != "active":
        sys.exit(f"image record does not match the upload: {wrong}, size {meta.get('size')}, "
                 f"status {meta.get('status')}")
    print(f"ok: image {image} uploaded and downloaded ({len(data)} bytes), sha256 {sent[:12]}... matches; "
          f"glance checksum and {meta.get('os_hash_algo')} match")


def versions(port, wanted):
    status, _, body = http("GET", f"http://{HOST}:{port}/")
    expect(status, (200, 300), "GET /", body)
    document = json.loads(body)
    found = json.dumps(document)
    if wanted not in found:
        sys.exit(f"GET / has no {wanted!r}: {found[:400]}")
    print(f"ok: GET / -> {status}, version document with {wanted}")


def placement(port):
    """Placement with noauth2: the token "admin" is an admin user. An empty inventory of resource providers,
    then one created and read back, at microversion 1.0 (what nova-compute's report client starts from)."""
    base = f"http://{HOST}:{port}"
    headers = {"X-Auth-Token": "admin", "OpenStack-API-Version": "placement 1.0", "Accept": "application/json"}
    status, _, body = http("GET", f"{base}/resource_providers", headers=headers)
    expect(status, (200,), "GET /resource_providers", body)
    if json.loads(body) != {"resource_providers": []}:
        sys.exit(f"GET /resource_providers on a fresh database: {body[:400]!r}")
    provider = {"name": "service-check", "uuid": str(uuid.uuid4())}
    status, _, body = http("POST", f"{base}/resource_providers", json.dumps(provider).encode(),
                           {**headers, "Content-Type": "application/json"})
    expect(status, (201,), "POST /resource_providers", body)
    status, response, body = http("GET", f"{base}/resource_providers/{provider['uuid']}", headers=headers)
    expect(status, (200,), "GET /resource_providers/UUID", body)
    record = json.loads(body)
    if (record.get("uuid"), record.get("name")) != (provider["uuid"], provider["name"]):
        sys.exit(f"resource provider read back does not match {provider}: {body[:400]!r}")
    print(f"ok: resource provider {provider['uuid']} created and read back (generation {record.get('generation')}, "
          f"{response.get('OpenStack-API-Version')})")


def port_open(port):
    print(f"ok: {HOST}:{port} accepts connections")


COMMANDS = {"port": port_open, "memcached": memcached, "amqp": amqp, "keystone": keystone, "glance": glance,
            "versions": versions, "placement": placement}


def main(argv):
    seconds, command, port, *rest = argv
    wait_port(int(port), float(seconds))
    COMMANDS[command](int(port), *rest)


if __name__ == "__main__":
    main(sys.argv[1:])
