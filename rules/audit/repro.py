"""`pants repro-check`: rebuild images and confirm that they are the images built before.

Two ways to say what "before" is:

    --against=DIR     a directory laid out like dist/ (another machine's dist/, a copy of an
                      earlier one, or layouts fetched with `skopeo copy docker://... oci:DIR/...`);
                      every image is compared with DIR/<its layout dir>, and a difference is
                      pinpointed: config field, layer (and the image that added it), tar member and
                      header field or content.
    --expect=ADDR=DIGEST   verify mode: the digest an image is claimed to have (a registry's, a
                      provenance subject's); the rebuild confirms or refutes it.

The rebuild itself is Pants with its caches off, so that every layer action really runs
again; perturb the environment around it to test the reproducibility contract:

    TZ=Pacific/Chatham LC_ALL=C faketime '2033-03-03' sh -c 'umask 077; \\
      ./pants --no-pantsd --no-local-cache --no-remote-cache-read repro-check --against=/tmp/dist-before ::'

With a cache on, the goal says so: the images it compares may then be the cached ones.

    --perturb         every action of this run (the images' layers and assemblies) runs in a
                      perturbed sandbox (oci/perturbation.py: umask, TZ, locale, working-directory
                      depth, clock) and is never a cache hit: a real rebuild, compared with the
                      normal build in --against (default: dist/, as `pants package` wrote it).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Mapping, Sequence

from pants.engine.console import Console
from pants.engine.fs import AddPrefix, Digest
from pants.engine.goal import Goal, GoalSubsystem
from pants.engine.process import ProcessCacheScope, ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, goal_rule, rule
from pants.engine.target import FilteredTargets
from pants.option.global_options import GlobalOptions
from pants.option.option_types import BoolOption, StrListOption, StrOption
from pants.util.strutil import help_text

from oci.action import ActionRequest
from audit.facts import ImageFacts, ImageFactsRequest, image_targets
from oci.perturbation import ActionPerturbation, find_libfaketime, repro_perturbation
from oci.platforms import ImageLayout, ImageLayoutRequest
from oci.subsystem import OciSubsystem
from oci.target_types import OciImageOutputPathField, OciImagePlatformsField

CURRENT_DIR = "__current"


class ReproCheckSubsystem(GoalSubsystem):
    name = "repro-check"
    help = help_text(
        """
        Compare freshly built `oci_image` layouts with reference layouts (`--against=DIR`) or
        claimed digests (`--expect=ADDRESS=DIGEST`), and pinpoint what differs. Run it with
        `--no-local-cache --no-remote-cache-read` so that the images are really rebuilt.
        """
    )

    against = StrOption(default=None, help="A directory laid out like dist/ holding the reference layouts.")
    expect = StrListOption(
        default=[],
        help="`ADDRESS=sha256:...`: the digest the image must have (its manifest, or its index if multi-platform).",
    )
    perturb = BoolOption(
        default=False,
        help=help_text(
            """
            Rebuild the images with every action in a perturbed sandbox (umask 077, another TZ and
            locale, a deeper working directory, the clock ten years ahead with libfaketime when
            installed; never from a cache) and compare with the normal build: `--against`, by
            default `dist/` as `pants package` wrote it. Run it on its own, after `pants package`:
            every action of the run is perturbed.
            """
        ),
    )


class ReproCheckGoal(Goal):
    subsystem_cls = ReproCheckSubsystem
    environment_behavior = Goal.EnvironmentBehavior.LOCAL_ONLY


class ReproCheckUsageError(Exception):
    pass


def parse_expectations(values: Sequence[str]) -> dict[str, str]:
    expected = {}
    for value in values:
        address, sep, digest = value.rpartition("=")
        if not sep or not address or not digest.startswith("sha256:") or len(digest) != 71:
            raise ReproCheckUsageError(f"--expect={value}: write ADDRESS=sha256:<64 hex digits>.")
        expected[address] = digest
    return expected


@dataclass(frozen=True)
class LayoutComparisonRequest:
    layout: Digest
    reference_dir: str  # absolute


@dataclass(frozen=True)
class LayoutComparison:
    report_json: str

    @property
    def report(self) -> dict:
        return json.loads(self.report_json)


@rule(desc="Compare an image layout with its reference")
async def compare_layout(request: LayoutComparisonRequest) -> LayoutComparison:
    current = await Get(Digest, AddPrefix(request.layout, CURRENT_DIR))
    result = await Get(ProcessResult, ActionRequest(
        module="audit.actions.repro_diff",
        argv=(CURRENT_DIR, request.reference_dir),
        input_digest=current,
        description=f"Compare with {request.reference_dir}",
        # It reads the reference outside the sandbox, which the cache key cannot see.
        cache_scope=ProcessCacheScope.PER_SESSION,
    ))
    return LayoutComparison(result.stdout.decode())


@rule
async def action_perturbation(options: ReproCheckSubsystem) -> ActionPerturbation:
    """Empty unless --repro-check-perturb: then every action Process of the run is perturbed."""
    return repro_perturbation(find_libfaketime()) if options.perturb else ActionPerturbation()


def layer_owner(facts_by_platform: Mapping[str, ImageFacts], platform: str, index: int) -> str:
    facts = facts_by_platform.get(platform.rsplit("/", 1)[-1]) or next(iter(facts_by_platform.values()), None)
    if facts is None or index >= len(facts.layers):
        return "?"
    return str(facts.layers[index].added_by)


def member_lines(members: Mapping, other: str = "the reference") -> list[str]:
    lines = []
    for name in members.get("only_in_current") or []:
        lines.append(f"        /{name}: only in this build")
    for name in members.get("only_in_reference") or []:
        lines.append(f"        /{name}: only in {other}")
    for change in members.get("changed_members") or []:
        fields = ", ".join(f"{key} {value['current']!r} here, {value['reference']!r} in {other}"
                           for key, value in sorted(change["fields"].items()))
        lines.append(f"        /{change['path']}: {fields}")
        lines += [f"            {line}" for line in change.get("text_diff") or ()]
    hidden = (members.get("changed_member_count") or 0) - len(members.get("changed_members") or [])
    if hidden > 0:
        lines.append(f"        ... and {hidden} more changed members")
    if members.get("member_order_differs"):
        lines.append("        the members are in a different order")
    return lines


def difference_lines(report: Mapping, facts_by_platform: Mapping[str, ImageFacts],
                     other: str = "the reference") -> list[str]:
    if report.get("error"):
        return [f"    cannot compare: {report['error']}"]
    lines = []
    for item in report.get("differences") or []:
        platform = f" [{item['platform']}]" if item.get("platform") else ""
        if item["where"] == "config":
            lines.append(f"    config{platform} {item['field']}: {item['current']!r} here, "
                         f"{item['reference']!r} in {other}")
        elif item["where"] == "layer":
            owner = layer_owner(facts_by_platform, item.get("platform", ""), item["index"])
            history = item["created_by"] or "no history"
            lines.append(f"    layer {item['index']}{platform} ({history}; added by {owner}): {item['what']}")
            lines.append(f"        diff_id {item['current']['diff_id']} here, "
                         f"{item['reference']['diff_id']} in {other}")
            lines += member_lines(item.get("members") or {}, other)
        else:
            lines.append(f"    {item['where']}{platform}: {item['what']}")
    return lines


@dataclass(frozen=True)
class ImageCheck:
    address: str
    ok: bool
    lines: tuple[str, ...]


def reference_root(against: str) -> str:
    return against if os.path.isabs(against) else os.path.join(os.getcwd(), against)


def differs(report: Mapping) -> bool:
    return not report.get("identical") or bool(report.get("differences")) or bool(report.get("error"))


async def check_image(target, layout: ImageLayout, expected: Mapping[str, str], against: str | None,
                      oci: OciSubsystem, perturbed: bool = False) -> ImageCheck:
    address = str(target.address)
    lines, ok = [f"    built {layout.digest}" + (" (perturbed rebuild)" if perturbed else "")], True
    architectures = target[OciImagePlatformsField].architectures(oci.architecture)
    claimed = expected.get(address) or expected.get(target.address.spec)
    if claimed:
        confirmed = claimed == layout.digest
        ok = ok and confirmed
        lines.append(f"    expected {claimed}: {'confirmed' if confirmed else 'REFUTED'}")
    if against:
        layout_dir = target[OciImageOutputPathField].value_or_default(file_ending=None)
        directory = os.path.join(reference_root(against), layout_dir)
        if not os.path.isdir(directory):
            return ImageCheck(address, False, (*lines, f"    no reference layout at {directory}"))
        comparison = await Get(LayoutComparison, LayoutComparisonRequest(layout.layout, directory))
        report = comparison.report
        lines.append(f"    reference {report.get('reference') or '?'} ({directory})")
        if differs(report):
            ok = False
            facts = await MultiGet(Get(ImageFacts, ImageFactsRequest(target.address, a)) for a in architectures)
            lines += difference_lines(report, dict(zip(architectures, facts)),
                                      "the normal build" if perturbed else "the reference")
    return ImageCheck(address, ok, tuple(lines))


@goal_rule
async def repro_check(
    console: Console, targets: FilteredTargets, options: ReproCheckSubsystem, global_options: GlobalOptions,
    oci: OciSubsystem,
) -> ReproCheckGoal:
    try:
        if not options.against and not options.expect and not options.perturb:
            raise ReproCheckUsageError(
                "Say what to compare with: --perturb, --against=DIR and/or --expect=ADDRESS=DIGEST.")
        expected = parse_expectations(options.expect)
    except ReproCheckUsageError as e:
        console.print_stderr(str(e))
        return ReproCheckGoal(exit_code=2)
    perturbation = repro_perturbation(find_libfaketime()) if options.perturb else ActionPerturbation()
    against = options.against or ("dist" if perturbation.active else None)
    if perturbation.active:
        console.print_stderr(f"Perturbed rebuild: {perturbation.description}; compared with {against}/.")
    elif global_options.local_cache or global_options.remote_cache_read:
        console.print_stderr("Note: process caches are on, so these images may be cached builds, not rebuilds; "
                             "add --no-local-cache --no-remote-cache-read to rebuild them.")
    images = image_targets(targets)
    unknown = sorted(set(expected) - {str(t.address) for t in images} - {t.address.spec for t in images})
    layouts = await MultiGet(Get(ImageLayout, ImageLayoutRequest(t.address)) for t in images)
    checks = []
    for target, layout in zip(images, layouts):
        checks.append(await check_image(target, layout, expected, against, oci, perturbation.active))
    for check in checks:
        console.print_stdout(f"{check.address}: {'reproduced' if check.ok else 'DIFFERS'}")
        for line in check.lines:
            console.print_stdout(line)
    for address in unknown:
        console.print_stderr(f"--expect names {address}, which is not among the images checked.")
    failed = [c for c in checks if not c.ok]
    console.print_stdout(f"{len(checks) - len(failed)} of {len(checks)} images reproduced.")
    return ReproCheckGoal(exit_code=1 if failed or unknown else 0)


def rules():
    return collect_rules()
