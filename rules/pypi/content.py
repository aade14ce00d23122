"""The PyPI content source: the venv layer an image's `python_requirements` add over its parent.

An image names projects; their closure and pins come from the resolve's lockfile (lockfile.py).
What the parent chain's venv already holds at the same version is left out; a distribution the
parent pins at another version is refused (a child never changes its parent's libraries, or the
parent's services would run on code they were not built with). The first image of a chain with
a venv writes the venv itself (pyvenv.cfg, bin/python*), on the interpreter its Debian packages
ship (`[pypi].interpreter`), read through debian's narrow `DebianProvides` interface, which also
gives the shared libraries C extensions may link. One layer per image, after Debian's layers.

Before anything is built, the resolve's lockfile must have been generated from the resolve's
current requirements and constraints (lockfile.py, `LockFreshness`): a stale lock stops the build
with the fix. After the venv layer, a module both the chain's venv and its Debian packages provide
is refused in either direction (modules.py); `pypi_plan` holds those clashes so that `pants lint`
(lint.py) reports them with the same plan. With `compile_python` the venv layer carries the .pycs
of its modules (actions/venv_bytecode.py), compiled by the same compiler search as Debian's.

`PypiState` carries the chain's pins and its venv records to the images built on this one.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import ClassVar

from pants.backend.python.subsystems.setup import PythonSetup
from pants.engine.addresses import Address
from pants.engine.fs import (
    EMPTY_DIGEST,
    AddPrefix,
    CreateDigest,
    Digest,
    DigestContents,
    DigestEntries,
    DigestSubset,
    FileContent,
    FileEntry,
    MergeDigests,
    PathGlobs,
)
from pants.engine.process import FallibleProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.unions import UnionRule

from debian.provides import DebianProvides, DebianProvidesRequest
from oci.action import ActionRequest
from oci.actions.pycompile import Compiler
from oci.actions.specs import dump_spec
from oci.chain import ImageTarget, ImageTargetRequest
from oci.content import ContentState, ImageContent, ImageContentRequest, source_state
from oci.errors import ImageBuildError
from oci.layer import Layer, LayerOutput
from oci.pycompile import BytecodeCompiler, BytecodeCompilerRequest, OciImageCompilePythonField
from oci.subsystem import OciSubsystem
from pypi.actions.build_venv_layer import VENV_RECORD
from pypi.actions.specs import LockedWheel, VenvLayerSpec, WheelFetchSpec
from pypi.lockfile import (
    LockFreshness,
    LockFreshnessRequest,
    ResolveLock,
    ResolveLockRequest,
    TargetInterpreter,
    canonical_name,
    closure,
    wheels_for,
)
from pypi.modules import ModuleClash, clash_message, module_clashes, venv_distributions
from pypi.subsystem import PypiSubsystem
from pypi.target_types import PythonExcludeField, PythonRequirementsField, PythonResolveField


@dataclass(frozen=True)
class Pin:
    name: str  # canonical project name
    version: str
    image: str  # the image whose venv layer installed it


@dataclass(frozen=True)
class PypiState(ContentState):
    records: Digest  # pypi/<diff_id hex>.json: each venv layer of the chain, what it installed
    pins: tuple[Pin, ...]
    excluded: tuple[str, ...] = ()  # `python_exclude` of the chain, canonical names: children inherit it


EMPTY_STATE = PypiState(EMPTY_DIGEST, ())


@dataclass(frozen=True)
class PypiContentRequest(ImageContentRequest):
    order: ClassVar[int] = 20  # after Debian's packages: the venv runs on their interpreter


@dataclass(frozen=True)
class VenvLayerRequest:
    address: str
    wheels: tuple[LockedWheel, ...]
    create_venv: bool
    parent: PypiState
    debian: DebianProvides
    compile_python: bool = False  # the image's `compile_python`: .pycs of the modules this layer adds


@dataclass(frozen=True)
class VenvLayer:
    layer: Layer
    record: Digest  # pypi/<diff_id hex>.json


def check_parent_pins(image: str, wanted: tuple, parent: PypiState) -> None:
    pinned = {pin.name: pin for pin in parent.pins}
    clashes = [f"{d.name} {d.version} (the parent chain has {pinned[d.name].version} from {pinned[d.name].image})"
               for d in wanted if d.name in pinned and pinned[d.name].version != d.version]
    if clashes:
        raise ImageBuildError(
            f"{image} pins Python distributions differently from its parent chain: {'; '.join(clashes)}. A child "
            "never replaces what its parent's venv runs on: use the parent's resolve (`python_resolve`), or move "
            "the requirement up to the parent."
        )


def check_interpreter(image: str, pypi: PypiSubsystem, debian: DebianProvides) -> None:
    if pypi.interpreter not in debian.present_paths:
        raise ImageBuildError(
            f"{image} asks for `python_requirements`, but no Debian package of the image or its parents ships "
            f"{pypi.interpreter}, the interpreter of the venv ([pypi].interpreter). Add `packages=[\"python3.11\"]` "
            "(or python3) to the image or a parent, such as python-base."
        )


@dataclass(frozen=True)
class PypiPlanRequest:
    """An image's venv as oci asks for it (the fields of `PypiContentRequest`), planned without refusing
    a module clash: `pants lint` reports those, the build refuses them."""

    address: Address
    architecture: str
    parent_layers: int
    parent_states: tuple[ContentState, ...]


@dataclass(frozen=True)
class PypiPlan:
    content: ImageContent
    clashes: tuple[ModuleClash, ...]


def debian_provides_request(request: PypiPlanRequest, pypi: PypiSubsystem) -> DebianProvidesRequest:
    # The same arguments oci gave: Debian's content of the image is the engine's memoized answer.
    return DebianProvidesRequest(request.address, request.architecture, request.parent_layers,
                                 request.parent_states, (pypi.interpreter,))


async def chain_clashes(request: PypiPlanRequest, state: PypiState, pypi: PypiSubsystem) -> tuple[ModuleClash, ...]:
    """An image that adds no venv layer may still add a Debian package over a module of the chain's venv."""
    if not state.pins:
        return ()
    debian = await Get(DebianProvides, DebianProvidesRequest, debian_provides_request(request, pypi))
    return await clashes_with(str(request.address), state, debian, pypi)


