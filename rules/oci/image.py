"""Assemble images: the parent's layers, then this image's own, then config, manifest and index.

An image's own layers are planned from its parent's layers and content states (`ChainLayers`),
not from its parent's assembled image: the assemblies of a chain run beside its layers and never
hold up a child's content.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pants.engine.addresses import Address, Addresses, UnparsedAddressInputs
from pants.engine.fs import (
    CreateDigest,
    Digest,
    DigestContents,
    DigestSubset,
    FileContent,
    MergeDigests,
    PathGlobs,
)
from pants.engine.process import ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import FieldSet, InferDependenciesRequest, InferredDependencies, Target
from pants.engine.unions import UnionMembership, UnionRule

from oci.action import ActionRequest
from oci.actions.ocilayout import ImageSettings
from oci.actions.specs import BuiltImageJson, ImageSpec, dump_spec
from oci.chain import ImageTarget, ImageTargetRequest, ParentChain
from oci.content import (ContentPrefetched, ContentPrefetchRequest, ContentState, ImageContent,
                         ImageContentRequest)
from oci.errors import ImageBuildError, LayerBudgetExceeded
from oci.layer import FilesLayerRequest, Layer, OptionalLayer
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
    OciImagePlatformsField,
    OciImageTagsField,
    OciImageUserField,
    OciImageWorkdirField,
)

IMAGE_JSON = "image.json"


@dataclass(frozen=True)
class BuildImageRequest:
    address: Address
    architecture: str = ""  # empty: [oci].architecture


@dataclass(frozen=True)
class BuiltImage:
    address: Address
    manifest_digest: str
    image_json: str  # config, manifest descriptor and all layer descriptors, for children
    blobs: Digest  # every layer blob of the image, parents' included
    layout: Digest  # the complete OCI image layout
    states: tuple[ContentState, ...]  # each content source's record of the chain, for children

    @property
    def layers(self) -> list[dict]:
        return json.loads(self.image_json)["layers"]


def image_settings(target: Target) -> ImageSettings:
    return ImageSettings(
        env=dict(target[OciImageEnvField].value or {}),
        entrypoint=target[OciImageEntrypointField].value,
        cmd=target[OciImageCmdField].value,
        workdir=target[OciImageWorkdirField].value,
        user=target[OciImageUserField].value,
        labels=dict(target[OciImageLabelsField].value or {}),
        exposed_ports=tuple(target[OciImageExposedPortsField].value or ()),
    )


def image_spec(image: ImageTarget, parent: BuiltImage | None, own: OwnLayers, architecture: str,
               oci: OciSubsystem) -> ImageSpec:
    return ImageSpec(
        name=str(image.target.address),
        parent=BuiltImageJson.from_json(json.loads(parent.image_json)) if parent else None,
        layers=tuple(layer.descriptor for layer in own.layers),
        settings=image_settings(image.target),
        created_epoch=oci.source_date_epoch,
        architecture=architecture,
        tags=tuple(image.target[OciImageTagsField].value or ()),
        annotations={},
    )


def check_layer_budget(address: Address, parent_layers: int, own_layers: int, max_layers: int) -> None:
    if parent_layers + own_layers > max_layers:
        raise LayerBudgetExceeded(
            f"{address} would have {parent_layers + own_layers} layers ({parent_layers} from its parents), "
            f"more than the {max_layers} allowed (`[oci].max_layers`). Flatten the image chain or have its "
            "content sources add fewer layers."
        )


@dataclass(frozen=True)
class OwnLayersRequest:
    image: ImageTarget
    architecture: str
    parent_layers: int  # layers of the parent chain
    parent_states: tuple[ContentState, ...]  # every source's state of the parent image


@dataclass(frozen=True)
class OwnLayers:
    """The layers an image adds over its parent, in order, and what the sources pass to its children."""

    layers: tuple[Layer, ...]
    states: tuple[ContentState, ...]


@rule(desc="Plan an image's own layers")
async def own_layers(request: OwnLayersRequest, union_membership: UnionMembership) -> OwnLayers:
    address = request.image.target.address
    files = await Get(Addresses, UnparsedAddressInputs(
        request.image.target[OciImageFilesField].value or (), owning_address=address,
        description_of_origin=f"the `files` field of {address}"))
    sources = sorted(union_membership.get(ImageContentRequest), key=lambda source: (source.order, source.__name__))
    # The files layer does not depend on the sources' layers: both at once.
    files_layer, *contents = await MultiGet(
        Get(OptionalLayer, FilesLayerRequest(address, files)),
        *(Get(ImageContent, ImageContentRequest,
              source(address, request.architecture, request.parent_layers, request.parent_states))
          for source in sources),
    )
    # Declared files come last so that they override what the content sources wrote.
    layers = (*(layer for content in contents for layer in content.layers),
              *([files_layer.layer] if files_layer.layer else []))
    return OwnLayers(layers, tuple(content.state for content in contents if content.state is not None))


@dataclass(frozen=True)
class ChainLayersRequest:
    address: Address
    architecture: str


@dataclass(frozen=True)
class ChainLayers:
    """An image's own layers, planned from its parent's own layers and states, not its parent's assembly."""

    own: OwnLayers
    count: int  # layers of the whole chain, this image's included


