#!/usr/bin/env python3
"""Our source images (a venv from PyPI) against a Kolla-style source build of the same definitions.

    python3 bench/kolla_source.py                       # python-base -> source/{openstack-base,keystone,nova-api}
    python3 bench/kolla_source.py --json bench/results/kolla_source.json --markdown docs/pypi.md

The Kolla side reuses bench/kolla_peer.py (Containerfiles from `./pants peek`, `RUN apt-get
install`, `buildah bud --isolation chroot --timestamp 0 --layers` on an mmdebstrap base) and adds,
to every image with `python_requirements`, what Kolla's source Dockerfile.j2 files do
(kolla/docker/openstack-base, keystone/keystone-base, nova/nova-base; openstack/kolla master):
- the first image of the chain that asks installs python3-venv (in Kolla's openstack-base list),
  copies the upper constraints to /requirements/upper-constraints.txt, and runs
  `python3 -m venv --system-site-packages /var/lib/kolla/venv` with the `lib/python3` link;
- then, in one RUN, `python3 -m pip --no-cache-dir install --upgrade -c
  /requirements/upper-constraints.txt pip wheel setuptools` and the image's distributions, with
  pip's default bytecode compilation (Kolla's `install_pip` macro). Children run the second part.
Three variants:
- `same`: the distributions our image's own venv layers hold (read from our layouts' METADATA,
  so python_exclude is honoured), as `pip install --no-deps --only-binary :all: name==version`;
- `plain`: Kolla's own form, `pip install --upgrade -c constraints <python_requirements>`, which
  shows what pip adds without the exclusions;
- `dev`: plain, with Kolla's openstack-base Debian packages, which Kolla installs and keeps:
  build-essential, git, python3-dev, pkg-config, zip, ca-certificates and the -dev packages of
  libffi, pcre2, pq, ssl, xml2, xslt1, yaml and zlib. `same` and `plain` have our Debian
  packages plus python3-venv only.
Where all three differ from Kolla: keystone-base's and nova-base's Debian packages (libldap2-dev,
libsasl2-dev for keystone[ldap]; openvswitch, libvirt, ... in nova-base) are not added, the
services' Debian layers being ours; Kolla ADDs the whole requirements repository and the
service's source tarball, here only the constraints file is copied.

Ours is one cold `pants package` (fresh store, warm .deb and wheel caches); the Kolla side
downloads every wheel from PyPI (`--no-cache-dir`, as Kolla) with a warm .deb cache. Times are
measured on whatever else the machine runs: the record says how busy it was.
Standard library only (Python 3.9+); needs buildah, mmdebstrap and gpgv.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as B  # noqa: E402
from kolla_peer import ExtraSteps, Kolla, image_name, order_parents_first, parent_address, peek  # noqa: E402

KEY = "kolla_source"
DEFAULT_IMAGES = ["python-base", "source/openstack-base", "source/keystone", "source/nova-api"]
VENV = "/var/lib/kolla/venv"
SITE = "var/lib/kolla/venv/lib/python3.11/site-packages/"
CONSTRAINTS = "/requirements/upper-constraints.txt"
VARIANTS = ("same", "plain", "dev")
# Kolla's openstack-base packages on Debian (kolla/docker/openstack-base/Dockerfile.j2), which it
# keeps in the image: the `dev` variant installs them, the others only python3-venv.
KOLLA_OPENSTACK_BASE_DEBS = ("build-essential", "ca-certificates", "git", "libffi-dev", "libpcre2-dev", "libpq-dev",
                             "libssl-dev", "libxml2-dev", "libxslt1-dev", "libyaml-dev", "libz-dev", "pkg-config",
                             "python3-dev", "python3-venv", "uwsgi-plugin-python3", "zip")
# This machine's HTTPS goes through an egress proxy with its own CA: the host's bundle is mounted
# read-only into each RUN (`buildah bud --volume`) and named by PIP_CERT; it leaves an empty
# mount-point file at this path in the pip layers, and nothing else.
CA_MOUNT = "/run/bench-host-ca.crt"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# --------------------------------------------------------------------------------------------
# What an image's own layers hold


@dataclass(frozen=True)
class OwnContent:
    layers: int
    uncompressed: int
    compressed: int
    venv_bytes: int       # regular files under /var/lib/kolla/venv
    pyc_bytes: int        # of which *.pyc
    distributions: Tuple[Tuple[str, str], ...]  # (canonical name, version) whose METADATA these layers write


def metadata_fields(text: str) -> Tuple[str, str]:
    fields = {}
    for line in text.splitlines():
        if not line.strip():
            break
        if ": " in line:
            key, value = line.split(": ", 1)
            fields.setdefault(key, value.strip())
    return canonical(fields["Name"]), fields["Version"]


def own_content(layout: Path, parent_layers: int) -> OwnContent:
    """Sizes, venv bytes and installed distributions of the layers an image adds over its parent."""
    layers = B.image_layers(layout)[parent_layers:]
    venv = pyc = 0
    dists: Dict[str, str] = {}
    for layer in layers:
        with tarfile.open(B.blob_path(layout, layer.digest), "r:*") as tar:
            for member in tar:
                path = member.name.lstrip("./")
                if not member.isfile() or not path.startswith(VENV.lstrip("/") + "/"):
                    continue
                venv += member.size
                pyc += member.size if path.endswith(".pyc") else 0
                rest = path[len(SITE):] if path.startswith(SITE) else ""
                if rest.count("/") == 1 and rest.endswith(".dist-info/METADATA"):
                    name, version = metadata_fields(tar.extractfile(member).read().decode("utf-8", "replace"))
                    dists[name] = version
    return OwnContent(len(layers), sum(l.uncompressed for l in layers), sum(l.compressed for l in layers),
                      venv, pyc, tuple(sorted(dists.items())))


def contents(layouts: Mapping[str, Path], parents: Mapping[str, Optional[str]]) -> Dict[str, OwnContent]:
    counts = {name: len(B.image_layers(path)) for name, path in layouts.items()}
    return {name: own_content(path, counts[parents[name]] if parents[name] else 0) for name, path in layouts.items()}


def totals(layouts: Mapping[str, Path]) -> Dict[str, Tuple[int, int]]:
    """name -> (uncompressed, gzip) bytes of the whole image."""
    out = {}
    for name, path in layouts.items():
        layers = B.image_layers(path)
        out[name] = (sum(l.uncompressed for l in layers), sum(l.compressed for l in layers))
    return out


# --------------------------------------------------------------------------------------------
# The Kolla-style pip steps


def venv_lines() -> Tuple[str, ...]:
    """Kolla's openstack-base: the requirements, then the venv on the image's own python3."""
    return (
        f"COPY upper-constraints.txt {CONSTRAINTS}",
        f"RUN mkdir -p /var/lib/kolla && python3 -m venv --system-site-packages {VENV} && "
        "KOLLA_DISTRO_PYTHON_VERSION=$(/usr/bin/python3 -c \"import sys; "
        "print('{}.{}'.format(sys.version_info.major, sys.version_info.minor))\") && "
        f"ln -s python${{KOLLA_DISTRO_PYTHON_VERSION}} {VENV}/lib/python3",
    )


def pip(arguments: Sequence[str], ca_bundle: bool) -> str:
    """Kolla's install_pip macro (with the venv's python first on PATH, as Kolla's ENV PATH makes it)."""
    cert = f"PIP_CERT={CA_MOUNT} " if ca_bundle else ""
    return f"{cert}{VENV}/bin/python3 -m pip --no-cache-dir install --upgrade -c {CONSTRAINTS} " + " ".join(arguments)