async def clashes_with(image: str, state: PypiState, debian: DebianProvides,
                       pypi: PypiSubsystem) -> tuple[ModuleClash, ...]:
    if not debian.python_modules:
        return ()
    records = await Get(DigestContents, Digest, state.records)
    distributions = venv_distributions(json.loads(record.content) for record in records)
    layout_site = f"lib/python{pypi.python_version}/site-packages"
    return module_clashes(image, distributions, dict(debian.python_modules), layout_site)


@rule(desc="Add an image's venv layer")
async def pypi_content(request: PypiContentRequest) -> ImageContent:
    plan = await Get(PypiPlan, PypiPlanRequest(request.address, request.architecture, request.parent_layers,
                                               request.parent_states))
    if plan.clashes:
        raise ImageBuildError(clash_message(str(request.address), plan.clashes))
    return plan.content


@rule(desc="Plan an image's venv layer")
async def pypi_plan(request: PypiPlanRequest, pypi: PypiSubsystem, python_setup: PythonSetup) -> PypiPlan:
    parent = source_state(request.parent_states, PypiState) or EMPTY_STATE
    image = await Get(ImageTarget, ImageTargetRequest(request.address))
    requirements = image.target[PythonRequirementsField].value or ()
    if not requirements:
        state = None if parent == EMPTY_STATE else parent
        return PypiPlan(ImageContent((), state), await chain_clashes(request, parent, pypi))
    address = str(request.address)
    resolve = image.target[PythonResolveField].value or python_setup.default_resolve
    lock, freshness = await MultiGet(Get(ResolveLock, ResolveLockRequest(resolve)),
                                     Get(LockFreshness, LockFreshnessRequest(resolve)))
    stale = freshness.problem(address)
    if stale:
        raise ImageBuildError(stale)
    target = TargetInterpreter.of(pypi, request.architecture)
    own_excluded = {canonical_name(name) for name in (image.target[PythonExcludeField].value or {})}
    excluded = tuple(sorted(own_excluded | set(parent.excluded)))
    wanted = closure(lock, requirements, excluded, target, address)
    check_parent_pins(address, wanted, parent)
    pinned = {pin.name for pin in parent.pins}
    new = tuple(d for d in wanted if d.name not in pinned)
    if not new:
        state = dataclasses.replace(parent, excluded=excluded)
        return PypiPlan(ImageContent((), state), await chain_clashes(request, state, pypi))
    wheels = wheels_for(new, target, lock, address)
    debian = await Get(DebianProvides, debian_provides_request(request, pypi))
    check_interpreter(address, pypi, debian)
    venv = await Get(VenvLayer, VenvLayerRequest(address, wheels, not parent.pins, parent, debian,
                                                  bool(image.target[OciImageCompilePythonField].value)))
    records = await Get(Digest, MergeDigests([parent.records, venv.record]))
    pins = tuple(sorted({*parent.pins, *(Pin(w.name, w.version, address) for w in wheels)},
                        key=lambda p: p.name))
    state = PypiState(records, pins, excluded)
    return PypiPlan(ImageContent((venv.layer,), state), await clashes_with(address, state, debian, pypi))


