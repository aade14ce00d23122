"""The Debian content source: the layers an image's `packages` and `users` add over its parent.

In order: the package layers (the .debs the parent lacks), a bytecode layer per package layer
with `compile_python=True`, and the system layer (accounts, the dpkg database and what
maintainer scripts would have written). What the images above need from this one travels in
`DebianState`: the package metadata of the chain, its accounts and its declared files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pants.engine.addresses import Address, Addresses, UnparsedAddressInputs
from pants.engine.fs import EMPTY_DIGEST, Digest, MergeDigests
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.unions import UnionRule

from debian.bytecode import BytecodeLayers, BytecodeLayersRequest
from debian.declared_files import DeclaredFile, DeclaredFilesChecked, DeclaredFilesCheckRequest
from debian.debian_lock import OptionalImagePackageRequest, PackageRequestFor
from debian.packages import (FetchDebsRequest, FetchedDebs, ImagePackageLayersRequest, ImagePackages,
                             ImagePackagesRequest, PackageLayers)
from debian.system_layer import SystemLayerRequest
from debian.target_types import DebianUsersField
from oci.chain import ImageTarget, ImageTargetRequest
from oci.content import ContentPrefetched, ContentPrefetchRequest, ContentState, ImageContent, ImageContentRequest
from oci.layer import Layer
from oci.target_types import OciImageFilesField


@dataclass(frozen=True)
class DebianState(ContentState):
    package_metadata: Digest  # packages/*.json and extras/ of every package layer of the chain
    users: tuple[str, ...]  # accounts from the users table, parents' included
    declared: tuple[DeclaredFile, ...]  # files of the chain's files layers, checked against later packages


EMPTY_STATE = DebianState(EMPTY_DIGEST, (), ())


@dataclass(frozen=True)
class DebianContentRequest(ImageContentRequest):
    order: ClassVar[int] = 10


async def declared_files_of(image: ImageTarget) -> Addresses:
    address = image.target.address
    return await Get(Addresses, UnparsedAddressInputs(
        image.target[OciImageFilesField].value or (), owning_address=address,
        description_of_origin=f"the `files` field of {address}"))


@rule(desc="Plan an image's Debian layers")
async def debian_content(request: DebianContentRequest) -> ImageContent:
    address, parent = request.address, request.parent_state(DebianState) or EMPTY_STATE
    image = await Get(ImageTarget, ImageTargetRequest(address))
    files = await declared_files_of(image)
    packages = await Get(PackageLayers, ImagePackageLayersRequest(address, request.parent_layers,
                                                                  request.architecture))
    new_metadata = await Get(Digest, MergeDigests([layer.metadata for layer in packages.layers]))
    metadata = await Get(Digest, MergeDigests([parent.package_metadata, new_metadata]))
    own_users = image.target[DebianUsersField].value or ()
    users = tuple(sorted({*parent.users, *own_users}))
    # Refuse a declared file that would replace a package, and a new package over a parent's declared file.
    check = bool(files or (parent.declared and packages.layers))
    with_system = bool(packages.layers or own_users)
    # The check, the bytecode and the system layer need only the chain's package layers: side by side.
    bytecode, *rest = await MultiGet([
        Get(BytecodeLayers, BytecodeLayersRequest(address, packages, request.architecture)),
        *([Get(Layer, SystemLayerRequest(address, metadata, users))] if with_system else []),
        *([Get(DeclaredFilesChecked, DeclaredFilesCheckRequest(address, files, metadata, parent.declared,
                                                               new_metadata))] if check else []),
    ])
    system = tuple(result for result in rest if isinstance(result, Layer))
    checked = next((result for result in rest if isinstance(result, DeclaredFilesChecked)), None)
    declared = checked.declared if checked else parent.declared
    layers = (*(p.layer for p in packages.layers), *bytecode.layers, *system)
    state = DebianState(metadata, users, declared)
    return ImageContent(layers, None if state == EMPTY_STATE else state)


@dataclass(frozen=True)
class DebianPrefetchRequest(ContentPrefetchRequest):
    pass


# The parent's layer count is not known yet; it only matters to the package layer plan when the chain
# is within package_layers_per_image of [oci].max_layers. Planned as if there were none, the groups,
# and so the fetch and package layer Processes, are the ones debian_content asks for: the engine runs
# them once. Near the limit the plans differ, and this work is wasted but never used.
UNKNOWN_PARENT_LAYERS = 0


@dataclass(frozen=True)
class ChainDebsRequest:
    address: Address
    architecture: str


@dataclass(frozen=True)
class ChainDebsFetched:
    """The .debs of an image and of its parents are fetched: each image's after its parent's."""


@rule(desc="Fetch the .debs of an image chain, root first")
async def fetch_chain_debs(request: ChainDebsRequest) -> ChainDebsFetched:
    image = await Get(ImageTarget, ImageTargetRequest(request.address))
    if image.parent:
        await Get(ChainDebsFetched, ChainDebsRequest(image.parent, request.architecture))
    package_request = await Get(OptionalImagePackageRequest, PackageRequestFor(request.address))
    if package_request.request is not None:
        # The same fetch image_package_layers asks for: the engine runs it once.
        packages = await Get(ImagePackages, ImagePackagesRequest(package_request.request, request.architecture))
        await Get(FetchedDebs, FetchDebsRequest(packages.added, f"{request.address} ({request.architecture})"))
    return ChainDebsFetched()


@rule(desc="Start an image's Debian package layers")
async def debian_prefetch(request: DebianPrefetchRequest) -> ContentPrefetched:
    # Processes wait for a free core in the order they are asked for. Fetching after the parent's fetch
    # queues the chain's package layers root first, so the last layers to finish are the leaf's and the
    # parents' system layers and assemblies run beside them instead of after them.
    parent = (await Get(ImageTarget, ImageTargetRequest(request.address))).parent
    if parent:
        await Get(ChainDebsFetched, ChainDebsRequest(parent, request.architecture))
    await Get(PackageLayers, ImagePackageLayersRequest(request.address, UNKNOWN_PARENT_LAYERS, request.architecture))
    return ContentPrefetched()


def rules():
    return [*collect_rules(), UnionRule(ImageContentRequest, DebianContentRequest),
            UnionRule(ContentPrefetchRequest, DebianPrefetchRequest)]
