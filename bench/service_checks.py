#!/usr/bin/env python3
"""Service checks of the image set: each service is run as kolla-ansible runs it and answers a real request.

    ./pants package ::                      # build the layouts first
    python3 bench/service_checks.py         # every service; exits non-zero if any fails
    python3 bench/service_checks.py keystone mariadb --json out.json

Decisions:
- Kolla's runtime contract, as kolla-ansible drives it. Every container of a service image runs the
  image as built (its own User, Entrypoint and Cmd `kolla_start`; no --user, no command) with what
  kolla-ansible gives it: the service's config directory bench/service-config/<service>/ bind-mounted
  read-only at /var/lib/kolla/config_files (config.json: command, config_files, directories,
  permissions; the files it copies into place), KOLLA_CONFIG_STRATEGY=COPY_ALWAYS, KOLLA_SERVICE_NAME
  (kolla-ansible's container name, _ -> -), a kolla_logs volume on /var/log/kolla and named volumes
  for state (datadir, fernet keys, glance store, rabbitmq node). config.json entries follow
  kolla-ansible's templates/<service>.json.j2; the `permissions` and `directories` entries are only
  the ones those templates have (log directories; /var/lib/mysql, /var/lib/rabbitmq, /var/lib/glance
  and /etc/keystone/fernet-keys chowned), with /var/log/kolla left to our kolla_set_configs (the
  templates give it to fluentd:kolla; ours sets it up as root:kolla 2775). Nothing else is created,
  chowned or copied in: no paste .ini, no directory an image's packages should own. A check that
  fails names an image gap.
- Bootstraps as kolla-ansible runs them: a one-shot container of the service's image with the same
  config directory and volumes, KOLLA_BOOTSTRAP (empty, as kolla-ansible sets it) and the default
  command, so the image's kolla_extend_start does the work: keystone-manage db_sync, glance-manage
  db_sync, nova-manage api_db sync, neutron-db-manage upgrade head, placement-manage db sync, and
  mariadb-install-db with
  BOOTSTRAP_ARGS (the flags of Debian's postinst). Explicit commands where kolla-ansible gives one:
  `bash -c 'sudo -E kolla_set_configs && keystone-manage fernet_setup ...'`, `... nova-manage
  cell_v2 map_cell0 ...` and the cell database's `nova-manage db sync` (nova-conductor's job). `keystone-manage bootstrap` goes through `podman exec` into the running keystone
  container, where kolla-ansible execs kolla_keystone_bootstrap (which our image lacks). No
  rabbitmq bootstrap container: the image has no hook for it, and the node writes its own cookie.
- The config.json command of each image is the one docs/images.md gives (Debian's binaries and
  paths, not those of Kolla's source images). Services log to stderr rather than /var/log/kolla
  files, so a failure shows the service's own log.
- Kolla's healthcheck for the image (healthcheck_listen memcached 11211, healthcheck_rabbitmq,
  healthcheck.sh --connect --galera_online, healthcheck_curl on the API) runs through `podman exec`
  in the running service container, retried until it passes within a bounded time; it must pass
  before the request is made. mariadb runs as a one-node Galera cluster (galera.cnf, as
  kolla-ansible renders it for one host), so --galera_online means something.
- nova-api, neutron-server and placement-api use the mariadb image as their database: mariadb is the first
  container of the check, the bootstraps and the service join its namespace. keystone and glance use
  SQLite in their state volume (/var/lib/keystone, /var/lib/glance). No Keystone and no message bus
  behind glance, nova, neutron or placement: noauth, and GET / needs neither. SQL (accounts, databases) goes
  through `podman exec` on mariadb's socket as the mysql account (bench/service-config/sql/).
- Networking: the first container of a check runs with `--network none --name X` (the service, or
  mariadb where a service needs it; keystone's and glance's standalone bootstraps too), the others
  join it with `--network container:X`, all on 127.0.0.1. No bridge network, no pod (`podman pod
  create` fails here), no other address. Clients run in a container of our images in that namespace:
  python3 from openstack-base with bench/service-config/clients/client.py (kombu for AMQP),
  mariadb's own client.
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
KOLLA_CONFIG_DIR = "/var/lib/kolla/config_files"
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
    variant: str = ""  # "source": the service's image from images/source/ (the PyPI venv variant)
    service_image: str = ""

    def podman_run(self, argv: Sequence[str], timeout: float, stdin: Optional[bytes] = None
                   ) -> subprocess.CompletedProcess:
        try:
            return subprocess.run([self.podman, *argv], input=stdin, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired as expired:
            return subprocess.CompletedProcess(expired.cmd, 124, (expired.output or b"")
                                               + f"\n(timed out after {timeout:.0f} s)".encode())

    def layout(self, name: str) -> str:
        """The service's image from `variant` (images/<variant>/<name>); every other image is the Debian one."""
        directory = f"images.{self.variant}.{name}" if self.variant and name == self.service_image else f"images.{name}"
        return os.path.join(self.dist, directory, name)

    def config_dir(self, service: str) -> str:
        """bench/service-config/<variant>/<service> where the variant needs its own, else the Debian one's."""
        variant = os.path.join(CONFIG, self.variant, service) if self.variant else ""
        return variant if variant and os.path.isdir(variant) else os.path.join(CONFIG, service)

    def image(self, name: str) -> str:
        if name not in self.images:
            path = self.layout(name)
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
        """A named volume of this check (created on first use): kolla_logs, or a service's state."""
        name = f"svcchk-{os.getpid()}-{self.service}-{role}"
        if name in self.volumes:
            return name
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


