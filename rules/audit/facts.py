"""What audits know about a built image: its chain, its layers (with the image that added each)
and, for package layers, a short summary of every package.

Built on `BuiltImage`, so an audit of images that `pants package` already built is
all cache hits; the per-layer package summaries are cached Processes shared by
every image that holds the layer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterable, Sequence

from pants.engine.addresses import Address
from pants.engine.fs import EMPTY_DIGEST, Digest, DigestContents, DigestSubset, PathGlobs
from pants.engine.process import ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import AllTargets, Target
from pants.util.logging import LogLevel

from oci.action import ActionRequest
from oci.actions.ocilayout import canonical_json, sha256_digest
from debian.content import DebianState
from oci.chain import ImageTarget, ImageTargetRequest, ParentChain
from oci.content import source_state
from oci.image import BuildImageRequest, BuiltImage
from oci.publish import OciPublishSubsystem, SetDestination, repository_name
from oci.target_types import (
    OciImageOutputPathField,
    OciImageParentField,
    OciImagePlatformsField,
    OciImageRegistriesField,
    OciImageRepositoryField,
    OciImageTagsField,
    OciImageTarget,
)
from pypi.content import PypiState


@dataclass(frozen=True)
class PackageFacts:
    name: str
    version: str
    architecture: str
    source: str
    dpkg_name: str
    deb_sha256: str
    installed_bytes: int
    files: int
    setuid: tuple[str, ...]
    script_effects: tuple[tuple[str, str, str], ...] = ()  # unapplied (script, command, path)

    @classmethod
    def from_json(cls, value: dict) -> "PackageFacts":
        return cls(value["name"], value["version"], value["architecture"], value["source"], value["dpkg_name"],
                   value["deb_sha256"], int(value["installed_bytes"]), int(value["files"]), tuple(value["setuid"]),
                   tuple(tuple(e) for e in value["script_effects"]))


@dataclass(frozen=True)
class PythonDistributionFacts:
    """A distribution a venv layer (rules/pypi) installed, and the wheel it came from."""

    name: str
    version: str
    wheel_url: str
    wheel_sha256: str


@dataclass(frozen=True)
class LayerFacts:
    digest: str
    diff_id: str
    size: int  # compressed: what a registry stores and a node pulls
    created_by: str
    added_by: Address
    packages: tuple[PackageFacts, ...]
    python_distributions: tuple[PythonDistributionFacts, ...] = ()


@dataclass(frozen=True)
class ImageNames:
    """How an image is known outside Pants: repository, registries and tags."""

    repository: str
    registries: tuple[str, ...]
    tags: tuple[str, ...]

    @classmethod
    def of(cls, target: Target, destination: SetDestination = SetDestination()) -> "ImageNames":
        """As `pants publish` names it: the image's own fields, else `[oci-publish].registries` and `.namespace`."""
        return cls(repository_name(target[OciImageRepositoryField], target.address, destination.namespace),
                   destination.registries_for(target[OciImageRegistriesField]),
                   tuple(target[OciImageTagsField].value or ()))

    @property
    def references(self) -> tuple[str, ...]:
        """`registry/repository:tag` for every registry and tag, or `repository:tag` without registries."""
        prefixes = [f"{registry}/" for registry in self.registries] or [""]
        return tuple(f"{prefix}{self.repository}:{tag}" for prefix in prefixes for tag in self.tags)


@dataclass(frozen=True)
class ImageFacts:
    address: Address
    chain: tuple[Address, ...]  # from the root image down to this one
    names: ImageNames
    manifest_digest: str
    config_digest: str
    config_json: str
    layers: tuple[LayerFacts, ...]

    @property
    def parent(self) -> Address | None:
        return self.chain[-2] if len(self.chain) > 1 else None

    @property
    def config(self) -> dict:
        return json.loads(self.config_json)

    @property
    def architecture(self) -> str:
        return self.config.get("architecture", "")

    @property
    def packages(self) -> tuple[PackageFacts, ...]:
        return tuple(p for layer in self.layers for p in layer.packages)

    @property
    def python_distributions(self) -> tuple[PythonDistributionFacts, ...]:
        return tuple(d for layer in self.layers for d in layer.python_distributions)

    @property
    def own_layers(self) -> tuple[LayerFacts, ...]:
        return tuple(layer for layer in self.layers if layer.added_by == self.address)

    @property
    def total_bytes(self) -> int:
        return sum(layer.size for layer in self.layers)

    @property
    def own_bytes(self) -> int:
        return sum(layer.size for layer in self.own_layers)


@dataclass(frozen=True)
class ImageFactsRequest:
    address: Address
    architecture: str = ""  # empty: [oci].architecture


@dataclass(frozen=True)
class LayerPackagesRequest:
    package_metadata: Digest
    diff_id: str


@dataclass(frozen=True)
class LayerPackages:
    packages: tuple[PackageFacts, ...]


