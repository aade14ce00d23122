#!/usr/bin/env python3
"""The raw codec limit: how fast the same bytes could go through xz and gzip, against our cold build.

    python3 bench/codec_limit.py                          # images/keystone, 3 repetitions
    python3 bench/codec_limit.py --image images/python-base:python-base --reps 5
    python3 bench/codec_limit.py --json codec.json --markdown docs/benchmarks.md

For the image's package closure (3rdparty/debian/lock.yaml, `images:` section), reads each .deb
from the .deb cache (~/.cache/oci-pants/debs/<sha256>.deb), and times, per .deb:
  xz:   decompressing data.tar.xz (Python's lzma, i.e. liblzma as `xz -d` uses);
  gzip: compressing those uncompressed bytes with zlib at [oci].compression_level (default 6),
        framed as a gzip stream, which is what a layer blob is;
  sha:  sha256 over the uncompressed and the compressed bytes (diff_id and blob digest).
It does this on one core and with as many worker processes as cores (the build uses both).
The floor is xz + gzip; "+ sha" is what any correct layer writer must also do.

Then `./pants package <image and its parents>` on an empty store with a warm .deb cache (a
hardlinked private copy of it), and a no-op run right after, so that "cold - no-op" is the build
work without Pants' start-up and planning. Repetitions alternate the order of the two sides.
The manifest digests of the chain are printed and recorded (`digests` in --json), and must be the
same in every repetition: compare them across commits to show a speed-up changed no byte.
Standard library only (Python 3.9+).
"""

from __future__ import annotations

import argparse
import hashlib
import lzma
import os
import shutil
import sys
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Dict, List, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as B  # noqa: E402

KEY = "codec"


