"""The parent chain of an image: resolved `parent` fields, with cycles and non-images refused."""

from __future__ import annotations

from dataclasses import dataclass

from pants.engine.addresses import Address, Addresses, UnparsedAddressInputs
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.target import Target, WrappedTarget, WrappedTargetRequest

from oci.errors import ImageBuildError
from oci.target_types import OciImageParentField, OciImageTarget


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


def rules():
    return collect_rules()
