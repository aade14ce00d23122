#!/usr/bin/env python3
"""Scale: a generated graph of N files-only images (default 200) in 3 to 5 levels.

    python3 bench/scale.py                                # 200 images, 3 repetitions
    python3 bench/scale.py --images 400 --reps 2
    python3 bench/scale.py --json scale.json --markdown docs/benchmarks.md

Generates a temp repository (pants, pants.toml, rules/ and 3rdparty/ copied from this one, as
tests/e2e_repo.py::make_repo does) with images/gNNN/BUILD files: 4 roots, then 16, 60, 60 and
60 images per level for N=200 (the same proportions for other N); 20 leaves are at level 3, 30
at level 4, 60 at level 5. Each image has one image_files target (two small files), env, labels
and cmd. Then, with `./pants --no-pantsd --no-dynamic-ui` and a private store per repetition:

- planning: `list ::`, `peek ::`, `dependencies ::` (no build);
- cold: `package ::` on an empty store;
- no-op: `package ::` again (everything is a cache hit);
- leaf: one file of a level-5 image changed, `package ::`;
- root: one file of a root image changed, `package ::` (its whole subtree is re-assembled);
- with --pantsd: the no-op and leaf runs again through a warm pantsd.

For every run: wall time, CPU time, peak RSS of the largest process (Pants itself) and how many
Processes ran (`[INFO] Completed:` lines). Standard library only (Python 3.9+).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Dict, List, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as B  # noqa: E402

KEY = "scale"


def level_sizes(total: int) -> List[int]:
    """4/16/60/60/60 for 200, scaled; at least one image per level."""
    shares = [4, 16, 60, 60, 60]
    sizes = [max(1, round(total * s / 200)) for s in shares]
    sizes[-1] += total - sum(sizes)
    return sizes


def generate(repo: Path, total: int) -> Tuple[Dict[str, str], Dict[str, List[str]]]:
    """Writes images/gNNN/BUILD; returns image -> parent and level -> images."""
    sizes = level_sizes(total)
    levels: Dict[int, List[str]] = {}
    parent_of: Dict[str, str] = {}
    n = 0
    for level, size in enumerate(sizes, start=1):
        names = []
        for i in range(size):
            name = f"g{n:03d}"
            n += 1
            names.append(name)
            if level > 1:
                previous = levels[level - 1]
                # Only the first two thirds of level 3 and the first half of level 4 get children, so
                # the tree has leaves at levels 3, 4 and 5.
                eligible = previous if level <= 3 else previous[: max(1, (2 * len(previous)) // 3)] if level == 4 \
                    else previous[: max(1, len(previous) // 2)]
                parent_of[name] = eligible[i % len(eligible)]
        levels[level] = names
    for level, names in levels.items():
        for name in names:
            directory = repo / "images" / name
            directory.mkdir(parents=True, exist_ok=True)
            (directory / f"{name}.conf").write_text(f"[{name}]\nlevel = {level}\nvalue = {'x' * 200}\n")
            (directory / f"{name}.sh").write_text(f"#!/bin/sh\necho {name} \"$@\"\n")
            parent = f'\n    parent="//images/{parent_of[name]}",' if name in parent_of else ""
            (directory / "BUILD").write_text(
                f'image_files(name="files", sources=["{name}.conf", "{name}.sh"], destination="/opt/{name}")\n'
                f"oci_image({parent}\n"
                f'    files=[":files"],\n'
                f'    env={{"IMAGE_{name.upper()}": "{level}"}},\n'
                f'    labels={{"org.example.level": "{level}", "org.example.name": "{name}"}},\n'
                f'    cmd=["/opt/{name}/{name}.sh"],\n'
                f")\n")
    return parent_of, levels


def descendants(root: str, parent_of: Dict[str, str]) -> int:
    children: Dict[str, List[str]] = {}
    for child, parent in parent_of.items():
        children.setdefault(parent, []).append(child)
    stack, count = [root], 0
    while stack:
        node = stack.pop()
        for child in children.get(node, []):
            count += 1
            stack.append(child)
    return count


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=200, help="number of generated images (default 200)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of every measurement (default 3)")
    parser.add_argument("--pantsd", action=argparse.BooleanOptionalAction, default=True,
                        help="also measure no-op and leaf rebuilds through a warm pantsd (default on)")
    B.add_run_options(parser)
    args = parser.parse_args(argv)

    work = B.work_dir(args.work, KEY)
    logs = work / "logs"
    repo = B.make_repo(work / "repo", with_images=False)
    parent_of, levels = generate(repo, args.images)
    roots, leaf_level = levels[1], levels[max(levels)]
    leaf, root = leaf_level[-1], roots[0]
    subtree = descendants(root, parent_of)
    depth_counts = {level: len(names) for level, names in levels.items()}
    leaves_by_level = {level: sum(1 for n in names if n not in set(parent_of.values())) for level, names in levels.items()}
    print(f"{args.images} images in {len(levels)} levels {depth_counts}, leaves per level {leaves_by_level}; "
          f"work dir {work}")
    info = B.machine()
    B.ensure_pants_bootstrapped(repo, logs / "bootstrap.log")
    deb_cache = work / "debs"  # files-only images never fetch a .deb
    deb_cache.mkdir(exist_ok=True)

    runs: Dict[str, List[B.Run]] = {}
    pantsd_mem: Dict[str, float] = {}

    def add(kind: str, r: B.Run) -> B.Run:
        runs.setdefault(kind, []).append(r.check())
        return r

    planning = B.Store.fresh(work / "store-planning", deb_cache)
    for rep in range(args.reps):
        for kind, goal in (("list", ["list", "::"]), ("peek", ["peek", "::"]), ("dependencies", ["dependencies", "::"])):
            add(kind, B.pants(repo, f"{kind} #{rep + 1}", goal, planning, logs / f"{kind}-{rep}.log"))

    leaf_file = repo / "images" / leaf / f"{leaf}.conf"
    root_file = repo / "images" / root / f"{root}.conf"
    originals = {leaf_file: leaf_file.read_text(), root_file: root_file.read_text()}
    store = None
    for rep in range(args.reps):
        for path, text in originals.items():
            path.write_text(text)
        shutil.rmtree(repo / "dist", ignore_errors=True)
        if store:
            store.remove()
        store = B.Store.fresh(work / "store", deb_cache)
        add("cold", B.pants(repo, f"cold package #{rep + 1}", ["package", "::"], store, logs / f"cold-{rep}.log"))
        add("noop", B.pants(repo, f"no-op package #{rep + 1}", ["package", "::"], store, logs / f"noop-{rep}.log"))
        leaf_file.write_text(originals[leaf_file] + f"changed = {rep}\n")
        add("leaf", B.pants(repo, f"leaf change ({leaf}) #{rep + 1}", ["package", "::"], store, logs / f"leaf-{rep}.log"))
        root_file.write_text(originals[root_file] + f"changed = {rep}\n")
        add("root", B.pants(repo, f"root change ({root}) #{rep + 1}", ["package", "::"], store, logs / f"root-{rep}.log"))

    if args.pantsd and store:
        try:
            B.pants(repo, "pantsd start (warm cache)", ["package", "::"], store, logs / "pantsd-start.log", pantsd=True).check()
            for rep in range(args.reps):
                add("pantsd_noop", B.pants(repo, f"pantsd no-op #{rep + 1}", ["package", "::"], store,
                                           logs / f"pantsd-noop-{rep}.log", pantsd=True))
            for rep in range(args.reps):
                leaf_file.write_text(originals[leaf_file] + f"changed by pantsd run {rep}\n")
                add("pantsd_leaf", B.pants(repo, f"pantsd leaf change #{rep + 1}", ["package", "::"], store,
                                           logs / f"pantsd-leaf-{rep}.log", pantsd=True))
            for rep in range(args.reps):
                add("pantsd_list", B.pants(repo, f"pantsd list #{rep + 1}", ["list", "::"], store,
                                           logs / f"pantsd-list-{rep}.log", pantsd=True))
            pantsd_mem = B.pantsd_memory(repo)
            print(f"  pantsd memory: {pantsd_mem}")
        finally:
            B.stop_pantsd(repo)

    labels = {
        "list": "`list ::` (plan only)", "peek": "`peek ::`", "dependencies": "`dependencies ::`",
        "cold": "cold `package ::` (empty store)", "noop": "no-op `package ::` (warm store)",
        "leaf": f"one file changed in a level-{max(levels)} leaf", "root": f"one file changed in a root ({subtree} descendants)",
        "pantsd_list": "`list ::`, warm pantsd", "pantsd_noop": "no-op `package ::`, warm pantsd",
        "pantsd_leaf": "leaf change, warm pantsd",
    }
    rows = []
    for kind, label in labels.items():
        if kind not in runs:
            continue
        rs = runs[kind]
        procs = sorted({r.extra["processes"] for r in rs})
        rows.append((label, B.fmt([r.wall for r in rs]), B.fmt([r.cpu for r in rs]),
                     B.fmt([r.peak_rss_mb for r in rs], "MB", 0), "/".join(str(p) for p in procs)))
    header = ("run", "wall", "CPU", "peak RSS", "processes ran")
    all_runs = [r for rs in runs.values() for r in rs]
    print()
    print(B.text_table(header, rows))
    print(B.busy_note(all_runs))
    note = ""
    if pantsd_mem:
        note = (f"With pantsd the client is a thin process (its RSS is what the pantsd rows show); pantsd itself "
                f"peaked at {pantsd_mem.get('VmHWM', 0):.0f} MB (VmHWM) and held {pantsd_mem.get('VmRSS', 0):.0f} MB "
                "after the runs.")
        print(note)

    record = {
        "benchmark": KEY, "command": B.command_line(), "machine": info, "images": args.images,
        "levels": depth_counts, "leaves_per_level": leaves_by_level, "leaf": leaf, "root": root,
        "root_descendants": subtree, "reps": args.reps,
        "runs": {kind: [B.run_record(r) for r in rs] for kind, rs in runs.items()},
        "summary": {kind: {"wall": B.stats([r.wall for r in rs]), "peak_rss_mb": B.stats([r.peak_rss_mb for r in rs]),
                           "processes": [r.extra["processes"] for r in rs]} for kind, rs in runs.items()},
        "busy": B.busy_note(all_runs), "pantsd_memory_mb": pantsd_mem,
    }
    if args.json:
        B.write_json(Path(args.json), record)
    if args.markdown:
        md = [f"Command: `{B.command_line()}`. Machine: {B.machine_line(info)}; {B.busy_note(all_runs)}.",
              "",
              f"{args.images} files-only images, levels {depth_counts}, leaves per level {leaves_by_level}. "
              "Times are median (min–max) over the repetitions; peak RSS is the largest process (Pants).",
              "", B.md_table(header, rows), "", note]
        B.write_markdown_section(Path(args.markdown), KEY, "\n".join(md))
    B.remove_work(work, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