def pip_arguments(variant: str, requirements: Sequence[str], ours: Sequence[Tuple[str, str]]) -> List[str]:
    if variant == "same":
        return ["--no-deps", "--only-binary", ":all:", *(f"{name}=={version}" for name, version in ours)]
    return [shlex.quote(r) for r in requirements]


def pip_steps(variant: str, chain: Sequence[str], targets: Mapping[str, dict], constraints: str,
              ours: Mapping[str, OwnContent], ca_bundle: bool) -> Dict[str, ExtraSteps]:
    """address -> the steps that make and fill the venv, for every image of `chain` with python_requirements."""
    steps: Dict[str, ExtraSteps] = {}
    for address in chain:
        requirements = targets[address].get("python_requirements") or []
        if not requirements:
            continue
        first = not any(a in steps for a in ancestors(address, targets))
        install = pip(pip_arguments(variant, requirements, ours[image_name(address)].distributions), ca_bundle)
        if first:
            tools = pip(["pip", "wheel", "setuptools"], ca_bundle)
            packages = KOLLA_OPENSTACK_BASE_DEBS if variant == "dev" else ("python3-venv",)
            steps[address] = ExtraSteps(packages=packages, lines=(*venv_lines(), f"RUN {tools} && {install}"),
                                        files=(("upper-constraints.txt", constraints),))
        else:
            steps[address] = ExtraSteps(lines=(f"RUN {install}",))
    return steps


