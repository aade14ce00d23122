"""Python bytecode layers: the .pyc files Debian's maintainer scripts would have compiled.

An `oci_image(compile_python=True)` gets, after its package layers, one bytecode layer per
package layer that holds Python modules, compiled (`unchecked-hash`) by a host interpreter of the
image's own Python minor version.  A bytecode layer's cache key is its package layer's digest plus
the compiling interpreter, so images that add the same packages share it too. The field and the
search for the compiler are oci's (oci/pycompile.py): the venv's .pycs (pypi) are made the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

from pants.engine.addresses import Address
from pants.engine.fs import (
    EMPTY_DIGEST,
    CreateDigest,
    Digest,
    DigestEntries,
    DigestSubset,
    FileContent,
    FileEntry,
    PathGlobs,
)
from pants.engine.process import ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule

from debian.actions.build_bytecode_layer import BytecodeLayerSpec
from oci.actions.pycompile import Compiler
from oci.action import ActionRequest
from oci.actions.specs import dump_spec
from oci.chain import ImageTarget, ImageTargetRequest
from oci.errors import ImageBuildError
from oci.layer import LAYER_JSON, Layer, LayerOutput, OptionalLayer
from debian.packages import DebianLock, PackageLayers
from oci.pycompile import BytecodeCompiler, BytecodeCompilerRequest, OciImageCompilePythonField
from oci.subsystem import OciSubsystem

SPEC = "__bytecode_layer.json"
PACKAGE_LAYER = "__package_layer.tar.gz"
# The packages that put a Python 3.X (interpreter or standard library) into an image.
IMAGE_PYTHON_PACKAGE = re.compile(r"^(?:lib)?python(3\.\d+)(?:-minimal|-stdlib)?$")
# unchecked-hash .pycs (PEP 552) and py_compile's invalidation_mode need 3.7.
OLDEST_MINOR = (3, 7)


@dataclass(frozen=True)
class ImagePython:
    """A Python minor version an image installs, and the package that says so."""

    minor: str  # "3.11"
    package: str
    version: str

    @property
    def too_old(self) -> bool:
        return tuple(int(part) for part in self.minor.split(".")) < OLDEST_MINOR


def image_pythons(closure: tuple[str, ...], locked: Mapping[str, Mapping]) -> tuple[ImagePython, ...]:
    """Each python3.X of the closure, named by `python3.X` when the image has it."""
    found: dict[str, ImagePython] = {}
    for name in sorted(closure, key=lambda n: (not n.startswith("python"), n)):
        match = IMAGE_PYTHON_PACKAGE.match(name)
        if match and match.group(1) not in found:
            found[match.group(1)] = ImagePython(match.group(1), name, str(locked[name]["version"]))
    return tuple(found[minor] for minor in sorted(found))


def check_compilers(address: Address, pythons: tuple[ImagePython, ...],
                    compilers: tuple[BytecodeCompiler, ...]) -> None:
    for python, compiler in zip(pythons, compilers):
        if compiler.path is None:
            raise ImageBuildError(
                f"{address} has compile_python=True and installs Python {python.minor} ({python.package} "
                f"{python.version}), so it needs a Python {python.minor} on the build machine to compile its "
                f"modules, and there is no python{python.minor} in [python-bootstrap].search_path "
                f"({', '.join(compiler.search_path)}). Install python{python.minor} (e.g. `apt-get install "
                f"python{python.minor}-minimal` or `pyenv install {python.minor}`) and add its directory to that "
                "option in pants.toml, or set compile_python=False."
            )


@dataclass(frozen=True)
class BytecodeLayerRequest:
    package_layer: Layer
    compilers: tuple[BytecodeCompiler, ...]


@rule(desc="Build a Python bytecode layer")
async def build_bytecode_layer(request: BytecodeLayerRequest, oci: OciSubsystem) -> OptionalLayer:
    package = request.package_layer.descriptor
    spec = BytecodeLayerSpec(
        layer=PACKAGE_LAYER,
        compilers=tuple(Compiler(c.path, c.minor, c.fingerprint) for c in request.compilers),
        settings=oci.layer_settings(package.created_by),
    )
    blob_entries = await Get(DigestEntries, Digest, request.package_layer.blob)
    # Renamed: under blobs/ the package layer would come back as an output of this Process.
    input_digest = await Get(Digest, CreateDigest([
        FileContent(SPEC, dump_spec(spec.to_json())),
        FileEntry(PACKAGE_LAYER, blob_entries[0].file_digest),
    ]))
    minors = ", ".join(c.minor for c in request.compilers)
    result = await Get(ProcessResult, ActionRequest(
        module="debian.actions.build_bytecode_layer",
        argv=(SPEC,),
        input_digest=input_digest,
        description=f"Compile Python {minors} bytecode of layer {package.diff_id[7:19]} ({package.created_by[:60]})",
        output_files=(LAYER_JSON,),
        output_directories=("blobs",),
    ))
    written = await Get(Digest, DigestSubset(result.output_digest, PathGlobs([LAYER_JSON])))
    if written == EMPTY_DIGEST:
        return OptionalLayer(None)  # no module in this layer
    return OptionalLayer(await Get(Layer, LayerOutput(result.output_digest)))


@dataclass(frozen=True)
class BytecodeLayersRequest:
    address: Address
    package_layers: PackageLayers
    architecture: str


@dataclass(frozen=True)
class BytecodeLayers:
    layers: tuple[Layer, ...]


@rule(desc="Plan an image's Python bytecode layers")
async def image_bytecode_layers(request: BytecodeLayersRequest) -> BytecodeLayers:
    image = await Get(ImageTarget, ImageTargetRequest(request.address))
    packages = request.package_layers.packages
    if not image.target[OciImageCompilePythonField].value or packages is None or not request.package_layers.layers:
        return BytecodeLayers(())
    lock = await Get(DebianLock)  # only now: an image without packages has no lock
    pythons = image_pythons(packages.closure, lock.packages(request.architecture))
    if not pythons:
        raise ImageBuildError(
            f"{request.address} has compile_python=True but installs no Python (no python3.X package in its "
            "closure). Remove compile_python or add python3 to its packages."
        )
    for python in pythons:
        if python.too_old:
            raise ImageBuildError(
                f"{request.address} installs Python {python.minor} ({python.package} {python.version}); "
                "compile_python needs Python 3.7 or newer (unchecked-hash .pyc files). Set compile_python=False."
            )
    compilers = await MultiGet(Get(BytecodeCompiler, BytecodeCompilerRequest(p.minor)) for p in pythons)
    check_compilers(request.address, pythons, compilers)
    layers = await MultiGet(
        Get(OptionalLayer, BytecodeLayerRequest(package.layer, compilers)) for package in request.package_layers.layers
    )
    return BytecodeLayers(tuple(layer.layer for layer in layers if layer.layer is not None))


def rules():
    return collect_rules()