@rule(desc="Plan the layers of an image chain")
async def chain_layers(request: ChainLayersRequest, oci: OciSubsystem) -> ChainLayers:
    image = await Get(ImageTarget, ImageTargetRequest(request.address))
    parent_layers, parent_states = 0, ()
    if image.parent:
        # As build_image does: the platform error comes before any work on the parent's layers.
        check_platform(await Get(ImageTarget, ImageTargetRequest(image.parent)), request.architecture,
                       oci.architecture, request.address)
        parent = await Get(ChainLayers, ChainLayersRequest(image.parent, request.architecture))
        parent_layers, parent_states = parent.count, parent.own.states
    own = await Get(OwnLayers, OwnLayersRequest(image, request.architecture, parent_layers, parent_states))
    check_layer_budget(request.address, parent_layers, len(own.layers), oci.max_layers)
    return ChainLayers(own, parent_layers + len(own.layers))


def check_platform(image: ImageTarget, architecture: str, default: str, wanted_by: Address) -> None:
    offered = image.target[OciImagePlatformsField].architectures(default)
    if architecture not in offered:
        raise ImageBuildError(
            f"{image.target.address} is built for linux/{', linux/'.join(offered)}, but {wanted_by} needs it for "
            f"linux/{architecture}. Add linux/{architecture} to the `platforms` of {image.target.address}."
        )


@rule(desc="Build an OCI image")
async def build_image(request: BuildImageRequest, oci: OciSubsystem, union_membership: UnionMembership
                      ) -> BuiltImage:
    chain = await Get(ParentChain, ImageTargetRequest(request.address))  # refuses cycles before recursing
    image = await Get(ImageTarget, ImageTargetRequest(request.address))
    architecture = request.architecture or oci.architecture
    layers_get = Get(ChainLayers, ChainLayersRequest(request.address, architecture))
    parent: BuiltImage | None = None
    if image.parent:
        check_platform(await Get(ImageTarget, ImageTargetRequest(image.parent)), architecture, oci.architecture,
                       request.address)
        # The parent's build, this image's parent-independent content and the chain's layers side by side:
        # an image's layers wait for its parent's layers, never for its parent's assembly.
        planned, parent, *_ = await MultiGet([
            layers_get,
            Get(BuiltImage, BuildImageRequest(image.parent, architecture)),
            *(Get(ContentPrefetched, ContentPrefetchRequest, source(request.address, architecture))
              for source in union_membership.get(ContentPrefetchRequest)),
        ])
    else:
        planned = await layers_get
    own = planned.own

    spec = image_spec(image, parent, own, architecture, oci)
    spec_digest = await Get(Digest, CreateDigest([FileContent("__image_spec.json", dump_spec(spec.to_json()))]))
    result = await Get(ProcessResult, ActionRequest(
        module="oci.actions.assemble_image",
        argv=("__image_spec.json",),
        input_digest=spec_digest,
        description=f"Assemble {request.address} ({len(chain.addresses)} levels)",
        output_files=("oci-layout", "index.json", IMAGE_JSON),
        output_directories=("blobs",),
    ))
    image_json_digest, metadata, blobs = await MultiGet(
        Get(Digest, DigestSubset(result.output_digest, PathGlobs([IMAGE_JSON]))),
        Get(Digest, DigestSubset(result.output_digest, PathGlobs(["oci-layout", "index.json", "blobs/**"]))),
        Get(Digest, MergeDigests([*([parent.blobs] if parent else []), *(layer.blob for layer in own.layers)])),
    )
    image_json = (await Get(DigestContents, Digest, image_json_digest))[0].content.decode()
    layout = await Get(Digest, MergeDigests([blobs, metadata]))
    return BuiltImage(
        address=request.address,
        manifest_digest=json.loads(image_json)["manifest"]["digest"],
        image_json=image_json,
        blobs=blobs,
        layout=layout,
        states=own.states,
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