def ancestors(address: str, targets: Mapping[str, dict]) -> List[str]:
    out = []
    parent = parent_address(targets[address])
    while parent:
        out.append(parent)
        parent = parent_address(targets[parent])
    return out


# --------------------------------------------------------------------------------------------
# The two sides


def build_ours(work: Path, repo: Path, addresses: Sequence[str], deb_cache: Path) -> Tuple[B.Run, Dict[str, Path]]:
    """One cold `pants package` of the images in `repo` (a copy of this repository); name -> OCI layout."""
    store = B.Store.fresh(work / "store", B.link_tree(deb_cache, work / "debs"))
    try:
        run = B.pants(repo, "ours cold", ["package", *(a.split(":")[0] for a in addresses)], store,
                      work / "logs" / "ours-cold.log").check()
    finally:
        store.remove()
    layouts = {image_name(a): repo / "dist" / a.split(":")[0].replace("/", ".") / a.split(":")[1] for a in addresses}
    missing = [str(p) for p in layouts.values() if not (p / "index.json").exists()]
    if missing:
        raise SystemExit(f"error: pants package wrote no layout at {', '.join(missing)}")
    return run, layouts


def build_kolla(kolla: Kolla, variant: str, steps: Mapping[str, ExtraSteps]) -> Tuple[B.Run, Dict[str, B.Run], B.Run,
                                                                                       Dict[str, Path]]:
    kolla.contexts(extras=steps)
    run, per_image = kolla.build_set(f"kolla-style {variant}", variant)
    export, layouts = kolla.export(f"kolla-style {variant} export", kolla.work / f"oci-{variant}")
    return run, {image_name(a): r for a, r in per_image.items()}, export, layouts


# --------------------------------------------------------------------------------------------
# Report


SIZE_HEADER = ("image", "built by", "total MB", "total gz MB", "own MB", "own gz MB", "own layers", "venv MB",
               "of it .pyc MB", "distributions")


def size_rows(names: Sequence[str], sides: Mapping[str, Tuple[Mapping, Mapping]]) -> List[Tuple]:
    """One row per image and side: whole image, the layers over its parent, and the venv files in those."""
    rows = []
    for name in names:
        for side, (total, own) in sides.items():
            o = own[name]
            rows.append((name if side == "ours" else "", side, B.mb(total[name][0]), B.mb(total[name][1]),
                         B.mb(o.uncompressed), B.mb(o.compressed), o.layers, B.mb(o.venv_bytes), B.mb(o.pyc_bytes),
                         len(o.distributions)))
    return rows


