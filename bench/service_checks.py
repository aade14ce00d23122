#!/usr/bin/env python3
"""Service checks of the image set: each service starts as deployed and answers a real request.

    ./pants package ::                      # build the layouts first
    python3 bench/service_checks.py         # every service; exits non-zero if any fails
    python3 bench/service_checks.py keystone mariadb --json out.json

Decisions:
- The service container runs the image as built: its own User, Entrypoint and Cmd, no --user, no
  command. What a deployment adds is all it gets: config files from bench/service-config/<service>/
  mounted read-only at their /etc paths, and named volumes for state (datadir, fernet and credential
  keys, the glance store, the rabbitmq node). A new named volume takes the owner and mode of the
  image's directory at its mount point (the container's user where the image has none), as in
  kolla-ansible, so the image's directories are what is checked. Nothing is created or chowned as
  root and no file missing from an image is mounted in: a check that fails names an image gap.
- Bootstrap steps (mariadb-install-db with the flags of Debian's postinst, keystone-manage, glance-manage,
  nova-manage, neutron-db-manage) are one-shot containers of the service's image, as its default user, with
  the same mounts. Commands inside a running service (rabbitmq-diagnostics ping, a query on mariadb's unix
  socket, the SQL that creates databases and accounts) go through `podman exec`, as the container's user.
- nova-api and neutron-server use the mariadb image as their database: mariadb is the first container of
  the check, the bootstrap steps and the service join its namespace. keystone and glance use SQLite in
  their state volume (/var/lib/keystone, /var/lib/glance). No Keystone and no message bus behind
  glance, nova or neutron: noauth, and GET / needs neither.
- Networking: every container runs with `--network none --name X` (the service, or mariadb where a
  service needs it, and standalone bootstrap steps) or joins one with `--network container:X`, all on
  127.0.0.1. No bridge network, no pod (`podman pod create` fails here),
  no other address. Clients run in a container of our images in that namespace: python3 from
  openstack-base with bench/service-config/clients/client.py (kombu for AMQP), mariadb's own client.
- podman runs with `--runtime runc` and `--ulimit nofile=1024:1024 --ulimit nproc=1024:1024` (crun fails
  here). Every wait is bounded. A failure names the image and the command and shows the last lines of
  the service container's log. Containers and volumes are removed afterwards, also on failure; the images
  pulled from dist/ into podman's storage (once per check, run by id) stay there, as with smoke.py.

Standard library only (Python 3.9+).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = os.path.join(HERE, "service-config")
RUNTIME = ("--runtime", "runc")
LIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")
CLIENT_IMAGE = "openstack-base"
CLIENT_MOUNT = f"{CONFIG}/clients:/check:ro"
LOG_LINES = 25


class CheckFailed(Exception):
    def __init__(self, image: str, command: Sequence[str], reason: str):
        super().__init__(f"{image}: `{' '.join(command)}`: {reason}")
        self.image, self.command, self.reason = image, tuple(command), reason


@dataclass(frozen=True)
class Session:
    """One check's podman resources: everything it creates is listed here and removed by cleanup()."""
    podman: str
    dist: str
    service: str
    images: Dict[str, str] = field(default_factory=dict)  # image name -> local image id (pulled once)
    roles: List[str] = field(default_factory=list)
    containers: List[str] = field(default_factory=list)
    services: Dict[str, Tuple[str, ...]] = field(default_factory=dict)  # service container -> its command
    volumes: List[str] = field(default_factory=list)

    def podman_run(self, argv: Sequence[str], timeout: float, stdin: Optional[bytes] = None
                   ) -> subprocess.CompletedProcess:
        try:
            return subprocess.run([self.podman, *argv], input=stdin, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired as expired:
            return subprocess.CompletedProcess(expired.cmd, 124, (expired.output or b"")
                                               + f"\n(timed out after {timeout:.0f} s)".encode())

    def image(self, name: str) -> str:
        if name not in self.images:
            path = os.path.join(self.dist, f"images.{name}", name)
            if not os.path.isfile(os.path.join(path, "index.json")):
                raise CheckFailed(name, ["podman", "pull"], f"no OCI layout at {path} (run ./pants package ::)")
            proc = self.podman_run([*RUNTIME, "pull", "-q", f"oci:{path}:latest"], 300)
            if proc.returncode:
                raise CheckFailed(name, ["podman", "pull", f"oci:{path}:latest"], tail(proc.stdout))
            self.images[name] = proc.stdout.decode().split()[-1]
        return self.images[name]

    def name(self, role: str) -> str:
        """A container name unique to this check: svcchk-PID-SERVICE-ROLE, then ROLE-2, ROLE-3, ..."""
        self.roles.append(role)
        taken = self.roles.count(role)
        name = f"svcchk-{os.getpid()}-{self.service}-{role}" + (f"-{taken}" if taken > 1 else "")
        self.containers.append(name)
        return name

    def volume(self, role: str) -> str:
        name = f"svcchk-{os.getpid()}-{self.service}-{role}"
        proc = self.podman_run(["volume", "create", name], 30)
        if proc.returncode:
            raise CheckFailed(self.service, ["podman", "volume", "create", name], tail(proc.stdout))
        self.volumes.append(name)
        return name

    def cleanup(self) -> None:
        # One name per call: podman 4.3's `rm -f` removes nothing when one of several names does not exist.
        for name in reversed(self.containers):
            self.podman_run(["rm", "-f", "-t", "0", name], 60)
        for name in self.volumes:
            self.podman_run(["volume", "rm", "-f", name], 60)


def tail(output: bytes, lines: int = 8) -> str:
    return "\n".join(output.decode(errors="replace").rstrip().splitlines()[-lines:])


KEY_LINE = re.compile(r"CRITICAL|\[ERROR\]|\b\w+(Error|Exception|NotFound): |Permission denied|No such file|"
                      r"eacces|Failed to ")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d[ T][\d:.,+]+\s+(\d+\s+)?")


def key_line(output: bytes) -> str:
    """The line of `output` that most looks like the reason for a failure: the last CRITICAL line, else the
    first [ERROR] line, else the last error-looking one; what Python prints at exit ("Exception ignored
    in ...") is not considered."""
    text = output.decode(errors="replace").replace("\r", "").split("\nException ignored in")[0]
    lines = [TIMESTAMP.sub("", line.strip()) for line in text.splitlines() if KEY_LINE.search(line)]
    lines = [line[max(0, KEY_LINE.search(line).start() - 40):] if len(line) > 240 else line for line in lines]
    critical = [line for line in lines if "CRITICAL" in line]
    first_error = [line for line in lines if line.startswith("[ERROR]")][:1]  # mariadb: the cause comes first
    return (critical or first_error or lines or [""])[-1][:240]


def mount(service: str, relpath: str, target: str) -> str:
    """A config file of bench/service-config/<service>/, mounted read-only where the service reads it."""
    return f"{os.path.join(CONFIG, service, relpath)}:{target}:ro"


def run_args(s: Session, role: str, network: str, mounts: Sequence[str], detach: bool = False) -> List[str]:
    args = [*RUNTIME, "run", "-d" if detach else "--rm", "--name", s.name(role), f"--network={network}", *LIMITS]
    for m in mounts:
        args += ["-v", m]
    return args


def oneshot(s: Session, image: str, role: str, argv: Sequence[str], network: str = "none",
            mounts: Sequence[str] = (), timeout: float = 180.0) -> str:
    """Run `argv` in `image` as its default user; its output is returned, or is the failure's log."""
    proc = s.podman_run([*run_args(s, role, network, mounts), s.image(image), *argv], timeout)
    if proc.returncode:
        raise CheckFailed(image, argv, f"exit {proc.returncode}: {key_line(proc.stdout)}\n"
                                       f"--- its output, last {LOG_LINES} lines\n{tail(proc.stdout, LOG_LINES)}")
    return proc.stdout.decode(errors="replace")


def default_command(s: Session, image: str) -> Tuple[str, ...]:
    """The image config's User, Entrypoint and Cmd, for the record: `podman run` is given none of them."""
    proc = s.podman_run(["image", "inspect", "--format", "{{json .Config}}", s.image(image)], 30)
    config = json.loads(proc.stdout or b"{}") if proc.returncode == 0 else {}
    return (f"(user {config.get('User') or 'root'})", *(config.get("Entrypoint") or ()), *(config.get("Cmd") or ()))


def start(s: Session, image: str, role: str, network: str = "none", mounts: Sequence[str] = ()) -> str:
    """Start the image's own Entrypoint and Cmd as its own User, detached; returns the container's name."""
    args = run_args(s, role, network, mounts, detach=True)
    name = args[args.index("--name") + 1]
    command = default_command(s, image)
    proc = s.podman_run([*args, s.image(image)], 120)
    if proc.returncode:
        raise CheckFailed(image, command, f"podman run -d failed: {tail(proc.stdout)}")
    s.services[name] = command
    return name


def client(s: Session, service: str, argv: Sequence[str], image: str = "", timeout: float = 120.0,
           wait: int = 10) -> str:
    """client.py in openstack-base (or `image`'s own argv) inside the network namespace of `service`."""
    command = argv if image else ("python3", "/check/client.py", str(wait), *argv)
    return oneshot(s, image or CLIENT_IMAGE, "client", command, f"container:{service}",
                   () if image else (CLIENT_MOUNT,), timeout=timeout)


def wait_port(s: Session, image: str, service: str, port: int, seconds: float) -> None:
    """Until 127.0.0.1:`port` accepts connections in the namespace of `service`, while that container runs."""
    deadline, last = time.monotonic() + seconds, "not tried"
    while time.monotonic() < deadline:
        alive, state = running(s, service)
        if not alive:
            raise CheckFailed(image, s.services[service], f"service container {state} before it listened "
                                                          f"on 127.0.0.1:{port}")
        try:
            client(s, service, ("port", str(port)), timeout=60, wait=3)
            return
        except CheckFailed as failed:
            last = failed.reason.splitlines()[-1]
        time.sleep(1)
    raise CheckFailed(image, s.services[service], f"nothing listened on 127.0.0.1:{port} within "
                                                   f"{seconds:.0f} s; last: {last}")


def running(s: Session, container: str) -> Tuple[bool, str]:
    proc = s.podman_run(["inspect", "-f", "{{.State.Running}} {{.State.ExitCode}}", container], 30)
    state = proc.stdout.decode().split()
    return bool(state) and state[0] == "true", (f"exited with {state[1]}" if len(state) > 1 else "gone")


def podman_exec(s: Session, image: str, container: str, argv: Sequence[str], stdin: Optional[bytes] = None,
                timeout: float = 60.0) -> str:
    """`podman exec` in the service container: its user, its environment."""
    proc = s.podman_run(["exec", *(["-i"] if stdin is not None else []), container, *argv], timeout, stdin)
    if proc.returncode:
        raise CheckFailed(image, argv, f"exit {proc.returncode}: {tail(proc.stdout)}")
    return proc.stdout.decode(errors="replace")


def wait_exec(s: Session, image: str, container: str, argv: Sequence[str], seconds: float) -> str:
    """Retry `podman exec argv` until it exits 0, the container stops, or `seconds` pass."""
    deadline, last = time.monotonic() + seconds, "not tried"
    while time.monotonic() < deadline:
        alive, state = running(s, container)
        if not alive:
            raise CheckFailed(image, s.services[container], f"service container {state} while waiting for "
                                                            f"`{' '.join(argv)}`")
        try:
            return podman_exec(s, image, container, argv, timeout=max(5.0, min(30.0, deadline - time.monotonic())))
        except CheckFailed as failed:
            last = failed.reason
        time.sleep(2)
    raise CheckFailed(image, argv, f"did not succeed within {seconds:.0f} s; last: {last}")


# --- the checks -------------------------------------------------------------------------------------------


def check_memcached(s: Session) -> str:
    server = start(s, "memcached", "server")
    wait_port(s, "memcached", server, 11211, 30)
    return client(s, server, ("memcached", "11211"))


MARIADB_INSTALL_DB = ("mariadb-install-db", "--rpm", "--cross-bootstrap", "--user=mysql", "--disable-log-bin",
                      "--skip-test-db")  # Debian's mariadb-server postinst, without root


def start_mariadb(s: Session, sql: str = "") -> str:
    """A bootstrapped mariadb, first in its network namespace; `sql` (a service-config file) run on it."""
    datadir = s.volume("datadir")
    mounts = (f"{datadir}:/var/lib/mysql", mount("mariadb", "99-service-check.cnf",
                                                 "/etc/mysql/mariadb.conf.d/99-service-check.cnf"))
    oneshot(s, "mariadb", "install-db", MARIADB_INSTALL_DB, mounts=mounts)
    db = start(s, "mariadb", "db", mounts=mounts)
    wait_exec(s, "mariadb", db, ("mariadb-admin", "--connect-timeout=5", "ping"), 60)
    if sql:
        with open(os.path.join(CONFIG, sql), "rb") as f:
            podman_exec(s, "mariadb", db, ("mariadb", "--batch"), stdin=f.read())
    return db


def check_mariadb(s: Session) -> str:
    db = start_mariadb(s, "mariadb/check-user.sql")
    query = "SELECT CONCAT(CURRENT_USER(), ' ', VERSION())"
    on_socket = podman_exec(s, "mariadb", db, ("mariadb", "--batch", "--skip-column-names", "-e", query))
    on_tcp = client(s, db, ("mariadb", "--batch", "--skip-column-names", "--protocol=tcp", "-h", "127.0.0.1",
                            "-P", "3306", "-u", "check", "-pservice-check", "-e", query), image="mariadb")
    return f"socket: {on_socket.strip()}; tcp: {on_tcp.strip().splitlines()[-1]}"


def check_rabbitmq(s: Session) -> str:
    state = s.volume("state")
    server = start(s, "rabbitmq", "server", mounts=(
        f"{state}:/var/lib/rabbitmq", mount("rabbitmq", "rabbitmq.conf", "/etc/rabbitmq/rabbitmq.conf"),
        mount("rabbitmq", "rabbitmq-env.conf", "/etc/rabbitmq/rabbitmq-env.conf")))
    ping = wait_exec(s, "rabbitmq", server, ("rabbitmq-diagnostics", "-q", "ping", "-t", "10"), 120)
    amqp = client(s, server, ("amqp", "5672"))
    return f"ping: {ping.strip().splitlines()[-1]}; {amqp.strip().splitlines()[-1]}"


KEYSTONE_BOOTSTRAP = ("keystone-manage", "bootstrap", "--bootstrap-password", "service-check",
                      "--bootstrap-admin-url", "http://127.0.0.1:5000/v3",
                      "--bootstrap-public-url", "http://127.0.0.1:5000/v3", "--bootstrap-region-id", "RegionOne")


def check_keystone(s: Session) -> str:
    mounts = (f"{s.volume('state')}:/var/lib/keystone", f"{s.volume('fernet')}:/etc/keystone/fernet-keys",
              f"{s.volume('credential')}:/etc/keystone/credential-keys",
              mount("keystone", "keystone.conf", "/etc/keystone/keystone.conf"))
    for role, argv in (("db-sync", ("keystone-manage", "db_sync")),
                       ("fernet-setup", ("keystone-manage", "fernet_setup", "--keystone-user", "keystone",
                                         "--keystone-group", "keystone")),
                       ("credential-setup", ("keystone-manage", "credential_setup", "--keystone-user", "keystone",
                                             "--keystone-group", "keystone")),
                       ("bootstrap", KEYSTONE_BOOTSTRAP)):
        oneshot(s, "keystone", role, argv, mounts=mounts)
    server = start(s, "keystone", "server", mounts=mounts)
    wait_port(s, "keystone", server, 5000, 60)
    return client(s, server, ("keystone", "5000", "service-check"))


def check_glance(s: Session) -> str:
    mounts = (f"{s.volume('state')}:/var/lib/glance",
              mount("glance-api", "glance-api.conf", "/etc/glance/glance-api.conf"))
    oneshot(s, "glance-api", "db-sync", ("glance-manage", "--config-file", "/etc/glance/glance-api.conf",
                                         "db_sync"), mounts=mounts)
    server = start(s, "glance-api", "server", mounts=mounts)
    wait_port(s, "glance-api", server, 9292, 60)
    return client(s, server, ("glance", "9292"))


NOVA_CONF = "/etc/nova/nova.conf"
NOVA_SYNC = (("api-db-sync", ("nova-manage", "api_db", "sync")),
             ("map-cell0", ("nova-manage", "cell_v2", "map_cell0", "--database_connection",
                            "mysql+pymysql://nova:nova-check@127.0.0.1:3306/nova_cell0")),
             ("db-sync", ("nova-manage", "db", "sync")))


def check_nova_api(s: Session) -> str:
    db = start_mariadb(s, "nova-api/databases.sql")
    mounts = (mount("nova-api", "nova.conf", NOVA_CONF),)
    for role, argv in NOVA_SYNC:
        oneshot(s, "nova-api", role, argv, f"container:{db}", mounts, timeout=300)
    server = start(s, "nova-api", "server", f"container:{db}", mounts)
    wait_port(s, "nova-api", server, 8774, 90)
    return client(s, server, ("versions", "8774", '"id": "v2.1"'))


def check_neutron(s: Session) -> str:
    db = start_mariadb(s, "neutron-server/databases.sql")
    conf = ("/etc/neutron/neutron.conf", "/etc/neutron/plugins/ml2/ml2_conf.ini")
    mounts = (mount("neutron-server", "neutron.conf", conf[0]), mount("neutron-server", "ml2_conf.ini", conf[1]))
    oneshot(s, "neutron-server", "db-sync", ("neutron-db-manage", "--config-file", conf[0], "--config-file",
                                             conf[1], "upgrade", "heads"), f"container:{db}", mounts, timeout=300)
    server = start(s, "neutron-server", "server", f"container:{db}", mounts)
    wait_port(s, "neutron-server", server, 9696, 90)
    return client(s, server, ("versions", "9696", '"id": "v2.0"'))


@dataclass(frozen=True)
class Check:
    what: str
    images: Tuple[str, ...]  # every image the check runs, the service's first
    run: Callable[[Session], str]


CHECKS: Dict[str, Check] = {
    "memcached": Check("set and get over the text protocol", ("memcached", CLIENT_IMAGE), check_memcached),
    "mariadb": Check("install-db, query on socket and 127.0.0.1:3306", ("mariadb",), check_mariadb),
    "rabbitmq": Check("diagnostics ping, AMQP publish+consume", ("rabbitmq", CLIENT_IMAGE), check_rabbitmq),
    "keystone": Check("bootstrap, issue and validate a token", ("keystone", CLIENT_IMAGE), check_keystone),
    "glance-api": Check("db_sync, upload and download an image", ("glance-api", CLIENT_IMAGE), check_glance),
    "nova-api": Check("db sync on mariadb, GET / versions", ("nova-api", "mariadb", CLIENT_IMAGE), check_nova_api),
    "neutron-server": Check("db upgrade on mariadb, GET / versions", ("neutron-server", "mariadb", CLIENT_IMAGE),
                            check_neutron),
}


def missing_layouts(service: str, dist: str = "dist") -> List[str]:
    """The OCI layouts a check needs that `dist` does not hold."""
    return [os.path.join(dist, f"images.{i}", i) for i in CHECKS[service].images
            if not os.path.isfile(os.path.join(dist, f"images.{i}", i, "index.json"))]


@dataclass(frozen=True)
class Result:
    service: str
    what: str
    ok: bool
    seconds: float
    detail: str
    image: str = ""
    command: Tuple[str, ...] = ()
    logs: str = ""


def service_logs(s: Session) -> str:
    parts = []
    for name in s.services:  # in start order
        proc = s.podman_run(["logs", "--tail", str(LOG_LINES), name], 30)
        parts.append(f"--- podman logs --tail {LOG_LINES} {name}\n{tail(proc.stdout, LOG_LINES)}")
    return "\n".join(parts)


def run_check(service: str, podman: str = "podman", dist: str = "dist") -> Result:
    """One service's check, from a fresh namespace to a cleaned-up one."""
    what = CHECKS[service].what
    s = Session(podman, dist, service)
    start_time = time.monotonic()
    try:
        detail = CHECKS[service].run(s)
        return Result(service, what, True, time.monotonic() - start_time, detail.strip().splitlines()[-1])
    except CheckFailed as failed:
        logs = service_logs(s)
        first, newline, rest = failed.reason.partition("\n")
        hint = key_line(logs.encode()) if not first.startswith("exit ") else ""  # a one-shot's has its own
        reason = first + (f" -- log: {hint}" if hint else "") + newline + rest
        return Result(service, what, False, time.monotonic() - start_time, reason, failed.image,
                      failed.command, logs)
    finally:
        s.cleanup()


def report(result: Result) -> None:
    print(f"{'PASS' if result.ok else 'FAIL'}  {result.service:15} {result.seconds:6.1f} s  "
          f"{result.detail.splitlines()[0][:400] if result.detail else ''}", flush=True)
    if not result.ok:
        print(f"      image {result.image}, command: {' '.join(result.command)}")
        for line in (result.detail + "\n" + result.logs).strip().splitlines()[1:]:
            print(f"      | {line[:300]}")


def summary(results: Sequence[Result]) -> str:
    rows = [f"{'service':15} {'result':6} {'seconds':>8}  check"]
    rows += [f"{r.service:15} {'PASS' if r.ok else 'FAIL':6} {r.seconds:8.1f}  {r.what}" for r in results]
    passed = sum(r.ok for r in results)
    rows.append(f"{passed} of {len(results)} services passed in {sum(r.seconds for r in results):.0f} s")
    return "\n".join(rows)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("services", nargs="*", help=f"only these ({', '.join(CHECKS)})")
    parser.add_argument("--dist", default="dist", help="where `pants package` wrote the layouts (default: dist)")
    parser.add_argument("--podman", default=shutil.which("podman") or "podman")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    if shutil.which(args.podman) is None:
        parser.error(f"{args.podman} not found")
    unknown = [name for name in args.services if name not in CHECKS]
    if unknown:
        parser.error(f"no checks for {', '.join(unknown)}; services: {', '.join(CHECKS)}")
    results = []
    for service in args.services or list(CHECKS):
        results.append(run_check(service, args.podman, args.dist))
        report(results[-1])
    print("\n" + summary(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump([{"service": r.service, "check": r.what, "ok": r.ok, "seconds": round(r.seconds, 1),
                        "detail": r.detail, "image": r.image, "command": list(r.command), "logs": r.logs}
                       for r in results], f, indent=1)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