@dataclass(frozen=True)
class WheelFetchRequest:
    wheels: tuple[LockedWheel, ...]


@dataclass(frozen=True)
class FetchedWheels:
    digest: Digest  # wheels/<sha256>/<file name>


@rule(desc="Fetch an image's wheels")
async def fetch_wheels(request: WheelFetchRequest, pypi: PypiSubsystem) -> FetchedWheels:
    wheels = request.wheels
    spec = WheelFetchSpec(wheels, os.path.expanduser(pypi.wheel_cache) if pypi.wheel_cache else "",
                          pypi.fetch_timeout)
    spec_digest = await Get(Digest, CreateDigest([FileContent("__fetch_wheels.json", dump_spec(spec.to_json()))]))
    result = await Get(FallibleProcessResult, ActionRequest(
        module="pypi.actions.fetch_wheels", argv=("__fetch_wheels.json",), input_digest=spec_digest,
        description=f"Fetch {len(wheels)} wheels", output_directories=("wheels",)))
    if result.exit_code != 0:
        raise ImageBuildError(f"Fetching wheels failed: {result.stderr.decode('utf-8', 'replace').strip()}")
    return FetchedWheels(result.output_digest)


def venv_compiler(image: str, compiler: BytecodeCompiler) -> Compiler:
    if compiler.path is None:
        raise ImageBuildError(
            f"{image} has compile_python=True and a venv on Python {compiler.minor} ([pypi].python_version), so it "
            f"needs a Python {compiler.minor} on the build machine to compile the venv's modules, and there is no "
            f"python{compiler.minor} in [python-bootstrap].search_path ({', '.join(compiler.search_path)}). Install "
            f"python{compiler.minor} and add its directory to that option in pants.toml, or set compile_python=False."
        )
    return Compiler(compiler.path, compiler.minor, compiler.fingerprint)


@rule(desc="Build an image's venv layer")
async def build_venv_layer(request: VenvLayerRequest, pypi: PypiSubsystem, oci: OciSubsystem) -> VenvLayer:
    fetched = await Get(FetchedWheels, WheelFetchRequest(request.wheels))
    chain = await Get(DigestEntries, Digest, request.parent.records)
    compiler = None
    if request.compile_python:
        found = await Get(BytecodeCompiler, BytecodeCompilerRequest(pypi.python_version))
        compiler = venv_compiler(request.address, found)
    bytecode = f" with CPython {pypi.python_version} bytecode" if compiler else ""
    spec = VenvLayerSpec(
        image=request.address, wheels=request.wheels, venv=pypi.venv.strip("/"), interpreter=pypi.interpreter,
        python_version=pypi.python_version, create_venv=request.create_venv,
        chain_records=tuple(sorted(e.path for e in chain if isinstance(e, FileEntry))),
        debian_provides="debian/provides.json" if request.debian.digest != EMPTY_DIGEST else "",
        settings=oci.layer_settings(f"pypi: {len(request.wheels)} distributions into {pypi.venv}{bytecode}"),
        compiler=compiler)
    spec_digest, debian = await MultiGet(
        Get(Digest, CreateDigest([FileContent("__venv_spec.json", dump_spec(spec.to_json()))])),
        Get(Digest, AddPrefix(request.debian.digest, "debian")))
    inputs = await Get(Digest, MergeDigests([spec_digest, fetched.digest, request.parent.records, debian]))
    result = await Get(FallibleProcessResult, ActionRequest(
        module="pypi.actions.build_venv_layer", argv=("__venv_spec.json",), input_digest=inputs,
        description=f"Build the venv layer of {request.address} ({len(request.wheels)} distributions)",
        output_files=("layer.json", VENV_RECORD), output_directories=("blobs",)))
    if result.exit_code != 0:
        raise ImageBuildError(result.stderr.decode("utf-8", "replace").strip())
    layer_output, record = await MultiGet(
        Get(Digest, DigestSubset(result.output_digest, PathGlobs(["layer.json", "blobs/**"]))),
        Get(Digest, DigestSubset(result.output_digest, PathGlobs([VENV_RECORD]))))
    layer = await Get(Layer, LayerOutput(layer_output))
    entries = await Get(DigestEntries, Digest, record)
    renamed = FileEntry(f"pypi/{layer.descriptor.diff_id.split(':')[1]}.json", entries[0].file_digest)
    return VenvLayer(layer, await Get(Digest, CreateDigest([renamed])))


def rules():
    return [*collect_rules(), UnionRule(ImageContentRequest, PypiContentRequest)]