KEY_LINE = re.compile(r"CRITICAL|\[ERROR\]|^ERROR: |\b\w+(Error|Exception|NotFound): |Permission denied|No such file|"
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


def sql(name: str) -> bytes:
    """An SQL file of bench/service-config/sql/, run on mariadb by the check (not a config file)."""
    with open(os.path.join(CONFIG, "sql", name), "rb") as f:
        return f.read()


@dataclass(frozen=True)
class Kolla:
    """What kolla-ansible gives one container: its container name (KOLLA_SERVICE_NAME), the service's
    config directory, the kolla_logs volume, state volumes, and any further environment."""
    name: str
    service: str
    volumes: Tuple[str, ...] = ()
    env: Tuple[str, ...] = ()

    def args(self, s: Session) -> List[str]:
        args = ["-e", "KOLLA_CONFIG_STRATEGY=COPY_ALWAYS", "-e", f"KOLLA_SERVICE_NAME={self.name.replace('_', '-')}"]
        for item in self.env:
            args += ["-e", item]
        for m in (f"{s.config_dir(self.service)}:{KOLLA_CONFIG_DIR}:ro",
                  f"{s.volume('kolla_logs')}:/var/log/kolla", *self.volumes):
            args += ["-v", m]
        return args

    def bootstrap(self, *env: str) -> "Kolla":
        """The same container as a bootstrap (kolla-ansible names it bootstrap_<name>), with more environment."""
        return Kolla(f"bootstrap_{self.name}", self.service, self.volumes, (*self.env, *env))


def run_args(s: Session, kolla: Optional[Kolla], network: str, mounts: Sequence[str] = (),
             detach: bool = False, role: str = "") -> List[str]:
    name = s.name(kolla.name if kolla else role)
    args = [*RUNTIME, "run", "-d" if detach else "--rm", "--name", name, f"--network={network}", *LIMITS]
    for m in mounts:
        args += ["-v", m]
    return args + (kolla.args(s) if kolla else [])


def failure(proc: subprocess.CompletedProcess, what: str = "its output") -> str:
    return (f"exit {proc.returncode}: {key_line(proc.stdout)}\n"
            f"--- {what}, last {LOG_LINES} lines\n{tail(proc.stdout, LOG_LINES)}")


def oneshot(s: Session, image: str, kolla: Optional[Kolla], argv: Sequence[str] = (), network: str = "none",
            mounts: Sequence[str] = (), timeout: float = 180.0, role: str = "") -> str:
    """Run `image` to completion as its default user: with `argv` as its command, or its own command (a
    Kolla bootstrap); its output is returned, or is the failure's log."""
    command = tuple(argv) or default_command(s, image, kolla)
    proc = s.podman_run([*run_args(s, kolla, network, mounts, role=role), s.image(image), *argv], timeout)
    if proc.returncode:
        raise CheckFailed(image, command, failure(proc))
    return proc.stdout.decode(errors="replace")


def kolla_oneshot(s: Session, image: str, kolla: Kolla, command: str, network: str = "none",
                  timeout: float = 300.0) -> str:
    """kolla-ansible's explicit-command bootstrap: `bash -c 'sudo -E kolla_set_configs && COMMAND'`."""
    return oneshot(s, image, kolla, ("bash", "-c", f"sudo -E kolla_set_configs && {command}"), network,
                   timeout=timeout)


def default_command(s: Session, image: str, kolla: Optional[Kolla] = None) -> Tuple[str, ...]:
    """The image config's User, Entrypoint and Cmd, for the record: `podman run` is given none of them."""
    proc = s.podman_run(["image", "inspect", "--format", "{{json .Config}}", s.image(image)], 30)
    config = json.loads(proc.stdout or b"{}") if proc.returncode == 0 else {}
    env = tuple(e for e in (kolla.env if kolla else ()) if e.startswith(("KOLLA_BOOTSTRAP", "BOOTSTRAP_ARGS")))
    return (f"(user {config.get('User') or 'root'}{', ' if env else ''}{' '.join(env)})",
            *(config.get("Entrypoint") or ()), *(config.get("Cmd") or ()))


def start(s: Session, image: str, kolla: Kolla, network: str = "none") -> str:
    """Start the image's own Entrypoint and Cmd as its own User, detached; returns the container's name."""
    args = run_args(s, kolla, network, detach=True)
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
    return oneshot(s, image or CLIENT_IMAGE, None, command, f"container:{service}",
                   () if image else (CLIENT_MOUNT,), timeout=timeout, role="client")


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
                                                            f"`{' '.join(argv)}`; last: {last.splitlines()[0]}")
        try:
            return podman_exec(s, image, container, argv, timeout=max(5.0, min(30.0, deadline - time.monotonic())))
        except CheckFailed as failed:
            last = failed.reason
        time.sleep(2)
    raise CheckFailed(image, argv, f"did not succeed within {seconds:.0f} s; last: {last}")


