#!/usr/bin/env python3
"""Sizes of the image set, from the OCI layouts `pants package ::` wrote under dist/.

    python3 bench/image_sizes.py                         # table on stdout
    python3 bench/image_sizes.py --markdown docs/images.md   # also rewrite the table in the doc
    python3 bench/image_sizes.py --podman                # cross-check totals with `podman image inspect`

For every layout dist/<dir>/<name>/ (index.json -> manifest -> layers):
- total: the sum of the image's uncompressed layer sizes (the bytes of each layer's tar, i.e. what
  its diff_id hashes). `podman images` reports the same sum for an image pulled from the layout
  (`--podman` checks that).
- own: the layers this image adds over its parent. The parent is the image of the set whose layer
  list is the longest proper prefix of this one's (so no BUILD file is read).
- shared: bytes of this image's layers that at least one other image of the set also has.
- gz: the same, counted in compressed (gzip) blob bytes, as a registry stores and sends them.
The set total counts each distinct layer once (unique bytes) and is compared with the sum of the
per-image totals, which is what a registry or a host would hold if no layer were shared.

Standard library only (Python 3.9+). Sizes are SI megabytes (1 MB = 10^6 bytes), as podman prints.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import zlib
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

MB = 1_000_000
BEGIN, END = "<!-- image_sizes:begin -->", "<!-- image_sizes:end -->"


@dataclass(frozen=True)
class LayerSize:
    digest: str      # compressed blob
    diff_id: str     # uncompressed tar
    compressed: int
    uncompressed: int


@dataclass
class Image:
    name: str
    path: str
    layers: List[LayerSize]
    parent: Optional[str] = None
    children: List[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(layer.uncompressed for layer in self.layers)

    @property
    def total_gz(self) -> int:
        return sum(layer.compressed for layer in self.layers)


def read_json(path: str) -> dict:
    with open(path, "rb") as f:
        return json.loads(f.read())


def blob(layout: str, digest: str) -> str:
    algorithm, hexdigest = digest.split(":", 1)
    return os.path.join(layout, "blobs", algorithm, hexdigest)


_cache: Dict[str, int] = {}


def uncompressed_size(path: str, digest: str, diff_id: str, media_type: str, verify: bool) -> int:
    """Bytes of the layer's tar: the blob inflated (gzip) or as is; optionally checked against diff_id."""
    if digest in _cache:
        return _cache[digest]
    size = 0
    sha = hashlib.sha256() if verify else None
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if "gzip" in media_type else None
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            data = inflater.decompress(chunk) if inflater else chunk
            size += len(data)
            if sha:
                sha.update(data)
        if inflater:
            data = inflater.flush()
            size += len(data)
            if sha:
                sha.update(data)
    if sha and f"sha256:{sha.hexdigest()}" != diff_id:
        raise SystemExit(f"error: {path}: uncompressed content does not match diff_id {diff_id}")
    _cache[digest] = size
    return size


def load_image(layout: str, verify: bool) -> Image:
    index = read_json(os.path.join(layout, "index.json"))
    manifest_desc = index["manifests"][0]
    manifest = read_json(blob(layout, manifest_desc["digest"]))
    config = read_json(blob(layout, manifest["config"]["digest"]))
    diff_ids = config["rootfs"]["diff_ids"]
    layers = []
    for desc, diff_id in zip(manifest["layers"], diff_ids):
        size = uncompressed_size(blob(layout, desc["digest"]), desc["digest"], diff_id, desc["mediaType"], verify)
        layers.append(LayerSize(desc["digest"], diff_id, int(desc["size"]), size))
    return Image(image_name(layout), layout, layers)


def image_name(layout: str) -> str:
    """The layout's image name; a variant's images (dist/images.source.keystone/keystone) as source/keystone."""
    directory, name = os.path.split(layout.rstrip("/"))
    variant = os.path.basename(directory).split(".")[1:-1]
    return "/".join([*variant, name])


