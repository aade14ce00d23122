#!/usr/bin/env python3
"""The zero-day drill on the real set: a Debian security update, from the lock to published images.

    python3 bench/zeroday_drill.py                                   # ours and the Kolla-style peer
    python3 bench/zeroday_drill.py --json bench/results/zeroday_drill.json --markdown docs/benchmarks.md
    python3 bench/zeroday_drill.py --no-peer --service-checks        # ours only, with the service checks

The update is a real one (bench/bumps.py): the lock's openssl and libssl3 come from
bookworm-security; bookworm still has the previous version. The "before" state is the set built
from the lock with the previous version (what was deployed before Debian's advisory), published to a
docker-registry on 127.0.0.1 started here; then the drill:

- ours: `ci/security_refresh.py --registry R --namespace ours --insecure-registry R
  --skip-service-checks images::` from the start: the lock refreshed from the live, signed
  indexes of deb.debian.org (so whatever else moved on the mirror comes along, as in a real
  refresh), the affected images rebuilt on a warm store (the one that built "before"), published under
  the immutable tag and `latest`, read back; its report gives the time of each step and the CVEs;
- the peer (bench/kolla_peer.py's Kolla-style Containerfiles, built by buildah): the base's
  RUN line without the pin to the previous openssl, the set rebuilt on the storage that built
  "before" (buildah's layer cache), then every image pushed to the same registry (`buildah push`,
  one at a time as kolla-build's default push_threads=1), which compresses the layers.

Both sides measured in one run, one after the other, ours first. Bytes a host pulls per image:
the layers of the new manifest in the registry that the image's old manifest did not have
(compressed, as the registry serves them), and for the set each such layer once.

Setup (not timed): a cold build of our set and a publication of it (`ci/security_refresh.py
--old-lock /dev/null`, the first publication), the peer's base rootfs (mmdebstrap), a cold buildah
build of the set with the pin and a push of it. Needs buildah, mmdebstrap, docker-registry, skopeo.
Standard library only (Python 3.9+).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as B  # noqa: E402
from images_set import Ours  # noqa: E402
from kolla_peer import Kolla, image_name, order_parents_first, peek  # noqa: E402

KEY = "zeroday"
REGISTRY_CONFIG = """version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {root}
http:
  addr: {address}
"""


@contextmanager
def docker_registry(work: Path) -> Iterator[str]:
    """Debian's docker-registry on a free 127.0.0.1 port, storing under `work`; stopped on exit."""
    work.mkdir(parents=True, exist_ok=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    (work / "config.yml").write_text(REGISTRY_CONFIG.format(root=work / "data", address=address))
    with open(work / "registry.log", "wb") as log:
        process = subprocess.Popen(["docker-registry", "serve", str(work / "config.yml")], stdout=log,
                                   stderr=subprocess.STDOUT)
    try:
        wait_for(address, process)
        yield address
    finally:
        process.terminate()
        process.wait(timeout=30)


def wait_for(address: str, process: subprocess.Popen, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"error: docker-registry exited with {process.returncode}")
        try:
            urllib.request.urlopen(f"http://{address}/v2/", timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"error: docker-registry did not answer on {address}")


def manifest_layers(registry: str, reference: str) -> Dict[str, int]:
    """digest -> compressed size of each layer of `registry/reference`, as the registry serves it."""
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{registry}/{reference}"],
                         check=True, stdout=subprocess.PIPE).stdout
    return {layer["digest"]: int(layer["size"]) for layer in json.loads(raw)["layers"]}