def data_member(path: str) -> Tuple[str, bytes]:
    """(name, bytes) of the data.tar.* member of a .deb (an ar archive)."""
    with open(path, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            raise ValueError(f"{path}: not an ar archive")
        while True:
            header = f.read(60)
            if len(header) < 60:
                raise ValueError(f"{path}: no data.tar member")
            name = header[:16].decode().strip().rstrip("/")
            size = int(header[48:58].decode().strip())
            if name.startswith("data.tar"):
                return name, f.read(size)
            f.seek(size + (size & 1), os.SEEK_CUR)


def gzip_stream(data: bytes, level: int) -> bytes:
    """A gzip member as the layer writer frames it: fixed header, raw deflate, crc32 and size."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, 9)
    out = [b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"]
    step = 1 << 20
    for i in range(0, len(data), step):
        out.append(compressor.compress(data[i:i + step]))
    out.append(compressor.flush())
    out.append((zlib.crc32(data) & 0xFFFFFFFF).to_bytes(4, "little") + (len(data) & 0xFFFFFFFF).to_bytes(4, "little"))
    return b"".join(out)


def one_deb(args: Tuple[str, int]) -> Dict[str, float]:
    path, level = args
    name, member = data_member(path)
    t0 = time.perf_counter()
    if name.endswith(".xz"):
        raw = lzma.decompress(member)
    elif name.endswith(".gz"):
        raw = zlib.decompress(member, 16 + zlib.MAX_WBITS)
    elif name.endswith(".zst"):
        raise ValueError(f"{path}: zstd data member, not in bookworm")
    else:
        raw = member
    t1 = time.perf_counter()
    gz = gzip_stream(raw, level)
    t2 = time.perf_counter()
    hashlib.sha256(raw).digest()
    hashlib.sha256(gz).digest()
    t3 = time.perf_counter()
    return {"xz": t1 - t0, "gzip": t2 - t1, "sha": t3 - t2, "compressed_in": len(member),
            "uncompressed": len(raw), "gz": len(gz)}


def codec_pass(paths: List[str], level: int, jobs: int) -> Dict[str, float]:
    """One pass over every .deb; per-phase seconds summed, and the wall time of the whole pass."""
    start = time.perf_counter()
    cpu0 = time.process_time()
    if jobs == 1:
        results = [one_deb((p, level)) for p in paths]
        cpu = time.process_time() - cpu0
    else:
        r0 = os.times()
        # Biggest first, so the pool does not end on one long .deb.
        ordered = sorted(paths, key=lambda p: -os.path.getsize(p))
        with ProcessPoolExecutor(jobs) as pool:
            results = list(pool.map(one_deb, [(p, level) for p in ordered], chunksize=1))
        r1 = os.times()
        cpu = (r1.children_user - r0.children_user) + (r1.children_system - r0.children_system)
    wall = time.perf_counter() - start
    total = {k: sum(r[k] for r in results) for k in results[0]}
    total["wall"] = wall
    total["cpu"] = cpu
    return total


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", default="images/keystone:keystone", help="image address in the lock (default keystone)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument("--level", type=int, default=6, help="gzip level, as [oci].compression_level (default 6)")
    parser.add_argument("--extra-levels", default="1", help="also time gzip at these levels, comma-separated (default 1)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes of the parallel pass")
    parser.add_argument("--deb-cache", default=str(B.DEFAULT_DEB_CACHE), help="the warm .deb cache to read and copy")
    B.add_run_options(parser)
    args = parser.parse_args(argv)

    lock = B.load_lock(B.REPO_ROOT / "3rdparty/debian/lock.yaml")
    if args.image not in lock.get("images", {}):
        raise SystemExit(f"error: {args.image} is not in the lock; images: {', '.join(sorted(lock.get('images', {})))}")
    closure = B.image_closure(lock, args.image)
    packages = lock["architectures"]["amd64"]
    cache = Path(args.deb_cache)
    paths = []
    for name in closure:
        path = cache / f"{packages[name]['sha256']}.deb"
        if not path.exists():
            raise SystemExit(f"error: {name}: {path} is not in the .deb cache; build the image once to fill it")
        paths.append(str(path))
    deb_bytes = sum(os.path.getsize(p) for p in paths)
    chain = []
    address = args.image
    while address:
        chain.append(address)
        address = lock["requests"][address].get("parent")
    targets = [a.split(":")[0] for a in reversed(chain)]

    work = B.work_dir(args.work, KEY)
    logs = work / "logs"
    repo = B.make_repo(work / "repo")
    deb_cache = B.link_tree(cache, work / "debs")
    B.ensure_pants_bootstrapped(repo, logs / "bootstrap.log")
    info = B.machine()
    print(f"{args.image}: {len(closure)} packages, {B.mb(deb_bytes)} MB of .debs; chain {' -> '.join(targets)}; work {work}")

    codec1: List[Dict[str, float]] = []
    codecN: List[Dict[str, float]] = []
    extra: Dict[int, List[float]] = {}
    cold: List[B.Run] = []
    noop: List[B.Run] = []
    digests: List[Dict[str, str]] = []
    for rep in range(args.reps):
        def ours() -> None:
            store = B.Store.fresh(work / "store", deb_cache)
            shutil.rmtree(repo / "dist", ignore_errors=True)
            cold.append(B.pants(repo, f"cold package #{rep + 1}", ["package", *targets], store,
                                logs / f"cold-{rep}.log").check())
            digests.append(B.layout_digests(repo / "dist"))
            noop.append(B.pants(repo, f"no-op package #{rep + 1}", ["package", *targets], store,
                                logs / f"noop-{rep}.log").check())
            store.remove()

        def codec() -> None:
            for jobs, bucket in ((1, codec1), (args.jobs, codecN)):
                result = codec_pass(paths, args.level, jobs)
                bucket.append(result)
                print(f"  codec pass, {jobs} process(es): xz {result['xz']:.1f} s + gzip-{args.level} "
                      f"{result['gzip']:.1f} s + sha {result['sha']:.1f} s; wall {result['wall']:.1f} s", flush=True)
            for level in [int(v) for v in args.extra_levels.split(",") if v.strip()]:
                total = 0.0
                for p in paths:
                    name, member = data_member(p)
                    raw = lzma.decompress(member) if name.endswith(".xz") else member
                    t = time.perf_counter()
                    gzip_stream(raw, level)
                    total += time.perf_counter() - t
                extra.setdefault(level, []).append(total)
                print(f"  gzip-{level} alone, 1 process: {total:.1f} s", flush=True)

        for step in ((codec, ours) if rep % 2 == 0 else (ours, codec)):
            step()

    if any(d != digests[0] for d in digests):
        raise SystemExit(f"error: the cold builds gave different manifest digests: {digests}")
    work_time = [c.wall - n.wall for c, n in zip(cold, noop)]
    floor1 = [r["xz"] + r["gzip"] for r in codec1]
    floor1_sha = [r["xz"] + r["gzip"] + r["sha"] for r in codec1]
    floorN = [r["wall"] for r in codecN]
    uncompressed = codec1[0]["uncompressed"]
    gz_bytes = codec1[0]["gz"]
    ratio_wall = [c.wall / f for c, f in zip(cold, floorN)]
    ratio_work = [w / f for w, f in zip(work_time, floorN)]
    ratio_cpu = [c.cpu / f for c, f in zip(cold, floor1_sha)]

    rows = [
        ("xz -d of data.tar.xz, 1 core", B.fmt([r["xz"] for r in codec1])),
        (f"gzip -{args.level} of the uncompressed bytes, 1 core", B.fmt([r["gzip"] for r in codec1])),
        ("sha256 of both streams, 1 core", B.fmt([r["sha"] for r in codec1])),
        ("codec floor (xz + gzip), 1 core", B.fmt(floor1)),
        (f"xz + gzip + sha, {args.jobs} processes (wall)", B.fmt(floorN)),
    ]
    rows += [(f"gzip -{level} instead, 1 core", B.fmt(values)) for level, values in extra.items()]
    rows += [
        ("ours: cold `package` (empty store, warm .deb cache)", B.fmt([r.wall for r in cold])),
        ("ours: no-op right after (start-up + planning)", B.fmt([r.wall for r in noop])),
        ("ours: cold − no-op (build work)", B.fmt(work_time)),
        ("ours: CPU of the cold run (Pants + all Processes)", B.fmt([r.cpu for r in cold])),
        (f"ratio: cold wall / {args.jobs}-process floor", B.fmt(ratio_wall, "x", 2)),
        (f"ratio: build work / {args.jobs}-process floor", B.fmt(ratio_work, "x", 2)),
        ("ratio: cold CPU / 1-core (xz + gzip + sha)", B.fmt(ratio_cpu, "x", 2)),
    ]
    header = ("step", "time")
    print()
    print(f"{args.image}: {len(closure)} .debs, {B.mb(deb_bytes)} MB in, {B.mb(uncompressed)} MB uncompressed, "
          f"{B.mb(gz_bytes)} MB gzip-{args.level}")
    print(B.text_table(header, rows))
    all_runs = cold + noop
    print(B.busy_note(all_runs))
    print("manifest digests: " + ", ".join(f"{name} {digest}" for name, digest in sorted(digests[0].items())))
    record = {"benchmark": KEY, "command": B.command_line(), "machine": info, "image": args.image,
              "packages": len(closure), "deb_bytes": deb_bytes, "uncompressed_bytes": uncompressed,
              "gzip_bytes": gz_bytes, "level": args.level, "jobs": args.jobs,
              "codec_1": codec1, "codec_n": codecN, "extra_levels": extra,
              "cold": [B.run_record(r) for r in cold], "noop": [B.run_record(r) for r in noop],
              "digests": digests[0], "ratio_wall": B.stats(ratio_wall), "ratio_work": B.stats(ratio_work), "ratio_cpu": B.stats(ratio_cpu),
              "busy": B.busy_note(all_runs)}
    if args.json:
        B.write_json(Path(args.json), record)
    if args.markdown:
        md = [f"Command: `{B.command_line()}`. Machine: {B.machine_line(info)}; {B.busy_note(all_runs)}.", "",
              f"`{args.image}` and its parents: {len(closure)} .debs, {B.mb(deb_bytes)} MB in, "
              f"{B.mb(uncompressed)} MB of data.tar uncompressed, {B.mb(gz_bytes)} MB as gzip-{args.level}. "
              f"Median (min–max) of {args.reps} repetitions.", "", B.md_table(header, rows)]
        B.write_markdown_section(Path(args.markdown), KEY, "\n".join(md))
    B.remove_work(work, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
