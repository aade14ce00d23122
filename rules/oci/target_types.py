"""Target types: `oci_image` and the `image_files` it places into the image."""

from __future__ import annotations

from typing import ClassVar, Iterable, Optional, Tuple

import posixpath
import re

from pants.core.goals.package import OutputPathField
from pants.engine.addresses import Address
from pants.engine.target import (
    COMMON_TARGET_FIELDS,
    Dependencies,
    DictStringToStringField,
    InvalidFieldException,
    MultipleSourcesField,
    StringField,
    StringSequenceField,
    Target,
)
from pants.util.strutil import help_text

OWNER_PATTERN = re.compile(r"^\d+:\d+$")
TAG_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class OciImageParentField(StringField):
    alias = "parent"
    help = help_text(
        """
        Address of the `oci_image` this image extends, for example `//images/base`.
        Its layers come first, in order, and its config is the starting point of this one.
        Leave it out for an image built from scratch.
        """
    )


class OciImageFilesField(StringSequenceField):
    alias = "files"
    help = help_text(
        """
        Addresses of `image_files` targets (or plain `file`/`files` targets) whose files go into
        this image's own layer. `image_files` sets each file's path, mode and owner in the image;
        a plain `file` lands at `/` + its path relative to its BUILD file, 0644 root:root.
        """
    )


class OciImageEntrypointField(StringSequenceField):
    alias = "entrypoint"
    help = "The image's entrypoint (exec form). Setting it drops an inherited `cmd`."


class ReviewedExclusionsField(DictStringToStringField):
    """A content source's exclusions: each name left out of the image with the reason it was reviewed,
    so that the reason shows in review and an exclusion without one is refused."""

    reason_example: ClassVar[str] = '{"name": "why the image does without it"}'

    @classmethod
    def compute_value(cls, raw_value, address: Address):
        value = super().compute_value(raw_value, address)
        for name, reason in (value or {}).items():
            if not reason.strip():
                raise InvalidFieldException(
                    f"The {cls.alias!r} field of {address} gives no reason for leaving out {name!r}: "
                    f"say why the image does without it, e.g. {cls.reason_example}."
                )
        return value


class OciImageCmdField(StringSequenceField):
    alias = "cmd"
    help = "The image's default command, or the arguments to its entrypoint (exec form)."


class OciImageEnvField(DictStringToStringField):
    alias = "env"
    help = "Environment variables; they override the parent's values of the same name."


class OciImageWorkdirField(StringField):
    alias = "workdir"
    help = "Working directory of the image's process."


class OciImageUserField(StringField):
    alias = "user"
    help = "User (name or uid, optionally `:group`) the image's process runs as."


class OciImageLabelsField(DictStringToStringField):
    alias = "labels"
    help = "Labels of the image config, merged over the parent's."


class OciImageExposedPortsField(StringSequenceField):
    alias = "exposed_ports"
    help = "Ports the image listens on, as `PORT[/tcp|/udp|/sctp]`."


class OciImageTagsField(StringSequenceField):
    alias = "tags"
    default = ("latest",)
    help = "Tags written into the layout's index.json as `org.opencontainers.image.ref.name`."

    @classmethod
    def compute_value(cls, raw_value: Optional[Iterable[str]], address: Address) -> Optional[Tuple[str, ...]]:
        tags = super().compute_value(raw_value, address)
        for tag in tags or ():
            if not TAG_PATTERN.match(tag):
                raise InvalidFieldException(
                    f"The {cls.alias!r} field of {address} has the invalid tag {tag!r}: "
                    "use letters, digits, '_', '.' and '-', at most 128 characters, not starting with '.' or '-'."
                )
        return tags


PLATFORM_PATTERN = re.compile(r"^linux/(amd64|arm64|armhf|i386|ppc64el|s390x)$")


