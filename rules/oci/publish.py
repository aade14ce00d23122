"""`pants publish` for `oci_image`: push every tag to every registry of the image with skopeo.

One push per (registry, tag), so the goal reports each reference as published or failed and
exits non-zero if any failed.  The packaged layout is the push's input, so what is published
is byte for byte what `pants package` wrote.

Where an image goes is decided for the whole set, as `kolla-build --registry --namespace` and
Pants' `[docker].registries` do it: `[oci-publish].registries` and `[oci-publish].namespace`
(pants.toml or `--oci-publish-registries=... --oci-publish-namespace=...`).  An image's own
`registries` field replaces the set's registries for that image, and its own `repository`
field is its whole repository name (the namespace is not put in front of it): what a BUILD
file says explicitly wins, so images declared before the options existed publish as before.

`[oci-publish].immutable_tag` is a tag pushed beside an image's `tags` and never moved: each
push of the image first asks the registry what that tag names, and refuses (the floating tags
included) when it names another digest.  Nothing is ever deleted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pants.core.goals.package import BuiltPackage
from pants.core.goals.publish import (
    PublishFieldSet,
    PublishOutputData,
    PublishPackages,
    PublishProcesses,
    PublishRequest,
)
from pants.engine.addresses import Address
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.process import InteractiveProcess, Process
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.target import InvalidFieldException
from pants.option.option_types import IntOption, ShellStrListOption, StrListOption, StrOption
from pants.option.subsystem import Subsystem
from pants.util.strutil import help_text

from oci.action import ACTION_ENV, ActionPython, ActionSources, ActionSourcesRequest
from oci.target_types import TAG_PATTERN, OciImageRegistriesField, OciImageRepositoryField, OciImageTagsField
from oci.tools import SkopeoBinary

# The distribution spec's repository name: lowercase path components separated by '/'.
REPOSITORY_PATTERN = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
REGISTRY_PATTERN = re.compile(r"^[A-Za-z0-9.-]+(?::[0-9]+)?$")
PACKAGE_DIR = "__package"


class OciPublishSubsystem(Subsystem):
    options_scope = "oci-publish"
    help = "How `pants publish` pushes `oci_image` layouts to registries (with skopeo)."

    insecure_registries = StrListOption(
        default=[],
        help=help_text(
            """
            Registries (`host[:port]`, as written in `registries`) pushed to without TLS verification:
            plain HTTP or a self-signed certificate. For test and loopback registries only.
            """
        ),
    )
    env_vars = ShellStrListOption(
        default=["HOME", "XDG_RUNTIME_DIR", "REGISTRY_AUTH_FILE", "DOCKER_CONFIG"],
        help=help_text(
            """
            Environment variables for skopeo: `NAME` copies Pants' value, `NAME=value` sets one.
            The defaults let skopeo find credentials from `skopeo login`, `podman login`,
            `docker login` or an explicit `REGISTRY_AUTH_FILE`. Add proxy variables here if needed.
            """
        ),
        advanced=True,
    )
    registries = StrListOption(
        default=[],
        help=help_text(
            """
            Registries (`host[:port]`) every `oci_image` is pushed to, unless the image sets its own
            `registries` field. Like `kolla-build --registry`.
            """
        ),
    )
    namespace = StrOption(
        default=None,
        help=help_text(
            """
            Repository path put in front of each image's name: `<registry>/<namespace>/<name>:<tag>`,
            like `kolla-build --namespace`. Images that set their own `repository` field keep it as is.
            """
        ),
    )
    immutable_tag = StrOption(
        default=None,
        help=help_text(
            """
            A tag pushed beside each image's `tags` that must never move, e.g. `<lock date>-<lock digest>`.
            Every push of an image first reads this tag in the registry: when it names another digest the
            push is refused (the floating tags are then not moved either); when it names the same digest,
            publishing again is a no-op.
            """
        ),
    )
    retry_times = IntOption(
        default=2,
        help="How many times skopeo retries a push that failed on a transient network error.",
        advanced=True,
    )


class PublishOciImageRequest(PublishRequest):
    pass


@dataclass(frozen=True)
class OciImagePublishFieldSet(PublishFieldSet):
    publish_request_type = PublishOciImageRequest
    required_fields = (OciImageRegistriesField,)

    registries: OciImageRegistriesField
    repository: OciImageRepositoryField
    tags: OciImageTagsField

    def get_output_data(self) -> PublishOutputData:
        return PublishOutputData({
            "publisher": "skopeo",
            "registries": self.registries.value or (),
            **super().get_output_data(),
        })


@dataclass(frozen=True)
class PushJob:
    registry: str
    repository: str
    tag: str
    insecure: bool

    @property
    def reference(self) -> str:
        return f"{self.registry}/{self.repository}:{self.tag}"


@dataclass(frozen=True)
class SetDestination:
    """Where the whole set goes unless an image says otherwise: `[oci-publish].registries` and `.namespace`."""

    registries: tuple[str, ...] = ()
    namespace: str | None = None

    @classmethod
    def of(cls, options: "OciPublishSubsystem") -> "SetDestination":
        namespace = (options.namespace or "").strip("/") or None
        if namespace is not None and not REPOSITORY_PATTERN.match(namespace):
            raise InvalidFieldException(
                f"[oci-publish].namespace is {options.namespace!r}, which registries refuse as a repository path: "
                "use lowercase letters, digits and '.', '_', '-' between them, and '/' between path components "
                "(e.g. `--oci-publish-namespace=openstack.kolla`)."
            )
        for registry in options.registries:
            if not REGISTRY_PATTERN.match(registry):
                raise InvalidFieldException(
                    f"[oci-publish].registries has {registry!r}; write a registry as `host` or `host:port`, "
                    "without a scheme or path (e.g. `--oci-publish-registries=['127.0.0.1:5000']`)."
                )
        return cls(tuple(options.registries), namespace)

    def registries_for(self, field: OciImageRegistriesField) -> tuple[str, ...]:
        return tuple(field.value) if field.value is not None else self.registries


def repository_name(field: OciImageRepositoryField, address: Address, namespace: str | None = None) -> str:
    """The image's own `repository` as written, else `<namespace>/<target name>` (or the target name)."""
    if field.value:
        return field.value
    return f"{namespace}/{address.target_name}" if namespace else address.target_name