def distribution_differences(names: Sequence[str], ours_own: Mapping[str, OwnContent],
                             kolla_own: Mapping[str, OwnContent]) -> Dict[str, dict]:
    """Per image: what the Kolla-style venv layers install beyond ours, lack, or install at another version."""
    out = {}
    for name in names:
        ours = dict(ours_own[name].distributions)
        theirs = dict(kolla_own[name].distributions)
        out[name] = {
            "added": sorted(f"{n} {v}" for n, v in theirs.items() if n not in ours),
            "missing": sorted(f"{n} {v}" for n, v in ours.items() if n not in theirs),
            "other_version": sorted(f"{n} {ours[n]} -> {v}" for n, v in theirs.items() if n in ours and ours[n] != v),
        }
    return out


def time_rows(ours: B.Run, sides: Mapping[str, Tuple[B.Run, Dict[str, B.Run], B.Run]], names: Sequence[str]
              ) -> List[Tuple]:
    rows = [("ours: cold `pants package` of the set (warm .deb and wheel caches)", f"{ours.wall:.1f} s",
             f"{ours.cpu:.1f} s")]
    for variant, (run, per_image, export) in sides.items():
        rows.append((f"Kolla-style {variant}: buildah bud of the set", f"{run.wall:.1f} s", f"{run.cpu:.1f} s"))
        for name in names:
            rows.append((f"  {name}", f"{per_image[name].wall:.1f} s", f"{per_image[name].cpu:.1f} s"))
        rows.append(("  + buildah push to OCI layouts (gzip)", f"{export.wall:.1f} s", f"{export.cpu:.1f} s"))
    return rows


def difference_lines(differences: Mapping[str, Mapping[str, Sequence[str]]]) -> List[str]:
    lines = []
    for name, diff in differences.items():
        parts = [f"{key.replace('_', ' ')}: {', '.join(values)}" for key, values in diff.items() if values]
        lines.append(f"- {name}: " + ("; ".join(parts) if parts else "the same distributions"))
    return lines


