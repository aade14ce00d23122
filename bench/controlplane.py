#!/usr/bin/env python3
"""The control plane measured: deploy, a real client, an upgrade drill, as docs/deploy.md reports them.

    ./pants package ::
    python3 bench/controlplane.py [--json bench/results/controlplane.json]
    python3 bench/controlplane.py --source keystone,nova,placement   # those projects from images/source

1. `up` from dist/ (deploy/controlplane.py) with a fresh state: the time to every container healthy,
   per stage.
2. The client scenario (deploy/client/cloud.py exercise): each step's time, the time from the start
   of `up` to the first ACTIVE server, and the client's total wall time.
3. Peak memory of every container (its cgroup's high-water mark, page cache included).
4. The upgrade drill: resources that must survive (`keep`); one service's image rebuilt with a
   changed input (a new declared file, in a copy of the repository, so the checkout and its dist/
   are untouched); its container replaced through the image's KOLLA_UPGRADE, the restart and
   KOLLA_FINISH_UPGRADE where it has one; the new file seen in the running container; then
   `survived`: token, user, image bytes, server and network. The Debian plane drills keystone.
5. `down`, also on failure.

With `--source`, the plane runs those projects from their images/source variants (`up --source`),
and the drill rebuilds the source variant of its service: nova_api when nova runs from source
(nova-manage's schema syncs from the venv, under a server that must stay ACTIVE), else keystone.

Decisions:
- One plane per run, under its own container prefix and state directory, so a deployment an operator
  runs with deploy/up.sh is never touched.
- The rebuilt image comes from `./pants package` in the copy, with the same caches: only the changed
  files layer and the image assembly are rebuilt.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from deploy.controlplane import BY_NAME, SERVICES, Plane, down, parse_source, up, upgrade, verify  # noqa: E402
from deploy.podman import DeployError, Podman  # noqa: E402

DRILL_FILE = "upgrade-note.txt"
DRILL_NOTE = b"A declared file added by the upgrade drill: the input that changed.\n"


def repository_copy(workdir: str) -> str:
    """The tracked files of this checkout, as they are now, in `workdir`/repo."""
    copy = os.path.join(workdir, "repo")
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=True, stdout=subprocess.PIPE).stdout
    for relative in filter(None, listed.decode().split("\0")):
        source, target = os.path.join(REPO, relative), os.path.join(copy, relative)
        if os.path.lexists(source):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy2(source, target, follow_symlinks=False)
    return copy


def add_declared_file(copy: str, image: str) -> str:
    """images/<image> gains an image_files target with one new file, listed in the image's `files`;
    the path it will have in the image."""
    directory = os.path.join(copy, "images", image)
    with open(os.path.join(directory, DRILL_FILE), "wb") as f:
        f.write(DRILL_NOTE)
    destination = f"/usr/local/share/{os.path.basename(image)}"
    with open(os.path.join(directory, "BUILD"), encoding="utf-8") as f:
        build = f.read()
    patched, count = re.subn(r"(oci_image\((?:.|\n)*?\n    files=\[)", r'\1":upgrade-note", ', build, count=1)
    if count != 1:
        raise SystemExit(f"images/{image}/BUILD: no `files=[` in its oci_image to add the drill's file to")
    with open(os.path.join(directory, "BUILD"), "w", encoding="utf-8") as f:
        f.write(patched + f'\nimage_files(name="upgrade-note", sources=["{DRILL_FILE}"], '
                          f'destination="{destination}", mode="0644")\n')
    return f"{destination}/{DRILL_FILE}"


def rebuild_changed(image: str, workdir: str, timeout: float = 1200) -> Tuple[str, str]:
    """images/`image` (`keystone`, `source/nova-api`) rebuilt with one new declared file: (its OCI layout,
    the new file's path in the image)."""
    copy = repository_copy(workdir)
    path = add_declared_file(copy, image)
    proc = subprocess.run(["./pants", "--no-pantsd", "package", f"images/{image}:"], cwd=copy, timeout=timeout,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if proc.returncode:
        raise SystemExit(f"rebuilding {image} failed:\n{proc.stdout.decode(errors='replace')[-3000:]}")
    return os.path.join(copy, "dist", "images." + image.replace("/", "."), os.path.basename(image)), path


@dataclass(frozen=True)
class Measurement:
    up_stages: Tuple[Tuple[str, float], ...]
    up_seconds: float
    client_steps: Tuple[dict, ...]
    client_seconds: float
    first_active_seconds: float      # from the start of `up` to the first server ACTIVE
    peak_memory: Dict[str, int]      # container -> bytes
    drill: Dict[str, object]
    source: Tuple[str, ...] = ()     # the projects run from images/source


def measure_up_and_client(plane: Plane) -> Tuple[object, List[dict], float, float]:
    began = time.monotonic()
    report = up(plane)
    client_began = time.monotonic()
    steps = verify(plane, "exercise")
    client_seconds = time.monotonic() - client_began
    boot = next(s for s in steps if s["step"].startswith("server"))
    active = re.search(r"ACTIVE on \S+ after ([\d.]+) s", boot["detail"])
    before_boot = sum(s["seconds"] for s in steps[:steps.index(boot)])
    first_active = (client_began - began) + before_boot + float(active.group(1))
    return report, steps, client_seconds, first_active


def upgrade_drill(plane: Plane, workdir: str, service: str = "keystone", keep: bool = True) -> Dict[str, object]:
    """Resources that must survive (unless `keep` is False: made already), `service`'s image (the
    variant the plane runs) rebuilt with a changed input and upgraded to it, then what survived."""
    kept = verify(plane, "keep") if keep else []
    began = time.monotonic()
    layout, path = rebuild_changed(plane_image(plane, service), workdir)
    rebuild_seconds = time.monotonic() - began
    old_image = plane.podman.state(plane.container(service)).image
    steps = upgrade(plane, service, layout)
    new_image = plane.podman.state(plane.container(service)).image
    seen = plane.podman.ok(["exec", plane.container(service), "cat", path], 30, service, f"cat {path}")
    survived = verify(plane, "survived")
    return {"service": service, "kept": kept, "rebuild_seconds": round(rebuild_seconds, 1),
            "upgrade_steps": [(step, round(seconds, 1)) for step, seconds in steps],
            "old_image": old_image, "new_image": new_image, "new_file": path,
            "new_file_seen": seen.encode() == DRILL_NOTE, "survived": survived}


def plane_image(plane: Plane, service: str) -> str:
    """The image `service` runs in `plane`, as a directory under images/."""
    entry = BY_NAME[service]
    return f"source/{entry.image}" if plane.is_source(entry) else entry.image


def drilled_service(plane: Plane) -> str:
    return "nova_api" if plane.is_source(BY_NAME["nova_api"]) else "keystone"


def run(dist: str, workdir: str, prefix: str = "cpbench_", source: Tuple[str, ...] = ()) -> Measurement:
    plane = Plane(Podman(), dist, os.path.join(workdir, "state"), prefix, source)
    down(plane)
    try:
        report, steps, client_seconds, first_active = measure_up_and_client(plane)
        peaks = {s.name: plane.podman.peak_memory(plane.container(s.name)) or 0 for s in SERVICES}
        drill = upgrade_drill(plane, workdir, drilled_service(plane))
    finally:
        down(plane)
    return Measurement(report.stages, report.total, tuple(steps), client_seconds, first_active, peaks, drill,
                       source)


def markdown(m: Measurement) -> str:
    rows = ["| stage of `up` | seconds |", "|---|---:|"]
    rows += [f"| {stage} | {seconds:.1f} |" for stage, seconds in m.up_stages]
    rows += [f"| **up to all healthy** | **{m.up_seconds:.1f}** |", "",
             "| client step | seconds |", "|---|---:|"]
    rows += [f"| {s['step']} | {s['seconds']:.1f} |" for s in m.client_steps]
    rows += [f"| **client test, wall time** | **{m.client_seconds:.1f}** |",
             f"| **`up` start to first ACTIVE server** | **{m.first_active_seconds:.1f}** |", "",
             "| container | peak memory (MB) |", "|---|---:|"]
    rows += [f"| {name} | {peak / 1e6:.0f} |" for name, peak in m.peak_memory.items()]
    rows.append(f"| **all** | **{sum(m.peak_memory.values()) / 1e6:.0f}** |")
    d = m.drill
    rows += ["", f"Source projects: {', '.join(m.source) or 'none'}", "",
             f"Upgrade drill ({d['service']}): rebuild {d['rebuild_seconds']} s; "
             + ", ".join(f"{step} {seconds} s" for step, seconds in d["upgrade_steps"])
             + f"; new file seen: {d['new_file_seen']}; survived: "
             + ", ".join(f"{s['step']} ({'ok' if s['ok'] else 'FAILED'})" for s in d["survived"])]
    return "\n".join(rows)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dist", default=os.path.join(REPO, "dist"))
    parser.add_argument("--json", help="also write the measurement here")
    parser.add_argument("--source", default="", metavar="PROJECT[,PROJECT]",
                        help="run these projects from images/source (deploy's `up --source`)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="controlplane-") as workdir:
        try:
            measurement = run(args.dist, workdir, source=parse_source(args.source))
        except DeployError as error:
            print(f"error: {error.container}: {error.step}: {error.reason}\n{error.logs}", file=sys.stderr)
            return 1
    print(markdown(measurement))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(asdict(measurement), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