def pulled(before: Dict[str, Dict[str, int]], after: Dict[str, Dict[str, int]]) -> dict:
    """Per image, the new layers a host holding its old image pulls; for the set, each new layer once."""
    per_image = {}
    unique: Dict[str, int] = {}
    held = {digest for layers in before.values() for digest in layers}
    for name, layers in after.items():
        fresh = {d: s for d, s in layers.items() if d not in before.get(name, {})}
        per_image[name] = {"layers": len(fresh), "of": len(layers), "bytes": sum(fresh.values())}
        unique.update({d: s for d, s in fresh.items() if d not in held})
    return {"per_image": per_image, "set_layers": len(unique), "set_bytes": sum(unique.values()),
            "images_changed": sum(1 for v in per_image.values() if v["layers"])}


class OurSide:
    """Our repository copy, its store, and ci/security_refresh.py run in it."""

    def __init__(self, work: Path, deb_source: Path, service_checks: bool):
        self.ours = Ours(work, ["images::"], deb_source, "openssl")
        self.repo = self.ours.repo
        (self.repo / "ci").mkdir(exist_ok=True)
        shutil.copy2(B.REPO_ROOT / "ci/security_refresh.py", self.repo / "ci/security_refresh.py")
        if service_checks:
            shutil.copytree(B.REPO_ROOT / "bench", self.repo / "bench",
                            ignore=shutil.ignore_patterns("__pycache__", "results"), dirs_exist_ok=True)
        self.store = B.Store.fresh(work / "store", self.ours.deb_cache)
        self.service_checks = service_checks

    def env(self) -> Dict[str, str]:
        return B.clean_env({"PANTS_LOCAL_STORE_DIR": f"{self.store.root}/lmdb",
                            "PANTS_NAMED_CACHES_DIR": f"{self.store.root}/named",
                            "PANTS_DEBIAN_DEB_CACHE": str(self.store.deb_cache)})

    def refresh(self, label: str, registry: str, report: Path, *extra: str, checks: bool = True) -> B.Run:
        checks = [] if self.service_checks and checks else ["--skip-service-checks"]
        argv = [sys.executable, "ci/security_refresh.py", "--registry", registry, "--namespace", "ours",
                "--insecure-registry", registry, *checks, "--report-dir", str(report), *extra, "images::"]
        return B.run(label, argv, self.ours.logs / f"{report.name}.log", cwd=self.repo, env=self.env()).check()

    def start_pantsd(self) -> None:
        B.run("ours: start pantsd (not timed)", ["./pants", "--pantsd", "--no-dynamic-ui", "list", "images::"],
              self.ours.logs / "pantsd-start.log", cwd=self.repo, env=self.env()).check()


def peer_side(work: Path, ours: OurSide, jobs: int) -> tuple:
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    targets = peek(ours.repo, logs)
    names = {image_name(a): a for a, t in targets.items() if t.get("target_type") == "oci_image"}
    addresses = order_parents_first(list(names.values()), targets)
    lock = B.load_lock(B.REPO_ROOT / "3rdparty/debian/lock.yaml")
    kolla = Kolla(work, addresses, targets, ours.repo, "warm", jobs, lock, ours.ours.old_versions,
                  ours.ours.deb_cache)
    return kolla, [image_name(a) for a in addresses]


def push_peer(kolla: Kolla, names: Sequence[str], registry: str, label: str) -> B.Run:
    """buildah push of every image to the registry, one after the other; one Run for all of them."""
    start, cpu, busy0 = time.monotonic(), 0.0, B._busy_seconds()
    for name in names:
        r = B.run(f"{label}: {name}", [*kolla.buildah(), "push", "--tls-verify=false", f"localhost/kolla/{name}",
                                        f"docker://{registry}/kolla/{name}:latest"],
                  kolla.logs / f"{label.replace(' ', '-')}-{name}.log", quiet=True).check()
        cpu += r.cpu
    wall = time.monotonic() - start
    other = max(0.0, B._busy_seconds() - busy0 - cpu) / wall
    print(f"  {label}: {wall:.1f} s wall, {cpu:.1f} s cpu", flush=True)
    return B.Run(label, ["buildah push ..."], 0, wall, cpu, 0, other, str(kolla.logs))


