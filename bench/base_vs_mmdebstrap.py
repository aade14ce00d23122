#!/usr/bin/env python3
"""Our base image against mmdebstrap + umoci for the same package set: time, size, reproducibility.

    python3 bench/base_vs_mmdebstrap.py                   # 3 repetitions, warm .deb caches
    python3 bench/base_vs_mmdebstrap.py --reps 2 --cold   # also with empty .deb caches (downloads)
    python3 bench/base_vs_mmdebstrap.py --json base.json --markdown docs/benchmarks.md

Ours: `./pants package images/base` (essential=True, ca-certificates, dumb-init, PAM files) on
an empty store, with a hardlinked copy of ~/.cache/oci-pants/debs as the .deb cache.

mmdebstrap: `mmdebstrap --variant=essential --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
--include=ca-certificates,dumb-init bookworm rootfs.tar <bookworm, bookworm-updates,
bookworm-security>` with SOURCE_DATE_EPOCH=0: the same 65 packages as our base (Essential plus
the two; the merged-usr hooks make it take usr-is-merged, as our resolver does, where plain
`--include=usr-is-merged` still gets usrmerge and perl from the Essential stage), with dpkg's
path-exclude/path-include set from pants.toml's `[debian].path_excludes`/`path_includes` so
both leave out the same documentation (`--dpkgopt`), then an OCI
image of the tarball with umoci (`init`, `new`,
`raw add-layer`, `config` with created = the epoch and the same entrypoint and env). With a warm
cache the base closure's .debs (the lock's, under apt's file names) are put into the chroot's
/var/cache/apt/archives with a setup hook, the documented way to give mmdebstrap a cache, so
apt downloads only the indexes. mmdebstrap runs apt and dpkg (resolution, maintainer scripts);
we read a lock that was resolved beforehand (`pants generate-lockfiles`, about 22 s, not
counted here).

With `--cold --pantsd` (the default with --cold), ours is also timed through a warm pantsd,
Pants' default mode: the daemon is started on the fresh store with `pants version` (the engine
and rule graph are up, no BUILD file read, nothing built), then `package` is timed, then the
daemon is stopped. That row leaves out Pants' start-up, not any of the build's work; its CPU is
the daemon's and is not counted.

Repetitions alternate the order. Two builds of each are compared: our layout digests; the
mmdebstrap tarball's sha256 and the umoci manifest digest. Standard library only (Python 3.9+);
needs mmdebstrap and umoci.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tarfile
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as B  # noqa: E402

KEY = "base"
IMAGE = "images/base:base"
SOURCES = [
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
]
EPOCH = "1970-01-01T00:00:00Z"
MERGED_USR_HOOKS = "/usr/share/mmdebstrap/hooks/merged-usr"
PANTSD_COLD = "cold, warm pantsd"


def dpkg_path_options(pants_toml: Path) -> List[str]:
    """pants.toml's [debian] path filters as mmdebstrap --dpkgopt lines (dpkg: the last match wins)."""
    import tomllib  # Python 3.11+, as on bookworm's /usr/bin/python3
    debian = tomllib.loads(pants_toml.read_text()).get("debian", {})
    return ([f"--dpkgopt=path-exclude={p}" for p in debian.get("path_excludes", [])]
            + [f"--dpkgopt=path-include={p}" for p in debian.get("path_includes", [])])


def mmdebstrap_image(work: Path, label: str, tag: str, archives: Path = None) -> Dict[str, object]:
    """mmdebstrap a rootfs tarball, then umoci it into an OCI layout; two Runs and the digests."""
    out = work / f"mm-{tag}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    rootfs = out / "rootfs.tar"
    hooks = []
    if archives:
        hooks = ['--setup-hook=mkdir -p "$1"/var/cache/apt/archives',
                 f"--setup-hook=sync-in {archives} /var/cache/apt/archives/"]
    mm = B.run(f"{label}: mmdebstrap", ["mmdebstrap", "--variant=essential", f"--hook-dir={MERGED_USR_HOOKS}",
                                         "--include=ca-certificates,dumb-init", *hooks,
                                         *dpkg_path_options(B.REPO_ROOT / "pants.toml"),
                                         "bookworm", str(rootfs), *SOURCES],
               work / "logs" / f"{tag}-mmdebstrap.log", env={**os.environ, "SOURCE_DATE_EPOCH": "0"}).check()
    layout = out / "oci"
    script = (
        f"set -e; umoci init --layout {layout}; umoci new --image {layout}:latest; "
        f"umoci config --image {layout}:latest --no-history --created {EPOCH} --architecture amd64 --os linux "
        f"--config.entrypoint /usr/bin/dumb-init --config.entrypoint --single-child --config.entrypoint -- "
        f"--config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin --config.env LANG=C.UTF-8; "
        f"umoci raw add-layer --image {layout}:latest --history.created {EPOCH} --history.created_by mmdebstrap {rootfs}; "
        f"umoci gc --layout {layout}"
    )
    um = B.run(f"{label}: umoci", ["sh", "-c", script], work / "logs" / f"{tag}-umoci.log").check()
    return {"mmdebstrap": mm, "umoci": um, "rootfs_sha256": B.sha256_file(rootfs), "rootfs_bytes": rootfs.stat().st_size,
            "digest": B.layout_manifest_digest(layout), "layout": layout, "rootfs": rootfs}


