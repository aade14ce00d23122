"""`pants image-report`: sizes of each image and of the set, the largest packages, why a package
is in an image, and the parent tree as text and as an SVG.

    pants image-report ::                       sizes, largest packages, parent tree
    pants image-report --why=libssl3 ::         plus the dependency path to libssl3 in each image

Per image it also lists the maintainer-script effects the image relies on being accepted
(`[debian].accepted_script_effects`: package, command, path, reason).

Writes `dist/image-report/report.json`, `tree.txt`, `tree.dot` and `tree.svg` (the SVG needs
Graphviz's `dot`; without it the goal says so and writes the rest).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Sequence

from pants.core.util_rules.distdir import DistDir
from pants.core.util_rules.system_binaries import BinaryPathRequest, BinaryPaths, BinaryPathTest
from pants.engine.console import Console
from pants.engine.fs import CreateDigest, Digest, FileContent, MergeDigests, Workspace
from pants.engine.goal import Goal, GoalSubsystem
from pants.engine.process import Process, ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, goal_rule, rule
from pants.engine.target import FilteredTargets
from pants.option.option_types import BoolOption, IntOption, StrListOption, StrOption
from pants.util.logging import LogLevel
from pants.util.strutil import help_text

from audit.facts import ImageFacts, ImageFactsRequest, image_targets
from debian.actions.effectcheck import AcceptedEffect, accepted_in
from debian.subsystem import DebianSubsystem
from audit.lockgraph import LockGraph
from audit.origins import LockGraphRequest, LockGraphResult
from pypi.lockfile import canonical_name
from pypi.why import PythonWhy, PythonWhyRequest
from audit.sizes import (
    ImageSizes,
    SetSizes,
    dot_graph,
    human_bytes,
    image_sizes,
    layer_users,
    parent_tree,
    set_sizes,
    text_tree,
)

DOT_SEARCH_PATH = ("/usr/bin", "/bin", "/usr/local/bin")


class ImageReportSubsystem(GoalSubsystem):
    name = "image-report"
    help = help_text(
        """
        Sizes of `oci_image` targets (total, own, shared; the set's unique bytes), their largest
        packages, why a package is there (`--why`), and the parent tree with sizes (text and SVG).
        """
    )

    why = StrListOption(
        default=[],
        help="Packages to explain: for each image holding one, the path from what the image chain declared to it. "
             "A name no Debian package has is looked up among the Python distributions of the images' venvs.",
    )
    top = IntOption(default=5, help="How many of the largest packages to list per image.")
    graph = BoolOption(default=True, help="Write the parent tree as tree.txt, tree.dot and tree.svg.")
    output_dir = StrOption(default="image-report", help="Directory under dist/ for the report files.")


class ImageReportGoal(Goal):
    subsystem_cls = ImageReportSubsystem
    environment_behavior = Goal.EnvironmentBehavior.LOCAL_ONLY


@dataclass(frozen=True)
class DotBinary:
    path: str | None


@rule(desc="Find Graphviz dot", level=LogLevel.DEBUG)
async def find_dot() -> DotBinary:
    paths = await Get(BinaryPaths, BinaryPathRequest(
        search_path=DOT_SEARCH_PATH, binary_name="dot", test=BinaryPathTest(args=["-V"]),
    ))
    return DotBinary(paths.first_path.path if paths.first_path else None)


@dataclass(frozen=True)
class SvgRequest:
    dot_source: str


@dataclass(frozen=True)
class RenderedSvg:
    digest: Digest  # holds tree.svg, or nothing without dot


@rule(desc="Draw the image tree")
async def render_svg(request: SvgRequest, dot: DotBinary) -> RenderedSvg:
    source = await Get(Digest, CreateDigest([FileContent("tree.dot", request.dot_source.encode())]))
    if dot.path is None:
        return RenderedSvg(await Get(Digest, CreateDigest([])))
    result = await Get(ProcessResult, Process(
        argv=(dot.path, "-Tsvg", "-o", "tree.svg", "tree.dot"),
        input_digest=source,
        description="Draw the image tree with Graphviz",
        output_files=("tree.svg",),
        level=LogLevel.DEBUG,
    ))
    return RenderedSvg(result.output_digest)


def image_lines(sizes: ImageSizes) -> list[str]:
    lines = [
        f"{sizes.address}  {sizes.manifest_digest[:19]}…  {sizes.layers} layers",
        f"  total {human_bytes(sizes.total_bytes)}   own {human_bytes(sizes.own_bytes)}   "
        f"shared {human_bytes(sizes.shared_bytes)}   packages {sizes.packages} ({sizes.own_packages} own)",
    ]
    if sizes.largest:
        lines.append("  largest: " + ", ".join(
            f"{p.name} {human_bytes(p.installed_bytes)}{'' if p.added_by == sizes.address else f' (from {p.added_by})'}"
            for p in sizes.largest))
    return lines


def set_lines(totals: SetSizes) -> list[str]:
    saved = totals.sum_of_totals - totals.unique_bytes
    share = f" ({100 * saved // totals.sum_of_totals}% saved by shared layers)" if totals.sum_of_totals else ""
    return [f"{totals.images} images: {human_bytes(totals.sum_of_totals)} pulled one by one, "
            f"{human_bytes(totals.unique_bytes)} unique{share}"]


def accepted_effects(facts: ImageFacts, accepted: dict) -> list[AcceptedEffect]:
    keys = {(p.name, *effect) for layer in facts.layers for p in layer.packages for effect in p.script_effects}
    return accepted_in(keys, accepted)


def accepted_lines(address: str, effects: Sequence[AcceptedEffect]) -> list[str]:
    if not effects:
        return []
    return [f"{address}: {len(effects)} accepted maintainer-script effects"] + [
        f"  {e.package} ({e.script}): {e.command}" + (f" [{e.path}]" if e.path else "") + f" -- {e.reason}"
        for e in effects]


def why_lines(package: str, all_facts: Sequence[ImageFacts], graphs: dict[str, LockGraph]) -> tuple[list[str], dict]:
    lines, found = [f"why {package}:"], {}
    for facts in all_facts:
        if not any(p.name == package for p in facts.packages):
            continue
        graph = graphs.get(facts.architecture)
        path = graph.why([str(a) for a in facts.chain], package) if graph else None
        text = path.describe() if path else "not reachable from what the chain declares (is the lock current?)"
        lines.append(f"  {facts.address}: {text}")
        found[str(facts.address)] = {"root_image": path.root.image, "path": list(path.packages)} if path else None
    if len(lines) == 1:
        lines.append("  no image of the report contains it")
    return lines, found


async def python_why_lines(distribution: str, all_facts: Sequence[ImageFacts]) -> tuple[list[str], dict]:
    """`--why` for a Python distribution of the images' venvs (rules/pypi)."""
    lines, found = [f"why {distribution} (PyPI):"], {}
    name = canonical_name(distribution)
    having = [f for f in all_facts if any(canonical_name(d.name) == name for d in f.python_distributions)]
    answers = await MultiGet(Get(PythonWhy, PythonWhyRequest(f.chain, name, f.architecture)) for f in having)
    for facts, answer in zip(having, answers):
        lines.append(f"  {facts.address}: {answer.describe()}")
        found[str(facts.address)] = {"root_image": str(answer.image), "path": list(answer.path)} if answer.image else None
    if not having:
        lines = [f"why {distribution}:", "  no image of the report contains it"]
    return lines, found


def with_ancestors(selected: Sequence[ImageFacts], ancestors: Sequence[ImageFacts]) -> list[ImageFacts]:
    by_address = {str(f.address): f for f in (*selected, *ancestors)}
    return [by_address[a] for a in sorted(by_address)]


@goal_rule
async def image_report(
    console: Console, workspace: Workspace, targets: FilteredTargets, dist: DistDir, options: ImageReportSubsystem,
    debian: DebianSubsystem,
) -> ImageReportGoal:
    selected = await MultiGet(Get(ImageFacts, ImageFactsRequest(t.address)) for t in image_targets(targets))
    ancestor_addresses = sorted({a for f in selected for a in f.chain[:-1]} - {f.address for f in selected})
    ancestors = await MultiGet(Get(ImageFacts, ImageFactsRequest(a)) for a in ancestor_addresses)
    all_facts = with_ancestors(selected, ancestors)
    users = layer_users(all_facts)
    sizes = [image_sizes(f, users, options.top) for f in all_facts]
    totals = set_sizes(all_facts)

    lines: list[str] = []
    for item in sizes:
        lines += image_lines(item)
    lines += set_lines(totals)
    accepted = {str(f.address): accepted_effects(f, dict(debian.accepted_script_effects)) for f in all_facts}
    for address, effects in sorted(accepted.items()):
        lines += accepted_lines(address, effects)
    why_found = {}
    if options.why:
        architectures = sorted({f.architecture for f in all_facts if f.packages})
        results = await MultiGet(Get(LockGraphResult, LockGraphRequest(a)) for a in architectures)
        graphs = {r.architecture: r.graph for r in results}
        for package in options.why:
            more, why_found[package] = why_lines(package, all_facts, graphs)
            if not why_found[package]:  # no Debian package of that name: a distribution of a venv?
                more, why_found[package] = await python_why_lines(package, all_facts)
            lines += more

    files = [FileContent("report.json", json.dumps({
        "images": [s.to_json() for s in sizes], "set": totals.to_json(), "why": why_found,
        "accepted_script_effects": {a: [e.to_json() for e in effects] for a, effects in sorted(accepted.items())},
    }, sort_keys=True, indent=1).encode())]
    digests = []
    if options.graph:
        tree = parent_tree(sizes)
        text = text_tree(tree)
        lines += ["", text.rstrip("\n")]
        source = dot_graph(tree)
        files += [FileContent("tree.txt", text.encode()), FileContent("tree.dot", source.encode())]
        svg = await Get(RenderedSvg, SvgRequest(source))
        digests.append(svg.digest)
        if svg.digest == (await Get(Digest, CreateDigest([]))):
            lines.append("(tree.svg not written: Graphviz `dot` is not installed; `apt-get install graphviz`)")
    report = await Get(Digest, CreateDigest(files))
    merged = await Get(Digest, MergeDigests([report, *digests]))
    workspace.write_digest(merged, path_prefix=str(dist.relpath / options.output_dir))
    console.print_stdout("\n".join(lines))
    console.print_stdout(f"Wrote {dist.relpath / options.output_dir}/")
    return ImageReportGoal(exit_code=0)


def rules():
    return collect_rules()
