"""Write one image's venv layer: `python -m pypi.actions.build_venv_layer spec.json` (a `VenvLayerSpec`).

The layer holds, under the venv root, what the image's wheels install (wheel.py), their .pycs when
the image has `compile_python` (venv_bytecode.py: in this layer and in RECORD, as pip does) and, for the
first image of a chain with a venv, the venv itself: `pyvenv.cfg` naming the image's own
interpreter with system site-packages (so Debian's python3 modules stay importable) and the
`bin/python*` links to it. Nothing runs the image's interpreter: the venv is data.

Before writing, the ELF objects of the new wheels are checked: every DT_NEEDED library must be
provided by the chain's Debian packages (debian's provides.json) or by a library the chain's venv
carries (manylinux wheels bundle theirs). A module both a wheel and a Debian package provide is
refused by the rules (pypi/modules.py) from the record this action writes, not here: `pants lint`
reports it from the same record, and the reverse case (a Debian package added under a parent's
venv) needs no venv layer at all. Outputs `blobs/sha256/<digest>`, `layer.json` and
`venv-record.json`: {image, distributions: [{name, version, files, wheel: {url, sha256}}],
libraries}, which the images built on this one read back, and audits (SBOM) read.
"""

from __future__ import annotations

import json
import posixpath
import sys
import tempfile
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

from oci.actions.build_layer import write_layer_files
from oci.actions.pycompile import CompileError, CompileResult
from oci.actions.specs import load_spec
from oci.actions.tarlayer import DIR, FILE, SYMLINK, Entry

from .elfneeds import ElfNeedsError, elf_needs
from .specs import VenvLayerSpec
from .venv_bytecode import compile_distributions
from .wheel import InstalledDistribution, VenvFile, VenvLayout, WheelError, install_wheel

VENV_RECORD = "venv-record.json"


class VenvError(ValueError):
    """A venv layer that would be wrong; the message names the image, the file and the fix."""


def pyvenv_cfg(spec: VenvLayerSpec) -> bytes:
    return (f"home = {posixpath.dirname(spec.interpreter)}\n"
            "include-system-site-packages = true\n"
            f"version = {spec.python_version}\n"
            f"executable = {spec.interpreter}\n"
            f"command = {spec.interpreter} -m venv --system-site-packages /{spec.venv}\n").encode()


def venv_skeleton(spec: VenvLayerSpec, layout: VenvLayout) -> List[Entry]:
    root = spec.venv
    return [
        Entry(f"{root}/pyvenv.cfg", FILE, 0o644, data=pyvenv_cfg(spec)),
        Entry(f"{root}/bin", DIR, 0o755),
        Entry(f"{root}/bin/python", SYMLINK, 0o777, target=spec.interpreter),
        Entry(f"{root}/bin/python3", SYMLINK, 0o777, target="python"),
        Entry(f"{root}/bin/python{spec.python_version}", SYMLINK, 0o777, target="python"),
        Entry(f"{root}/include", DIR, 0o755),
        Entry(f"{root}/{layout.site_packages}", DIR, 0o755),
        Entry(f"{root}/lib64", SYMLINK, 0o777, target="lib"),
    ]


def read_chain(paths: Sequence[str]) -> Tuple[Dict[str, str], Set[str]]:
    """The chain's venv paths (path -> distribution) and the library file names it carries."""
    owners: Dict[str, str] = {}
    libraries: Set[str] = set()
    for path in paths:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
        for dist in record["distributions"]:
            owners.update((file, f"{dist['name']} {dist['version']} (from {record['image']})") for file in dist["files"])
        libraries.update(record["libraries"])
    return owners, libraries


def check_paths(spec: VenvLayerSpec, installed: Sequence[InstalledDistribution], owners: Dict[str, str]) -> None:
    owners = dict(owners)
    for dist in installed:
        for file in dist.files:
            other = owners.setdefault(file.path, f"{dist.name} {dist.version}")
            if other != f"{dist.name} {dist.version}":
                raise VenvError(
                    f"{spec.image}: /{spec.venv}/{file.path} is installed by both {other} and {dist.name} "
                    f"{dist.version}. Two distributions cannot own one file; drop one of them from the image's "
                    "`python_requirements` (or leave it out with `python_exclude`)."
                )


def is_library_name(name: str) -> bool:
    return name.endswith(".so") or ".so." in name


def file_bytes(file: VenvFile) -> bytes:
    if file.data is not None:
        return file.data
    stream, _ = file.opener()
    with stream:
        return stream.read()


