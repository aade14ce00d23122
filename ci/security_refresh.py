#!/usr/bin/env python3
"""The security response in one command: refresh the lock, rebuild, check and publish what changed.

    ci/security_refresh.py --registry registry.example.org --namespace openstack.kolla
    ci/security_refresh.py --registry 127.0.0.1:5000 --insecure-registry 127.0.0.1:5000 \\
        --skip-service-checks --report-dir /tmp/drill images::

Steps, each timed, each a Pants goal or a tool it already uses:
  1. refresh the lock      `pants generate-lockfiles --resolve=debian` (signed indexes), the old lock
                           kept as <report dir>/lock-before.yaml (`--old-lock FILE`: the lock was
                           refreshed already, e.g. by a merged change; FILE is the lock before it)
  2. rebuild and analyse   `pants security-report --old-lock=... [package]`: per image the packages
                           changed (old -> new), the CVE IDs of their changelogs, the new digest and
                           the bytes a host pulls; only the layers that hold a changed package run
                           again (the others are cache hits). `package` writes dist/ for step 4.
  3. read the registry     what the floating tag named before (the old digest); an immutable tag
                           that already names another digest stops the response here
  4. service checks        bench/service_checks.py for every check that runs an affected image
                           (`--skip-service-checks` for images without services)
  5. publish               `pants publish --oci-publish-immutable-tag=<lock date>-<lock digest>` of
                           the affected images: the immutable tag first, then the floating tags move
  6. verify                every published reference read back from the registry, digest compared
Then report.json and report.md in the report directory (default dist/security-refresh).

Decisions:
- Only affected images (a package of their closure changed) are checked and published. Nothing is
  deleted or overwritten: the immutable tag is guarded by every push (oci/actions/push_image.py)
  and checked here before anything is pushed; past immutable tags keep their digests.
- Registry and namespace come from pants.toml (`[oci-publish].registries`, `.namespace`) or from
  `--registry`/`--namespace` here, which become Pants options for every step, as with
  `kolla-build --registry --namespace`.
- Pants runs with `--no-pantsd` unless `--pantsd` is given (CI has no warm daemon). Other Pants
  options come from the environment (`PANTS_LOCAL_STORE_DIR=...`) or pants.toml.

Standard library only (Python 3.9+). Exit status: 0 done (or nothing to do), 1 a step failed,
2 bad input.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
LOCK = "3rdparty/debian/lock.yaml"
CHANGES = "dist/security-report/changes.json"
COMPLETED = re.compile(r"\[INFO\] Completed: (.*)")


class RefreshError(Exception):
    """A step failed; the message says which and what to do."""


@dataclass
class Step:
    name: str
    seconds: float = 0.0
    detail: str = ""
    ok: bool = True


@dataclass
class Response:
    """Everything the report says, filled step by step."""

    args: argparse.Namespace
    steps: List[Step] = field(default_factory=list)
    changes: dict = field(default_factory=dict)
    old_digests: Dict[str, Optional[str]] = field(default_factory=dict)  # floating reference -> digest
    checks: List[dict] = field(default_factory=list)
    published: Dict[str, str] = field(default_factory=dict)  # reference -> digest read back
    processes: List[str] = field(default_factory=list)

    def step(self, name: str) -> Step:
        self.steps.append(Step(name))
        return self.steps[-1]

    @property
    def affected(self) -> List[dict]:
        return [image for image in self.changes.get("images", []) if image["affected"]]


def pants_argv(args: argparse.Namespace, *goal_args: str) -> List[str]:
    options = ["--no-dynamic-ui"] + ([] if args.pantsd else ["--no-pantsd"])
    if args.registry:
        options.append(f"--oci-publish-registries={json.dumps(args.registry)}")
    if args.namespace:
        options.append(f"--oci-publish-namespace={args.namespace}")
    if args.insecure_registry:
        options.append(f"--oci-publish-insecure-registries={json.dumps(args.insecure_registry)}")
    return ["./pants", *options, *goal_args]


def run_pants(args: argparse.Namespace, what: str, *goal_args: str) -> str:
    argv = pants_argv(args, *goal_args)
    print(f"security-refresh: {' '.join(argv)}", file=sys.stderr, flush=True)
    result = subprocess.run(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sys.stderr.write(result.stdout)
    if result.returncode != 0:
        raise RefreshError(f"{what} failed (`{' '.join(argv)}` exited with {result.returncode}); its output is above.")
    return result.stdout


def timed(response: Response, name: str, work) -> object:
    step = response.step(name)
    start = time.monotonic()
    try:
        return work(step)
    except RefreshError as error:
        step.ok, step.detail = False, str(error)
        raise
    finally:
        step.seconds = time.monotonic() - start


def refresh_lock(response: Response, step: Step) -> str:
    args = response.args
    report_dir = Path(args.report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    before = report_dir / "lock-before.yaml"
    if args.old_lock:
        shutil.copyfile(args.old_lock, before)
        step.detail = f"lock refreshed beforehand; the lock before it: {args.old_lock}"
        return str(before.resolve())
    shutil.copyfile(ROOT / LOCK, before)
    output = run_pants(args, "Refreshing the lock", "generate-lockfiles", "--resolve=debian")
    changed = [" ".join(line.replace("-->", "->").split()) for line in output.splitlines() if "-->" in line]
    step.detail = ("changed: " + ", ".join(changed))[:2000] if changed else "unchanged"
    return str(before.resolve())


def analyse(response: Response, step: Step, before: str) -> None:
    args = response.args
    goals = ["security-report"] + ([] if args.skip_service_checks else ["package"])
    output = run_pants(args, "Rebuilding and analysing the images", *goals,
                       f"--security-report-old-lock={before}", *args.targets)
    response.processes = sorted(COMPLETED.findall(output))
    response.changes = json.loads((ROOT / CHANGES).read_text())
    layers = sum(1 for p in response.processes if p.startswith("Build package layer"))
    step.detail = (f"{len(response.affected)} of {len(response.changes['images'])} images affected; "
                   f"{len(response.processes)} Processes ran, {layers} of them package layers")


def references(image: dict, tag: str) -> List[str]:
    return [f"{registry}/{image['repository']}:{tag}" for registry in image["registries"]]


def registry_digest(response: Response, reference: str) -> Optional[str]:
    """The digest `reference` names (sha256 of the raw manifest), or None when the registry lacks it."""
    registry = reference.split("/", 1)[0]
    tls = ["--tls-verify=false"] if registry in response.args.insecure_registry else []
    result = subprocess.run([response.args.skopeo, "inspect", "--raw", *tls, f"docker://{reference}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if result.returncode == 0:
        return "sha256:" + hashlib.sha256(result.stdout).hexdigest()
    message = result.stderr.decode("utf-8", "replace")
    if re.search(r"manifest unknown|not found|name unknown", message, re.IGNORECASE):
        return None
    raise RefreshError(f"cannot read {reference} from its registry: {message.strip().splitlines()[-1:]}")


def read_registry(response: Response, step: Step) -> None:
    tag = response.changes["immutable_tag"]
    for image in response.affected:
        if not image["registries"]:
            raise RefreshError(
                f"{image['address']} has no registry to publish to: give --registry HOST[:PORT], or set "
                "[oci-publish].registries in pants.toml (or the image's `registries` field).")
        for reference in references(image, image["tags"][0]) if image["tags"] else []:
            response.old_digests[reference] = registry_digest(response, reference)
        for reference in references(image, tag):
            existing = registry_digest(response, reference)
            if existing is not None and existing != image["digest"]:
                raise RefreshError(
                    f"{reference} already names {existing}, but {image['address']} is now {image['digest']}: "
                    "an immutable tag is never moved. Was the lock edited by hand after that tag was published? "
                    "Regenerate it (`pants generate-lockfiles --resolve=debian`) so that it gets a tag of its own.")
    step.detail = f"{len(response.old_digests)} floating references read"


def service_checks(response: Response, step: Step) -> None:
    if response.args.skip_service_checks:
        step.detail = "skipped (--skip-service-checks)"
        return
    if not (ROOT / "bench/service_checks.py").is_file():
        raise RefreshError(f"{ROOT / 'bench/service_checks.py'} is missing: run from a full checkout, or give "
                           "--skip-service-checks for images without services.")
    sys.path.insert(0, str(ROOT / "bench"))
    import service_checks as checks  # noqa: E402 - bench/ is not a package

    names = {image["address"].rsplit(":", 1)[-1] for image in response.affected}
    services = [name for name, check in checks.CHECKS.items() if names & set(check.images)]
    if not services:
        step.detail = "no service check runs an affected image"
        return
    out = Path(response.args.report_dir) / "service-checks.json"
    result = subprocess.run([sys.executable, str(ROOT / "bench/service_checks.py"), *services, "--json", str(out)],
                            cwd=ROOT)
    response.checks = json.loads(out.read_text()) if out.exists() else []
    step.detail = f"{sum(c['ok'] for c in response.checks)} of {len(services)} passed: {', '.join(services)}"
    if result.returncode != 0:
        raise RefreshError(f"service checks failed ({step.detail}); nothing was published. "
                           f"Details: {out}")


def publish(response: Response, step: Step) -> None:
    tag = response.changes["immutable_tag"]
    addresses = [image["address"] for image in response.affected]
    run_pants(response.args, "Publishing", f"--oci-publish-immutable-tag={tag}", "publish", *addresses)
    step.detail = f"{len(addresses)} images under {tag} and their floating tags"


def verify(response: Response, step: Step) -> None:
    tag = response.changes["immutable_tag"]
    wrong = []
    for image in response.affected:
        for reference in references(image, tag) + [r for t in image["tags"] for r in references(image, t)]:
            digest = registry_digest(response, reference)
            response.published[reference] = digest or "(missing)"
            if digest != image["digest"]:
                wrong.append(f"{reference} names {digest or 'nothing'}, not {image['digest']}")
    if wrong:
        raise RefreshError("the registry does not serve what was built: " + "; ".join(wrong))
    step.detail = f"{len(response.published)} references serve the built digests"


def image_record(response: Response, image: dict) -> dict:
    floating = references(image, image["tags"][0]) if image["tags"] else []
    mine = set(references(image, response.changes["immutable_tag"])) | {
        r for t in image["tags"] for r in references(image, t)}
    return {"address": image["address"], "repository": image["repository"], "packages": image["packages"],
            "cves": image["cves"], "old_digest": {r: response.old_digests.get(r) for r in floating},
            "new_digest": image["digest"], "pull_bytes": image["pull_bytes"],
            "pulled_layers": image["pulled_layers"],
            "published": {r: d for r, d in response.published.items() if r in mine}}


def report_json(response: Response, error: Optional[str]) -> dict:
    changes = response.changes
    return {
        "ok": error is None, "error": error, "immutable_tag": changes.get("immutable_tag"),
        "lock": changes.get("lock"),
        "steps": [{"name": s.name, "seconds": round(s.seconds, 1), "ok": s.ok, "detail": s.detail}
                  for s in response.steps],
        "total_seconds": round(sum(s.seconds for s in response.steps), 1),
        "processes_ran": response.processes,
        "images": [image_record(response, image) for image in response.affected],
        "unaffected": [image["address"] for image in changes.get("images", []) if not image["affected"]],
        "service_checks": [{k: c.get(k) for k in ("service", "check", "ok", "seconds", "detail")}
                           for c in response.checks],
    }


def megabytes(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 100_000 else f"{count / 1e3:.1f} kB"


def package_text(package: dict) -> str:
    return f"{package['name']} {package['old_version'] or '(new)'} → {package['new_version'] or '(removed)'}"


def report_markdown(report: dict) -> str:
    lines = [f"# Security refresh {report['immutable_tag'] or ''}".rstrip(), ""]
    lock = report.get("lock") or {}
    lines += [f"Lock `{lock.get('path', LOCK)}` sha256 `{lock.get('sha256', '?')}`, snapshot "
              f"{lock.get('snapshot_timestamp', '?')}. Result: "
              + ("**published**" if report["ok"] and report["images"] else "**nothing to publish**" if report["ok"]
                 else f"**failed**: {report['error']}"), ""]
    lines += ["| step | seconds | result |", "|---|---:|---|"]
    lines += [f"| {s['name']} | {s['seconds']:.1f} | {'ok' if s['ok'] else 'FAILED'}: {s['detail']} |"
              for s in report["steps"]]
    lines += [f"| **total** | {report['total_seconds']:.1f} | |", ""]
    if report["images"]:
        lines += ["| image | packages changed | CVEs fixed | old digest | new digest | host pulls |",
                  "|---|---|---|---|---|---:|"]
    for image in report["images"]:
        old = sorted({d or "(not published)" for d in image["old_digest"].values()}) or ["(no floating tag)"]
        lines.append(f"| {image['address']} | {'<br>'.join(package_text(p) for p in image['packages'])} | "
                     f"{' '.join(image['cves']) or 'none named'} | {'<br>'.join(f'`{d[:19]}…`' for d in old)} | "
                     f"`{image['new_digest'][:19]}…` | {megabytes(image['pull_bytes'])} "
                     f"({len(image['pulled_layers'])} layers) |")
    if report["unaffected"]:
        lines += ["", f"Not affected ({len(report['unaffected'])}): {', '.join(report['unaffected'])}."]
    published = [ref for image in report["images"] for ref in image["published"]]
    if published:
        lines += ["", "Published:", *[f"- `{ref}`" for ref in published]]
    return "\n".join(lines) + "\n"


def write_report(response: Response, error: Optional[str]) -> Path:
    report = report_json(response, error)
    directory = Path(response.args.report_dir)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    (directory / "report.md").write_text(report_markdown(report))
    return directory


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="security_refresh.py", description=__doc__.split("\n")[0])
    parser.add_argument("targets", nargs="*", default=["::"], help="oci_image targets (default: ::)")
    parser.add_argument("--registry", action="append", default=[], help="HOST[:PORT] to publish to (repeatable)")
    parser.add_argument("--namespace", help="repository path in front of each image's name")
    parser.add_argument("--insecure-registry", action="append", default=[],
                        help="a registry spoken to over plain HTTP or without TLS verification (loopback tests)")
    parser.add_argument("--old-lock", help="the lock was refreshed already; this is the lock before it")
    parser.add_argument("--skip-service-checks", action="store_true",
                        help="do not run bench/service_checks.py (images without services)")
    parser.add_argument("--report-dir", default=str(ROOT / "dist/security-refresh"))
    parser.add_argument("--pantsd", action="store_true", help="let Pants use its daemon (default: --no-pantsd)")
    parser.add_argument("--skopeo", default=shutil.which("skopeo") or "skopeo")
    args = parser.parse_args(argv)
    if args.old_lock and not os.path.exists(args.old_lock):
        parser.error(f"--old-lock {args.old_lock}: no such file (give the lock as it was before the refresh)")
    if not (ROOT / LOCK).is_file():
        parser.error(f"{ROOT / LOCK} does not exist: create it with `./pants generate-lockfiles --resolve=debian`")
    for registry in args.registry + args.insecure_registry:
        if not re.fullmatch(r"[A-Za-z0-9.-]+(:[0-9]+)?", registry):
            parser.error(f"registry {registry!r}: write it as HOST or HOST:PORT, without a scheme or path")
    if shutil.which(args.skopeo) is None:
        parser.error(f"{args.skopeo} not found: install skopeo (Debian: apt-get install skopeo)")
    args.report_dir = str(Path(args.report_dir).resolve())
    return args


def respond(response: Response) -> None:
    before = timed(response, "refresh the lock", lambda step: refresh_lock(response, step))
    timed(response, "rebuild and analyse", lambda step: analyse(response, step, before))
    if not response.affected:
        return
    timed(response, "read the registry", lambda step: read_registry(response, step))
    timed(response, "service checks", lambda step: service_checks(response, step))
    timed(response, "publish", lambda step: publish(response, step))
    timed(response, "verify the registry", lambda step: verify(response, step))


def main(argv: Sequence[str]) -> int:
    response = Response(parse_args(argv))
    error = None
    try:
        respond(response)
    except RefreshError as failure:
        error = str(failure)
    directory = write_report(response, error)
    print((directory / "report.md").read_text())
    print(f"security-refresh: report in {directory}/report.md and report.json", file=sys.stderr)
    if error:
        print(f"security-refresh: error: {error}", file=sys.stderr)
    return 1 if error else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
