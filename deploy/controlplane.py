"""A one-machine OpenStack control plane from the images in dist/, run as kolla-ansible runs it.

    ./pants package ::
    deploy/up.sh                                  # render, bootstrap, start, wait until all healthy
    python3 -m deploy.controlplane status         # each container's state and healthcheck
    python3 -m deploy.controlplane verify         # a real client exercises the cloud
    python3 -m deploy.controlplane upgrade keystone --layout OTHER/dist/images.keystone/keystone
    deploy/down.sh [--keep-volumes]
    deploy/up.sh --source keystone,nova,placement # those projects from images/source (OpenStack from PyPI)

Decisions:
- kolla-ansible's contract and nothing more: every container gets its rendered config directory
  read-only at /var/lib/kolla/config_files (config.json + files), KOLLA_CONFIG_STRATEGY=COPY_ALWAYS,
  KOLLA_SERVICE_NAME, the kolla_logs volume, named volumes for state, kolla-ansible's healthcheck,
  and the image's own user and CMD (kolla_start). Schemas are made by the images' own
  kolla_extend_start (KOLLA_BOOTSTRAP, KOLLA_UPGRADE, KOLLA_FINISH_UPGRADE); jobs that
  kolla-ansible runs as explicit commands (fernet_setup, cell mapping) are run the same way.
- One network namespace: mariadb, the first container, has `--network none`; every other container
  joins it (`--network container:mariadb`), and all talk over 127.0.0.1. No bridge, no other address.
- Templates in deploy/config/<dir>/ are the readable source, like kolla-ansible's templates: `${name}`
  is a setting of deploy/globals.ini or a password. Passwords are generated on first `up` into the
  state directory (like kolla-genpwd) and kept there with the rendered /etc/kolla tree and clouds.yaml.
- Idempotent where kolla-ansible is: a second `up` over kept volumes skips bootstraps whose state
  already exists (mariadb's datadir, fernet keys) and re-runs the schema jobs, which are no-ops.
- Keystone accounts, services and endpoints are registered by a client in the config-tools image
  (openstacksdk), in the same namespace: config-time tools stay out of the runtime images.
- Install type per project, as kolla-ansible's per-service image variables choose it: `up --source
  keystone,nova,placement` runs every container of those projects from its images/source variant
  (dist/images.source.<image>), the rest from the Debian images. A project is all or nothing (nova 34
  cannot join nova 26's services), and source nova needs source placement (SOURCE_NEEDS). The
  choice is kept in the state directory (source.json), so `upgrade` and a second `up` render the
  same config; deploy/config/source/<dir>/ holds the files a source image needs instead of its
  Debian twin's (nova-api's uWSGI command).

Standard library only (Python 3.9+).
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import re
import secrets
import string
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from deploy.podman import HEALTH_TIMING, LIMITS, DeployError, Podman

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
TEMPLATES = os.path.join(HERE, "config")
KOLLA_CONFIG_DIR = "/var/lib/kolla/config_files"
KEYSTONE_URL = "http://127.0.0.1:5000"
CLIENT_IMAGE = "config-tools"


@dataclass(frozen=True)
class Service:
    """One container of the plane, as kolla-ansible's role defaults describe it."""
    name: str                        # kolla-ansible's container name
    image: str                       # the image in dist/
    templates: Tuple[str, ...]       # deploy/config/ directories rendered into its config directory
    healthcheck: str                 # kolla-ansible's healthcheck test (CMD-SHELL)
    volumes: Tuple[str, ...] = ()    # named volume:path
    bootstrap: bool = False          # its image's kolla_extend_start has a KOLLA_BOOTSTRAP job
    upgrade: Tuple[str, ...] = ()    # the KOLLA_* jobs of an upgrade, in order, around the restart

    @property
    def config_dir(self) -> str:
        return self.name.replace("_", "-")

    @property
    def project(self) -> str:
        """kolla-ansible's project (role) of the container: nova for nova_api, nova_compute, ..."""
        return self.name.split("_")[0]


def api_check(port: int, path: str = "") -> str:
    return f"healthcheck_curl http://127.0.0.1:{port}{path}"


MARIADB = Service("mariadb", "mariadb", ("mariadb",),
                  "/usr/bin/healthcheck.sh --defaults-file /etc/mysql/healthcheck.cnf --connect --galera_online",
                  ("mariadb:/var/lib/mysql",))