def find_layouts(dist: str) -> List[str]:
    found = []
    for top in sorted(os.listdir(dist)):
        directory = os.path.join(dist, top)
        if not os.path.isdir(directory):
            continue
        for name in sorted(os.listdir(directory)):
            candidate = os.path.join(directory, name)
            if os.path.isfile(os.path.join(candidate, "index.json")) and os.path.isfile(os.path.join(candidate, "oci-layout")):
                found.append(candidate)
    return found


def link_parents(images: List[Image]) -> None:
    by_name = {image.name: image for image in images}
    for image in images:
        ids = [layer.diff_id for layer in image.layers]
        best = None
        for other in images:
            other_ids = [layer.diff_id for layer in other.layers]
            if other is not image and len(other_ids) < len(ids) and ids[:len(other_ids)] == other_ids:
                if best is None or len(other_ids) > len(best.layers):
                    best = other
        if best is not None:
            image.parent = best.name
            by_name[best.name].children.append(image.name)


def own_layers(image: Image, by_name: Dict[str, Image]) -> List[LayerSize]:
    start = len(by_name[image.parent].layers) if image.parent else 0
    return image.layers[start:]


def tree_order(images: List[Image]) -> List[Tuple[int, Image]]:
    by_name = {image.name: image for image in images}
    ordered: List[Tuple[int, Image]] = []

    def visit(image: Image, depth: int) -> None:
        ordered.append((depth, image))
        for child in sorted(image.children):
            visit(by_name[child], depth + 1)

    for root in sorted((i for i in images if i.parent is None), key=lambda i: i.name):
        visit(root, 0)
    return ordered


@dataclass
class Row:
    depth: int
    name: str
    parent: str
    layers: int
    own_layers: int
    total: int
    own: int
    shared: int
    total_gz: int
    own_gz: int
    podman: Optional[int] = None


def compute(images: List[Image]) -> Tuple[List[Row], dict]:
    by_name = {image.name: image for image in images}
    users: Dict[str, set] = {}
    for image in images:
        for layer in image.layers:
            users.setdefault(layer.diff_id, set()).add(image.name)
    rows = []
    for depth, image in tree_order(images):
        own = own_layers(image, by_name)
        shared = sum(layer.uncompressed for layer in image.layers if len(users[layer.diff_id]) > 1)
        rows.append(Row(depth, image.name, image.parent or "-", len(image.layers), len(own), image.total,
                        sum(l.uncompressed for l in own), shared, image.total_gz, sum(l.compressed for l in own)))
    distinct = {layer.diff_id: layer for image in images for layer in image.layers}
    totals = {
        "images": len(images),
        "sum_of_totals": sum(image.total for image in images),
        "unique": sum(layer.uncompressed for layer in distinct.values()),
        "sum_of_totals_gz": sum(image.total_gz for image in images),
        "unique_gz": sum(layer.compressed for layer in distinct.values()),
        "distinct_layers": len(distinct),
    }
    return rows, totals


