"""An image's layout for all its platforms: one manifest, or an image index over several."""

from __future__ import annotations

import json
from dataclasses import dataclass

from pants.engine.addresses import Address
from pants.engine.fs import CreateDigest, Digest, DigestContents, DigestSubset, FileContent, MergeDigests, PathGlobs
from pants.engine.process import ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import WrappedTarget, WrappedTargetRequest

from oci.action import ActionRequest
from oci.image import BuildImageRequest, BuiltImage
from oci.subsystem import OciSubsystem
from oci.target_types import OciImagePlatformsField, OciImageTagsField


@dataclass(frozen=True)
class ImageLayoutRequest:
    address: Address


@dataclass(frozen=True)
class ImageLayout:
    layout: Digest
    digest: str  # what the tags point at: the manifest, or the image index
    architectures: tuple[str, ...]


@rule(desc="Lay out an image for its platforms")
async def image_layout(request: ImageLayoutRequest, oci: OciSubsystem) -> ImageLayout:
    wrapped = await Get(WrappedTarget, WrappedTargetRequest(request.address, description_of_origin="oci_image"))
    target = wrapped.target
    architectures = target[OciImagePlatformsField].architectures(oci.architecture)
    images = await MultiGet(Get(BuiltImage, BuildImageRequest(request.address, arch)) for arch in architectures)
    if len(images) == 1:
        return ImageLayout(images[0].layout, images[0].manifest_digest, architectures)
    spec = {
        "name": str(request.address),
        "tags": list(target[OciImageTagsField].value or ()),
        "manifests": [dict(json.loads(image.image_json)["manifest"], architecture=arch)
                      for image, arch in zip(images, architectures)],
    }
    spec_digest = await Get(Digest, CreateDigest([FileContent("__index_spec.json", json.dumps(spec).encode())]))
    result = await Get(ProcessResult, ActionRequest(
        module="oci.actions.assemble_index",
        argv=("__index_spec.json",),
        input_digest=spec_digest,
        description=f"Assemble the image index of {request.address} ({', '.join(architectures)})",
        output_files=("oci-layout", "index.json"),
        output_directories=("blobs",),
    ))
    # Each platform's blobs, its manifest and config included, without its own index.json.
    platform_blobs = await MultiGet(
        Get(Digest, DigestSubset(image.layout, PathGlobs(["blobs/**"]))) for image in images
    )
    layout, index_json = await MultiGet(
        Get(Digest, MergeDigests([result.output_digest, *platform_blobs])),
        Get(Digest, DigestSubset(result.output_digest, PathGlobs(["index.json"]))),
    )
    index = json.loads((await Get(DigestContents, Digest, index_json))[0].content)
    return ImageLayout(layout, index["manifests"][0]["digest"], architectures)


def rules():
    return collect_rules()
