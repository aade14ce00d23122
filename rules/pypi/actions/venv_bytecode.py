"""The venv's .pycs on `compile_python`: compiled into the venv layer and listed in RECORD, as pip does.

Decisions:
- In the venv layer itself, not in a layer after it as Debian's bytecode layers are. Debian's
  package layers are shared between images and cached by their .debs, and dpkg's records of them
  do not list .pycs, so a separate layer costs nothing in correctness. A distribution's RECORD
  must list every file it installed (pip adds the .pycs it compiles, with their hash and size, so
  that `pip uninstall` and `pip check`-like tools see them); a bytecode layer would have to carry
  a second copy of every RECORD, shadowing the venv layer's. One layer, one RECORD per
  distribution, the .pycs in it.
- What pip compiles: the `.py` files the wheel installs into site-packages (scripts in `bin/` and
  `.data/data` files are not). A module that does not compile (Python 2 syntax in a test file) is
  left out silently, as pip's compileall does, and counted on stderr. A .pyc the wheel ships
  itself is left alone.
- How: oci/actions/pycompile.py, as Debian's bytecode layers: unchecked-hash, the code objects
  naming the module's image path, by the build machine's Python of the image's minor version. The
  .pycs are 0644 and root-owned like every venv file; the layer writer fixes their mtime.
"""

from __future__ import annotations

import os
import posixpath
from typing import Dict, List, Optional, Sequence, Tuple

from oci.actions.pycompile import CompileResult, Compiler, cache_path, run_compiler

from .wheel import InstalledDistribution, VenvFile, VenvLayout, installed_record, memory_file


def compiled_sources(dist: InstalledDistribution, layout: VenvLayout) -> List[VenvFile]:
    """The site-packages modules of a distribution that get a .pyc: those whose .pyc the wheel lacks."""
    paths = {file.path for file in dist.files}
    return [file for file in dist.files
            if file.path.startswith(layout.site_packages + "/") and file.path.endswith(".py")
            and cache_path(file.path, layout.python_version) not in paths]


def spool(file: VenvFile, target: str) -> None:
    with open(target, "wb") as out:
        if file.data is not None:
            out.write(file.data)
            return
        stream, _ = file.opener()
        with stream:
            out.write(stream.read())


def is_record(path: str, layout: VenvLayout) -> bool:
    directory, base = posixpath.split(path)
    return (base == "RECORD" and directory.endswith(".dist-info")
            and posixpath.dirname(directory) == layout.site_packages)


def with_pycs(dist: InstalledDistribution, pycs: Sequence[VenvFile], layout: VenvLayout) -> InstalledDistribution:
    """The distribution with its .pycs and its RECORD written again to list them."""
    if not pycs:
        return dist
    record = next(file for file in dist.files if is_record(file.path, layout))
    files = [file for file in dist.files if file is not record] + list(pycs)
    files.append(installed_record(record.path, files, layout))
    return InstalledDistribution(dist.name, dist.version, tuple(sorted(files, key=lambda f: f.path)))


def compile_distributions(installed: Sequence[InstalledDistribution], layout: VenvLayout, venv: str,
                          compiler: Compiler, work_dir: str
                          ) -> Tuple[List[InstalledDistribution], Optional[CompileResult]]:
    """Every distribution with the .pycs of its modules; one compiler run for the whole layer."""
    spool_dir, out_root = os.path.join(work_dir, "spool"), os.path.join(work_dir, "out")
    os.makedirs(spool_dir)
    modules: List[Tuple[str, str]] = []  # (spooled source, image path)
    owner: Dict[str, int] = {}  # image path of a module -> index of its distribution
    for index, dist in enumerate(installed):
        for file in compiled_sources(dist, layout):
            spooled = os.path.join(spool_dir, f"{len(modules)}.py")
            spool(file, spooled)
            modules.append((spooled, f"/{venv}/{file.path}"))
            owner[f"/{venv}/{file.path}"] = index
    if not modules:
        return list(installed), None
    result = run_compiler(compiler, modules, out_root, work_dir)
    pycs: Dict[int, List[VenvFile]] = {}
    for image_py, image_pyc in result.compiled:
        with open(out_root + image_pyc, "rb") as f:
            pycs.setdefault(owner[image_py], []).append(memory_file(image_pyc[len(venv) + 2:], f.read(), 0o644))
    return [with_pycs(dist, pycs.get(index, ()), layout) for index, dist in enumerate(installed)], result