def registry_layers(registry: str, prefix: str, names: Sequence[str], tag: str) -> Dict[str, Dict[str, int]]:
    return {name: manifest_layers(registry, f"{prefix}/{name}:{tag}") for name in names}


def run_ours_before(ours: OurSide, registry: str, work: Path) -> dict:
    ours.ours.bump()  # the lock as it was before Debian's advisory: the previous openssl
    run = ours.refresh("ours: first publication (cold store, previous openssl)", registry, work / "report-first",
                       "--old-lock", "/dev/null", checks=False)
    report = B.read_json(work / "report-first/report.json")
    return {"run": run, "report": report, "names": [i["address"].rsplit(":", 1)[1] for i in report["images"]]}


def run_peer_before(kolla: Kolla, names: Sequence[str], registry: str, pins: Sequence[str]) -> dict:
    kolla.make_rootfs()
    kolla.fresh_storage("storage")
    kolla.contexts(pins)
    build, _ = kolla.build_set(f"kolla before ({' '.join(pins)})", "before")
    return {"build": build, "push": push_peer(kolla, names, registry, "kolla push before")}


def run_peer_drill(kolla: Kolla, names: Sequence[str], registry: str) -> dict:
    start = time.monotonic()
    kolla.contexts()  # the base's RUN line without the pin: apt-get installs the fixed openssl
    build, _ = kolla.build_set("kolla rebuild for the update", "drill")
    push = push_peer(kolla, names, registry, "kolla push after")
    return {"build": build, "push": push, "wall": time.monotonic() - start,
            "cpu": build.cpu + push.cpu, "run_steps": build.extra.get("run_steps_executed")}


def run_ours_again_with_pantsd(ours: OurSide, registry: str, work: Path) -> dict:
    """Back to the state before the update (`latest` on the previous openssl's images), then the drill
    again with a warm pantsd, as on a developer's machine."""
    refreshed = work / "lock-after.yaml"
    shutil.copyfile(ours.ours.lock_path, refreshed)
    ours.ours.bump()
    ours.refresh("ours: back to the previous openssl (not timed)", registry, work / "report-rollback",
                 "--old-lock", str(refreshed), checks=False)
    ours.start_pantsd()
    try:
        drill = ours.refresh("ours: security refresh, warm pantsd", registry, work / "report-drill-pantsd", "--pantsd")
    finally:
        B.stop_pantsd(ours.repo)
    return {"run": drill, "report": B.read_json(work / "report-drill-pantsd/report.json")}


def ours_rows(drill: B.Run, report: dict) -> List[tuple]:
    rows = [(f"ours: {step['name']}", f"{step['seconds']:.1f} s", step["detail"][:160]) for step in report["steps"]]
    return rows + [("ours: the whole command", f"{drill.wall:.1f} s", f"CPU {drill.cpu:.1f} s")]


def summary_table(drill: B.Run, report: dict, peer: dict | None, moved: dict, warm: dict | None) -> str:
    layers = sum(1 for p in report["processes_ran"] if p.startswith("Build package layer"))
    header = ["", "ours (ci/security_refresh.py)", "Kolla-style (buildah bud + push)", "Kolla / ours"]
    rows = [("start to all affected images published (no pantsd, as in CI)", f"{drill.wall:.1f} s",
             f"{peer['wall']:.1f} s" if peer else "-", f"{peer['wall'] / drill.wall:.1f}x" if peer else "")]
    if warm:
        ratio = f"{peer['wall'] / warm['run'].wall:.1f}x" if peer else ""
        rows.append(("the same again with a warm pantsd (`--pantsd`; layers already in the store)", f"{warm['run'].wall:.1f} s",
                     f"{peer['wall']:.1f} s" if peer else "-", ratio))
    rows.append(("CPU", f"{drill.cpu:.1f} s", f"{peer['cpu']:.1f} s" if peer else "-", ""))
    rows.append(("rebuilt", f"{layers} package layer(s) ({len(report['processes_ran'])} Processes)",
                 f"{peer['run_steps']} RUN steps" if peer else "-", ""))
    rows.append(("images published", str(len(report["images"])), str(len(moved.get("kolla", {}).get("per_image", {})))
                 if peer else "-", ""))
    ours_set, peer_set = moved["ours"]["set_bytes"], moved.get("kolla", {}).get("set_bytes")
    rows.append(("bytes a host holding every image pulls (compressed, each new layer once)", f"{B.mb(ours_set)} MB",
                 f"{B.mb(peer_set)} MB" if peer else "-", f"{peer_set / max(ours_set, 1):.0f}x" if peer else ""))
    return B.md_table(header, rows, "lrrr")


