"""Sizes of a set of images: per image, per set, and the parent tree with what each node shares.

Pure functions over `ImageFacts`.  Sizes are compressed layer bytes (what a registry
stores and a node pulls); package sizes are installed bytes (files of the package).

- total: all layers of the image, its parents' included
- own: the layers the image adds over its parent
- shared: the image's layers that at least one other image of the set also has
- unique (set): every distinct layer once, what a node pulling the whole set downloads
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Mapping, Sequence

import networkx as nx

UNITS = ("B", "kB", "MB", "GB", "TB")


def human_bytes(count: int) -> str:
    value = float(count)
    for unit in UNITS:
        if abs(value) < 1000 or unit == UNITS[-1]:
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class PackageSize:
    name: str
    version: str
    installed_bytes: int
    added_by: str


@dataclass(frozen=True)
class ImageSizes:
    address: str
    parent: str | None
    manifest_digest: str
    layers: int
    total_bytes: int
    own_bytes: int
    shared_bytes: int
    packages: int
    own_packages: int
    largest: tuple[PackageSize, ...]

    def to_json(self) -> dict:
        return {
            "address": self.address, "parent": self.parent, "manifest_digest": self.manifest_digest,
            "layers": self.layers, "total_bytes": self.total_bytes, "own_bytes": self.own_bytes,
            "shared_bytes": self.shared_bytes, "packages": self.packages, "own_packages": self.own_packages,
            "largest_packages": [{"name": p.name, "version": p.version, "installed_bytes": p.installed_bytes,
                                  "added_by": p.added_by} for p in self.largest],
        }


@dataclass(frozen=True)
class SetSizes:
    images: int
    sum_of_totals: int  # every image pulled on its own, nothing shared
    unique_bytes: int  # every distinct layer once

    def to_json(self) -> dict:
        return {"images": self.images, "sum_of_totals": self.sum_of_totals, "unique_bytes": self.unique_bytes}


def layer_users(all_facts: Sequence) -> Counter:
    """How many images of the set hold each layer digest."""
    return Counter(digest for facts in all_facts for digest in {layer.digest for layer in facts.layers})


def image_sizes(facts, users: Mapping[str, int], top: int) -> ImageSizes:
    address = str(facts.address)
    packages = [PackageSize(p.name, p.version, p.installed_bytes, str(layer.added_by))
                for layer in facts.layers for p in layer.packages]
    largest = sorted(packages, key=lambda p: (-p.installed_bytes, p.name))[:top]
    return ImageSizes(
        address=address,
        parent=str(facts.parent) if facts.parent else None,
        manifest_digest=facts.manifest_digest,
        layers=len(facts.layers),
        total_bytes=facts.total_bytes,
        own_bytes=facts.own_bytes,
        shared_bytes=sum(layer.size for layer in facts.layers if users[layer.digest] > 1),
        packages=len(packages),
        own_packages=sum(1 for p in packages if p.added_by == address),
        largest=tuple(largest),
    )


def set_sizes(all_facts: Sequence) -> SetSizes:
    unique = {layer.digest: layer.size for facts in all_facts for layer in facts.layers}
    return SetSizes(len(all_facts), sum(f.total_bytes for f in all_facts), sum(unique.values()))


def parent_tree(sizes: Sequence[ImageSizes]) -> nx.DiGraph:
    """Images as nodes (with their sizes), parent -> child edges."""
    graph = nx.DiGraph()
    for item in sizes:
        graph.add_node(item.address, sizes=item)
    for item in sizes:
        if item.parent and item.parent in graph:
            graph.add_edge(item.parent, item.address)
    return graph


def reused_by(graph: nx.DiGraph, address: str) -> int:
    """Images that carry this image's own layers: its descendants."""
    return len(nx.descendants(graph, address))


def node_summary(graph: nx.DiGraph, address: str) -> str:
    sizes: ImageSizes = graph.nodes[address]["sizes"]
    text = f"own {human_bytes(sizes.own_bytes)}, total {human_bytes(sizes.total_bytes)}, {sizes.packages} packages"
    descendants = reused_by(graph, address)
    if descendants:
        text += f"; its {human_bytes(sizes.own_bytes)} shared with {descendants} image{'s' if descendants > 1 else ''}"
    return text


def text_tree(graph: nx.DiGraph) -> str:
    lines: list[str] = []

    def walk(address: str, prefix: str, last: bool, top: bool) -> None:
        branch = "" if top else ("└── " if last else "├── ")
        lines.append(f"{prefix}{branch}{address}  ({node_summary(graph, address)})")
        children = sorted(graph.successors(address))
        deeper = prefix if top else prefix + ("    " if last else "│   ")
        for index, child in enumerate(children):
            walk(child, deeper, index == len(children) - 1, False)

    for root in sorted(n for n in graph.nodes if graph.in_degree(n) == 0):
        walk(root, "", True, True)
    return "\n".join(lines) + "\n"


def dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def dot_graph(graph: nx.DiGraph) -> str:
    """Graphviz source of the parent tree: one box per image with its sizes and what it shares."""
    lines = ["digraph images {", '  rankdir="LR";', '  node [shape=box, fontname="Helvetica", fontsize=10];']
    for address in sorted(graph.nodes):
        sizes: ImageSizes = graph.nodes[address]["sizes"]
        label = [address, f"own {human_bytes(sizes.own_bytes)} / total {human_bytes(sizes.total_bytes)}",
                 f"{sizes.packages} packages ({sizes.own_packages} own)"]
        descendants = reused_by(graph, address)
        if descendants:
            plural = "s" if descendants > 1 else ""
            label.append(f"shares {human_bytes(sizes.own_bytes)} with {descendants} image{plural}")
        lines.append(f"  {dot_quote(address)} [label={dot_quote(chr(10).join(label))}];")
    for parent, child in sorted(graph.edges):
        lines.append(f"  {dot_quote(parent)} -> {dot_quote(child)};")
    lines.append("}")
    return "\n".join(lines) + "\n"
