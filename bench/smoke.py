#!/usr/bin/env python3
"""Smoke checks of the image set: one command per check, run in podman from dist/.

    ./pants package ::          # build the layouts first
    python3 bench/smoke.py      # every check; exits non-zero if any fails
    python3 bench/smoke.py keystone nova-api     # only these images
    python3 bench/smoke.py --list                # print the table

Each check runs
    podman --runtime runc run --rm --network=none --ulimit nofile=1024:1024 \
        --ulimit nproc=1024:1024 oci:dist/images.<image>/<image>:latest ARGV...
and passes when the command exits 0 and its output (stdout and stderr, without podman's
own "Copying blob" lines) matches the expected regular expression. The image's entrypoint
(dumb-init) stays in place, so ARGV runs the way a deployment's command would.

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
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

PODMAN_RUN = ("--runtime", "runc", "run", "--rm", "--network=none",
              "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")

# Runtime images must not carry config-time tools (config-tools is the image that has them).
NO_CONFIG_TOOLS = ("sh", "-c", "for t in crudini puppet ansible ansible-playbook; do "
                   "if command -v $t >/dev/null; then echo \"found $t\"; exit 1; fi; done; echo \"user=$(id -un)\"")

# nova's fake virt driver, as `compute_driver = fake.FakeDriver` loads it: servers without KVM or libvirtd.
NOVA_FAKE_DRIVER = (
    "python3", "-c",
    "from nova import config; from nova.virt import driver; import nova.conf; "
    "config.parse_args([], default_config_files=[]); "
    "nova.conf.CONF.set_override('compute_driver', 'fake.FakeDriver'); "
    "d = driver.load_compute_driver(None); d.init_host('compute1'); "
    "print(type(d).__module__ + '.' + type(d).__name__, d.get_available_nodes())",
)

RABBITMQ_VERSION = (
    "erl", "-noshell", "-eval",
    'true = code:add_path(hd(filelib:wildcard("/usr/lib/rabbitmq/lib/rabbitmq_server-*/plugins/rabbit-*/ebin"))), '
    "ok = application:load(rabbit), {ok, V} = application:get_key(rabbit, vsn), "
    'io:format("rabbitmq ~s on OTP ~s~n", [V, erlang:system_info(otp_release)]), halt().',
)


@dataclass(frozen=True)
class Check:
    image: str
    argv: Tuple[str, ...]
    expect: str  # regular expression, searched in the output (re.M)
    what: str


def service(image: str, argv: Sequence[str], expect: str, user: str) -> List[Check]:
    return [
        Check(image, tuple(argv), expect, "version"),
        Check(image, NO_CONFIG_TOOLS, rf"^user={re.escape(user)}$", f"runs as {user}, no config tools"),
    ]


def imports(image: str, modules: str) -> List[Check]:
    return [Check(image, ("python3", "-c", f"import {modules}; print('modules ok')"), r"^modules ok$",
                  "service modules import")]


CHECKS: List[Check] = [
    Check("base", ("sh", "-c", "cat /etc/debian_version; id -un"), r"^12\.\d+\n(?:.*\n)*root$", "Debian 12"),
    Check("python-base", ("python3", "-c", "import ssl, json; print(json.dumps(ssl.OPENSSL_VERSION))"),
          r'^"OpenSSL 3\.', "python3: import ssl, json"),
    Check("openstack-base", ("python3", "-c", "import oslo_config, oslo_messaging, oslo_db, sqlalchemy, "
                             "keystonemiddleware; print('oslo ok')"), r"^oslo ok$", "shared libraries import"),
    *service("keystone", ("keystone-manage", "--version"), r"^22\.\d+\.\d+$", "keystone"),
    *service("glance-api", ("glance-api", "--version"), r"^25\.\d+\.\d+$", "glance"),
    *service("nova-base", ("nova-manage", "--version"), r"^26\.\d+\.\d+$", "nova"),
    *service("nova-api", ("nova-api", "--version"), r"^26\.\d+\.\d+$", "nova"),
    *service("nova-conductor", ("nova-conductor", "--version"), r"^26\.\d+\.\d+$", "nova"),
    *service("nova-scheduler", ("nova-scheduler", "--version"), r"^26\.\d+\.\d+$", "nova"),
    *service("nova-compute", ("nova-compute", "--version"), r"^26\.\d+\.\d+$", "nova"),
    Check("nova-compute", ("sudo", "-n", "-l"), r"nova-rootwrap", "sudo works for rootwrap/privsep"),
    # The service modules load without the Depends their images leave out (exclude_packages).
    *imports("nova-api", "nova.cmd.api, nova.api.openstack.compute.routes, nova.image.glance, "
             "nova.conductor.manager, nova.scheduler.manager, websockify"),
    *imports("nova-compute", "nova.cmd.compute, nova.compute.manager, nova.virt.libvirt.driver, "
             "nova.virt.libvirt.imagebackend, nova.storage.rbd_utils, rados, rbd"),
    Check("nova-compute", NOVA_FAKE_DRIVER, r"^nova\.virt\.fake\.FakeDriver \['compute1'\]$", "fake virt driver loads"),
    *imports("glance-api", "glance.cmd.api, glance.api.v2.router, glance_store, lxml.etree"),
    *imports("keystone", "keystone.server.flask.application, keystone.server.wsgi, saml2, repoze.who"),
    *imports("neutron-server", "neutron.cmd.eventlet.server, neutron.plugins.ml2.plugin, netaddr"),
    *service("placement-api", ("placement-manage", "--version"), r"^8\.\d+\.\d+$", "placement"),
    *imports("placement-api", "placement.wsgi, placement.deploy, placement.handlers.resource_provider, pymysql"),
    *service("neutron-server", ("neutron-server", "--version"), r"^neutron-server 21\.\d+\.\d+$", "neutron"),
    *service("memcached", ("memcached", "-h"), r"^memcached 1\.6\.\d+", "memcached"),
    Check("memcached", ("sudo", "-n", "-l"), r"NOPASSWD: /usr/local/bin/kolla_set_configs", "sudo runs kolla_set_configs"),
    *service("mariadb", ("mariadbd", "--version"), r"Ver 10\.11\.\d+-MariaDB", "mysql"),
    *service("rabbitmq", RABBITMQ_VERSION, r"^rabbitmq 3\.10\.\d+ on OTP 25$", "rabbitmq"),
    Check("config-tools", ("crudini", "--version"), r"^crudini 0\.9", "crudini"),
    Check("config-tools", ("openstack", "--version"), r"^openstack 6\.\d+\.\d+$", "openstack client"),
]

PODMAN_NOISE = re.compile(r"^(Getting image source signatures|Copying (blob|config) |Writing manifest|Storing signatures)")


@dataclass
class Result:
    check: Check
    ok: bool
    seconds: float
    detail: str


def layout(dist: str, image: str) -> str:
    return os.path.join(dist, f"images.{image}", image)


def run_check(check: Check, podman: str, dist: str, timeout: float) -> Result:
    path = layout(dist, check.image)
    if not os.path.isfile(os.path.join(path, "index.json")):
        return Result(check, False, 0.0, f"no OCI layout at {path} (run ./pants package ::)")
    argv = [podman, *PODMAN_RUN, f"oci:{path}:latest", *check.argv]
    start = time.monotonic()
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Result(check, False, time.monotonic() - start, f"timed out after {timeout:.0f} s")
    seconds = time.monotonic() - start
    output = "\n".join(line for line in proc.stdout.decode(errors="replace").splitlines()
                       if not PODMAN_NOISE.match(line))
    match = re.search(check.expect, output, re.M)
    if proc.returncode == 0 and match:
        return Result(check, True, seconds, match.group(0).splitlines()[-1][:70])
    tail = " | ".join(output.strip().splitlines()[-3:])[:300]
    reason = f"exit {proc.returncode}" if proc.returncode else f"no match for /{check.expect}/"
    return Result(check, False, seconds, f"{reason}: {tail}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("images", nargs="*", help="only check these images")
    parser.add_argument("--dist", default="dist", help="where `pants package` wrote the layouts (default: dist)")
    parser.add_argument("--podman", default=shutil.which("podman") or "podman")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per check (default 180)")
    parser.add_argument("--list", action="store_true", help="print the table of checks and exit")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)

    known = sorted({c.image for c in CHECKS})
    unknown = [i for i in args.images if i not in known]
    if unknown:
        parser.error(f"no checks for {', '.join(unknown)}; images: {', '.join(known)}")
    checks = [c for c in CHECKS if not args.images or c.image in args.images]
    if args.list:
        for c in checks:
            print(f"{c.image:16} {' '.join(c.argv)[:90]:92} /{c.expect}/")
        return 0

    results = []
    for check in checks:
        result = run_check(check, args.podman, args.dist, args.timeout)
        results.append(result)
        print(f"{'PASS' if result.ok else 'FAIL'}  {check.image:16} {check.what:34} {result.seconds:6.1f} s  {result.detail}",
              flush=True)
    failed = [r for r in results if not r.ok]
    print(f"\n{len(results) - len(failed)} of {len(results)} checks passed over {len({r.check.image for r in results})} "
          f"images in {sum(r.seconds for r in results):.0f} s" + (f"; FAILED: {', '.join(f'{r.check.image} ({r.check.what})' for r in failed)}" if failed else ""))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump([{"image": r.check.image, "check": r.check.what, "argv": list(r.check.argv), "ok": r.ok,
                        "seconds": round(r.seconds, 1), "detail": r.detail} for r in results], f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