def validated_repository(field: OciImageRepositoryField, address: Address, namespace: str | None = None) -> str:
    repository = repository_name(field, address, namespace)
    if not REPOSITORY_PATTERN.match(repository):
        raise InvalidFieldException(
            f"{address} would be pushed as the repository {repository!r}, which registries refuse: use lowercase "
            "letters, digits and '.', '_', '-' between them, and '/' between path components. "
            f"Set the `{OciImageRepositoryField.alias}` field."
        )
    return repository


def validated_registry(registry: str, address: Address) -> str:
    if not REGISTRY_PATTERN.match(registry):
        raise InvalidFieldException(
            f"The `{OciImageRegistriesField.alias}` field of {address} has {registry!r}; "
            "write a registry as `host` or `host:port`, without a scheme or path."
        )
    return registry


def validated_immutable_tag(tag: str | None) -> str | None:
    if tag and not TAG_PATTERN.match(tag):
        raise InvalidFieldException(
            f"[oci-publish].immutable_tag is {tag!r}, which is not a valid tag: use letters, digits, '_', '.' "
            "and '-', at most 128 characters, not starting with '.' or '-'."
        )
    return tag or None


def image_tags(field_set: OciImagePublishFieldSet, immutable_tag: str | None) -> tuple[str, ...]:
    """The immutable tag first (it is the one that must not move), then the image's floating tags."""
    floating = tuple(tag for tag in field_set.tags.value or () if tag != immutable_tag)
    return ((immutable_tag,) if immutable_tag else ()) + floating


def push_jobs(field_set: OciImagePublishFieldSet, insecure_registries: tuple[str, ...],
              destination: SetDestination = SetDestination(), immutable_tag: str | None = None) -> list[PushJob]:
    repository = validated_repository(field_set.repository, field_set.address, destination.namespace)
    if not field_set.tags.value:
        return []  # no tag in the layout names the image
    return [
        PushJob(validated_registry(registry, field_set.address), repository, tag, registry in insecure_registries)
        for registry in destination.registries_for(field_set.registries)
        for tag in image_tags(field_set, immutable_tag)
    ]


def layout_path(package: BuiltPackage) -> str:
    (artifact,) = package.artifacts
    assert artifact.relpath is not None
    return artifact.relpath


def push_argv(python: ActionPython, skopeo: SkopeoBinary, layout: str, job: PushJob, retry_times: int,
              source_tag: str, immutable_tag: str | None) -> tuple[str, ...]:
    return (
        python.path, "-B", "-s", "-m", "oci.actions.push_image",
        "--skopeo", skopeo.path, "--layout", layout, "--tag", job.tag, "--source-tag", source_tag,
        "--registry", job.registry, "--repository", job.repository, f"--retry-times={retry_times}",
        *(("--insecure",) if job.insecure else ()),
        *((f"--immutable-tag={immutable_tag}",) if immutable_tag else ()),
    )


def source_tag(field_set: OciImagePublishFieldSet, job: PushJob) -> str:
    """The layout's tag that names the image: the job's own, or for the immutable tag the image's first."""
    tags = tuple(field_set.tags.value or ())
    return job.tag if job.tag in tags else tags[0]


@rule(desc="Prepare pushing an OCI image")
async def push_oci_image(
    request: PublishOciImageRequest,
    options: OciPublishSubsystem,
    skopeo: SkopeoBinary,
    python: ActionPython,
) -> PublishProcesses:
    field_set = request.field_set
    destination = SetDestination.of(options)
    immutable_tag = validated_immutable_tag(options.immutable_tag)
    jobs = push_jobs(field_set, tuple(options.insecure_registries), destination, immutable_tag)
    if not jobs:
        reason = "tags" if destination.registries_for(field_set.registries) else "registries"
        return PublishProcesses([
            PublishPackages(names=(str(field_set.address),), description=f"(no `{reason}` set)")
        ])

    (package,) = request.packages
    sources = await Get(ActionSources, ActionSourcesRequest("oci"))
    env = await Get(EnvironmentVars, EnvironmentVarsRequest(options.env_vars))
    layout = f"{PACKAGE_DIR}/{layout_path(package)}"
    return PublishProcesses([
        PublishPackages(
            names=(job.reference,),
            process=InteractiveProcess.from_process(Process(
                argv=push_argv(python, skopeo, layout, job, options.retry_times, source_tag(field_set, job),
                               immutable_tag),
                # Written once and linked into each push's sandbox, however many tags and registries.
                immutable_input_digests={PACKAGE_DIR: package.digest, **sources.mount},
                description=f"Push {job.reference}",
                env={**env, **ACTION_ENV},
            )),
        )
        for job in jobs
    ])


def rules():
    return [*collect_rules(), *OciImagePublishFieldSet.rules()]
