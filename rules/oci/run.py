"""`pants run` for `oci_image`: build the image, then run it with podman straight from its layout.

podman reads `oci:<layout>:<tag>` itself (and stores the image as `localhost/<repository>:<tag>`),
so what runs is exactly the built layout; nothing is pushed or exported first.  Arguments after
`--` become the container's command (or its entrypoint's arguments).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from pants.core.goals.run import RunFieldSet, RunInSandboxBehavior, RunRequest
from pants.core.util_rules.system_binaries import BashBinary
from pants.engine.fs import AddPrefix, Digest
from pants.engine.rules import Get, collect_rules, rule
from pants.option.option_types import ShellStrListOption, StrOption
from pants.option.subsystem import Subsystem
from pants.util.strutil import help_text

from oci.image import BuildImageRequest, BuiltImage
from oci.publish import validated_repository
from oci.target_types import OciImageRepositoryField, OciImageTagsField
from oci.tools import PodmanBinary

# Measured on the build hosts: crun fails there, and podman's default bridge network must not
# be used; the ulimits keep the container's defaults independent of the host's.
DEFAULT_RUN_ARGS = ["--rm", "--network=none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


class OciRunSubsystem(Subsystem):
    options_scope = "oci-run"
    help = "How `pants run` runs an `oci_image` (with podman)."

    runtime = StrOption(
        default="runc",
        help="The OCI runtime podman uses (`podman --runtime`).",
    )
    args = ShellStrListOption(
        default=[*DEFAULT_RUN_ARGS, *(["--interactive", "--tty"] if sys.stdout.isatty() else [])],
        help=help_text(
            f"""
            Arguments of `podman run`, before the image. Append to the defaults with
            `--oci-run-args="+['--env=DEBUG=1']"`; the defaults are {' '.join(DEFAULT_RUN_ARGS)}
            (plus `--interactive --tty` in a terminal).
            """
        ),
    )


@dataclass(frozen=True)
class OciImageRunFieldSet(RunFieldSet):
    required_fields = (OciImageTagsField, OciImageRepositoryField)
    # Runs a container through the host's podman, whose image store is state Pants cannot see.
    run_in_sandbox_behavior = RunInSandboxBehavior.RUN_REQUEST_NOT_HERMETIC

    tags: OciImageTagsField
    repository: OciImageRepositoryField


def image_reference(repository: str, tags: tuple[str, ...]) -> str:
    """`oci:` reference to the layout, relative to the run's sandbox.

    podman names what it reads after the layout's path (`oci:app:latest` becomes
    `localhost/app:latest`), and names must be lowercase, which the sandbox's absolute path is
    not. So the layout sits at `<repository>` and podman starts in the sandbox.
    """
    return f"oci:{repository}:{tags[0]}" if tags else f"oci:{repository}"


@rule(desc="Prepare running an OCI image")
async def run_oci_image(
    field_set: OciImageRunFieldSet, podman: PodmanBinary, shell: BashBinary, options: OciRunSubsystem
) -> RunRequest:
    repository = validated_repository(field_set.repository, field_set.address)
    image = await Get(BuiltImage, BuildImageRequest(field_set.address))
    layout = await Get(Digest, AddPrefix(image.layout, repository))
    podman_argv = (podman.path, "--runtime", options.runtime, "run", *options.args,
                   image_reference(repository, tuple(field_set.tags.value or ())))
    return RunRequest(
        digest=layout,
        # `pants run` starts in the build root; `{chroot}` is where `layout` was written.
        args=(shell.path, "-c", 'cd "$0" && exec "$@"', "{chroot}", *podman_argv),
    )


def rules():
    return [*collect_rules(), *OciImageRunFieldSet.rules()]
