#!/usr/bin/env python3
"""The images/ set built by us: cold (warm and cold .deb cache), no-op, one leaf file, one base package bump.

    python3 bench/images_set.py                        # 2 repetitions, plus one cold-.deb-cache build
    python3 bench/images_set.py --reps 3 --cold-debs 0
    python3 bench/images_set.py --json images.json --markdown docs/benchmarks.md

Builds a copy of this repository's build inputs (pants, pants.toml, BUILD, rules/, 3rdparty/,
images/) in a temp dir, `./pants --no-pantsd --no-dynamic-ui package images::` with a private
store per repetition (--local-store-dir, --named-caches-dir) so that every "cold" build starts
empty, and a private .deb cache (--debian-deb-cache):

- cold, warm .deb cache: the cache is a hardlinked copy of ~/.cache/oci-pants/debs;
- cold, cold .deb cache: an empty cache dir, so every .deb comes from deb.debian.org;
- no-op: the same command again;
- leaf: one line appended to images/keystone/keystone-uwsgi-container.ini;
- bump: a base package moved to another version (bench/bumps.py: openssl and libssl3 switched
  between bookworm's version and bookworm-security's, a security update the store has never
  built), then rebuilt; "new bytes" are the layers (by diff_id) a host holding every image
  before the bump must pull to get every image after it.
Every run reports wall time, CPU, peak RSS and the Processes that ran; cold builds of the
repetitions are compared digest for digest. Standard library only (Python 3.9+).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as B  # noqa: E402
import bumps  # noqa: E402

KEY = "images"
LEAF_FILE = "images/keystone/keystone-uwsgi-container.ini"


class Ours:
    """Our build of a set of images in a private copy of the repository."""

    def __init__(self, work: Path, targets: List[str], deb_source: Path, bump_source: str,
                 bump_image: str = "images/base:base"):
        self.work = work
        self.logs = work / "logs"
        self.targets = targets
        self.repo = B.make_repo(work / "repo")
        self.deb_cache = B.link_tree(deb_source, work / "debs")
        B.ensure_pants_bootstrapped(self.repo, self.logs / "bootstrap.log")
        self.lock_path = self.repo / "3rdparty/debian/lock.yaml"
        self.lock_text = self.lock_path.read_text()
        lock = B.load_lock(self.lock_path)
        names = bumps.packages_of_source(lock, bump_image, bump_source)
        self.new_versions = bumps.current_versions(lock, names)
        self.old_versions = bumps.older_versions(work, names, self.deb_cache)
        self.bump_text = bumps.describe(self.old_versions, self.new_versions)
        self.store: Optional[B.Store] = None

    def package(self, label: str, log: str, pantsd: bool = False) -> B.Run:
        return B.pants(self.repo, label, ["package", *self.targets], self.store, self.logs / f"{log}.log",
                       pantsd=pantsd).check()

    def stop_pantsd(self) -> None:
        B.stop_pantsd(self.repo)

    def cold(self, label: str, log: str, deb_cache: Optional[Path] = None) -> B.Run:
        self.reset()
        self.store = B.Store.fresh(self.work / "store", deb_cache or self.deb_cache)
        shutil.rmtree(self.repo / "dist", ignore_errors=True)
        return self.package(label, log)

    def reset(self) -> None:
        self.lock_path.write_text(self.lock_text)
        leaf = self.repo / LEAF_FILE
        if leaf.exists():
            (self.repo / LEAF_FILE).write_text((B.REPO_ROOT / LEAF_FILE).read_text())

    def change_leaf(self, n: int) -> None:
        path = self.repo / LEAF_FILE
        path.write_text(path.read_text() + f"# changed by bench/images_set.py ({n})\n")

    def bump(self) -> None:
        """Switch the bumped packages to the version this store has not built (see bumps.py)."""
        self.lock_path.write_text(bumps.lock_with(self.lock_text, self.old_versions))

    def digests(self) -> Dict[str, str]:
        return B.layout_digests(self.repo / "dist")

    def layers(self) -> Dict[str, List[B.LayerInfo]]:
        return {name: B.image_layers(path) for name, path in B.find_layouts(self.repo / "dist").items()}

    def remove_store(self) -> None:
        if self.store:
            self.store.remove()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=2, help="repetitions with a warm .deb cache (default 2)")
    parser.add_argument("--cold-debs", type=int, default=1, help="cold builds with an empty .deb cache (default 1)")
    parser.add_argument("--targets", nargs="*", default=["images::"], help="what to package (default images::)")
    parser.add_argument("--pantsd", action=argparse.BooleanOptionalAction, default=True,
                        help="also time the no-op and leaf rebuilds through a warm pantsd (default on)")
    parser.add_argument("--bump-source", default="openssl", help="source package of the base bump (default openssl)")
    parser.add_argument("--deb-cache", default=str(B.DEFAULT_DEB_CACHE), help="the warm .deb cache to copy")
    B.add_run_options(parser)
    args = parser.parse_args(argv)

    work = B.work_dir(args.work, KEY)
    info = B.machine()
    ours = Ours(work, args.targets, Path(args.deb_cache), args.bump_source)
    print(f"work {work}; bump: {ours.bump_text}")
    runs: Dict[str, List[B.Run]] = {}
    digests: List[Dict[str, str]] = []
    bytes_moved = None
    sizes = None
    pantsd_mem: List[dict] = []

    def add(kind: str, r: B.Run) -> None:
        runs.setdefault(kind, []).append(r)

    for rep in range(args.reps):
        add("cold", ours.cold(f"cold, warm .deb cache #{rep + 1}", f"cold-{rep}"))
        digests.append(ours.digests())
        add("noop", ours.package(f"no-op #{rep + 1}", f"noop-{rep}"))
        ours.change_leaf(rep)
        add("leaf", ours.package(f"leaf file change #{rep + 1}", f"leaf-{rep}"))
        ours.reset()
        add("noop_back", ours.package(f"leaf file reverted (cache hit) #{rep + 1}", f"leaf-back-{rep}"))
        if args.pantsd:
            try:
                ours.package(f"start pantsd #{rep + 1}", f"pantsd-start-{rep}", pantsd=True)
                add("pantsd_noop", ours.package(f"no-op, warm pantsd #{rep + 1}", f"pantsd-noop-{rep}", pantsd=True))
                ours.change_leaf(100 + rep)
                add("pantsd_leaf", ours.package(f"leaf file change, warm pantsd #{rep + 1}", f"pantsd-leaf-{rep}",
                                                pantsd=True))
                ours.reset()
                ours.package(f"leaf file reverted, warm pantsd #{rep + 1}", f"pantsd-leaf-back-{rep}", pantsd=True)
                pantsd_mem.append(B.pantsd_memory(ours.repo))
            finally:
                ours.stop_pantsd()
        before = ours.layers() if rep == 0 else None
        if before:
            sizes = B.set_sizes(before)
        ours.bump()
        add("bump", ours.package(f"base bump ({ours.bump_text}) #{rep + 1}", f"bump-{rep}"))
        if before:
            bytes_moved = B.new_bytes(before, ours.layers())
        ours.reset()
        ours.remove_store()

    for rep in range(args.cold_debs):
        empty = work / f"debs-empty-{rep}"
        shutil.rmtree(empty, ignore_errors=True)
        empty.mkdir()
        add("cold_debs", ours.cold(f"cold, empty .deb cache (deb.debian.org) #{rep + 1}", f"cold-debs-{rep}", empty))
        digests.append(ours.digests())
        shutil.rmtree(empty, ignore_errors=True)
        ours.remove_store()

    same = all(d == digests[0] for d in digests[1:]) if digests else None
    labels = {
        "cold": "cold, warm .deb cache", "cold_debs": "cold, empty .deb cache (downloads)",
        "noop": "no-op", "leaf": "one file of keystone changed", "noop_back": "that change reverted",
        "pantsd_noop": "no-op, warm pantsd", "pantsd_leaf": "one file of keystone changed, warm pantsd",
        "bump": f"base bump: {ours.bump_text}",
    }
    header = ("run", "wall", "CPU", "peak RSS", "Processes ran")
    rows = []
    for kind, label in labels.items():
        if kind in runs:
            rs = runs[kind]
            kinds = rs[-1].extra["process_kinds"]
            detail = ", ".join(f"{v} {k.lower()}" for k, v in kinds.items())
            rows.append((label, B.fmt([r.wall for r in rs]), B.fmt([r.cpu for r in rs]),
                         B.fmt([r.peak_rss_mb for r in rs], "MB", 0),
                         f"{rs[-1].extra['processes']}" + (f" ({detail})" if detail else "")))
    all_runs = [r for rs in runs.values() for r in rs]
    print()
    print(B.text_table(header, rows))
    print(f"digests of {len(digests)} cold builds identical: {same}")
    if bytes_moved:
        print(f"bump: {bytes_moved['layers']} new layers, {B.mb(bytes_moved['compressed'])} MB compressed "
              f"({B.mb(bytes_moved['uncompressed'])} MB uncompressed) to pull for {bytes_moved['images_changed']} images")
    if sizes:
        print(f"set: {len(sizes['per_image'])} images, unique {B.mb(sizes['unique_compressed'])} MB gz / "
              f"{B.mb(sizes['unique_uncompressed'])} MB")
    print(B.busy_note(all_runs))

    record = {"benchmark": KEY, "command": B.command_line(), "machine": info, "targets": args.targets,
              "bump": ours.bump_text, "runs": {k: [B.run_record(r) for r in rs] for k, rs in runs.items()},
              "digests": digests, "digests_identical": same, "bump_new_bytes": bytes_moved, "sizes": sizes,
              "pantsd_memory_mb": pantsd_mem, "busy": B.busy_note(all_runs)}
    if args.json:
        B.write_json(Path(args.json), record)
    if args.markdown:
        md = [f"Command: `{B.command_line()}`. Machine: {B.machine_line(info)}; {B.busy_note(all_runs)}.", "",
              f"Targets `{' '.join(args.targets)}`; median (min–max) over {args.reps} repetitions with a warm .deb "
              f"cache and {args.cold_debs} with an empty one; each repetition starts from an empty store.", "",
              B.md_table(header, rows), ""]
        md.append(f"Cold builds compared digest for digest ({len(digests)} builds, every image): "
                  f"{'identical' if same else 'DIFFERENT'}.")
        if bytes_moved and sizes:
            md.append(f"After the bump, a host holding every image pulls {bytes_moved['layers']} new layers: "
                      f"{B.mb(bytes_moved['compressed'])} MB compressed ({B.mb(bytes_moved['uncompressed'])} MB "
                      f"uncompressed), for {bytes_moved['images_changed']} changed images whose unique layers take "
                      f"{B.mb(sizes['unique_compressed'])} MB compressed in all.")
        B.write_markdown_section(Path(args.markdown), KEY, "\n".join(md))
    B.remove_work(work, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
