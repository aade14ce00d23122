"""Debian packages of an image: its closure from the lock, the part its parent lacks, its layers.

The .debs an image adds are fetched by one Process (`actions/fetch_debs.py`: a bounded thread
pool, every file checked against the lock's sha256 and size, sources tried in
`[debian].fetch_order`). Its inputs are the lock's hashes and the source settings (the cache
directory among them, so a fetch is cached per machine). Each group of .debs then becomes one layer Process keyed by those hashes: images that
add the same packages share the layer.
"""

from __future__ import annotations

import hashlib
import os
import json
import logging
from dataclasses import dataclass, field

import yaml
from pants.engine.addresses import Address
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
from pants.engine.process import FallibleProcessResult, ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule

from oci.action import ActionRequest
from debian.debian_lock import ImagePackageRequest, OptionalImagePackageRequest, PackageRequestFor, SourcesManifest
from debian.actions.build_package_layer import DebSpec, PackageLayerSpec
from debian.actions.accounts import AccountIds
from debian.users import UsersTable
from debian.actions.fetch_debs import KINDS, REPORT, FetchDeb, FetchSpec
from debian.actions.registry import RegistryError, parse_archive
from debian.actions.pathfilter import PathFilter
from debian.errors import DebFetchError, FetchOptionError, PathPatternError, StaleLockError
from oci.errors import LayerBudgetExceeded
from oci.actions.specs import dump_spec
from oci.layer import LAYER_JSON, Layer, LayerOutput

from debian.layer_plan import LayerBudget, PlannedPackage, layers_left, plan_layers
from debian.subsystem import DebianSubsystem
from oci.subsystem import OciSubsystem

logger = logging.getLogger(__name__)
PACKAGES_JSON = "packages.json"


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
    path: str  # the pool path, relative to the apt source's URL
    source: str  # the apt source's name

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
                     f"{urls[info['source']]}/{info['url']}", info["url"], info["source"])


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
class FetchDebsRequest:
    debs: tuple[LockedDeb, ...]
    what: str  # for messages: the image and architecture, or the lock


@dataclass(frozen=True)
class FetchedDebs:
    digest: Digest  # debs/<sha256>.deb


def fetch_spec(debs: tuple[LockedDeb, ...], debian: DebianSubsystem, lock: DebianLock,
               manifest: SourcesManifest) -> FetchSpec:
    unknown = [kind for kind in debian.fetch_order if kind not in KINDS]
    if unknown or not debian.fetch_order:
        raise FetchOptionError(f"[debian].fetch_order is {list(debian.fetch_order)}: give one or more of "
                               f"{', '.join(KINDS)}, in the order to try them.")
    check_fetch_sources(debian)
    return FetchSpec(
        debs=tuple(FetchDeb(d.name, d.version, d.architecture, d.sha256, d.size, d.path, d.source) for d in debs),
        order=tuple(debian.fetch_order),
        cache_dir=os.path.expanduser(debian.deb_cache) if debian.deb_cache else "",
        mirrors=mirror_urls(manifest),
        archive=debian.archive,
        snapshot_url=debian.snapshot_url,
        snapshot_timestamp=str(lock.data.get("snapshot_timestamp") or ""),
        parallelism=debian.fetch_parallelism,
        timeout=debian.fetch_timeout,
    )


def check_fetch_sources(debian: DebianSubsystem) -> None:
    """The archive and snapshot options are read here, so that a typo stops the build with the fix."""
    if debian.archive:
        try:
            parse_archive(debian.archive)
        except RegistryError as error:
            raise FetchOptionError(str(error)) from None
    if debian.snapshot_url:
        try:
            debian.snapshot_url.format(archive="debian", timestamp="20240101T000000Z")
        except (KeyError, IndexError, ValueError) as error:
            raise FetchOptionError(
                f"[debian].snapshot_url is {debian.snapshot_url!r}, which names {error}: it may only use "
                "{archive} and {timestamp}, e.g. \"https://snapshot.debian.org/archive/{archive}/{timestamp}\"."
            ) from None


@rule(desc="Fetch .debs")
async def fetch_debs(
    request: FetchDebsRequest, debian: DebianSubsystem, lock: DebianLock, manifest: SourcesManifest
) -> FetchedDebs:
    """`debs/<sha256>.deb` for each requested .deb, from the first source in `[debian].fetch_order` that has it."""
    spec = fetch_spec(request.debs, debian, lock, manifest)
    spec_digest = await Get(Digest, CreateDigest([FileContent("__fetch.json", dump_spec(spec.to_json()))]))
    result = await Get(FallibleProcessResult, ActionRequest(
        module="debian.actions.fetch_debs",
        argv=("__fetch.json",),
        input_digest=spec_digest,
        description=f"Fetch {len(request.debs)} .debs for {request.what}",
        output_files=(REPORT,),
        output_directories=("debs",),
    ))
    stderr = result.stderr.decode("utf-8", "replace")
    if result.exit_code != 0:
        message = stderr.split("error: ", 1)[-1].strip() or f"the fetch Process exited with {result.exit_code}"
        raise DebFetchError(f"{request.what}: {message}")
    debs, report = await MultiGet(
        Get(Digest, DigestSubset(result.output_digest, PathGlobs(["debs/*.deb"]))),
        Get(DigestContents, DigestSubset(result.output_digest, PathGlobs([REPORT]))),
    )
    if result.metadata._source == "ran":  # say where the .debs came from only when they were fetched now
        log_fetch_report(request.what, json.loads(report[0].content), stderr)
    return FetchedDebs(debs)


def log_fetch_report(what: str, report: dict, stderr: str) -> None:
    for line in stderr.splitlines():
        if line.startswith("warning: "):
            logger.warning(f"{what}: {line[len('warning: '):]}")
    served = ", ".join(f"{count} from {source}" for source, count in report["served"].items())
    logger.info(f"{what}: {report['debs']} .debs: {served or 'none'}")


@dataclass(frozen=True)
class PackageLayerRequest:
    debs: tuple[LockedDeb, ...]
    fetched: Digest  # debs/<sha256>.deb of exactly these .debs


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
    names = ", ".join(deb.name for deb in request.debs[:4]) + (", ..." if len(request.debs) > 4 else "")
    spec = PackageLayerSpec(
        debs=tuple(DebSpec(d.filename, d.name, d.sha256, d.size) for d in request.debs),
        settings=oci.layer_settings("packages " + " ".join(f"{d.name}={d.version}" for d in request.debs)),
        path_filter=path_filter(debian),
        accounts=AccountIds.with_base(users.to_json()),
    )
    spec_digest = await Get(Digest, CreateDigest([FileContent("__package_layer.json", dump_spec(spec.to_json()))]))
    input_digest = await Get(Digest, MergeDigests([spec_digest, request.fetched]))
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
    fetched = await Get(FetchedDebs, FetchDebsRequest(packages.added, f"{request.address} ({request.architecture})"))
    subsets = await MultiGet(Get(Digest, DigestSubset(fetched.digest, PathGlobs([d.filename for d in group])))
                             for group in groups)
    layers = await MultiGet(Get(PackageLayer, PackageLayerRequest(group, subset))
                            for group, subset in zip(groups, subsets))
    return PackageLayers(tuple(layers), packages)


def rules():
    return collect_rules()
