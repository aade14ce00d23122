"""`pants lint` for `oci_image`: two copies of one Python module, one from the venv, one from Debian.

The build refuses such an image (pypi/content.py); the lint reports every image's case in one
run, with the same words (pypi/modules.py), and exits 1. Each image is checked level by level
from the root of its chain with the same plan the build makes (`PypiPlan`, which holds the
clashes instead of raising), building a level's parent only once that parent was found clean: the
first level with a clash is reported, and the images under it are reported with it, since they
cannot be built until it is fixed. Both directions are found: a venv distribution over a module of a
Debian package of the chain, and a Debian package a child adds over a module of its parent's venv.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from pants.core.goals.lint import LintResult, LintTargetsRequest
from pants.core.util_rules.partitions import PartitionerType
from pants.engine.addresses import Address
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import FieldSet
from pants.option.option_types import SkipOption
from pants.option.subsystem import Subsystem

from oci.chain import ImageTargetRequest, ParentChain
from oci.image import BuildImageRequest, BuiltImage
from oci.subsystem import OciSubsystem
from oci.target_types import OciImagePlatformsField, OciImageTagsField
from pypi.content import PypiPlan, PypiPlanRequest
from pypi.modules import ModuleClash


class PypiModulesSubsystem(Subsystem):
    options_scope = "pypi-modules"
    name = "pypi-modules"
    help = "`pants lint` of oci_image: a Python module both the venv and a Debian package of the chain provide."

    skip = SkipOption("lint")


@dataclass(frozen=True)
class PypiModulesFieldSet(FieldSet):
    required_fields = (OciImageTagsField,)

    platforms: OciImagePlatformsField


class PypiModulesRequest(LintTargetsRequest):
    field_set_type = PypiModulesFieldSet
    tool_subsystem = PypiModulesSubsystem
    partitioner_type = PartitionerType.DEFAULT_SINGLE_PARTITION


@dataclass(frozen=True)
class ChainClashesRequest:
    address: Address
    architecture: str


@dataclass(frozen=True)
class ChainClashes:
    address: Address
    architecture: str
    clashes: tuple[ModuleClash, ...]  # of the first level of the chain that has any


@rule(desc="Look for Python modules both the venv and Debian provide")
async def chain_clashes(request: ChainClashesRequest) -> ChainClashes:
    chain = await Get(ParentChain, ImageTargetRequest(request.address))
    parent: BuiltImage | None = None
    for index, level in enumerate(chain.addresses):
        if index:
            parent = await Get(BuiltImage, BuildImageRequest(chain.addresses[index - 1], request.architecture))
        plan = await Get(PypiPlan, PypiPlanRequest(level, request.architecture, len(parent.layers) if parent else 0,
                                                   parent.states if parent else ()))
        if plan.clashes:
            return ChainClashes(request.address, request.architecture, plan.clashes)
    return ChainClashes(request.address, request.architecture, ())


def render(results: Sequence[ChainClashes]) -> str:
    lines = []
    for result in results:
        where = f"{result.address} (linux/{result.architecture})"
        if not result.clashes:
            lines.append(f"{where}: ok")
            continue
        first = result.clashes[0].image
        lines.append(f"{where}: {len(result.clashes)} module{'s' if len(result.clashes) != 1 else ''} twice"
                     + ("" if first == str(result.address) else f", found at its parent {first}"))
        lines.extend(f"  {first}: {clash.describe()}" for clash in result.clashes)
    return "\n".join(lines) + "\n"


@rule(desc="Check images for two copies of one Python module")
async def lint_python_modules(request: PypiModulesRequest.Batch[PypiModulesFieldSet, Any],
                              oci: OciSubsystem) -> LintResult:
    field_sets = sorted(request.elements, key=lambda fs: str(fs.address))
    wanted = [ChainClashesRequest(fs.address, architecture) for fs in field_sets
              for architecture in fs.platforms.architectures(oci.architecture)]
    results = await MultiGet(Get(ChainClashes, ChainClashesRequest, r) for r in wanted)
    failed = any(result.clashes for result in results)
    return LintResult(1 if failed else 0, render(results), "", request.tool_name,
                      request.partition_metadata.description)


def rules():
    return [*collect_rules(), *PypiModulesRequest.rules()]