def layer_owners(chain: Sequence[Address], layer_counts: Sequence[int]) -> list[Address]:
    """The image that added each layer, given how many layers each image of the chain has in all."""
    owners: list[Address] = []
    for address, count in zip(chain, layer_counts):
        owners.extend([address] * (count - len(owners)))
    return owners


@rule(desc="Summarize the packages of a layer", level=LogLevel.DEBUG)
async def layer_packages(request: LayerPackagesRequest) -> LayerPackages:
    path = f"packages/{request.diff_id.split(':', 1)[1]}.json"
    metadata = await Get(Digest, DigestSubset(request.package_metadata, PathGlobs([path])))
    if metadata == EMPTY_DIGEST:
        return LayerPackages(())
    result = await Get(ProcessResult, ActionRequest(
        module="audit.actions.package_summary",
        argv=(path,),
        input_digest=metadata,
        description=f"Summarize the packages of layer {request.diff_id[:19]}",
        level=LogLevel.DEBUG,
    ))
    summary = json.loads(result.stdout)
    return LayerPackages(tuple(PackageFacts.from_json(p) for p in summary["packages"]))


async def venv_distributions(image: BuiltImage) -> dict[str, tuple[PythonDistributionFacts, ...]]:
    """The distributions each venv layer of the image installed, by the layer's diff_id."""
    pypi = source_state(image.states, PypiState)
    if pypi is None:
        return {}
    by_layer = {}
    for record in await Get(DigestContents, Digest, pypi.records):
        diff_id = "sha256:" + record.path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        by_layer[diff_id] = tuple(
            PythonDistributionFacts(d["name"], d["version"], d["wheel"]["url"], d["wheel"]["sha256"])
            for d in json.loads(record.content)["distributions"])
    return by_layer


@rule(desc="Collect an image's audit facts", level=LogLevel.DEBUG)
async def image_facts(request: ImageFactsRequest, publish: OciPublishSubsystem) -> ImageFacts:
    chain, image_target = await MultiGet(
        Get(ParentChain, ImageTargetRequest(request.address)),
        Get(ImageTarget, ImageTargetRequest(request.address)),
    )
    built = await MultiGet(
        Get(BuiltImage, BuildImageRequest(address, request.architecture)) for address in chain.addresses
    )
    image = built[-1]
    owners = layer_owners(chain.addresses, [len(b.layers) for b in built])
    debian = source_state(image.states, DebianState)
    package_metadata = debian.package_metadata if debian else EMPTY_DIGEST
    summaries = await MultiGet(
        Get(LayerPackages, LayerPackagesRequest(package_metadata, layer["diff_id"])) for layer in image.layers
    )
    venvs = await venv_distributions(image)
    layers = tuple(
        LayerFacts(layer["digest"], layer["diff_id"], int(layer["size"]), layer.get("created_by", ""), owner,
                   summary.packages, venvs.get(layer["diff_id"], ()))
        for layer, owner, summary in zip(image.layers, owners, summaries)
    )
    config = json.loads(image.image_json)["config"]
    return ImageFacts(request.address, chain.addresses, ImageNames.of(image_target.target, SetDestination.of(publish)),
                      image.manifest_digest,
                      sha256_digest(canonical_json(config)), json.dumps(config, sort_keys=True), layers)


@dataclass(frozen=True)
class AuditSubject:
    """One platform of one image, and the dist/ path (without suffix) of its audit files."""

    address: Address
    architecture: str
    output_base: str  # e.g. `images.app/app`, or `images.app/app.arm64` for a multi-platform image


def audit_subjects(targets: Iterable[Target], default_architecture: str) -> tuple[AuditSubject, ...]:
    """Every platform of every `oci_image` among `targets`; next to the layout under dist/."""
    subjects = []
    for target in image_targets(targets):
        base = target[OciImageOutputPathField].value_or_default(file_ending=None)
        architectures = target[OciImagePlatformsField].architectures(default_architecture)
        for architecture in architectures:
            suffix = f".{architecture}" if len(architectures) > 1 else ""
            subjects.append(AuditSubject(target.address, architecture, base + suffix))
    return tuple(subjects)


@dataclass(frozen=True)
class ParentImages:
    """Every image that another image of the repository names as its `parent`."""

    addresses: frozenset


@rule(desc="Find the images that others build on", level=LogLevel.DEBUG)
async def parent_images(all_targets: AllTargets) -> ParentImages:
    images = [t for t in all_targets if t.has_field(OciImageParentField)]
    resolved = await MultiGet(Get(ImageTarget, ImageTargetRequest(t.address)) for t in images)
    return ParentImages(frozenset(image.parent for image in resolved if image.parent is not None))


def image_targets(targets: Iterable[Target]) -> tuple[Target, ...]:
    """The `oci_image` targets among a goal's targets, in address order."""
    return tuple(sorted((t for t in targets if isinstance(t, OciImageTarget) or t.has_field(OciImageParentField)),
                        key=lambda t: str(t.address)))


def rules():
    return collect_rules()
