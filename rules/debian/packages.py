"""Debian packages of an image: its closure from the lock, the part its parent lacks, its layers.

Each .deb is fetched with DownloadFile against the sha256 and size in the lock
(so Pants caches it by content), and each group of .debs becomes one layer
Process keyed by those hashes: images that add the same packages share the layer.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

import yaml
from pants.engine.addresses import Address
from pants.engine.fs import (
    CreateDigest,
    Digest,
    DigestContents,
    DigestEntries,
    DigestSubset,
    DownloadFile,
    FileContent,
    FileDigest,
    FileEntry,
    MergeDigests,
    PathGlobs,
)
from pants.engine.process import Process, ProcessCacheScope, ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.util.logging import LogLevel

from oci.action import ActionPython, ActionRequest
from debian.debian_lock import ImagePackageRequest, OptionalImagePackageRequest, PackageRequestFor, SourcesManifest
from debian.actions.build_package_layer import DebSpec, PackageLayerSpec
from debian.actions.layereffects import AccountIds
from debian.users import UsersTable
from debian.actions.pathfilter import PathFilter
from debian.errors import PathPatternError, StaleLockError
from oci.errors import LayerBudgetExceeded
from oci.actions.specs import dump_spec
from oci.layer import LAYER_JSON, Layer, LayerOutput

PACKAGES_JSON = "packages.json"
from debian.layer_plan import LayerBudget, PlannedPackage, layers_left, plan_layers
from debian.subsystem import DebianSubsystem
from oci.subsystem import OciSubsystem


@dataclass(frozen=True)
class DebianLock:
    path: str
    sha256: str
    data: dict = field(compare=False, hash=False, repr=False)

    def packages(self, architecture: str) -> dict:
        return (self.data.get("architectures") or {}).get(architecture) or {}


@rule(desc="Read the Debian lock")
async def read_debian_lock(debian: DebianSubsystem) -> DebianLock:
    contents = await Get(DigestContents, PathGlobs([debian.lockfile]))
    if not contents:
        raise StaleLockError(
            f"The Debian lock {debian.lockfile} does not exist. Create it with "
            "`pants generate-lockfiles --resolve=debian`."
        )
    raw = contents[0].content
    data = yaml.load(raw, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return DebianLock(debian.lockfile, hashlib.sha256(raw).hexdigest(), data or {})


@dataclass(frozen=True)
class LockedDeb:
    name: str
    version: str
    architecture: str
    sha256: str
    size: int
    url: str

    @property
    def filename(self) -> str:
        return f"debs/{self.sha256}.deb"


@dataclass(frozen=True)
class ImagePackagesRequest:
    request: ImagePackageRequest
    architecture: str


@dataclass(frozen=True)
class ImagePackages:
    """An image's package closure and the packages it adds over its parent, in name order."""

    closure: tuple[str, ...]
    added: tuple[LockedDeb, ...]


def check_lock_matches(lock: DebianLock, manifest: SourcesManifest, request: ImagePackageRequest) -> None:
    fix = "Run `pants generate-lockfiles --resolve=debian` and commit the new lock."
    if lock.data.get("manifest_sha256") != manifest.sha256:
        raise StaleLockError(f"{lock.path} was generated from another version of {manifest.path}. {fix}")
    recorded = (lock.data.get("requests") or {}).get(request.address)
    if recorded != request.to_json():
        raise StaleLockError(
            f"{request.address}: its packages ({', '.join(request.packages) or 'none'}) are not what {lock.path} "
            f"was generated for ({', '.join((recorded or {}).get('packages') or []) or 'nothing'}). {fix}"
        )


def image_closure(lock: DebianLock, address: str | None, architecture: str) -> list[str]:
    if address is None:
        return []
    images = lock.data.get("images") or {}
    return list(((images.get(address) or {}).get(architecture) or {}).get("closure") or [])


def mirror_urls(manifest: SourcesManifest) -> dict[str, str]:
    return {str(source["name"]): str(source["url"]).rstrip("/") for source in manifest.sources}