SERVICES: Tuple[Service, ...] = (
    MARIADB,
    Service("memcached", "memcached", ("memcached",), "healthcheck_listen memcached 11211"),
    Service("rabbitmq", "rabbitmq", ("rabbitmq",), "healthcheck_rabbitmq", ("rabbitmq:/var/lib/rabbitmq",)),
    Service("keystone", "keystone", ("keystone",), api_check(5000, "/healthcheck"),
            ("keystone_fernet_tokens:/etc/keystone/fernet-keys",), True,
            ("KOLLA_UPGRADE", "restart", "KOLLA_FINISH_UPGRADE")),
    Service("glance_api", "glance-api", ("glance-api",), api_check(9292, "/healthcheck"),
            ("glance:/var/lib/glance",), True, ("KOLLA_UPGRADE", "restart")),
    Service("placement_api", "placement-api", ("placement-api",), api_check(8780), (), True,
            ("KOLLA_UPGRADE", "restart")),
    Service("nova_api", "nova-api", ("nova-api", "nova"), api_check(8774), (), True, ("KOLLA_UPGRADE", "restart")),
    Service("nova_scheduler", "nova-scheduler", ("nova-scheduler", "nova"), "healthcheck_port nova-scheduler 5672"),
    Service("nova_conductor", "nova-conductor", ("nova-conductor", "nova"), "healthcheck_port nova-conductor 5672"),
    Service("nova_compute", "nova-compute", ("nova-compute", "nova"), "healthcheck_port nova-compute 5672",
            ("nova_compute:/var/lib/nova",)),
    Service("neutron_server", "neutron-server", ("neutron-server",), api_check(9696, "/healthcheck"), (), True,
            ("KOLLA_UPGRADE", "restart")),
)
BY_NAME: Dict[str, Service] = {s.name: s for s in SERVICES}
# The images built from PyPI too (images/source/<image>); a project can run from source when all its images are.
SOURCE_IMAGES = frozenset({"keystone", "nova-api", "nova-conductor", "nova-scheduler", "nova-compute",
                           "placement-api"})
SOURCE_PROJECTS = tuple(sorted({s.project for s in SERVICES}
                               - {s.project for s in SERVICES if s.image not in SOURCE_IMAGES}))
# A source project that cannot work beside another project's Debian image: (project, needs, why).
SOURCE_NEEDS = (("nova", "placement", "nova 34's compute reports os-traits 3.9 traits that bookworm's placement 8 "
                                      "refuses, so no server can be scheduled"),)
VOLUMES = tuple(sorted({"kolla_logs", *(v.split(":")[0] for s in SERVICES for v in s.volumes)}))

# Databases and their accounts: (database, account); the password is <account>_database_password.
DATABASES = (("keystone", "keystone"), ("glance", "glance"), ("placement", "placement"), ("nova_api", "nova"),
             ("nova", "nova"), ("nova_cell0", "nova"), ("neutron", "neutron"))
# Keystone service accounts and catalog entries: (account, service name, type, endpoint URL).
CATALOG = (("glance", "glance", "image", "http://127.0.0.1:9292"),
           ("placement", "placement", "placement", "http://127.0.0.1:8780"),
           ("nova", "nova", "compute", "http://127.0.0.1:8774/v2.1"),
           ("neutron", "neutron", "network", "http://127.0.0.1:9696"))
PASSWORDS = ("mariadb_monitor_password", "rabbitmq_password", "keystone_admin_password",
             *sorted({f"{account}_database_password" for _, account in DATABASES}),
             *(f"{account}_keystone_password" for account, *_ in CATALOG))


@dataclass(frozen=True)
class Plane:
    """One deployment: the engine, where its images and state live, and its container name prefix."""
    podman: Podman
    dist: str
    state_dir: str
    prefix: str = ""
    source: Tuple[str, ...] = ()  # the projects whose containers run their images/source variant
    images: Dict[str, str] = field(default_factory=dict)  # image name -> podman image id, loaded once

    def container(self, name: str) -> str:
        return self.prefix + name

    def volume(self, name: str) -> str:
        return self.prefix + name

    @property
    def network_owner(self) -> str:
        return self.container(MARIADB.name)

    def path(self, *parts: str) -> str:
        return os.path.join(self.state_dir, *parts)

    def is_source(self, service: Service) -> bool:
        return service.project in self.source

    def layout(self, name: str) -> str:
        """dist/images.<name>/<name>, or images.source.<name>/<name> for an image of a source project."""
        source = any(s.image == name and self.is_source(s) for s in SERVICES)
        return os.path.join(self.dist, f"images.source.{name}" if source else f"images.{name}", name)

    def image(self, name: str) -> str:
        if name not in self.images:
            layout = self.layout(name)
            if not os.path.isfile(os.path.join(layout, "index.json")):
                raise DeployError(name, "load image", f"no OCI layout at {layout}: run ./pants package :: first")
            self.images[name] = self.podman.load(layout)
        return self.images[name]


