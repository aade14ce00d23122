"""Assemble images: the parent's layers, then this image's own, then config, manifest and index."""

from __future__ import annotations

import json
from dataclasses import dataclass

from pants.engine.addresses import Address, Addresses, UnparsedAddressInputs
from pants.engine.fs import CreateDigest, Digest, DigestContents, DigestSubset, FileContent, MergeDigests, PathGlobs
from pants.engine.process import ProcessResult
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.target import (
    FieldSet,
    InferDependenciesRequest,
    InferredDependencies,
    Target,
    WrappedTarget,
    WrappedTargetRequest,
)
from pants.engine.unions import UnionRule

from oci.action import ActionRequest
from oci.layer import FilesLayerRequest, ImageBuildError, Layer, OptionalLayer
from oci.subsystem import OciSubsystem
from oci.target_types import (
    OciImageCmdField,
    OciImageDependenciesField,
    OciImageEntrypointField,
    OciImageEnvField,
    OciImageExposedPortsField,
    OciImageFilesField,
    OciImageLabelsField,
    OciImageParentField,
    OciImageTagsField,
    OciImageTarget,
    OciImageUserField,
    OciImageWorkdirField,
)

IMAGE_JSON = "image.json"


@dataclass(frozen=True)
class BuildImageRequest:
    address: Address


@dataclass(frozen=True)
class BuiltImage:
    address: Address
    manifest_digest: str
    image_json: str  # config, manifest descriptor and all layer descriptors, for children
    blobs: Digest  # every layer blob of the image, parents' included
    layout: Digest  # the complete OCI image layout

    @property
    def layers(self) -> list[dict]:
        return json.loads(self.image_json)["layers"]


@dataclass(frozen=True)
class ImageTarget:
    """An `oci_image` target with its parent's address resolved."""

    target: Target
    parent: Address | None


@dataclass(frozen=True)
class ImageTargetRequest:
    address: Address


@rule
async def resolve_image_target(request: ImageTargetRequest) -> ImageTarget:
    wrapped = await Get(
        WrappedTarget,
        WrappedTargetRequest(request.address, description_of_origin="an oci_image parent chain"),
    )
    target = wrapped.target
    if not target.has_field(OciImageParentField):
        raise ImageBuildError(f"{request.address} is a `{target.alias}`, not an `oci_image`.")
    parent_spec = target[OciImageParentField].value
    if not parent_spec:
        return ImageTarget(target, None)
    addresses = await Get(
        Addresses,
        UnparsedAddressInputs([parent_spec], owning_address=request.address,
                              description_of_origin=f"the `parent` field of {request.address}"),
    )
    return ImageTarget(target, addresses[0])


@dataclass(frozen=True)
class ParentChain:
    """Addresses from the root image down to the requested one."""

    addresses: tuple[Address, ...]


@rule
async def resolve_parent_chain(request: ImageTargetRequest) -> ParentChain:
    chain = [request.address]
    image = await Get(ImageTarget, ImageTargetRequest, request)
    while image.parent is not None:
        if image.parent in chain:
            cycle = " -> ".join(str(a) for a in [*chain, image.parent])
            raise ImageBuildError(f"The `parent` fields of these images form a cycle: {cycle}. Break it.")
        parent = await Get(ImageTarget, ImageTargetRequest(image.parent))
        if not isinstance(parent.target, OciImageTarget):
            raise ImageBuildError(
                f"{image.target.address}: its `parent` {image.parent} is a `{parent.target.alias}`, "
                "not an `oci_image`."
            )
        chain.append(image.parent)
        image = parent
    return ParentChain(tuple(reversed(chain)))


def image_settings(target: Target) -> dict:
    return {
        "env": dict(target[OciImageEnvField].value or {}),
        "entrypoint": list_or_none(target[OciImageEntrypointField].value),
        "cmd": list_or_none(target[OciImageCmdField].value),
        "workdir": target[OciImageWorkdirField].value,
        "user": target[OciImageUserField].value,
        "labels": dict(target[OciImageLabelsField].value or {}),
        "exposed_ports": list(target[OciImageExposedPortsField].value or ()),
    }


def list_or_none(value):
    return None if value is None else list(value)


@rule(desc="Build an OCI image")
async def build_image(request: BuildImageRequest, oci: OciSubsystem) -> BuiltImage:
    chain = await Get(ParentChain, ImageTargetRequest(request.address))
    image = await Get(ImageTarget, ImageTargetRequest(request.address))
    parent = None
    if image.parent is not None:
        parent = await Get(BuiltImage, BuildImageRequest(image.parent))
    files = await Get(
        Addresses,
        UnparsedAddressInputs(image.target[OciImageFilesField].value or (), owning_address=request.address,
                              description_of_origin=f"the `files` field of {request.address}"),
    )
    files_layer = await Get(OptionalLayer, FilesLayerRequest(request.address, files))
    own_layers: list[Layer] = [files_layer.layer] if files_layer.layer else []

    spec = {
        "name": str(request.address),
        "parent": json.loads(parent.image_json) if parent else None,
        "layers": [layer.descriptor.to_json() for layer in own_layers],
        "settings": image_settings(image.target),
        "created_epoch": oci.source_date_epoch,
        "architecture": oci.architecture,
        "tags": list(image.target[OciImageTagsField].value or ()),
        "annotations": {},
    }
    spec_file = FileContent("__image_spec.json", json.dumps(spec, sort_keys=True).encode())
    spec_digest = await Get(Digest, CreateDigest([spec_file]))
    result = await Get(ProcessResult, ActionRequest(
        module="assemble_image",
        argv=("__image_spec.json",),
        input_digest=spec_digest,
        description=f"Assemble {request.address} ({len(chain.addresses)} levels)",
        output_files=("oci-layout", "index.json", IMAGE_JSON),
        output_directories=("blobs",),
    ))
    image_json_digest = await Get(Digest, DigestSubset(result.output_digest, PathGlobs([IMAGE_JSON])))
    metadata = await Get(
        Digest, DigestSubset(result.output_digest, PathGlobs(["oci-layout", "index.json", "blobs/**"]))
    )
    image_json = (await Get(DigestContents, Digest, image_json_digest))[0].content.decode()
    parent_blobs = [parent.blobs] if parent else []
    blobs = await Get(Digest, MergeDigests([*parent_blobs, *(layer.blob for layer in own_layers)]))
    layout = await Get(Digest, MergeDigests([blobs, metadata]))
    return BuiltImage(
        address=request.address,
        manifest_digest=json.loads(image_json)["manifest"]["digest"],
        image_json=image_json,
        blobs=blobs,
        layout=layout,
    )


@dataclass(frozen=True)
class OciImageDependenciesInferenceFieldSet(FieldSet):
    required_fields = (OciImageParentField, OciImageDependenciesField)

    parent: OciImageParentField
    files: OciImageFilesField


class InferOciImageDependencies(InferDependenciesRequest):
    infer_from = OciImageDependenciesInferenceFieldSet


@rule(desc="Infer an oci_image's dependencies on its parent and files")
async def infer_oci_image_dependencies(request: InferOciImageDependencies) -> InferredDependencies:
    field_set = request.field_set
    specs = [*([field_set.parent.value] if field_set.parent.value else []), *(field_set.files.value or ())]
    addresses = await Get(
        Addresses,
        UnparsedAddressInputs(specs, owning_address=field_set.address,
                              description_of_origin=f"the `parent` and `files` fields of {field_set.address}"),
    )
    return InferredDependencies(addresses)


def rules():
    return [*collect_rules(), UnionRule(InferDependenciesRequest, InferOciImageDependencies)]
