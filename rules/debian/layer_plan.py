"""Group an image's new packages into layers.

Pure planning, no I/O.  The aims pull against each other: few layers (the
whole parent chain must stay under the overlay limit of 127) and small layers
(a package update re-downloads the whole layer that holds it).  Big packages
get a layer each; the rest are packed in name order, so that adding or bumping
one package moves as few neighbours as possible into a different layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


class LayerBudgetError(ValueError):
    pass


@dataclass(frozen=True)
class PlannedPackage:
    name: str
    size: int


@dataclass(frozen=True)
class LayerBudget:
    own_layer_bytes: int
    group_layer_bytes: int
    max_layers: int  # layers this image may still add


def plan_layers(packages: Sequence[PlannedPackage], budget: LayerBudget) -> list[list[PlannedPackage]]:
    """Layers of packages, each sorted by name; the plan is a pure function of names and sizes."""
    ordered = sorted(packages, key=lambda p: p.name)
    big = [[p] for p in ordered if p.size >= budget.own_layer_bytes]
    small = [p for p in ordered if p.size < budget.own_layer_bytes]
    groups = big + pack(small, budget.group_layer_bytes)
    while len(groups) > budget.max_layers and len(groups) > 1:
        groups = merge_smallest_neighbours(groups)
    if len(groups) > budget.max_layers:
        raise LayerBudgetError(f"no room for even one package layer (budget {budget.max_layers})")
    return sorted(groups, key=lambda g: g[0].name)


def pack(packages: Sequence[PlannedPackage], limit: int) -> list[list[PlannedPackage]]:
    groups: list[list[PlannedPackage]] = []
    current: list[PlannedPackage] = []
    total = 0
    for package in packages:
        if current and total + package.size > limit:
            groups.append(current)
            current, total = [], 0
        current.append(package)
        total += package.size
    if current:
        groups.append(current)
    return groups


def merge_smallest_neighbours(groups: list[list[PlannedPackage]]) -> list[list[PlannedPackage]]:
    """Merge the adjacent pair (in name order) with the fewest bytes together."""
    groups = sorted(groups, key=lambda g: g[0].name)
    sizes = [sum(p.size for p in g) for g in groups]
    best = min(range(len(groups) - 1), key=lambda i: (sizes[i] + sizes[i + 1], i))
    merged = sorted(groups[best] + groups[best + 1], key=lambda p: p.name)
    return groups[:best] + [merged] + groups[best + 2:]


def layers_left(parent_layers: int, max_layers: int, reserved: int) -> int:
    """Package layers an image may add: the chain limit minus its parents and its other layers."""
    return max_layers - parent_layers - reserved