class OciImagePlatformsField(StringSequenceField):
    alias = "platforms"
    help = help_text(
        """
        Platforms to build, e.g. `["linux/amd64", "linux/arm64"]`. With more than one, `pants package`
        writes an OCI image index with one manifest per platform; every architecture's packages come
        from the same lock. Defaults to `linux/<[oci].architecture>`. A parent must offer every
        platform of its children.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[Iterable[str]], address: Address) -> Optional[Tuple[str, ...]]:
        platforms = super().compute_value(raw_value, address)
        for platform in platforms or ():
            if not PLATFORM_PATTERN.match(platform):
                raise InvalidFieldException(
                    f"The {cls.alias!r} field of {address} has {platform!r}: use `linux/<debian architecture>`, "
                    "e.g. linux/amd64 or linux/arm64."
                )
        return platforms

    def architectures(self, default: str) -> tuple[str, ...]:
        return tuple(p.split("/", 1)[1] for p in self.value) if self.value else (default,)


class OciImageRegistriesField(StringSequenceField):
    alias = "registries"
    help = help_text(
        """
        Registries that `pants publish` pushes this image to, as `host[:port]`. Each tag in `tags`
        is pushed to `<registry>/<repository>:<tag>`.
        """
    )


class OciImageRepositoryField(StringField):
    alias = "repository"
    help = "Repository name in the registries. Defaults to the target name."


class OciImageOutputPathField(OutputPathField):
    help = help_text(
        """
        Directory under `dist/` for the image's OCI layout. Defaults to the BUILD file's path with
        `.` for `/`, then the target name, e.g. `images.base/base`.
        """
    )


class OciImageDependenciesField(Dependencies):
    help = "Extra dependencies; `parent` and `files` are added automatically."


class OciImageTarget(Target):
    alias = "oci_image"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        OciImageParentField,
        OciImageFilesField,
        OciImageEntrypointField,
        OciImageCmdField,
        OciImageEnvField,
        OciImageWorkdirField,
        OciImageUserField,
        OciImageLabelsField,
        OciImageExposedPortsField,
        OciImageTagsField,
        OciImagePlatformsField,
        OciImageRegistriesField,
        OciImageRepositoryField,
        OciImageOutputPathField,
        OciImageDependenciesField,
    )
    help = help_text(
        """
        A reproducible OCI image: the layers of its `parent`, then a layer of its own `files`.
        `pants package` writes it as an OCI image layout under `dist/`.
        """
    )


class ImageFilesSourcesField(MultipleSourcesField):
    required = True
    help = "The files to copy into the image, relative to this BUILD file."


class ImageFilesDestinationField(StringField):
    alias = "destination"
    required = True
    help = help_text(
        """
        Absolute directory in the image. Each source keeps its path relative to this BUILD file
        below it: `sources=["conf/app.conf"]`, `destination="/etc/app"` gives `/etc/app/conf/app.conf`.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> Optional[str]:
        value = super().compute_value(raw_value, address)
        if not value.startswith("/") or ".." in value.split("/"):
            raise InvalidFieldException(
                f"The {cls.alias!r} field of {address} must be an absolute path without '..', got {value!r}."
            )
        return posixpath.normpath(value)


class ImageFilesModeField(StringField):
    alias = "mode"
    help = help_text(
        """
        Octal permission mode of every file, e.g. `"0644"` or `"4755"`. Defaults to 0755 for files
        that are executable in the repository and 0644 otherwise.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> Optional[str]:
        value = super().compute_value(raw_value, address)
        if value is not None and not re.match(r"^0?[0-7]{3,4}$", value):
            raise InvalidFieldException(
                f"The {cls.alias!r} field of {address} must be an octal mode such as \"0644\", got {value!r}."
            )
        return value


class ImageFilesOwnerField(StringField):
    alias = "owner"
    default = "0:0"
    help = "Numeric `uid:gid` that owns the files in the image."

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> Optional[str]:
        value = super().compute_value(raw_value, address)
        if not OWNER_PATTERN.match(value):
            raise InvalidFieldException(
                f"The {cls.alias!r} field of {address} must be numeric `uid:gid` such as \"42400:42400\", "
                f"got {value!r}."
            )
        return value


class ImageFilesOverridesField(StringSequenceField):
    alias = "overrides"
    help = help_text(
        """
        Absolute image paths of these files that deliberately replace a file or symlink installed by
        a Debian package of the image or of a parent, e.g. `["/etc/nginx/nginx.conf"]`. Replacing a
        package's conffile needs no entry; any other package file is refused unless listed here, and
        a directory, or a path below a package's symlink (such as /bin), is always refused.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[Iterable[str]], address: Address) -> Optional[Tuple[str, ...]]:
        paths = super().compute_value(raw_value, address)
        for path in paths or ():
            if not path.startswith("/") or ".." in path.split("/") or posixpath.normpath(path) != path:
                raise InvalidFieldException(
                    f"The {cls.alias!r} field of {address} must list normalized absolute paths, got {path!r}."
                )
        return paths


class ImageFilesTarget(Target):
    alias = "image_files"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        ImageFilesSourcesField,
        ImageFilesDestinationField,
        ImageFilesModeField,
        ImageFilesOwnerField,
        ImageFilesOverridesField,
    )
    help = "Files from the repository with their destination, mode and owner inside an `oci_image`."
