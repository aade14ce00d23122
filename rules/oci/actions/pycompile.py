"""Byte-compile Python modules the way images need them: shared by Debian's bytecode layers and the venv's .pycs.

The .pycs are `--invalidation-mode unchecked-hash` (PEP 552): no mtime, only the source hash, which
Python does not even check, so a read-only image never recompiles and no file date enters them.
They are written by a Python of the image's own minor version (a patch release of the same minor
has the same magic number), found on the build machine, in a clean subprocess: PYTHONHASHSEED=0
(3.9 and 3.10 marshal frozenset constants in hash order; -E would drop the variable, so it is not
used), -S -s (no site, no user site), -B, an empty cwd. The code objects name the module's image
path (`dfile`), never the sandbox's.
"""

from __future__ import annotations

import json
import os
import posixpath
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Mapping, Sequence, Tuple

# Runs in the compiling interpreter, which may be older than the action's: plain Python 3.7.
COMPILE_SCRIPT = r"""
import importlib.util, json, os, platform, py_compile, sys
job = json.load(open(sys.argv[1], encoding="utf-8"))
compiled, failed = [], []
for source, image_path in job["modules"]:
    image_pyc = importlib.util.cache_from_source(image_path)
    try:
        py_compile.compile(source, cfile=job["out"] + image_pyc, dfile=image_path, doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
        compiled.append([image_path, image_pyc])
    except py_compile.PyCompileError as error:
        failed.append([image_path, error.exc_type_name + ": " + str(error.exc_value)])
json.dump({"version": platform.python_version(), "implementation": sys.implementation.name,
           "compiled": compiled, "failed": failed}, sys.stdout)
"""
COMPILE_ENV = {"PYTHONHASHSEED": "0", "PYTHONUTF8": "1", "PYTHONDONTWRITEBYTECODE": "1"}


class CompileError(RuntimeError):
    """The compiling interpreter itself failed (not a module that does not compile)."""


@dataclass(frozen=True)
class Compiler:
    python: str  # path of the interpreter
    minor: str  # "3.11": the image's Python it stands in for
    fingerprint: str = ""  # of its `sys.version`: only keys the Process cache

    def to_json(self) -> dict:
        return {"python": self.python, "minor": self.minor, "fingerprint": self.fingerprint}

    @classmethod
    def from_json(cls, value: Mapping) -> "Compiler":
        return cls(value["python"], value["minor"], value["fingerprint"])


@dataclass(frozen=True)
class CompileResult:
    version: str
    compiled: Tuple[Tuple[str, str], ...]  # (image .py, image .pyc)
    failed: Tuple[Tuple[str, str], ...]  # (image .py, error)


def cache_path(path: str, minor: str) -> str:
    """importlib.util.cache_from_source for CPython `minor`, whatever Python runs the action:
    dir/__pycache__/mod.cpython-3X.pyc."""
    directory, name = posixpath.split(path)
    return f"{directory}/__pycache__/{name[:-3]}.cpython-{minor.replace('.', '')}.pyc"


def run_compiler(compiler: Compiler, modules: Sequence[Tuple[str, str]], out_root: str, work_dir: str) -> CompileResult:
    """Compile `modules`, (source file, image path) pairs, with one interpreter; the .pycs land at `out_root` + their
    image path (`importlib.util.cache_from_source` of it)."""
    job = os.path.join(work_dir, f"job-{compiler.minor}.json")
    with open(job, "w", encoding="utf-8") as f:
        json.dump({"out": out_root, "modules": [list(m) for m in modules]}, f)
    empty_cwd = tempfile.mkdtemp(dir=work_dir)
    process = subprocess.run([compiler.python, "-S", "-s", "-B", "-c", COMPILE_SCRIPT, job], cwd=empty_cwd,
                             env=COMPILE_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if process.returncode != 0:
        raise CompileError(f"{compiler.python} failed while compiling {len(modules)} modules for Python "
                           f"{compiler.minor}: {process.stderr.decode('utf-8', 'replace').strip()[-2000:]}")
    report = json.loads(process.stdout)
    if report["implementation"] != "cpython" or not report["version"].startswith(compiler.minor + "."):
        raise CompileError(f"{compiler.python} is {report['implementation']} {report['version']}, not CPython "
                           f"{compiler.minor}")
    return CompileResult(report["version"], tuple(tuple(c) for c in report["compiled"]),
                         tuple(tuple(f) for f in report["failed"]))