def locked_deb(name: str, info: dict, urls: dict[str, str]) -> LockedDeb:
    return LockedDeb(name, info["version"], info["architecture"], info["sha256"], int(info["size"]),
                     f"{urls[info['source']]}/{info['url']}")


@rule(desc="Find the packages an image adds")
async def image_packages(
    request: ImagePackagesRequest, lock: DebianLock, manifest: SourcesManifest
) -> ImagePackages:
    check_lock_matches(lock, manifest, request.request)
    if request.architecture not in (lock.data.get("architectures") or {}):
        raise StaleLockError(
            f"{request.request.address}: {lock.path} has no packages for {request.architecture}. Add it to the "
            f"`architectures` of {manifest.path} and run `pants generate-lockfiles --resolve=debian`."
        )
    closure = image_closure(lock, request.request.address, request.architecture)
    inherited = set(image_closure(lock, request.request.parent, request.architecture))
    locked = lock.packages(request.architecture)
    urls = mirror_urls(manifest)
    added = tuple(locked_deb(name, locked[name], urls) for name in sorted(set(closure) - inherited))
    return ImagePackages(tuple(sorted(closure)), added)


@dataclass(frozen=True)
class CachedDebRequest:
    deb: LockedDeb


@rule(desc="Fetch a .deb", level=LogLevel.DEBUG)
async def fetch_deb(request: CachedDebRequest, debian: DebianSubsystem, python: ActionPython) -> Digest:
    """`debs/<sha256>.deb`, from the local cache when it is there, else from the mirror and then cached.

    The mirror drops superseded versions, so the cache is what keeps old locks buildable.
    """
    deb = request.deb
    cache_dir = os.path.expanduser(debian.deb_cache)
    cached = os.path.join(cache_dir, f"{deb.sha256}.deb")
    from_cache = os.path.exists(cached)
    downloaded = await Get(Digest, DownloadFile(f"file://{cached}" if from_cache else deb.url,
                                                FileDigest(deb.sha256, deb.size)))
    entries = await Get(DigestEntries, Digest, downloaded)
    placed = await Get(Digest, CreateDigest([FileEntry(deb.filename, entries[0].file_digest)]))
    if not from_cache:
        await Get(ProcessResult, Process(
            argv=(python.path, "-c", KEEP_IN_CACHE, deb.filename, cached),
            input_digest=placed,
            description=f"Keep {deb.name} {deb.version} in {cache_dir}",
            cache_scope=ProcessCacheScope.PER_SESSION,
            level=LogLevel.DEBUG,
        ))
    return placed


# Copies a .deb into the cache atomically: a reader never sees half a file.
KEEP_IN_CACHE = """
import os, shutil, sys
source, target = sys.argv[1], sys.argv[2]
os.makedirs(os.path.dirname(target), exist_ok=True)
tmp = target + ".tmp-%d" % os.getpid()
shutil.copyfile(source, tmp)
os.replace(tmp, target)
"""


@dataclass(frozen=True)
class PackageLayerRequest:
    debs: tuple[LockedDeb, ...]


@dataclass(frozen=True)
class PackageLayer:
    layer: Layer
    # `packages/<diff_id hex>.json` (what each package installed and what its maintainer scripts
    # would do) and `extras/...` (package files the system layer is made from).
    metadata: Digest


async def read_package_layer(output: Digest) -> PackageLayer:
    layer, packages_json, extras = await MultiGet(
        Get(Layer, LayerOutput(output)),
        Get(Digest, DigestSubset(output, PathGlobs([PACKAGES_JSON]))),
        Get(Digest, DigestSubset(output, PathGlobs(["extras/**"]))),
    )
    entries = await Get(DigestEntries, Digest, packages_json)
    renamed = FileEntry(f"packages/{layer.descriptor.diff_id.split(':')[1]}.json", entries[0].file_digest)
    metadata = await Get(Digest, CreateDigest([renamed]))
    return PackageLayer(layer, await Get(Digest, MergeDigests([metadata, extras])))