def missing_libraries(spec: VenvLayerSpec, installed: Sequence[InstalledDistribution],
                      provided: Set[str]) -> List[str]:
    problems = []
    for dist in installed:
        for file in dist.files:
            if not is_library_name(posixpath.basename(file.path)):
                continue
            try:
                needs = elf_needs(file_bytes(file))
            except ElfNeedsError as error:
                raise VenvError(f"{spec.image}: {dist.name} {dist.version}: /{spec.venv}/{file.path} is a damaged "
                                f"ELF object ({error})") from error
            for needed in needs.needed if needs else ():
                if needed not in provided:
                    problems.append(f"{dist.name} {dist.version}: /{spec.venv}/{file.path} needs {needed}")
    return problems


def debian_provides(spec: VenvLayerSpec) -> dict:
    if not spec.debian_provides:
        return {"sonames": []}
    with open(spec.debian_provides, encoding="utf-8") as f:
        return json.load(f)


def debian_sonames(spec: VenvLayerSpec) -> Set[str]:
    return set(debian_provides(spec)["sonames"])


def top_level_modules(files: Iterable[str], site_packages: str) -> Set[str]:
    """What `import NAME` finds of venv files (relative to the venv root): packages, modules, extensions."""
    modules = set()
    for path in files:
        if not path.startswith(site_packages + "/"):
            continue
        top, _, rest = path[len(site_packages) + 1:].partition("/")
        if top.endswith((".dist-info", ".data", ".pth", ".libs")) or top.startswith(("_", ".")):
            continue
        modules.add(top if rest else top.split(".", 1)[0])
    return modules


def check_libraries(spec: VenvLayerSpec, installed: Sequence[InstalledDistribution], chain_libraries: Set[str]) -> None:
    own = {posixpath.basename(f.path) for d in installed for f in d.files if is_library_name(posixpath.basename(f.path))}
    problems = missing_libraries(spec, installed, debian_sonames(spec) | chain_libraries | own)
    if problems:
        raise VenvError(
            f"{spec.image}: C extensions of its wheels link shared libraries that neither the image's Debian "
            "packages nor its venv provide:\n  " + "\n  ".join(problems) + "\nAdd the Debian package that ships "
            "each library (the one whose package name starts with the library's, e.g. libffi8 for "
            "libffi.so.8) to the `packages` of the image or of a parent."
        )


def venv_entries(spec: VenvLayerSpec, installed: Iterable[InstalledDistribution]) -> List[Entry]:
    entries = []
    for dist in installed:
        for file in dist.files:
            path = f"{spec.venv}/{file.path}"
            if file.data is not None:
                entries.append(Entry(path, FILE, file.mode, data=file.data))
            else:
                entries.append(Entry(path, FILE, file.mode, opener=file.opener))
    return entries


def build_venv_layer(spec: VenvLayerSpec, out_dir: str) -> dict:
    layout = VenvLayout(f"#!/{spec.venv}/bin/python3", spec.python_version)
    wheels = sorted(spec.wheels, key=lambda w: (w.name, w.version))
    installed = [install_wheel(w.sandbox_path, w.name, w.version, layout) for w in wheels]
    with tempfile.TemporaryDirectory(prefix="venv-pyc-") as work_dir:
        if spec.compiler is not None:
            installed, compiled = compile_distributions(installed, layout, spec.venv, spec.compiler, work_dir)
            report_compiled(compiled)
        owners, chain_libraries = read_chain(spec.chain_records)
        check_paths(spec, installed, owners)
        check_libraries(spec, installed, chain_libraries)
        entries = (venv_skeleton(spec, layout) if spec.create_venv else []) + venv_entries(spec, installed)
        write_layer_files(entries, spec.settings, out_dir)
    libraries = sorted({posixpath.basename(f.path) for d in installed for f in d.files
                        if is_library_name(posixpath.basename(f.path))})
    return {"image": spec.image, "libraries": libraries,
            "distributions": [{"name": d.name, "version": d.version, "files": [f.path for f in d.files],
                               "wheel": {"url": w.url, "sha256": w.sha256}}
                              for d, w in zip(installed, wheels)]}


def report_compiled(result: Optional[CompileResult]) -> None:
    if result is not None:
        print(f"CPython {result.version}: {len(result.compiled)} modules compiled, {len(result.failed)} do not compile"
              + "".join(f"\n  {path}: {error}" for path, error in result.failed[:20]), file=sys.stderr)


def main(argv: List[str]) -> int:
    spec_path, = argv
    spec = VenvLayerSpec.from_json(load_spec(spec_path))
    try:
        record = build_venv_layer(spec, ".")
    except (VenvError, WheelError, CompileError) as error:
        print(f"{spec.image}: {error}" if not str(error).startswith(spec.image) else str(error), file=sys.stderr)
        return 2
    with open(VENV_RECORD, "w", encoding="utf-8") as f:
        json.dump(record, f, sort_keys=True, separators=(",", ":"))
    print(f"{len(record['distributions'])} distributions into /{spec.venv}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