def image_table(report: dict, moved: dict) -> str:
    """One row per image; each distinct set of changes and CVEs is written out once, below the table."""
    images = {i["address"].rsplit(":", 1)[1]: i for i in report["images"]}
    sets: Dict[tuple, str] = {}
    rows = []
    for name in sorted(moved["ours"]["per_image"]):
        ours = moved["ours"]["per_image"][name]
        peer = moved.get("kolla", {}).get("per_image", {}).get(name)
        image = images.get(name, {})
        changed = ", ".join(f"{p['name']} {p['old_version']} → {p['new_version']}" for p in image.get("packages", []))
        key = (changed, " ".join(image.get("cves", [])))
        label = sets.setdefault(key, chr(ord("A") + len(sets)))
        rows.append((name, f"{label}: {len(image.get('cves', []))} CVEs" if changed else "-",
                     f"{B.mb(ours['bytes'])} MB ({ours['layers']} of {ours['of']} layers)",
                     f"{B.mb(peer['bytes'])} MB ({peer['layers']} of {peer['of']} layers)" if peer else "-"))
    table = B.md_table(["image", "changes", "ours: a host pulls", "Kolla-style: a host pulls"], rows, "llrr")
    notes = [f"- {label}: {changed}; CVEs fixed (from the new .debs' changelogs): {cves or 'none named'}"
             for (changed, cves), label in sets.items() if changed]
    return table + "\n\n" + "\n".join(notes)


def markdown(record: dict, drill: B.Run, report: dict, peer: dict | None, runs: Sequence[B.Run],
             warm: dict | None = None) -> str:
    lines = [f"Command: `{record['command']}`. Machine: {B.machine_line(record['machine'])}; "
             f"{B.busy_note(runs)}.", "",
             f"Update: {record['bump']}; the refresh from deb.debian.org's signed indexes gave: "
             f"{report['steps'][0]['detail']}. Immutable tag `{report['immutable_tag']}`; one run of each side "
             "on the stores that built the set before the update (warm).", "",
             summary_table(drill, report, peer, record["moved"], warm), "",
             B.md_table(["step (no pantsd)", "time", "detail"], ours_rows(drill, report), "lrl"), ""]
    if warm:
        lines += [B.md_table(["step (warm pantsd)", "time", "detail"], ours_rows(warm["run"], warm["report"]), "lrl"),
                  ""]
    if peer:
        lines += [f"Kolla-style: rebuild {peer['build'].wall:.1f} s ({peer['run_steps']} RUN steps), push "
                  f"{peer['push'].wall:.1f} s.", ""]
    lines += [image_table(report, record["moved"])]
    return "\n".join(lines)