def report(names: Sequence[str], ours: Tuple[B.Run, Mapping, Mapping], kolla: Mapping[str, dict],
           differences: Mapping[str, Mapping[str, dict]]) -> Tuple[List[str], List[B.Run]]:
    """Text lines (Markdown) of the tables; the timed runs, for the load note."""
    ours_run, ours_total, ours_own = ours
    variants = list(kolla)
    sides = {"ours": (ours_total, ours_own), **{f"Kolla-style {v}": (kolla[v]["total"], kolla[v]["own"])
                                                for v in variants}}
    times = time_rows(ours_run, {v: (kolla[v]["run"], kolla[v]["per_image"], kolla[v]["export"]) for v in variants},
                      names)
    lines = [B.md_table(SIZE_HEADER, size_rows(names, sides), "llrrrrrrrr"), "",
             "(own: the layers over the parent image; venv: regular files under /var/lib/kolla/venv in those "
             "layers, files that a later layer replaces included; distributions: the `*.dist-info/METADATA` "
             "those layers write.)", ""]
    titles = {"same": "The `same` variant's own venv layers against ours (pip, setuptools and wheel are Kolla's "
                      "tools in the venv):",
              "dev": "The `dev` variant (Kolla's plain pip step over Kolla's openstack-base packages) against "
                     "ours:",
              "plain": "What Kolla's plain `pip install --upgrade -c constraints <python_requirements>` installs "
                       "beyond, or other than, our image's own venv layer:"}
    for variant, diff in differences.items():
        lines += [titles[variant], "", *difference_lines(diff), ""]
    lines += ["Times (measured under load, see the note above):", "",
              B.md_table(("", "wall", "CPU"), times, "lrr")]
    runs = [ours_run] + [kolla[v]["run"] for v in variants] + [kolla[v]["export"] for v in variants]
    return lines, runs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", nargs="*", default=DEFAULT_IMAGES, help="image names, with their parents")
    parser.add_argument("--variants", nargs="*", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--jobs", type=int, default=1, help="buildah builds at once (default 1: a chain)")
    parser.add_argument("--deb-cache", default=str(B.DEFAULT_DEB_CACHE))
    parser.add_argument("--ca-bundle", default=os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE"),
                        help="CA bundle pip inside the builds trusts (default: $PIP_CERT, else $SSL_CERT_FILE; "
                             "empty for pip's own)")
    B.add_run_options(parser)
    args = parser.parse_args(argv)
    B.require_tools("buildah", "mmdebstrap", "gpgv")
    work = B.work_dir(args.work, KEY)
    info = {**B.machine(), "buildah": B.tool_version(["buildah", "--version"])}
    (work / "logs").mkdir(parents=True, exist_ok=True)
    repo = B.make_repo(work / "repo")
    B.ensure_pants_bootstrapped(repo, work / "logs" / "bootstrap.log")
    targets = peek(repo, work / "logs")
    by_name = {image_name(a): a for a, t in targets.items() if t.get("target_type") == "oci_image"}
    unknown = [n for n in args.images if n not in by_name]
    if unknown:
        raise SystemExit(f"error: no image named {', '.join(unknown)} (known: {', '.join(sorted(by_name))})")
    addresses = order_parents_first([by_name[n] for n in args.images], targets)
    names = [image_name(a) for a in addresses]
    parents = {image_name(a): image_name(parent_address(targets[a])) if parent_address(targets[a]) else None
               for a in addresses}
    print(f"images (parents first): {' '.join(names)}; work {work}", flush=True)

    ours_run, ours_layouts = build_ours(work, repo, addresses, Path(args.deb_cache))
    ours_own = contents(ours_layouts, parents)
    ours_total = totals(ours_layouts)
    constraints = (repo / "3rdparty/python/upper-constraints.txt").read_text()
    kolla = Kolla(work / "kolla", addresses, targets, repo, "warm", args.jobs,
                  B.load_lock(repo / "3rdparty/debian/lock.yaml"), [], Path(args.deb_cache))
    if args.ca_bundle:
        kolla.bud_args = ["--volume", f"{Path(args.ca_bundle).resolve()}:{CA_MOUNT}:ro"]
    results: Dict[str, dict] = {}
    try:
        kolla.make_rootfs()
        kolla.fresh_storage("storage")
        for variant in args.variants:
            steps = pip_steps(variant, addresses, targets, constraints, ours_own, bool(args.ca_bundle))
            run, per_image, export, layouts = build_kolla(kolla, variant, steps)
            results[variant] = {"run": run, "per_image": per_image, "export": export,
                                "own": contents(layouts, parents), "total": totals(layouts),
                                "containerfiles": {image_name(a): (kolla.context(a) / "Containerfile").read_text()
                                                   for a in addresses}}
    finally:
        kolla.remove_storage()
    shown = [n for n in names if n in args.images]
    with_venv = [n for n in shown if ours_own[n].distributions]
    differences = {v: distribution_differences(with_venv, ours_own, r["own"]) for v, r in results.items()}
    lines, runs = report(shown, (ours_run, ours_total, ours_own), results, differences)
    header = [f"Command: `{B.command_line()}`. Machine: {B.machine_line(info)}; load average at start "
              f"{' '.join(info.get('loadavg_at_start', []))}; {info['buildah']}; {B.busy_note(runs)}.", ""]
    print("\n".join(header + lines))
    record = {"benchmark": KEY, "command": B.command_line(), "machine": info, "images": names,
              "ours": {"run": B.run_record(ours_run), "total": ours_total, "own": ours_own},
              "kolla": {v: {"run": B.run_record(r["run"]), "export": B.run_record(r["export"]),
                            "per_image": {n: B.run_record(x) for n, x in r["per_image"].items()},
                            "total": r["total"], "own": r["own"], "containerfiles": r["containerfiles"]}
                        for v, r in results.items()},
              "differences": differences, "busy": B.busy_note(runs)}
    if args.json:
        B.write_json(Path(args.json), record)
    if args.markdown:
        B.write_markdown_section(Path(args.markdown), KEY, "\n".join(header + lines))
    B.remove_work(work, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