def healthcheck(s: Session, image: str, container: str, seconds: float = 90.0) -> str:
    """Kolla's healthcheck of `image` (HEALTHCHECKS) in its running container, until it passes."""
    output = wait_exec(s, image, container, HEALTHCHECKS[image], seconds).strip()
    return f"healthcheck `{' '.join(HEALTHCHECKS[image])}` passed" + (f" ({output.splitlines()[-1]})"
                                                                       if output else "")


# kolla-ansible's healthcheck test of each image (roles/<service>/defaults/main.yml), on 127.0.0.1.
HEALTHCHECKS: Dict[str, Tuple[str, ...]] = {
    "memcached": ("healthcheck_listen", "memcached", "11211"),
    "rabbitmq": ("healthcheck_rabbitmq",),
    "mariadb": ("/usr/bin/healthcheck.sh", "--defaults-file", "/etc/mysql/healthcheck.cnf", "--connect",
                "--galera_online"),
    "keystone": ("healthcheck_curl", "http://127.0.0.1:5000/healthcheck"),
    "glance-api": ("healthcheck_curl", "http://127.0.0.1:9292/healthcheck"),
    "nova-api": ("healthcheck_curl", "http://127.0.0.1:8774"),
    "neutron-server": ("healthcheck_curl", "http://127.0.0.1:9696/healthcheck"),
    "placement-api": ("healthcheck_curl", "http://127.0.0.1:8780"),
}


# --- the checks -------------------------------------------------------------------------------------------


def check_memcached(s: Session) -> str:
    server = start(s, "memcached", Kolla("memcached", "memcached"))
    health = healthcheck(s, "memcached", server, 30)
    return f"{health}; {client(s, server, ('memcached', '11211')).strip()}"


# Debian's mariadb-server postinst flags, without root; the hook adds --datadir and --skip-test-db.
MARIADB_BOOTSTRAP_ARGS = "BOOTSTRAP_ARGS=--rpm --cross-bootstrap --user=mysql --disable-log-bin"


def start_mariadb(s: Session, *sql_files: str) -> Tuple[str, str]:
    """A bootstrapped one-node Galera mariadb, first in its network namespace, healthy, with the monitor
    account of its healthcheck and then `sql_files` run on it; (its container, its healthcheck line)."""
    mariadb = Kolla("mariadb", "mariadb", (f"{s.volume('mariadb')}:/var/lib/mysql",))
    oneshot(s, "mariadb", mariadb.bootstrap("KOLLA_BOOTSTRAP=", MARIADB_BOOTSTRAP_ARGS))
    db = start(s, "mariadb", mariadb)
    wait_exec(s, "mariadb", db, ("mariadb-admin", "--connect-timeout=5", "ping"), 90)
    for name in ("mariadb-monitor.sql", *sql_files):
        podman_exec(s, "mariadb", db, ("mariadb", "--batch"), stdin=sql(name))
    return db, healthcheck(s, "mariadb", db, 60)