def layer_architecture(debs: tuple[LockedDeb, ...]) -> str:
    specific = sorted({deb.architecture for deb in debs} - {"all"})
    return "/".join(specific) or "all"


@rule(desc="Build a package layer")
async def build_package_layer(
    request: PackageLayerRequest, oci: OciSubsystem, debian: DebianSubsystem, users: UsersTable
) -> PackageLayer:
    fetched = await MultiGet(Get(Digest, CachedDebRequest(deb)) for deb in request.debs)
    names = ", ".join(deb.name for deb in request.debs[:4]) + (", ..." if len(request.debs) > 4 else "")
    spec = PackageLayerSpec(
        debs=tuple(DebSpec(d.filename, d.name, d.sha256, d.size) for d in request.debs),
        settings=oci.layer_settings("packages " + " ".join(f"{d.name}={d.version}" for d in request.debs)),
        path_filter=path_filter(debian),
        accounts=AccountIds.with_base(users.to_json()),
    )
    spec_digest = await Get(Digest, CreateDigest([FileContent("__package_layer.json", dump_spec(spec.to_json()))]))
    input_digest = await Get(Digest, MergeDigests([spec_digest, *fetched]))
    result = await Get(ProcessResult, ActionRequest(
        module="debian.actions.build_package_layer",
        argv=("__package_layer.json",),
        input_digest=input_digest,
        description=f"Build package layer {names} ({len(request.debs)} packages, {layer_architecture(request.debs)})",
        output_files=(LAYER_JSON, PACKAGES_JSON),
        output_directories=("blobs", "extras"),
    ))
    return await read_package_layer(result.output_digest)


def path_filter(debian: DebianSubsystem) -> PathFilter:
    for option in ("path_excludes", "path_includes"):
        for pattern in getattr(debian, option):
            if not pattern.startswith("/"):
                raise PathPatternError(f"[debian].{option} has {pattern!r}, which is not an absolute path glob: "
                                       f"write it like '/usr/share/doc/*' in pants.toml.")
    return PathFilter(tuple(debian.path_excludes), tuple(debian.path_includes))


@dataclass(frozen=True)
class ImagePackageLayersRequest:
    address: Address
    parent_layers: int
    architecture: str


@dataclass(frozen=True)
class PackageLayers:
    layers: tuple[PackageLayer, ...]
    packages: ImagePackages | None


def plan_package_groups(
    address: Address, added: tuple[LockedDeb, ...], parent_layers: int, debian: DebianSubsystem, max_layers: int
) -> list[tuple[LockedDeb, ...]]:
    room = min(debian.package_layers_per_image, layers_left(parent_layers, max_layers, reserved=1))
    if added and room < 1:
        raise LayerBudgetExceeded(
            f"{address}: its parents already use {parent_layers} of the {max_layers} layers an image may "
            f"have, which leaves no room for its {len(added)} packages. Move packages into a parent image or "
            "flatten the image chain."
        )
    by_name = {deb.name: deb for deb in added}
    plan = plan_layers([PlannedPackage(deb.name, deb.size) for deb in added],
                       LayerBudget(debian.own_layer_bytes, debian.group_layer_bytes, room))
    return [tuple(by_name[p.name] for p in group) for group in plan]


@rule(desc="Plan an image's package layers")
async def image_package_layers(
    request: ImagePackageLayersRequest, debian: DebianSubsystem, oci: OciSubsystem
) -> PackageLayers:
    package_request = await Get(OptionalImagePackageRequest, PackageRequestFor(request.address))
    if package_request.request is None:
        return PackageLayers((), None)
    packages = await Get(ImagePackages, ImagePackagesRequest(package_request.request, request.architecture))
    groups = plan_package_groups(request.address, packages.added, request.parent_layers, debian, oci.max_layers)
    layers = await MultiGet(Get(PackageLayer, PackageLayerRequest(group)) for group in groups)
    return PackageLayers(tuple(layers), packages)


def rules():
    return collect_rules()
