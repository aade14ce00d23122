"""Run a stdlib-only action as a sandboxed, cached Process.

Each backend keeps its actions in `<backend>/actions/`. A Process gets the actions of its own
backend plus oci's (the layer writer and JSON framing every backend builds on), so editing a
Debian action changes the cache key of Debian Processes only, never of a files layer or an
assembly.

The actions ship with their bytecode, compiled once by the Python that runs them (a cached
Process): every action Process would otherwise compile its modules again at start-up, a
third of that start-up. The .pycs are unchecked-hash and come out byte for byte the same
on every host, so they change no cache key across machines. They reach each sandbox as an
immutable input (one link to a tree Pants writes once), not as files written per sandbox.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from pants.core.subsystems.python_bootstrap import PythonBootstrap
from pants.core.util_rules.system_binaries import BinaryPathRequest, BinaryPaths, BinaryPathTest
from pants.engine.fs import CreateDigest, Digest, FileContent
from pants.engine.process import Process, ProcessCacheScope, ProcessResult
from pants.engine.rules import Get, collect_rules, rule
from pants.util.logging import LogLevel

from oci.perturbation import ActionPerturbation

ACTIONS_ROOT = "__oci_actions"
BASE_BACKEND = "oci"
# The same variables on every host: the actions must not depend on them, and this keeps
# the cache key free of anything host-specific.
ACTION_ENV = {"PYTHONPATH": ACTIONS_ROOT, "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}


# Prints what the actions' output can depend on: the Python version and the zlib that
# compresses layers.  Its stdout is hashed into the interpreter's fingerprint.
PYTHON_PROBE = (
    "import sys, zlib; sys.exit(1) if sys.version_info < (3, 9) else "
    "print(sys.version, zlib.ZLIB_RUNTIME_VERSION, sys.executable)"
)


# Relative paths, so that the .pycs do not depend on where the sandbox is.
COMPILE_ACTIONS = (
    "import compileall, py_compile, sys; sys.exit(not compileall.compile_dir("
    "'.', quiet=1, workers=1, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH))"
)


class ActionPythonNotFound(Exception):
    pass


@dataclass(frozen=True)
class ActionPython:
    path: str
    fingerprint: str


@dataclass(frozen=True)
class ActionSourcesRequest:
    backend: str  # the package whose `actions/` ship, beside oci's


@dataclass(frozen=True)
class ActionSources:
    digest: Digest  # `<backend>/actions/...` with bytecode; Processes mount it at ACTIONS_ROOT

    @property
    def mount(self) -> dict[str, Digest]:
        """For `Process(immutable_input_digests=...)`."""
        return {ACTIONS_ROOT: self.digest}


@dataclass(frozen=True)
class ActionRequest:
    """Run `python -m <module> <argv>` over `input_digest`; `module` is `<backend>.actions.<name>`."""

    module: str
    argv: tuple[str, ...]
    input_digest: Digest
    description: str
    output_files: tuple[str, ...] = ()
    output_directories: tuple[str, ...] = ()
    level: LogLevel = LogLevel.INFO
    cache_scope: ProcessCacheScope = ProcessCacheScope.SUCCESSFUL


def backend_of(module: str) -> str:
    backend, actions, _ = module.split(".", 2)
    if actions != "actions":
        raise ValueError(f"{module} is not an action module (`<backend>.actions.<name>`)")
    return backend


def backend_action_files(backend: str) -> list[FileContent]:
    actions_dir = Path(importlib.import_module(f"{backend}.actions").__file__).parent
    files = [FileContent(f"{backend}/__init__.py", b"")]
    return files + [
        FileContent(f"{backend}/actions/{path.name}", path.read_bytes())
        for path in sorted(actions_dir.glob("*.py"))
    ]


@rule
async def action_sources(request: ActionSourcesRequest, python: ActionPython) -> ActionSources:
    backends = sorted({BASE_BACKEND, request.backend})
    files = [content for backend in backends for content in backend_action_files(backend)]
    sources = await Get(Digest, CreateDigest(files))
    compiled = await Get(ProcessResult, Process(
        argv=(python.path, "-s", "-c", COMPILE_ACTIONS),
        input_digest=sources,
        description=f"Compile the {' and '.join(backends)} actions",
        env={"PYTHONHASHSEED": "0", "OCI_ACTION_PYTHON": python.fingerprint},
        output_directories=tuple(backends),
        level=LogLevel.DEBUG,
    ))
    return ActionSources(compiled.output_digest)


@rule(desc="Find the Python that runs image actions", level=LogLevel.DEBUG)
async def find_action_python(python_bootstrap: PythonBootstrap) -> ActionPython:
    search_path = python_bootstrap.interpreter_search_paths
    paths = await Get(BinaryPaths, BinaryPathRequest(
        search_path=search_path, binary_name="python3", check_file_entries=True,
        test=BinaryPathTest(args=["-c", PYTHON_PROBE]),
    ))
    if paths.first_path is None:
        raise ActionPythonNotFound(
            f"No Python 3.9 or newer named python3 in [python-bootstrap].search_path ({', '.join(search_path)}). "
            "Install one or add its directory to that option in pants.toml."
        )
    return ActionPython(paths.first_path.path, paths.first_path.fingerprint)


@rule
async def action_process(
    request: ActionRequest, python: ActionPython, perturbation: ActionPerturbation
) -> Process:
    sources = await Get(ActionSources, ActionSourcesRequest(backend_of(request.module)))
    perturbed = perturbation.active  # only under `repro-check --perturb`; see oci/perturbation.py
    return Process(
        argv=(python.path, "-B", "-s", *perturbation.wrap(request.module), *request.argv),
        input_digest=request.input_digest,
        immutable_input_digests=sources.mount,
        description=f"{request.description} (perturbed)" if perturbed else request.description,
        # The interpreter's fingerprint keys the cache: the zlib and tarfile in use come with it.
        env={**ACTION_ENV, "OCI_ACTION_PYTHON": python.fingerprint, **dict(perturbation.env)},
        output_files=request.output_files,
        output_directories=request.output_directories,
        level=request.level,
        cache_scope=ProcessCacheScope.PER_SESSION if perturbed else request.cache_scope,
    )


def rules():
    return collect_rules()
