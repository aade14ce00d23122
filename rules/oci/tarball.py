"""`oci_image_tarball`: an image as one reproducible tar file, for `podman load` / `docker load`.

`pants package` builds the image, then a sandboxed action writes the tar from its layout with
the normalized tar writer: the same image gives the same tarball bytes anywhere (skopeo's own
docker-archive output carries no such promise).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pants.core.goals.package import BuiltPackage, BuiltPackageArtifact, OutputPathField, PackageFieldSet
from pants.engine.addresses import Address, Addresses, UnparsedAddressInputs
from pants.engine.fs import AddPrefix, Digest
from pants.engine.process import ProcessResult
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.target import (
    COMMON_TARGET_FIELDS,
    Dependencies,
    FieldSet,
    InferDependenciesRequest,
    InferredDependencies,
    InvalidFieldException,
    StringField,
    StringSequenceField,
    Target,
    WrappedTarget,
    WrappedTargetRequest,
)
from pants.engine.unions import UnionRule
from pants.util.strutil import help_text

from oci.action import ActionRequest
from oci.image import BuildImageRequest, BuiltImage
from oci.platforms import ImageLayout, ImageLayoutRequest
from oci.publish import repository_name
from oci.subsystem import OciSubsystem
from oci.target_types import OciImageRepositoryField, OciImageTagsField

LAYOUT_DIR = "__layout"
# [registry[:port]/]repository:tag, as `docker load` and `podman load` name images.
REPO_TAG_PATTERN = re.compile(
    r"^(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
)


class OciImageTarballImageField(StringField):
    alias = "image"
    required = True
    help = "Address of the `oci_image` to write, e.g. `//images/app` or `:app`."


class OciImageTarballFormatField(StringField):
    alias = "format"
    default = "docker-archive"
    valid_choices = ("docker-archive", "oci-archive")
    help = help_text(
        """
        `docker-archive`: what `podman load -i` and `docker load -i` read, named by `repo_tags`.
        `oci-archive`: the image's OCI layout in one file, for `skopeo copy oci-archive:FILE:TAG`.
        """
    )


class OciImageTarballRepoTagsField(StringSequenceField):
    alias = "repo_tags"
    help = help_text(
        """
        Names the loaded image gets, as `[registry/]repository:tag` (docker-archive only). Defaults to
        the image's `repository` with each of its `tags`, e.g. `app:latest`; podman shows that as
        `localhost/app:latest`.
        """
    )

    @classmethod
    def compute_value(cls, raw_value, address: Address):
        value = super().compute_value(raw_value, address)
        for repo_tag in value or ():
            if not REPO_TAG_PATTERN.match(repo_tag):
                raise InvalidFieldException(
                    f"The {cls.alias!r} field of {address} has {repo_tag!r}; write `[registry/]repository:tag` "
                    "with a lowercase repository."
                )
        return value


class OciImageTarballOutputPathField(OutputPathField):
    help = help_text(
        """
        Where the tar file goes under `dist/`. Defaults to the BUILD file's path with `.` for `/`,
        then the target name and `.tar`, e.g. `images.app/app-tarball.tar`.
        """
    )


class OciImageTarballDependenciesField(Dependencies):
    help = "Extra dependencies; the `image` is added automatically."


class OciImageTarballTarget(Target):
    alias = "oci_image_tarball"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        OciImageTarballImageField,
        OciImageTarballFormatField,
        OciImageTarballRepoTagsField,
        OciImageTarballOutputPathField,
        OciImageTarballDependenciesField,
    )
    help = help_text(
        """
        An `oci_image` as one tar file with reproducible bytes: `pants package` writes it under
        `dist/`, then `podman load -i dist/....tar` (or `docker load -i`) loads it.
        """
    )


@dataclass(frozen=True)
class OciImageTarballFieldSet(PackageFieldSet):
    required_fields = (OciImageTarballImageField,)

    image: OciImageTarballImageField
    format: OciImageTarballFormatField
    repo_tags: OciImageTarballRepoTagsField
    output_path: OciImageTarballOutputPathField


@dataclass(frozen=True)
class TarballImageRequest:
    field_set: OciImageTarballFieldSet


@dataclass(frozen=True)
class TarballImage:
    """The `oci_image` a tarball holds."""

    target: Target


class NotAnImage(Exception):
    pass


@rule
async def resolve_tarball_image(request: TarballImageRequest) -> TarballImage:
    field_set = request.field_set
    addresses = await Get(Addresses, UnparsedAddressInputs(
        [field_set.image.value], owning_address=field_set.address,
        description_of_origin=f"the `{OciImageTarballImageField.alias}` field of {field_set.address}",
    ))
    wrapped = await Get(WrappedTarget, WrappedTargetRequest(addresses[0], description_of_origin=str(field_set.address)))
    if not wrapped.target.has_field(OciImageTagsField):
        raise NotAnImage(
            f"The `{OciImageTarballImageField.alias}` field of {field_set.address} names {addresses[0]}, "
            f"a `{wrapped.target.alias}`; it must be an `oci_image`."
        )
    return TarballImage(wrapped.target)


def default_repo_tags(image: Target) -> tuple[str, ...]:
    repository = repository_name(image[OciImageRepositoryField], image.address)
    return tuple(f"{repository}:{tag}" for tag in image[OciImageTagsField].value or ())


def archive_repo_tags(field_set: OciImageTarballFieldSet, image: Target) -> tuple[str, ...]:
    explicit = field_set.repo_tags.value
    if field_set.format.value != "docker-archive":
        if explicit is not None:
            raise InvalidFieldException(
                f"{field_set.address} sets `{OciImageTarballRepoTagsField.alias}`, which only a docker-archive holds."
            )
        return ()
    return tuple(explicit) if explicit is not None else default_repo_tags(image)


def archive_argv(field_set: OciImageTarballFieldSet, output: str, repo_tags: tuple[str, ...], mtime: int) -> tuple[str, ...]:
    tags = [arg for repo_tag in repo_tags for arg in ("--repo-tag", repo_tag)]
    return ("--format", field_set.format.value, "--layout", LAYOUT_DIR, "--output", output, f"--mtime={mtime}", *tags)


@dataclass(frozen=True)
class ArchiveSourceRequest:
    address: Address
    format: str


@dataclass(frozen=True)
class ArchiveSource:
    layout: Digest
    digest: str  # what the archive's image is known by: a manifest or an image index


@rule
async def archive_source(request: ArchiveSourceRequest) -> ArchiveSource:
    """A docker-archive holds one image: [oci].architecture's. An oci-archive is the whole layout,
    every platform of a multi-platform image included."""
    if request.format == "docker-archive":
        built = await Get(BuiltImage, BuildImageRequest(request.address))
        return ArchiveSource(built.layout, built.manifest_digest)
    layout = await Get(ImageLayout, ImageLayoutRequest(request.address))
    return ArchiveSource(layout.layout, layout.digest)


@rule(desc="Package an OCI image tarball")
async def package_oci_image_tarball(field_set: OciImageTarballFieldSet, oci: OciSubsystem) -> BuiltPackage:
    image = (await Get(TarballImage, TarballImageRequest(field_set))).target
    repo_tags = archive_repo_tags(field_set, image)
    source = await Get(ArchiveSource, ArchiveSourceRequest(image.address, field_set.format.value))
    output = field_set.output_path.value_or_default(file_ending="tar")
    layout = await Get(Digest, AddPrefix(source.layout, LAYOUT_DIR))
    result = await Get(ProcessResult, ActionRequest(
        module="oci.actions.write_archive",
        argv=archive_argv(field_set, output, repo_tags, oci.source_date_epoch),
        input_digest=layout,
        description=f"Write {field_set.format.value} of {image.address}",
        output_files=(output,),
    ))
    names = f" [{', '.join(repo_tags)}]" if repo_tags else ""
    return BuiltPackage(
        result.output_digest,
        (BuiltPackageArtifact(output, extra_log_lines=(f"    {source.digest}{names}",)),),
    )


@dataclass(frozen=True)
class OciImageTarballInferenceFieldSet(FieldSet):
    required_fields = (OciImageTarballImageField, OciImageTarballDependenciesField)

    image: OciImageTarballImageField


class InferOciImageTarballDependencies(InferDependenciesRequest):
    infer_from = OciImageTarballInferenceFieldSet


@rule(desc="Infer an oci_image_tarball's dependency on its image")
async def infer_oci_image_tarball_dependencies(request: InferOciImageTarballDependencies) -> InferredDependencies:
    field_set = request.field_set
    addresses = await Get(Addresses, UnparsedAddressInputs(
        [field_set.image.value], owning_address=field_set.address,
        description_of_origin=f"the `{OciImageTarballImageField.alias}` field of {field_set.address}",
    ))
    return InferredDependencies(addresses)


def rules():
    return [
        *collect_rules(),
        UnionRule(PackageFieldSet, OciImageTarballFieldSet),
        UnionRule(InferDependenciesRequest, InferOciImageTarballDependencies),
    ]
