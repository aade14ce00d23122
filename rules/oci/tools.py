"""The container tools that `publish`, `run` and friends drive: skopeo and podman, found on the host."""

from __future__ import annotations

from dataclasses import dataclass

from pants.core.util_rules.search_paths import ExecutableSearchPathsOptionMixin
from pants.core.util_rules.system_binaries import BinaryPathRequest, BinaryPaths, BinaryPathTest
from pants.engine.rules import Get, collect_rules, rule
from pants.option.subsystem import Subsystem
from pants.util.logging import LogLevel

INSTALL_HINT = "On Debian: `apt-get install skopeo podman runc`."


class OciToolsSubsystem(Subsystem):
    options_scope = "oci-tools"
    help = "Where the container tools that `pants publish` and `pants run` drive (skopeo, podman) are found."

    class EnvironmentAware(ExecutableSearchPathsOptionMixin, Subsystem.EnvironmentAware):
        executable_search_paths_help = "The directories searched for `skopeo` and `podman`."


class ContainerToolNotFound(Exception):
    pass


@dataclass(frozen=True)
class ContainerToolRequest:
    name: str


@dataclass(frozen=True)
class ContainerTool:
    name: str
    path: str


@dataclass(frozen=True)
class SkopeoBinary:
    path: str


@dataclass(frozen=True)
class PodmanBinary:
    path: str


@rule(desc="Find a container tool", level=LogLevel.DEBUG)
async def find_container_tool(request: ContainerToolRequest, tools: OciToolsSubsystem.EnvironmentAware) -> ContainerTool:
    search_path = tools.executable_search_path
    paths = await Get(BinaryPaths, BinaryPathRequest(
        search_path=search_path, binary_name=request.name, test=BinaryPathTest(args=["--version"]),
    ))
    if paths.first_path is None:
        raise ContainerToolNotFound(
            f"Cannot find `{request.name}` in [oci-tools].executable_search_paths ({', '.join(search_path)}). "
            f"{INSTALL_HINT}"
        )
    return ContainerTool(request.name, paths.first_path.path)


@rule
async def find_skopeo() -> SkopeoBinary:
    tool = await Get(ContainerTool, ContainerToolRequest("skopeo"))
    return SkopeoBinary(tool.path)


@rule
async def find_podman() -> PodmanBinary:
    tool = await Get(ContainerTool, ContainerToolRequest("podman"))
    return PodmanBinary(tool.path)


def rules():
    return collect_rules()