def check_mariadb(s: Session) -> str:
    db, health = start_mariadb(s, "mariadb-check-user.sql")
    query = "SELECT CONCAT(CURRENT_USER(), ' ', VERSION())"
    on_socket = podman_exec(s, "mariadb", db, ("mariadb", "--batch", "--skip-column-names", "-e", query))
    on_tcp = client(s, db, ("mariadb", "--batch", "--skip-column-names", "--protocol=tcp", "-h", "127.0.0.1",
                            "-P", "3306", "-u", "check", "-pservice-check", "-e", query), image="mariadb")
    return f"{health}; socket: {on_socket.strip()}; tcp: {on_tcp.strip().splitlines()[-1]}"


def check_rabbitmq(s: Session) -> str:
    server = start(s, "rabbitmq", Kolla("rabbitmq", "rabbitmq", (f"{s.volume('rabbitmq')}:/var/lib/rabbitmq",)))
    health = healthcheck(s, "rabbitmq", server, 120)
    amqp = client(s, server, ("amqp", "5672"))
    return f"{health}; {amqp.strip().splitlines()[-1]}"


# kolla-ansible's register.yml execs kolla_keystone_bootstrap in the keystone container; that wraps this.
KEYSTONE_BOOTSTRAP = ("keystone-manage", "bootstrap", "--bootstrap-username", "admin", "--bootstrap-password",
                      "service-check", "--bootstrap-project-name", "admin", "--bootstrap-role-name", "admin",
                      "--bootstrap-admin-url", "http://127.0.0.1:5000", "--bootstrap-internal-url",
                      "http://127.0.0.1:5000", "--bootstrap-public-url", "http://127.0.0.1:5000",
                      "--bootstrap-region-id", "RegionOne")
FERNET_SETUP = ("keystone-manage --config-file /etc/keystone/keystone.conf fernet_setup --keystone-user keystone "
                "--keystone-group keystone")


def check_keystone(s: Session) -> str:
    keystone = Kolla("keystone", "keystone", (f"{s.volume('keystone')}:/var/lib/keystone",
                                              f"{s.volume('keystone_fernet_tokens')}:/etc/keystone/fernet-keys"))
    oneshot(s, "keystone", keystone.bootstrap("KOLLA_BOOTSTRAP="))  # kolla_extend_start: keystone-manage db_sync
    kolla_oneshot(s, "keystone", Kolla("bootstrap_keystone_fernet", "keystone", keystone.volumes), FERNET_SETUP)
    server = start(s, "keystone", keystone)
    health = healthcheck(s, "keystone", server)
    podman_exec(s, "keystone", server, KEYSTONE_BOOTSTRAP, timeout=120)
    return f"{health}; {client(s, server, ('keystone', '5000', 'service-check')).strip()}"


def check_glance(s: Session) -> str:
    glance = Kolla("glance_api", "glance-api", (f"{s.volume('glance')}:/var/lib/glance",))
    oneshot(s, "glance-api", glance.bootstrap("KOLLA_BOOTSTRAP="))  # kolla_extend_start: glance-manage db_sync
    server = start(s, "glance-api", glance)
    health = healthcheck(s, "glance-api", server)
    return f"{health}; {client(s, server, ('glance', '9292')).strip()}"


NOVA_VERSION = '"id": "v2.1"'
NOVA_CELL0 = "mysql+pymysql://nova:nova-check@127.0.0.1:3306/nova_cell0"
NOVA_BOOTSTRAPS = (("nova_api_map_cell0", "sudo -E kolla_copy_cacerts && nova-manage cell_v2 map_cell0 "
                                          f"--database_connection {NOVA_CELL0}"),
                   ("nova_cell_bootstrap", "nova-manage db sync"))  # kolla-ansible: on nova-conductor, Kolla's hook


def start_api_on_mariadb(s: Session, image: str, name: str, sql: str,
                         jobs: Sequence[Tuple[str, str]] = ()) -> Tuple[str, str]:
    """An API service over a database in the mariadb image, as kolla-ansible runs it: the KOLLA_BOOTSTRAP
    job of its image (its kolla_extend_start syncs the schema), any explicit jobs, then the service and
    its healthcheck. Returns the service container and the healthcheck's line."""
    db, _ = start_mariadb(s, sql)
    network = f"container:{db}"
    oneshot(s, image, Kolla(name, image).bootstrap("KOLLA_BOOTSTRAP="), network=network)
    for job, command in jobs:
        kolla_oneshot(s, image, Kolla(job, image), command, network)
    server = start(s, image, Kolla(name, image), network)
    return server, healthcheck(s, image, server)


