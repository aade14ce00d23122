"""Byte-compiling an image's Python: the `compile_python` field and the build machine's compiler.

Two content sources honour `compile_python` (Debian's packages in bytecode layers, the venv's
distributions in the venv layer), with one field and one compiler search, kept here so that
neither source imports the other; the byte work is oci/actions/pycompile.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from pants.core.subsystems.python_bootstrap import PythonBootstrap
from pants.core.util_rules.system_binaries import BinaryPathRequest, BinaryPaths, BinaryPathTest
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.target import BoolField
from pants.util.logging import LogLevel
from pants.util.strutil import help_text

from oci.target_types import OciImageTarget


class OciImageCompilePythonField(BoolField):
    alias = "compile_python"
    default = False
    help = help_text(
        """
        Byte-compile the Python modules this image adds. Debian packages: as Debian's py3compile
        would at install time, `__pycache__/*.cpython-3X.pyc` for `/usr/lib/python3/dist-packages`
        and `/usr/lib/python3.X`, in a layer after each package layer. The venv's distributions
        (`python_requirements`): their site-packages modules, in the venv layer and in each
        distribution's RECORD, as pip would. The .pycs are `unchecked-hash` (reproducible, never
        rewritten) and compiled by a Python of the image's own minor version, which must be on the
        build machine (`[python-bootstrap].search_path`). Not inherited: set it on each image whose
        packages and distributions should be compiled.
        """
    )


@dataclass(frozen=True)
class BytecodeCompilerRequest:
    minor: str


@dataclass(frozen=True)
class BytecodeCompiler:
    minor: str
    path: str | None  # None: no such interpreter on the search path
    fingerprint: str  # of `sys.version`: keys the cache, since a patch release may compile differently
    search_path: tuple[str, ...]


def compiler_probe(minor: str) -> str:
    major_minor = tuple(int(part) for part in minor.split("."))
    return (
        "import sys\n"
        f"if sys.implementation.name != 'cpython' or sys.version_info[:2] != {major_minor!r}: sys.exit(1)\n"
        "print(sys.version)"
    )


@rule(desc="Find a Python to byte-compile with", level=LogLevel.DEBUG)
async def find_bytecode_compiler(
    request: BytecodeCompilerRequest, python_bootstrap: PythonBootstrap
) -> BytecodeCompiler:
    search_path = tuple(python_bootstrap.interpreter_search_paths)
    paths = await Get(BinaryPaths, BinaryPathRequest(
        search_path=search_path, binary_name=f"python{request.minor}", check_file_entries=True,
        test=BinaryPathTest(args=["-c", compiler_probe(request.minor)], fingerprint_stdout=True),
    ))
    first = paths.first_path
    return BytecodeCompiler(request.minor, first.path if first else None, first.fingerprint if first else "",
                            search_path)


def rules():
    return [*collect_rules(), OciImageTarget.register_plugin_field(OciImageCompilePythonField)]