def podman_sizes(images: List[Image], podman: str) -> Dict[str, int]:
    """Pull each layout into podman's storage and read back the size it reports (`podman images`)."""
    sizes = {}
    for image in images:
        pulled = subprocess.run([podman, "pull", "-q", f"oci:{image.path}:latest"], check=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE).stdout.decode().split()[-1]
        out = subprocess.run([podman, "image", "inspect", "--format", "{{.Size}}", pulled], check=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        sizes[image.name] = int(out.stdout.decode().strip())
    return sizes


def mb(value: int) -> str:
    return f"{value / MB:,.1f}"


def text_table(rows: List[Row], totals: dict) -> str:
    show_podman = any(r.podman is not None for r in rows)
    head = (f"{'image':22} {'parent':15} {'layers':>6} {'total MB':>9} {'own MB':>8} {'shared MB':>9} "
            f"{'gz MB':>7} {'own gz':>7}" + (f" {'podman MB':>9}" if show_podman else ""))
    lines = [head, "-" * len(head)]
    for r in rows:
        name = "  " * r.depth + r.name
        lines.append(f"{name:22} {r.parent:15} {r.own_layers:>2}/{r.layers:<3} {mb(r.total):>9} {mb(r.own):>8} "
                     f"{mb(r.shared):>9} {mb(r.total_gz):>7} {mb(r.own_gz):>7}"
                     + (f" {mb(r.podman) if r.podman is not None else '-':>9}" if show_podman else ""))
    lines.append("-" * len(head))
    lines.append(summary(totals))
    return "\n".join(lines)


def summary(totals: dict) -> str:
    ratio = totals["sum_of_totals"] / totals["unique"]
    ratio_gz = totals["sum_of_totals_gz"] / totals["unique_gz"]
    return (f"{totals['images']} images: sum of per-image totals {mb(totals['sum_of_totals'])} MB "
            f"({mb(totals['sum_of_totals_gz'])} MB gz); unique bytes of the set ({totals['distinct_layers']} distinct "
            f"layers) {mb(totals['unique'])} MB ({mb(totals['unique_gz'])} MB gz): {ratio:.2f}x smaller "
            f"({ratio_gz:.2f}x compressed)")


def markdown_table(rows: List[Row], totals: dict) -> str:
    show_podman = any(r.podman is not None for r in rows)
    out = ["| image | parent | own / all layers | total MB | own MB | shared MB | total gz MB | own gz MB |"
           + (" podman MB |" if show_podman else ""),
           "|---|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if show_podman else "")]
    for r in rows:
        name = "&nbsp;&nbsp;" * r.depth + r.name
        out.append(f"| {name} | {r.parent} | {r.own_layers} / {r.layers} | {mb(r.total)} | {mb(r.own)} | {mb(r.shared)} "
                   f"| {mb(r.total_gz)} | {mb(r.own_gz)} |" + (f" {mb(r.podman) if r.podman is not None else '-'} |"
                                                                if show_podman else ""))
    ratio = totals["sum_of_totals"] / totals["unique"]
    out.append(f"| **set: sum of totals** | | | **{mb(totals['sum_of_totals'])}** | | | "
               f"**{mb(totals['sum_of_totals_gz'])}** | |" + (" |" if show_podman else ""))
    out.append(f"| **set: unique bytes** ({totals['distinct_layers']} distinct layers) | | | "
               f"**{mb(totals['unique'])}** | | | **{mb(totals['unique_gz'])}** | |" + (" |" if show_podman else ""))
    out.append("")
    out.append(f"Unique bytes are {ratio:.2f}x smaller than the sum of the per-image totals "
               f"({totals['sum_of_totals_gz'] / totals['unique_gz']:.2f}x compressed).")
    return "\n".join(out)


def rewrite_between_markers(path: str, content: str) -> None:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"error: {path} has no {BEGIN} ... {END} markers to put the table between")
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    text = pattern.sub(lambda _: f"{BEGIN}\n{content}\n{END}", text, count=1)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dist", default="dist", help="where `pants package ::` wrote the layouts (default: dist)")
    parser.add_argument("--only", nargs="*", help="image names to include (default: every layout in dist)")
    parser.add_argument("--markdown", help="rewrite the table between the image_sizes markers of this Markdown file")
    parser.add_argument("--json", help="write rows and totals as JSON to this file")
    parser.add_argument("--verify", action="store_true", help="check every layer's content against its diff_id")
    parser.add_argument("--podman", nargs="?", const="podman", help="also pull each image into podman and show its size")
    args = parser.parse_args(argv)

    layouts = find_layouts(args.dist) if os.path.isdir(args.dist) else []
    images = [load_image(path, args.verify) for path in layouts]
    if args.only:
        images = [i for i in images if i.name in set(args.only)]
    if not images:
        print(f"error: no OCI layouts under {args.dist}/ (run ./pants package ::)", file=sys.stderr)
        return 1
    link_parents(images)
    rows, totals = compute(images)
    if args.podman:
        sizes = podman_sizes(images, args.podman)
        for row in rows:
            row.podman = sizes.get(row.name)
    print(text_table(rows, totals))
    if args.markdown:
        rewrite_between_markers(args.markdown, markdown_table(rows, totals))
        print(f"wrote the table into {args.markdown}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"rows": [r.__dict__ for r in rows], "totals": totals}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
