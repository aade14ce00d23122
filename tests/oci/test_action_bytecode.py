"""The actions' bytecode: the same bytes wherever it is compiled, and used without checking the source."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from oci.action import COMPILE_ACTIONS, backend_action_files

PYTHON = shutil.which("python3.11") or shutil.which("python3")


def compiled_actions(where: Path) -> Path:
    """The oci and debian actions as an action Process gets them, compiled the way `action_sources` does."""
    where.mkdir(parents=True)
    for content in backend_action_files("oci") + backend_action_files("debian"):
        path = where / content.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.content)
    subprocess.run([PYTHON, "-s", "-c", COMPILE_ACTIONS], cwd=where, check=True,
                   env={"PYTHONHASHSEED": "0", "PATH": os.environ["PATH"]})
    return where


def pycs(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.pyc"))}


def test_every_action_module_is_compiled_to_the_same_bytes_in_any_directory(tmp_path):
    first = compiled_actions(tmp_path / "one")
    second = compiled_actions(tmp_path / "a/much/deeper/sandbox")
    sources = sorted(first.rglob("*.py"))
    assert len(pycs(first)) == len(sources) > 40
    assert pycs(first) == pycs(second)


def test_an_action_imports_from_its_bytecode_without_reading_the_source(tmp_path):
    root = compiled_actions(tmp_path / "actions")
    # Unchecked-hash .pycs: a source that no longer even parses is not looked at.
    (root / "debian/actions/debfile.py").write_text("this is not python\n")
    run = subprocess.run([PYTHON, "-B", "-s", "-c", "import debian.actions.build_package_layer"],
                         env={"PYTHONPATH": str(root), "PATH": os.environ["PATH"]}, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