def rootfs_facts(rootfs: Path) -> Dict[str, int]:
    files = entries = 0
    names: List[str] = []
    with tarfile.open(rootfs) as tar:
        for member in tar:
            entries += 1
            files += member.isfile()
            if member.name.lstrip("./") == "var/lib/dpkg/status":
                text = tar.extractfile(member).read().decode("utf-8", "replace")
                names = sorted(s.split("\n", 1)[0].split(": ", 1)[1] for s in text.split("\n\n") if s.startswith("Package:"))
    return {"entries": entries, "files": files, "packages": len(names), "names": names}


def layout_facts(layout: Path) -> Dict[str, int]:
    entries = files = 0
    for layer in B.image_layers(layout):
        with tarfile.open(B.blob_path(layout, layer.digest), "r:gz") as tar:
            for member in tar:
                entries += 1
                files += member.isfile()
    return {"entries": entries, "files": files}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument("--cold", action="store_true", help="also build both with empty .deb caches (downloads)")
    parser.add_argument("--pantsd", action=argparse.BooleanOptionalAction, default=True,
                        help="with --cold, also time ours through a warm pantsd (default on)")
    parser.add_argument("--deb-cache", default=str(B.DEFAULT_DEB_CACHE))
    B.add_run_options(parser)
    args = parser.parse_args(argv)
    B.require_tools("mmdebstrap", "umoci")

    work = B.work_dir(args.work, KEY)
    logs = work / "logs"
    info = B.machine()
    info["mmdebstrap"] = B.tool_version(["mmdebstrap", "--version"])
    info["umoci"] = B.tool_version(["umoci", "--version"])
    repo = B.make_repo(work / "repo")
    deb_cache = B.link_tree(Path(args.deb_cache), work / "debs")
    B.ensure_pants_bootstrapped(repo, logs / "bootstrap.log")
    lock = B.load_lock(repo / "3rdparty/debian/lock.yaml")
    packages = lock["architectures"]["amd64"]
    closure = B.image_closure(lock, IMAGE)
    archives = work / "archives"
    archives.mkdir(exist_ok=True)
    for name in closure:
        source = deb_cache / f"{packages[name]['sha256']}.deb"
        target = archives / B.deb_filename_for_apt(name, packages[name])
        if not target.exists():
            shutil.copy2(source, target)

    ours_runs: Dict[str, List[B.Run]] = {}
    mm_runs: Dict[str, List[dict]] = {}
    ours_digests: List[str] = []
    last_ours_layout = None

    def ours(kind: str, rep: int, cache: Path, pantsd: bool = False) -> None:
        nonlocal last_ours_layout
        store = B.Store.fresh(work / "store", cache)
        shutil.rmtree(repo / "dist", ignore_errors=True)
        if pantsd:
            B.pants(repo, f"start pantsd #{rep + 1}", ["version"], store, logs / f"pantsd-{rep}.log", pantsd=True,
                    quiet=True).check()
        try:
            r = B.pants(repo, f"ours {kind} #{rep + 1}", ["package", "images/base"], store,
                        logs / f"ours-{kind}-{rep}.log", pantsd=pantsd).check()
        finally:
            if pantsd:
                B.stop_pantsd(repo)
        ours_runs.setdefault(kind, []).append(r)
        layout = B.find_layouts(repo / "dist")["base"]
        ours_digests.append(B.layout_manifest_digest(layout))
        keep = work / "ours-layout"
        shutil.rmtree(keep, ignore_errors=True)
        shutil.copytree(layout, keep)
        last_ours_layout = keep
        store.remove()

    def mm(kind: str, rep: int, warm: bool) -> None:
        mm_runs.setdefault(kind, []).append(mmdebstrap_image(work, f"mmdebstrap {kind} #{rep + 1}", f"{kind}-{rep}",
                                                             archives if warm else None))

    for rep in range(args.reps):
        steps = [lambda: ours("warm", rep, deb_cache), lambda: mm("warm", rep, True)]
        for step in (steps if rep % 2 == 0 else reversed(steps)):
            step()
    if args.cold:
        for rep in range(args.reps):
            empty = work / "debs-empty"
            shutil.rmtree(empty, ignore_errors=True)
            empty.mkdir()
            steps = [lambda: ours("cold", rep, empty), lambda: mm("cold", rep, False)]
            if args.pantsd:
                steps.append(lambda: ours(PANTSD_COLD, rep, empty, pantsd=True))
            for step in (steps if rep % 2 == 0 else reversed(steps)):
                step()
                shutil.rmtree(empty, ignore_errors=True)
                empty.mkdir()
            shutil.rmtree(empty, ignore_errors=True)

    ours_layers = B.image_layers(last_ours_layout)
    last_mm = mm_runs["warm"][-1]
    mm_layers = B.image_layers(last_mm["layout"])
    mm_facts = rootfs_facts(last_mm["rootfs"])
    ours_facts = layout_facts(last_ours_layout)
    all_mm = [m for ms in mm_runs.values() for m in ms]
    rows = []
    for kind in ("warm", "cold", PANTSD_COLD):
        if kind not in ours_runs:
            continue
        o = ours_runs[kind]
        m = mm_runs["cold" if kind == PANTSD_COLD else kind]
        total_mm = [x["mmdebstrap"].wall + x["umoci"].wall for x in m]
        label = "time, cold .deb cache, warm pantsd" if kind == PANTSD_COLD else f"time, {kind} .deb cache"
        rows.append((label, B.fmt([r.wall for r in o]),
                     f"{B.fmt(total_mm)} (mmdebstrap {B.fmt([x['mmdebstrap'].wall for x in m])} + umoci "
                     f"{B.fmt([x['umoci'].wall for x in m])})",
                     B.fmt([t / r.wall for t, r in zip(total_mm, o)], "x", 2)))
        if kind != PANTSD_COLD:  # the daemon's CPU is not the client's
            rows.append((f"CPU, {kind}", B.fmt([r.cpu for r in o]),
                         B.fmt([x["mmdebstrap"].cpu + x["umoci"].cpu for x in m]), ""))
    rows += [
        ("packages", len(closure), mm_facts["packages"],
         "same set" if set(closure) == set(mm_facts["names"]) else
         f"only mmdebstrap: {', '.join(sorted(set(mm_facts['names']) - set(closure)))}; "
         f"only ours: {', '.join(sorted(set(closure) - set(mm_facts['names'])))}"),
        ("layers", len(ours_layers), len(mm_layers), ""),
        ("uncompressed MB", B.mb(sum(l.uncompressed for l in ours_layers)), B.mb(sum(l.uncompressed for l in mm_layers)),
         f"{sum(l.uncompressed for l in mm_layers) / sum(l.uncompressed for l in ours_layers):.2f}x"),
        ("gzip MB", B.mb(sum(l.compressed for l in ours_layers)), B.mb(sum(l.compressed for l in mm_layers)),
         f"{sum(l.compressed for l in mm_layers) / sum(l.compressed for l in ours_layers):.2f}x"),
        ("tar entries (files)", f"{ours_facts['entries']} ({ours_facts['files']})",
         f"{mm_facts['entries']} ({mm_facts['files']})", ""),
        (f"identical digests over {len(ours_digests)} / {len(all_mm)} builds",
         "yes" if len(set(ours_digests)) == 1 else f"no ({len(set(ours_digests))} distinct)",
         ("rootfs.tar: " + ("yes" if len({m['rootfs_sha256'] for m in all_mm}) == 1 else
                            f"no ({len({m['rootfs_sha256'] for m in all_mm})} distinct)")
          + "; OCI manifest: " + ("yes" if len({m['digest'] for m in all_mm}) == 1 else
                                  f"no ({len({m['digest'] for m in all_mm})} distinct)")), ""),
    ]
    header = ("", "ours (pants package images/base)", "mmdebstrap + umoci", "mmdebstrap / ours")
    all_runs = [r for rs in ours_runs.values() for r in rs] + [m["mmdebstrap"] for m in all_mm]
    print()
    print(B.text_table(header, rows))
    print(B.busy_note(all_runs))
    record = {"benchmark": KEY, "command": B.command_line(), "machine": info, "closure": closure,
              "ours": {k: [B.run_record(r) for r in rs] for k, rs in ours_runs.items()}, "ours_digests": ours_digests,
              "mmdebstrap": {k: [{"mmdebstrap": B.run_record(m["mmdebstrap"]), "umoci": B.run_record(m["umoci"]),
                                  "rootfs_sha256": m["rootfs_sha256"], "rootfs_bytes": m["rootfs_bytes"],
                                  "digest": m["digest"]} for m in ms] for k, ms in mm_runs.items()},
              "ours_layers": ours_layers, "mm_layers": mm_layers, "mm_facts": mm_facts, "ours_facts": ours_facts,
              "busy": B.busy_note(all_runs)}
    if args.json:
        B.write_json(Path(args.json), record)
    if args.markdown:
        md = [f"Command: `{B.command_line()}`. Machine: {B.machine_line(info)}; {info['mmdebstrap']}, {info['umoci']}; "
              f"{B.busy_note(all_runs)}.", "",
              f"Median (min–max) of {args.reps} repetitions per cache state, order alternating.", "",
              B.md_table(header, rows, "lrrr")]
        B.write_markdown_section(Path(args.markdown), KEY, "\n".join(md))
    B.remove_work(work, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