def check_nova_api(s: Session) -> str:
    # kolla_extend_start: nova-manage api_db sync; then cell0's mapping and the cell database's schema
    server, health = start_api_on_mariadb(s, "nova-api", "nova_api", "nova-api-databases.sql", NOVA_BOOTSTRAPS)
    return f"{health}; {client(s, server, ('versions', '8774', NOVA_VERSION)).strip()}"


NEUTRON_VERSION = '"id": "v2.0"'


def check_neutron(s: Session) -> str:
    # kolla_extend_start: neutron-db-manage upgrade head
    server, health = start_api_on_mariadb(s, "neutron-server", "neutron_server", "neutron-server-databases.sql")
    return f"{health}; {client(s, server, ('versions', '9696', NEUTRON_VERSION)).strip()}"


PLACEMENT_VERSION = '"id": "v1.0"'


def check_placement(s: Session) -> str:
    # kolla_extend_start: placement-manage db sync
    server, health = start_api_on_mariadb(s, "placement-api", "placement_api", "placement-api-databases.sql")
    version = client(s, server, ("versions", "8780", PLACEMENT_VERSION)).strip()
    return f"{health}; {version}; {client(s, server, ('placement', '8780')).strip()}"


@dataclass(frozen=True)
class Check:
    what: str
    images: Tuple[str, ...]  # every image the check runs, the service's first
    run: Callable[[Session], str]


CHECKS: Dict[str, Check] = {
    "memcached": Check("healthcheck_listen, set and get over the text protocol", ("memcached", CLIENT_IMAGE),
                       check_memcached),
    "mariadb": Check("KOLLA_BOOTSTRAP, healthcheck.sh, query on socket and 127.0.0.1:3306", ("mariadb",),
                     check_mariadb),
    "rabbitmq": Check("healthcheck_rabbitmq, AMQP publish+consume", ("rabbitmq", CLIENT_IMAGE), check_rabbitmq),
    "keystone": Check("KOLLA_BOOTSTRAP, fernet_setup, bootstrap, healthcheck_curl, token issued and validated",
                      ("keystone", CLIENT_IMAGE), check_keystone),
    "glance-api": Check("db_sync, healthcheck_curl, upload and download an image", ("glance-api", CLIENT_IMAGE),
                        check_glance),
    "nova-api": Check("db syncs on mariadb, healthcheck_curl, GET / versions", ("nova-api", "mariadb", CLIENT_IMAGE),
                      check_nova_api),
    "neutron-server": Check("db upgrade on mariadb, healthcheck_curl, GET / versions",
                            ("neutron-server", "mariadb", CLIENT_IMAGE), check_neutron),
    "placement-api": Check("db sync on mariadb, healthcheck_curl, GET / versions, resource provider created and "
                           "read back", ("placement-api", "mariadb", CLIENT_IMAGE), check_placement),
}


def missing_layouts(service: str, dist: str = "dist", variant: str = "") -> List[str]:
    """The OCI layouts a check needs that `dist` does not hold."""
    s = Session("podman", dist, service, variant=variant, service_image=CHECKS[service].images[0])
    return [s.layout(i) for i in CHECKS[service].images if not os.path.isfile(os.path.join(s.layout(i), "index.json"))]


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


def run_check(service: str, podman: str = "podman", dist: str = "dist", variant: str = "") -> Result:
    """One service's check, from a fresh namespace to a cleaned-up one."""
    what = CHECKS[service].what
    s = Session(podman, dist, service, variant=variant, service_image=CHECKS[service].images[0])
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
    parser.add_argument("--variant", default="", help="check the service images of images/<VARIANT>/ (`source`: "
                        "OpenStack from PyPI in a venv); databases and clients stay the Debian images")
    args = parser.parse_args(argv)
    if shutil.which(args.podman) is None:
        parser.error(f"{args.podman} not found")
    unknown = [name for name in args.services if name not in CHECKS]
    if unknown:
        parser.error(f"no checks for {', '.join(unknown)}; services: {', '.join(CHECKS)}")
    results = []
    for service in args.services or list(CHECKS):
        results.append(run_check(service, args.podman, args.dist, args.variant))
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
