"""Plan and build layers: each layer is one cached Process over exactly its inputs."""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass

from pants.engine.addresses import Address, Addresses
from pants.engine.fs import (
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
from pants.engine.process import ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import HydratedSources, HydrateSourcesRequest, SourcesField, Targets

from oci.action import ActionRequest
from oci.actions.specs import FileEntrySpec, FilesLayerSpec, LayerDescriptor, dump_spec
from oci.errors import ImageBuildError
from oci.subsystem import OciSubsystem
from oci.target_types import ImageFilesDestinationField, ImageFilesModeField, ImageFilesOwnerField

LAYER_JSON = "layer.json"


@dataclass(frozen=True)
class Layer:
    descriptor: LayerDescriptor
    blob: Digest  # holds just blobs/sha256/<digest>


@dataclass(frozen=True)
class PlacedFile:
    """A repository file and where it goes in the image."""

    image_path: str
    source: str
    mode: int
    uid: int
    gid: int
    origin: Address

    def to_entry(self) -> FileEntrySpec:
        return FileEntrySpec(self.image_path, self.mode, self.uid, self.gid, self.source)


@dataclass(frozen=True)
class FilesLayerRequest:
    image: Address
    files: Addresses


@dataclass(frozen=True)
class OptionalLayer:
    layer: Layer | None


@dataclass(frozen=True)
class LayerOutput:
    """The output of a layer action: `layer.json` and `blobs/sha256/<digest>`."""

    digest: Digest


@dataclass(frozen=True)
class FilesLayerProcess:
    """Everything one files layer Process needs: its spec and the digests holding the sources."""

    description: str
    spec: FilesLayerSpec
    inputs: tuple[Digest, ...]


def place_files(target, entries: DigestEntries) -> list[PlacedFile]:
    """Where each hydrated file of `target` lands in the image, with its mode and owner."""
    base = target.address.spec_path
    if target.has_field(ImageFilesDestinationField):
        destination = target[ImageFilesDestinationField].value
        mode_field = target[ImageFilesModeField].value
        owner = target[ImageFilesOwnerField].value
    else:  # a plain `file`/`files` target: its path below the BUILD file, from the image root
        destination, mode_field, owner = "/", None, "0:0"
    uid, gid = (int(part) for part in owner.split(":"))
    placed = []
    for entry in entries:
        if not isinstance(entry, FileEntry):
            continue
        relative = posixpath.relpath(entry.path, base) if base else entry.path
        if relative.startswith("../"):
            relative = entry.path  # a source outside the BUILD dir keeps its repository path
        mode = int(mode_field, 8) if mode_field else (0o755 if entry.is_executable else 0o644)
        placed.append(PlacedFile(posixpath.join(destination, relative).lstrip("/"), entry.path, mode,
                                 uid, gid, target.address))
    return placed


def check_no_collisions(image: Address, placed: list[PlacedFile]) -> None:
    seen: dict[str, PlacedFile] = {}
    for item in placed:
        other = seen.setdefault(item.image_path, item)
        if other is not item and other.source != item.source:
            raise ImageBuildError(
                f"{image}: /{item.image_path} is declared twice, from {other.source} ({other.origin}) and "
                f"{item.source} ({item.origin}). Change the `destination` of one of them."
            )


@rule(desc="Plan an image's files layer")
async def build_files_layer(request: FilesLayerRequest, oci: OciSubsystem) -> OptionalLayer:
    if not request.files:
        return OptionalLayer(None)
    targets = await Get(Targets, Addresses, request.files)
    for target in targets:
        if not target.has_field(SourcesField):
            raise ImageBuildError(
                f"{request.image}: `files` lists {target.address}, a `{target.alias}` target without "
                "sources. List `image_files`, `file` or `files` targets."
            )
    hydrated = await MultiGet(Get(HydratedSources, HydrateSourcesRequest(t[SourcesField])) for t in targets)
    entries = await MultiGet(Get(DigestEntries, Digest, h.snapshot.digest) for h in hydrated)
    placed = [p for target, e in zip(targets, entries) for p in place_files(target, e)]
    check_no_collisions(request.image, placed)
    spec = FilesLayerSpec(tuple(p.to_entry() for p in sorted(placed, key=lambda p: p.image_path)),
                          oci.layer_settings(f"files of {request.image}"))
    layer = await Get(Layer, FilesLayerProcess(f"files layer of {request.image}", spec,
                                               tuple(h.snapshot.digest for h in hydrated)))
    return OptionalLayer(layer)


@rule
async def run_layer_process(request: FilesLayerProcess) -> Layer:
    spec_file = await Get(Digest, CreateDigest([FileContent("__layer_spec.json", dump_spec(request.spec.to_json()))]))
    input_digest = await Get(Digest, MergeDigests([spec_file, *request.inputs]))
    result = await Get(ProcessResult, ActionRequest(
        module="oci.actions.build_layer",
        argv=("__layer_spec.json",),
        input_digest=input_digest,
        description=f"Build {request.description}",
        output_files=(LAYER_JSON,),
        output_directories=("blobs",),
    ))
    return await Get(Layer, LayerOutput(result.output_digest))


@rule
async def read_layer_output(request: LayerOutput) -> Layer:
    json_digest, blob = await MultiGet(
        Get(Digest, DigestSubset(request.digest, PathGlobs([LAYER_JSON]))),
        Get(Digest, DigestSubset(request.digest, PathGlobs(["blobs/**"]))),
    )
    contents = await Get(DigestContents, Digest, json_digest)
    return Layer(LayerDescriptor.from_json(json.loads(contents[0].content)), blob)


def rules():
    return collect_rules()
