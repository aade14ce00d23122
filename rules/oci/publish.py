"""`pants publish` for `oci_image`: push every tag to every registry of the image with skopeo.

One push per (registry, tag), so the goal reports each reference as published or failed and
exits non-zero if any failed.  The packaged layout is the push's input, so what is published
is byte for byte what `pants package` wrote.
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
from pants.option.option_types import IntOption, ShellStrListOption, StrListOption
from pants.option.subsystem import Subsystem
from pants.util.strutil import help_text

from oci.action import ACTION_ENV, ActionPython, ActionSources, ActionSourcesRequest
from oci.target_types import OciImageRegistriesField, OciImageRepositoryField, OciImageTagsField
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


def repository_name(field: OciImageRepositoryField, address: Address) -> str:
    return field.value or address.target_name


def validated_repository(field: OciImageRepositoryField, address: Address) -> str:
    repository = repository_name(field, address)
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


def push_jobs(field_set: OciImagePublishFieldSet, insecure_registries: tuple[str, ...]) -> list[PushJob]:
    repository = validated_repository(field_set.repository, field_set.address)
    return [
        PushJob(validated_registry(registry, field_set.address), repository, tag, registry in insecure_registries)
        for registry in field_set.registries.value or ()
        for tag in field_set.tags.value or ()
    ]


def layout_path(package: BuiltPackage) -> str:
    (artifact,) = package.artifacts
    assert artifact.relpath is not None
    return artifact.relpath


def push_argv(python: ActionPython, skopeo: SkopeoBinary, layout: str, job: PushJob, retry_times: int) -> tuple[str, ...]:
    return (
        python.path, "-B", "-s", "-m", "oci.actions.push_image",
        "--skopeo", skopeo.path, "--layout", layout, "--tag", job.tag,
        "--registry", job.registry, "--repository", job.repository, f"--retry-times={retry_times}",
        *(("--insecure",) if job.insecure else ()),
    )


@rule(desc="Prepare pushing an OCI image")
async def push_oci_image(
    request: PublishOciImageRequest,
    options: OciPublishSubsystem,
    skopeo: SkopeoBinary,
    python: ActionPython,
) -> PublishProcesses:
    field_set = request.field_set
    jobs = push_jobs(field_set, tuple(options.insecure_registries))
    if not jobs:
        reason = "registries" if not field_set.registries.value else "tags"
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
                argv=push_argv(python, skopeo, layout, job, options.retry_times),
                input_digest=sources.digest,
                # Written once and linked into each push's sandbox, however many tags and registries.
                immutable_input_digests={PACKAGE_DIR: package.digest},
                description=f"Push {job.reference}",
                env={**env, **ACTION_ENV},
            )),
        )
        for job in jobs
    ])


def rules():
    return [*collect_rules(), *OciImagePublishFieldSet.rules()]
