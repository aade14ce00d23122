"""Check an image's declared files against the packages of its chain, in a cached Process.

The files layer comes last, so without this check a declared file would silently replace what a
package installed. The action (`check_declared_files`) has the rules; here the files are placed
as the files layer places them and each is told whether its target lists it in `overrides`.
The same action refuses the other direction: a package the image adds over a file its parents
declared (their files layers come before its package layers).
"""

from __future__ import annotations

from dataclasses import dataclass

from pants.engine.addresses import Address, Addresses
from pants.engine.fs import (
    EMPTY_DIGEST,
    AddPrefix,
    CreateDigest,
    Digest,
    DigestEntries,
    DigestSubset,
    FileContent,
    MergeDigests,
    PathGlobs,
)
from pants.engine.process import FallibleProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import HydratedSources, HydrateSourcesRequest, SourcesField, Targets

from debian.actions.check_declared_files import Declared, DeclaredFile, DeclaredFilesSpec
from oci.action import ActionRequest
from oci.actions.specs import dump_spec
from oci.errors import ImageBuildError
from oci.layer import place_files
from oci.target_types import ImageFilesOverridesField

SPEC = "__declared_files.json"


@dataclass(frozen=True)
class DeclaredFilesCheckRequest:
    image: Address
    files: Addresses
    package_metadata: Digest  # packages/*.json of every package layer in the chain
    inherited: tuple[DeclaredFile, ...] = ()  # the declared files of the parents
    new_package_metadata: Digest = EMPTY_DIGEST  # packages/*.json of this image's own package layers


@dataclass(frozen=True)
class DeclaredFilesChecked:
    image: Address
    declared: tuple[DeclaredFile, ...] = ()  # the chain's declared files once this image's are added


def check_overrides_are_placed(target, placed_paths: set[str]) -> tuple[str, ...]:
    """The target's `overrides`, each of which must be one of its own files."""
    overrides = tuple(target[ImageFilesOverridesField].value or ()) if target.has_field(ImageFilesOverridesField) else ()
    for path in overrides:
        if path.lstrip("/") not in placed_paths:
            raise ImageBuildError(
                f"{target.address}: `overrides` lists {path}, which is not one of its files (it places "
                f"{', '.join('/' + p for p in sorted(placed_paths))}). Fix the path or remove it from `overrides`."
            )
    return overrides


@rule(desc="Check an image's declared files against its packages")
async def check_declared_files(request: DeclaredFilesCheckRequest) -> DeclaredFilesChecked:
    targets = await Get(Targets, Addresses, request.files) if request.files else ()
    targets = [t for t in targets if t.has_field(SourcesField)]  # the files layer refuses the others
    hydrated = await MultiGet(Get(HydratedSources, HydrateSourcesRequest(t[SourcesField])) for t in targets)
    entries = await MultiGet(Get(DigestEntries, Digest, h.snapshot.digest) for h in hydrated)
    files: list[Declared] = []
    for target, target_entries in zip(targets, entries):
        placed = place_files(target, target_entries)
        overrides = check_overrides_are_placed(target, {p.image_path for p in placed})
        files += [Declared(p.image_path, p.source, str(target.address), target.has_field(ImageFilesOverridesField),
                           "/" + p.image_path in overrides) for p in placed]
    own = {f.path: DeclaredFile(f.path, f.source, f.origin, str(request.image)) for f in files}
    # A parent's file that this image declares again is checked as this image's own.
    inherited = tuple(f for f in request.inherited if f.path not in own)
    checked = DeclaredFilesChecked(request.image, tuple(sorted((*inherited, *own.values()), key=lambda f: f.path)))
    if request.new_package_metadata == EMPTY_DIGEST:
        inherited = ()  # no new packages: nothing can land over the parents' files
    if request.package_metadata == EMPTY_DIGEST or not (files or inherited):
        return checked  # no Process: nothing can clash
    spec = DeclaredFilesSpec(str(request.image), tuple(sorted(files, key=lambda f: (f.path, f.source))), inherited)
    spec_digest, packages, new_packages = await MultiGet(
        Get(Digest, CreateDigest([FileContent(SPEC, dump_spec(spec.to_json()))])),
        Get(Digest, DigestSubset(request.package_metadata, PathGlobs(["packages/*.json"]))),
        Get(Digest, DigestSubset(request.new_package_metadata if inherited else EMPTY_DIGEST,
                                 PathGlobs(["packages/*.json"]))),
    )
    new_packages = await Get(Digest, AddPrefix(new_packages, "new"))  # the action's new/packages/*.json
    result = await Get(FallibleProcessResult, ActionRequest(
        module="debian.actions.check_declared_files",
        argv=(SPEC,),
        input_digest=await Get(Digest, MergeDigests([spec_digest, packages, new_packages])),
        description=f"Check the declared files of {request.image} and its parents against its packages",
    ))
    if result.exit_code != 0:
        raise ImageBuildError(result.stderr.decode(errors="replace").strip())
    return checked


def rules():
    return collect_rules()