def render(recorded: Path, target: Path | None) -> int:
    """The Markdown of a recorded run, from its JSON (to change the wording without measuring again)."""
    record = B.read_json(recorded)
    drill = B.Run(**record["ours"]["drill"])
    peer = None
    if record.get("kolla"):
        kolla = record["kolla"]
        peer = {"build": B.Run(**kolla["build"]), "push": B.Run(**kolla["push"]), "wall": kolla["wall"],
                "cpu": kolla["build"]["cpu"] + kolla["push"]["cpu"], "run_steps": kolla["run_steps"]}
    saved = record["ours"].get("warm_pantsd")
    warm = {"run": B.Run(**saved["drill"]), "report": saved["report"]} if saved else None
    runs = [drill] + ([peer["build"], peer["push"]] if peer else []) + ([warm["run"]] if warm else [])
    text = markdown(record, drill, record["ours"]["report"], peer, runs, warm)
    print(text)
    if target:
        B.write_markdown_section(target, KEY, text)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-peer", action="store_true", help="only our side")
    parser.add_argument("--service-checks", action="store_true", help="run the service checks in our drill (podman)")
    parser.add_argument("--render", metavar="JSON", help="only rewrite the Markdown from a recorded --json file")
    parser.add_argument("--pantsd-too", action="store_true",
                        help="then roll back and run our drill again with a warm pantsd (a developer's machine)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="buildah builds at once")
    parser.add_argument("--deb-cache", default=str(B.DEFAULT_DEB_CACHE))
    B.add_run_options(parser)
    args = parser.parse_args(argv)
    if args.render:
        return render(Path(args.render), Path(args.markdown) if args.markdown else None)
    tools = ["docker-registry", "skopeo"] + ([] if args.no_peer else ["buildah", "mmdebstrap"])
    missing = [tool for tool in tools if not shutil.which(tool)]
    if missing:
        raise SystemExit(f"error: {', '.join(missing)} not found (apt-get install -y {' '.join(missing)})")
    work = B.work_dir(args.work, KEY)
    info = B.machine()
    ours = OurSide(work / "ours", Path(args.deb_cache), args.service_checks)
    pins = [f"{v.name}={v.version}" for v in ours.ours.old_versions]
    print(f"work {work}; update: {ours.ours.bump_text}", flush=True)
    with docker_registry(work / "registry") as registry:
        before = run_ours_before(ours, registry, work)
        names = before["names"]
        peer = kolla = None
        if not args.no_peer:
            info["buildah"] = B.tool_version(["buildah", "--version"])
            kolla, peer_names = peer_side(work / "kolla", ours, args.jobs)
            peer_before = run_peer_before(kolla, peer_names, registry, pins)
        ours_old = registry_layers(registry, "ours", names, "latest")
        kolla_old = registry_layers(registry, "kolla", peer_names, "latest") if kolla else {}
        drill = ours.refresh("ours: security refresh", registry, work / "report-drill")
        report = B.read_json(work / "report-drill/report.json")
        if kolla:
            peer = run_peer_drill(kolla, peer_names, registry)
        moved = {"ours": pulled(ours_old, registry_layers(registry, "ours", names, "latest"))}
        if kolla:
            moved["kolla"] = pulled(kolla_old, registry_layers(registry, "kolla", peer_names, "latest"))
        warm = run_ours_again_with_pantsd(ours, registry, work) if args.pantsd_too else None
    runs = [drill] + ([peer["build"], peer["push"]] if peer else []) + ([warm["run"]] if warm else [])
    record = {"command": B.command_line(), "machine": info, "bump": ours.ours.bump_text, "moved": moved,
              "ours": {"drill": B.run_record(drill), "report": report, "first": B.run_record(before["run"]),
                       "warm_pantsd": {"drill": B.run_record(warm["run"]), "report": warm["report"]} if warm else None},
              "kolla": {"build": B.run_record(peer["build"]), "push": B.run_record(peer["push"]),
                        "wall": peer["wall"], "run_steps": peer["run_steps"],
                        "before": {k: B.run_record(v) for k, v in peer_before.items()}} if peer else None}
    print(markdown(record, drill, report, peer, runs, warm))
    if args.json:
        B.write_json(Path(args.json), record)
    if args.markdown:
        B.write_markdown_section(Path(args.markdown), KEY, markdown(record, drill, report, peer, runs, warm))
    if kolla:
        kolla.remove_storage()
    B.remove_work(work, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