# --- settings and config rendering -----------------------------------------------------------------


def settings(plane: Plane) -> Dict[str, str]:
    """globals.ini, the passwords (generated on first use) and the derived keystone_url."""
    parser = configparser.ConfigParser(inline_comment_prefixes=("#",))
    parser.read(os.path.join(HERE, "globals.ini"))
    values = dict(parser["deployment"])
    values.update(passwords(plane))
    values["keystone_url"] = KEYSTONE_URL
    return values


def passwords(plane: Plane) -> Dict[str, str]:
    path = plane.path("passwords.json")
    known = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            known = json.load(f)
    missing = [name for name in PASSWORDS if name not in known]
    if missing:
        known.update({name: secrets.token_hex(16) for name in missing})
        write_private(path, json.dumps(known, indent=1, sort_keys=True) + "\n")
    return known


def write_private(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def render(template_path: str, values: Dict[str, str]) -> str:
    with open(template_path, encoding="utf-8") as f:
        text = f.read()
    try:
        return string.Template(text).substitute(values)
    except KeyError as missing:
        raise DeployError("config", "render", f"{os.path.relpath(template_path, REPO)} uses ${{{missing.args[0]}}}, "
                          "which is neither in deploy/globals.ini nor a password: add it to globals.ini") from None
    except ValueError as bad:
        raise DeployError("config", "render", f"{os.path.relpath(template_path, REPO)}: {bad} "
                          "(write a literal $ as $$)") from None


def render_config(plane: Plane, values: Dict[str, str], templates: str = TEMPLATES) -> None:
    """/etc/kolla/<service>/ of every service under the state directory, as kolla-ansible writes it.
    A config.json that is not JSON is refused here, naming its template, before anything starts."""
    for service in SERVICES:
        target = plane.path("etc", "kolla", service.config_dir)
        os.makedirs(target, exist_ok=True)
        for directory in service.templates:
            for name, path in template_files(templates, directory, plane.is_source(service)).items():
                text = render(path, values)
                if name.endswith(".json"):
                    check_json(path, text)
                write_private(os.path.join(target, name), text)
    write_private(plane.path("clouds.yaml"), clouds_yaml(values))


def template_files(templates: str, directory: str, source: bool) -> Dict[str, str]:
    """File name -> template of one config directory: <dir>/, with source/<dir>/'s files in their
    place for a container that runs a source image."""
    files = {name: os.path.join(templates, directory, name) for name in os.listdir(os.path.join(templates, directory))}
    override = os.path.join(templates, "source", directory)
    if source and os.path.isdir(override):
        files.update({name: os.path.join(override, name) for name in os.listdir(override)})
    return dict(sorted(files.items()))


def check_json(template_path: str, text: str) -> None:
    try:
        json.loads(text)
    except ValueError as bad:
        raise DeployError("config", "render", f"{os.path.relpath(template_path, REPO)} is not JSON once rendered: "
                          f"{bad}") from None


def clouds_yaml(values: Dict[str, str]) -> str:
    return ("clouds:\n  controlplane:\n    auth:\n"
            f"      auth_url: {KEYSTONE_URL}/v3\n      username: admin\n"
            f"      password: {values['keystone_admin_password']}\n      project_name: admin\n"
            "      user_domain_name: Default\n      project_domain_name: Default\n"
            f"    region_name: {values['region']}\n    interface: internal\n    identity_api_version: 3\n")


# --- containers as kolla-ansible runs them ---------------------------------------------------------


def kolla_args(plane: Plane, service: Service, name: str, env: Sequence[str] = ()) -> List[str]:
    """`podman run` options of one container of `service`: name, namespace, limits, kolla-ansible's
    environment and mounts."""
    # mariadb owns the namespace; its bootstrap runs before it exists, on its own.
    network = "none" if service is MARIADB else f"container:{plane.network_owner}"
    args = ["--name", name, f"--network={network}", *LIMITS,
            "-e", "KOLLA_CONFIG_STRATEGY=COPY_ALWAYS", "-e", f"KOLLA_SERVICE_NAME={service.name.replace('_', '-')}"]
    for item in env:
        args += ["-e", item]
    for mount in (f"{plane.path('etc', 'kolla', service.config_dir)}:{KOLLA_CONFIG_DIR}:ro",
                  f"{plane.volume('kolla_logs')}:/var/log/kolla",
                  *(plane.prefix + volume for volume in service.volumes)):
        args += ["-v", mount]
    return args


def start(plane: Plane, service: Service) -> None:
    """The service's long-running container: the image's own user and command, its healthcheck declared."""
    name = plane.container(service.name)
    plane.podman.ok(["run", "-d", *kolla_args(plane, service, name), "--health-cmd", service.healthcheck,
                     *HEALTH_TIMING, plane.image(service.image)], 120, name, "start")


def job(plane: Plane, service: Service, name: str, env: Sequence[str] = (), command: str = "",
        timeout: float = 600) -> str:
    """A one-off container of `service`'s image: its default command with `env` (a KOLLA_* bootstrap
    job), or kolla-ansible's explicit `sudo -E kolla_set_configs && COMMAND`."""
    argv = ("bash", "-c", f"sudo -E kolla_set_configs && {command}") if command else ()
    args = ["run", "--rm", *kolla_args(plane, service, plane.container(name), env), plane.image(service.image), *argv]
    proc = plane.podman.run(args, timeout)
    if proc.returncode:
        raise DeployError(plane.container(name), command or " ".join(env) or "bootstrap",
                          f"exit {proc.returncode}", proc.stdout.decode(errors="replace")[-4000:])
    return proc.stdout.decode(errors="replace")


def wait_healthy(plane: Plane, services: Sequence[Service], seconds: float = 300) -> Dict[str, float]:
    """Run each container's declared healthcheck until it passes; seconds each took from the call."""
    start_time, deadline = time.monotonic(), time.monotonic() + seconds
    pending, healthy, last = [plane.container(s.name) for s in services], {}, {}
    while pending:
        for name in list(pending):
            state = plane.podman.state(name)
            if not state.running:
                raise DeployError(name, "wait for healthy", state.describe(), plane.podman.report(name))
            passed, last[name] = plane.podman.healthcheck(name)
            if passed:
                pending.remove(name)
                healthy[name] = time.monotonic() - start_time
                progress(f"  {name} healthy after {healthy[name]:.0f} s")
        if pending and time.monotonic() > deadline:
            name = pending[0]
            raise DeployError(name, "wait for healthy", f"not healthy within {seconds:.0f} s; last: {last[name]}",
                              plane.podman.report(name))
        if pending:
            time.sleep(2)
    return healthy


def exec_in(plane: Plane, service: Service, argv: Sequence[str], stdin: Optional[bytes] = None,
            timeout: float = 120) -> str:
    name = plane.container(service.name)
    return plane.podman.ok(["exec", *(["-i"] if stdin is not None else []), name, *argv], timeout, name,
                           " ".join(argv), stdin)


def client(plane: Plane, script: str, args: Sequence[str] = (), stdin: Optional[bytes] = None,
           timeout: float = 600) -> str:
    """deploy/client/<script> with openstacksdk in the config-tools image, in the plane's namespace."""
    name = plane.container(f"client-{os.getpid()}")
    argv = ["run", "--rm", "-i", "--name", name, f"--network=container:{plane.network_owner}", *LIMITS,
            "-e", "OS_CLOUD=controlplane", "-v", f"{plane.path('clouds.yaml')}:/etc/openstack/clouds.yaml:ro",
            "-v", f"{os.path.join(HERE, 'client')}:/client:ro", plane.image(CLIENT_IMAGE),
            "python3", f"/client/{script}", *args]
    proc = plane.podman.run(argv, timeout, stdin or b"")
    if proc.returncode:
        raise DeployError(name, f"client {script} {' '.join(args)}", f"exit {proc.returncode}",
                          proc.stdout.decode(errors="replace")[-4000:])
    return proc.stdout.decode(errors="replace")


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- up ----------------------------------------------------------------------------------------------


def database_sql(values: Dict[str, str]) -> bytes:
    """kolla-ansible's database tasks as SQL over mariadb's socket: the monitor account of the
    healthcheck, then each database and its account (idempotent: a second `up` changes nothing)."""
    lines = [f"CREATE USER IF NOT EXISTS 'monitor'@'%' IDENTIFIED BY '{values['mariadb_monitor_password']}';",
             "GRANT USAGE, REPLICATION CLIENT ON *.* TO 'monitor'@'%';"]
    for database, account in DATABASES:
        password = values[f"{account}_database_password"]
        lines += [f"CREATE DATABASE IF NOT EXISTS {database};",
                  f"CREATE USER IF NOT EXISTS '{account}'@'127.0.0.1' IDENTIFIED BY '{password}';",
                  f"GRANT ALL PRIVILEGES ON {database}.* TO '{account}'@'127.0.0.1';"]
    return "\n".join(lines).encode() + b"\n"


def catalog_spec(values: Dict[str, str]) -> bytes:
    """What deploy/client/register.py makes in Keystone: service accounts, services and endpoints."""
    return json.dumps({"region": values["region"], "services": [
        {"account": account, "password": values[f"{account}_keystone_password"], "name": name, "type": kind,
         "url": url} for account, name, kind, url in CATALOG]}).encode()


KEYSTONE_BOOTSTRAP = ("keystone-manage bootstrap --bootstrap-username admin --bootstrap-project-name admin "
                      "--bootstrap-role-name admin --bootstrap-admin-url {url} --bootstrap-internal-url {url} "
                      "--bootstrap-public-url {url} --bootstrap-region-id {region}")
FERNET_SETUP = "keystone-manage fernet_setup --keystone-user keystone --keystone-group keystone"
# The explicit-command jobs (kolla-ansible's names), besides each service's bootstrap_<name>.
ONE_OFF_JOBS = ("keystone_fernet_bootstrap", "nova_api_map_cell0", "nova_cell_create", "nova_cell_bootstrap")
CELL1 = ("nova-manage cell_v2 list_cells | grep -q ' cell1 ' || "
         "nova-manage cell_v2 create_cell --name cell1 --verbose")


def create_volumes(plane: Plane) -> List[str]:
    """Every named volume of the plane; the ones this call created (their bootstraps must run)."""
    created = []
    for volume in VOLUMES:
        name = plane.volume(volume)
        if not plane.podman.volume_exists(name):
            plane.podman.ok(["volume", "create", name], 30, name, "volume create")
            created.append(volume)
    return created


def up_data_plane(plane: Plane, values: Dict[str, str], new_volumes: Sequence[str]) -> None:
    """mariadb (bootstrapped into a new volume), its databases and accounts; memcached and rabbitmq."""
    if "mariadb" in new_volumes:
        job(plane, MARIADB, "bootstrap_mariadb",
            ("KOLLA_BOOTSTRAP=", "BOOTSTRAP_ARGS=--rpm --cross-bootstrap --user=mysql --disable-log-bin"))
    start(plane, MARIADB)
    wait_healthy_socket(plane)
    exec_in(plane, MARIADB, ("mariadb", "--batch"), database_sql(values))
    memcached, rabbitmq = BY_NAME["memcached"], BY_NAME["rabbitmq"]
    start(plane, memcached)
    start(plane, rabbitmq)
    wait_healthy(plane, (MARIADB, memcached, rabbitmq))


def wait_healthy_socket(plane: Plane, seconds: float = 120) -> None:
    """mariadb accepts connections on its socket (before the monitor account of its healthcheck exists)."""
    name, deadline = plane.container(MARIADB.name), time.monotonic() + seconds
    while plane.podman.run(["exec", name, "mariadb-admin", "--connect-timeout=5", "ping"], 30).returncode:
        state = plane.podman.state(name)
        if not state.running or time.monotonic() > deadline:
            raise DeployError(name, "mariadb-admin ping", f"{state.describe()}, {seconds:.0f} s bound",
                              plane.podman.report(name))
        time.sleep(2)


def up_identity(plane: Plane, values: Dict[str, str], new_volumes: Sequence[str]) -> None:
    """keystone: schema, fernet keys (new volume only), the service, the admin account and endpoint,
    then every service's account and catalog entry."""
    keystone = BY_NAME["keystone"]
    job(plane, keystone, "bootstrap_keystone", ("KOLLA_BOOTSTRAP=",))
    if "keystone_fernet_tokens" in new_volumes:
        job(plane, keystone, ONE_OFF_JOBS[0], command=FERNET_SETUP)
    start(plane, keystone)
    wait_healthy(plane, (keystone,))
    command = KEYSTONE_BOOTSTRAP.format(url=KEYSTONE_URL, region=values["region"]).split()
    exec_in(plane, keystone, ("env", f"OS_BOOTSTRAP_PASSWORD={values['keystone_admin_password']}", *command))
    client(plane, "register.py", stdin=catalog_spec(values))


def bootstrap_and_start(plane: Plane, services: Sequence[Service], jobs: Sequence[Tuple[Service, str, str]] = ()
                        ) -> None:
    """The KOLLA_BOOTSTRAP job of each of `services` that has one, then `jobs` (service, job name,
    command) in order, then the services."""
    for service in services:
        if service.bootstrap:
            job(plane, service, f"bootstrap_{service.name}", ("KOLLA_BOOTSTRAP=",))
    for service, name, command in jobs:
        job(plane, service, name, command=command)
    for service in services:
        start(plane, service)


def up_compute(plane: Plane, values: Dict[str, str]) -> None:
    """glance, placement, nova and neutron, each after its schema jobs (the images' KOLLA_BOOTSTRAP and
    nova's cell jobs), as independent chains run as many at a time as there are cores; then every
    healthcheck, and the compute host mapped into cell1."""
    nova = [BY_NAME[name] for name in ("nova_api", "nova_scheduler", "nova_conductor", "nova_compute")]
    nova_jobs = ((nova[0], ONE_OFF_JOBS[1], "nova-manage cell_v2 map_cell0"),
                 (nova[0], ONE_OFF_JOBS[2], CELL1),
                 (nova[2], ONE_OFF_JOBS[3], "nova-manage db sync"))
    chains = [(nova, nova_jobs), *(([BY_NAME[name]], ()) for name in ("neutron_server", "glance_api", "placement_api"))]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for started in [pool.submit(bootstrap_and_start, plane, *chain) for chain in chains]:
            started.result()
    wait_healthy(plane, [service for services, _ in chains for service in services])
    discover_hosts(plane, values["host"])


def discover_hosts(plane: Plane, host: str, seconds: float = 180) -> None:
    """kolla-ansible's discover_computes: map the compute host into cell1 once its service record exists."""
    conductor, deadline = BY_NAME["nova_conductor"], time.monotonic() + seconds
    while True:
        exec_in(plane, conductor, ("nova-manage", "cell_v2", "discover_hosts", "--by-service"))
        hosts = exec_in(plane, conductor, ("nova-manage", "cell_v2", "list_hosts"))
        if f" {host} " in hosts:
            return
        if time.monotonic() > deadline:
            name = plane.container("nova_compute")
            raise DeployError(name, "discover_hosts", f"{host} not mapped within {seconds:.0f} s:\n{hosts}",
                              plane.podman.report(name))
        time.sleep(3)


@dataclass(frozen=True)
class UpReport:
    stages: Tuple[Tuple[str, float], ...]   # (stage, seconds), in order

    @property
    def total(self) -> float:
        return sum(seconds for _, seconds in self.stages)

    def render(self) -> str:
        rows = [f"  {stage:44} {seconds:6.1f} s" for stage, seconds in self.stages]
        return "\n".join([*rows, f"  {'up to all healthy':44} {self.total:6.1f} s"])


def up(plane: Plane) -> UpReport:
    """The whole plane, from dist/ to every container healthy."""
    existing = [s.name for s in SERVICES if plane.podman.state(plane.container(s.name)).exists]
    if existing:
        raise DeployError(plane.container(existing[0]), "up", "already exists: run deploy/down.sh first "
                          "(--keep-volumes keeps the data)")
    keep_source(plane)
    stages: List[Tuple[str, float]] = []

    def stage(what: str, action) -> None:
        progress(f"{what} ...")
        began = time.monotonic()
        action()
        stages.append((what, time.monotonic() - began))

    values = settings(plane)
    stage("render config, load images", lambda: (render_config(plane, values),
                                                 [plane.image(s.image) for s in SERVICES], plane.image(CLIENT_IMAGE)))
    new_volumes = create_volumes(plane)
    stage("mariadb, memcached, rabbitmq", lambda: up_data_plane(plane, values, new_volumes))
    stage("keystone and the service catalog", lambda: up_identity(plane, values, new_volumes))
    stage("glance, placement, nova, neutron", lambda: up_compute(plane, values))
    return UpReport(tuple(stages))


def parse_source(requested: str) -> Tuple[str, ...]:
    """`--source keystone,nova,placement`: the projects, each with source images for all its containers
    and with the source projects it needs."""
    projects = tuple(sorted({p.strip() for p in requested.split(",") if p.strip()}))
    unknown = [p for p in projects if p not in SOURCE_PROJECTS]
    if unknown:
        raise DeployError("config", "--source", f"no source images for every container of {', '.join(unknown)}; "
                          f"projects with source images: {', '.join(SOURCE_PROJECTS)} (images/source/)")
    for project, needs, why in SOURCE_NEEDS:
        if project in projects and needs not in projects:
            raise DeployError("config", "--source", f"{project} from source needs {needs} from source too ({why}): "
                              f"add {needs} to --source")
    return projects


def keep_source(plane: Plane) -> None:
    """Record the plane's source projects in its state directory, for the commands after `up`."""
    parse_source(",".join(plane.source))
    write_private(plane.path("source.json"), json.dumps(list(plane.source)) + "\n")


def kept_source(state_dir: str) -> Tuple[str, ...]:
    """The source projects the last `up` of this state directory recorded; none before any `up`."""
    path = os.path.join(state_dir, "source.json")
    if not os.path.exists(path):
        return ()
    with open(path, encoding="utf-8") as f:
        return tuple(json.load(f))


# --- down, status, upgrade, verify -----------------------------------------------------------------


def down(plane: Plane, keep_volumes: bool = False) -> List[str]:
    """Remove the plane's containers (services in reverse order, then any job or client left over),
    and its volumes and passwords unless `keep_volumes`; the names removed."""
    removed = []
    listed = plane.podman.run(["ps", "-a", "--format", "{{.Names}}"], 60).stdout.decode().split()
    ours = [plane.container(s.name) for s in reversed(SERVICES)]
    jobs = {plane.container(name) for name in (*(f"bootstrap_{s.name}" for s in SERVICES), *ONE_OFF_JOBS)}
    leftovers = [n for n in listed if n in jobs or re.fullmatch(re.escape(plane.container("client-")) + r"\d+", n)]
    for name in [n for n in ours if n in listed] + leftovers:
        plane.podman.ok(["rm", "-f", "-t", "10", name], 60, name, "rm")
        removed.append(name)
    if not keep_volumes:
        for volume in VOLUMES:
            if plane.podman.volume_exists(plane.volume(volume)):
                plane.podman.ok(["volume", "rm", "-f", plane.volume(volume)], 60, volume, "volume rm")
                removed.append(plane.volume(volume))
        for kept in ("passwords.json", "source.json"):  # the accounts and schemas they describe are gone
            if os.path.exists(plane.path(kept)):
                os.remove(plane.path(kept))
    return removed


def status(plane: Plane) -> List[Tuple[str, str, bool]]:
    """(container, state, healthy) of every service, running its declared healthcheck once."""
    rows = []
    for service in SERVICES:
        name = plane.container(service.name)
        state = plane.podman.state(name)
        healthy = state.running and plane.podman.healthcheck(name)[0]
        rows.append((name, plane.podman.state(name).describe(), healthy))
    return rows


def upgrade(plane: Plane, service_name: str, layout: str) -> Tuple[Tuple[str, float], ...]:
    """Replace one service's container by one of the image at `layout`, as kolla-ansible's upgrade does:
    the image's KOLLA_UPGRADE job (schema expand and migrate), the new container, healthy again, then
    KOLLA_FINISH_UPGRADE where the image has one (contract). The (step, seconds) taken."""
    service = BY_NAME[service_name]
    render_config(plane, settings(plane))
    plane.images[service.image] = plane.podman.load(layout)
    steps = []
    for step in service.upgrade or ("restart",):
        began = time.monotonic()
        progress(f"{service.name}: {step} ...")
        if step == "restart":
            name = plane.container(service.name)
            plane.podman.ok(["rm", "-f", "-t", "10", name], 60, name, "rm")
            start(plane, service)
            wait_healthy(plane, (service,))
        else:
            job(plane, service, f"bootstrap_{service.name}", (f"{step}=",))
        steps.append((step, time.monotonic() - began))
    return tuple(steps)


def verify(plane: Plane, scenario: str = "exercise") -> List[dict]:
    """deploy/client/cloud.py SCENARIO: one record per step (step, container, ok, seconds, detail). A
    failing step raises, with the state, health and log tail of the container it exercised."""
    try:
        output = client(plane, "cloud.py", (scenario,), timeout=900)
    except DeployError as failed:
        steps = [json.loads(line) for line in failed.logs.splitlines() if line.startswith('{"step"')]
        if not steps:
            raise
        last = steps[-1]
        name = plane.container(last["container"])
        raise DeployError(name, f"client step '{last['step']}'", last["detail"], plane.podman.report(name)) from None
    return [json.loads(line) for line in output.splitlines() if line.startswith('{"step"')]


# --- command line --------------------------------------------------------------------------------------


def plane_from(args: argparse.Namespace) -> Plane:
    state_dir = os.path.abspath(args.state_dir)
    requested = getattr(args, "source", None)
    source = parse_source(requested) if requested is not None else kept_source(state_dir)
    return Plane(Podman(args.podman), args.dist, state_dir, args.prefix, source)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="deploy.controlplane", description=__doc__.split("\n")[0])
    parser.add_argument("--dist", default="dist", help="where `pants package` wrote the layouts")
    parser.add_argument("--state-dir", default=os.path.join(REPO, ".controlplane"),
                        help="rendered /etc/kolla, passwords.json and clouds.yaml (default: .controlplane)")
    parser.add_argument("--prefix", default="", help="prefix of every container and volume name")
    parser.add_argument("--podman", default="podman")
    commands = parser.add_subparsers(dest="command", required=True)
    up_parser = commands.add_parser("up", help="deploy and wait until every container is healthy")
    up_parser.add_argument("--source", metavar="PROJECT[,PROJECT]",
                           help=f"run these projects from their images/source variants ({', '.join(SOURCE_PROJECTS)}); "
                                "default: what the last `up` over this state directory chose, else none")
    down_parser = commands.add_parser("down", help="remove the containers (and the volumes)")
    down_parser.add_argument("--keep-volumes", action="store_true")
    commands.add_parser("status", help="state and healthcheck of every container")
    verify_parser = commands.add_parser("verify", help="a real client exercises the cloud")
    verify_parser.add_argument("scenario", nargs="?", default="exercise", choices=("exercise", "keep", "survived"))
    upgrade_parser = commands.add_parser("upgrade", help="replace one service with a rebuilt image")
    upgrade_parser.add_argument("service", choices=sorted(BY_NAME))
    upgrade_parser.add_argument("--layout", required=True, help="the OCI layout of the new image")
    args = parser.parse_args(argv)
    try:
        return run_command(plane_from(args), args)
    except DeployError as error:
        print(f"error: {error.container}: {error.step}: {error.reason}\n{error.logs}", file=sys.stderr)
        return 1


def run_command(plane: Plane, args: argparse.Namespace) -> int:
    if args.command == "up":
        print(f"control plane up; clouds.yaml: {plane.path('clouds.yaml')}\n{up(plane).render()}")
    elif args.command == "down":
        print("\n".join(f"removed {name}" for name in down(plane, args.keep_volumes)))
    elif args.command == "status":
        rows = status(plane)
        print("\n".join(f"{name:24} {'healthy  ' if ok else 'UNHEALTHY'} {state}" for name, state, ok in rows))
        return 0 if all(ok for *_, ok in rows) else 1
    elif args.command == "verify":
        steps = verify(plane, args.scenario)
        print("\n".join(f"{'ok  ' if s['ok'] else 'FAIL'} {s['seconds']:6.1f} s  {s['step']}: {s['detail']}"
                        for s in steps))
        return 0 if steps and all(s["ok"] for s in steps) else 1
    elif args.command == "upgrade":
        steps = upgrade(plane, args.service, args.layout)
        print("\n".join(f"  {step:24} {seconds:6.1f} s" for step, seconds in steps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
