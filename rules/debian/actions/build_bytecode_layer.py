"""Byte-compile the Python modules of one package layer: `python -m debian.actions.build_bytecode_layer spec.json`.

The spec is a `BytecodeLayerSpec`: the package layer blob (tar+gzip), the compilers, and the
layer settings whose `created_by` says what the package layer holds.  Outputs, like build_layer,
`blobs/sha256/<digest>` and `layer.json`, or nothing at all when the layer has no module to
compile.

What gets compiled is what Debian's maintainer scripts compile at install time: every module under
`usr/lib/python3/dist-packages` for each Python of the image (py3compile -p), and everything under
`usr/lib/python3.X` with Python 3.X only (the python3.X packages run py_compile over their files),
minus the exclusions packages declare in `usr/share/python3/bcep/`.  Private directories that a
postinst names (`py3compile -p pkg /usr/share/pkg`) are left out.  A symlinked module is compiled
only when its target is another compiled module; a link into /etc (sitecustomize.py) is not, since
an unchecked .pyc would hide an edit of the conffile.

The .pycs are compiled as oci/actions/pycompile.py says (unchecked-hash, by the image's own Python
minor version, in a clean subprocess), the way the venv's are (pypi).
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import re
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

from oci.actions.build_layer import write_layer_files
from oci.actions.specs import LayerDescriptor, LayerSettings, load_spec
from oci.actions.pycompile import CompileError, CompileResult, Compiler, cache_path, run_compiler
from oci.actions.tarlayer import DIR, FILE, Entry

from .debcontents import resolve_lexically

PUBLIC_DIR = "usr/lib/python3/dist-packages/"
VERSIONED_DIR = re.compile(r"^usr/lib/python(3\.\d+)/")
BCEP_DIR = "usr/share/python3/bcep/"
MAX_LINK_HOPS = 16
PYCACHE_MODE = 0o755  # what py_compile creates as root under umask 022

@dataclass(frozen=True)
class BytecodeLayerSpec:
    layer: str  # path of the package layer blob in the sandbox
    compilers: Tuple[Compiler, ...]
    settings: LayerSettings  # `created_by` is the package layer's

    def to_json(self) -> dict:
        return {"layer": self.layer, "compilers": [c.to_json() for c in self.compilers],
                "settings": self.settings.to_json()}

    @classmethod
    def from_json(cls, value: Mapping) -> "BytecodeLayerSpec":
        return cls(value["layer"], tuple(Compiler.from_json(c) for c in value["compilers"]),
                   LayerSettings.from_json(value["settings"]))


@dataclass(frozen=True)
class Exclusion:
    """One line of a bcep file: `type|version range|directory|regex`, as py3compile reads it."""

    kind: str  # re, dir or file
    versions: Tuple[Optional[Tuple[int, ...]], Optional[Tuple[int, ...]]]
    directory: str
    pattern: Optional[re.Pattern] = None

    def excludes(self, path: str, minor: str) -> bool:
        if not (version_in_range(minor, self.versions) and path.startswith(self.directory)):
            return False
        if self.kind == "dir":
            return True
        if self.kind == "file":
            return path == self.directory
        return bool(self.pattern.match(path) or self.pattern.match(path[len(self.directory):]))


@dataclass(frozen=True)
class LayerTree:
    """What a package layer holds that compiling needs; paths are image-absolute ("/usr/...")."""

    dirs: Mapping[str, Entry] = field(default_factory=dict)  # by image-relative path
    sources: Mapping[str, Tuple[str, int]] = field(default_factory=dict)  # .py -> (spooled copy, mode)
    links: Mapping[str, str] = field(default_factory=dict)  # .py symlink or hardlink -> what it points at
    paths: FrozenSet[str] = frozenset()
    exclusions: Tuple[Exclusion, ...] = ()


@dataclass(frozen=True)
class Module:
    image_path: str  # "/usr/lib/python3/dist-packages/foo.py"
    source: str  # the file with its text
    mode: int


# ---------------------------------------------------------------- reading the package layer


def read_layer_tree(blob: str, spool_dir: str) -> LayerTree:
    """Stream the layer once: directories, .py contents (to `spool_dir`), links and bcep files."""
    dirs: Dict[str, Entry] = {}
    sources: Dict[str, Tuple[str, int]] = {}
    links: Dict[str, str] = {}
    paths = set()
    exclusions: List[Exclusion] = []
    with tarfile.open(blob, "r|gz") as tar:
        for info in tar:
            path = "/" + info.name.rstrip("/")
            paths.add(path)
            if info.isdir():
                dirs[path[1:]] = Entry(path[1:], DIR, info.mode & 0o7777, info.uid, info.gid, info.uname, info.gname)
            elif info.issym() and path.endswith(".py"):
                links[path] = "/" + resolve_lexically("" if info.linkname.startswith("/") else
                                                      posixpath.dirname(path[1:]), info.linkname)
            elif info.islnk() and path.endswith(".py"):
                links[path] = "/" + info.linkname
            elif info.isreg() and path.endswith(".py"):
                spooled = os.path.join(spool_dir, f"{len(sources)}.py")
                with tar.extractfile(info) as content, open(spooled, "wb") as out:
                    out.write(content.read())
                sources[path] = (spooled, info.mode & 0o7777)
            elif info.isreg() and path.startswith("/" + BCEP_DIR):
                with tar.extractfile(info) as content:
                    exclusions += parse_bcep(content.read().decode("utf-8", "replace"))
    return LayerTree(dirs, sources, links, frozenset(paths), tuple(exclusions))


def parse_bcep(text: str) -> List[Exclusion]:
    """py3compile's exclusion files; lines it could not parse are skipped, as it does."""
    exclusions = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        parts = line.split("|", 3)
        if len(parts) < 3:
            continue
        kind, vrange, directory = parts[:3]
        pattern = parts[3] if len(parts) == 4 else ".*"
        if kind != "file":
            directory = directory.rstrip("/") + "/"
        try:
            exclusions.append(Exclusion(kind, parse_version_range(vrange), directory, re.compile(pattern)))
        except (ValueError, re.error):
            continue
    return exclusions


def parse_version_range(value: str) -> Tuple[Optional[Tuple[int, ...]], Optional[Tuple[int, ...]]]:
    """`3.1-3.3` (3.1 and 3.2), `-3.7`, `3.2-`, `3.2` (just 3.2) or empty (all), as debpython reads it."""
    value = value.strip()
    if value in ("", "-"):
        return None, None
    low, dash, high = value.partition("-")
    if not dash:
        return version_tuple(low), version_tuple(low)
    return version_tuple(low), version_tuple(high)


def version_tuple(value: str) -> Optional[Tuple[int, ...]]:
    return tuple(int(part) for part in value.split(".")) if value else None


def version_in_range(minor: str, versions) -> bool:
    low, high = versions
    version = version_tuple(minor)
    if low is not None and low == high:
        return version == low
    return (low is None or version >= low) and (high is None or version < high)


# ---------------------------------------------------------------- choosing modules


def compile_minors(path: str, minors: Sequence[str]) -> List[str]:
    """The Pythons that compile `path` ("/usr/..."), as Debian's scripts would."""
    relative = path[1:]
    if relative.startswith(PUBLIC_DIR):
        return list(minors)
    match = VERSIONED_DIR.match(relative)
    return [match.group(1)] if match and match.group(1) in minors else []


def modules_for(tree: LayerTree, minor: str) -> List[Module]:
    """The modules `minor` compiles, sorted; a .pyc the package ships itself is left alone."""
    modules = []
    for path in sorted(set(tree.sources) | set(tree.links)):
        if minor not in compile_minors(path, [minor]) or any(e.excludes(path, minor) for e in tree.exclusions):
            continue
        source = resolve_source(tree, path, minor)
        if source is None or cache_path(path, minor) in tree.paths:
            continue
        modules.append(Module(path, *source))
    return modules


def resolve_source(tree: LayerTree, path: str, minor: str) -> Optional[Tuple[str, int]]:
    """The spooled text of a module, following links only to other modules `minor` compiles."""
    for _ in range(MAX_LINK_HOPS):
        if path in tree.sources:
            return tree.sources[path]
        path = tree.links.get(path, "")
        if not compile_minors(path, [minor]):
            return None
    return None


# ---------------------------------------------------------------- compiling


def bytecode_entries(tree: LayerTree, modules: Mapping[str, Module], results: Sequence[CompileResult],
                     out_root: str) -> List[Entry]:
    """The .pycs, their __pycache__ directories, and the package's own entries for every directory above."""
    entries: Dict[str, Entry] = {}
    for result in results:
        for image_py, image_pyc in result.compiled:
            pyc = image_pyc[1:]
            entries[pyc] = Entry(pyc, FILE, modules[image_py].mode & 0o644, 0, 0, "root", "root",
                                 source=out_root + image_pyc)
    for pyc in list(entries):
        directory = posixpath.dirname(pyc)
        while directory and directory not in entries:
            entries[directory] = tree.dirs.get(directory) or Entry(directory, DIR, PYCACHE_MODE, 0, 0, "root", "root")
            directory = posixpath.dirname(directory)
    return list(entries.values())


def build_bytecode_layer(
    spec: BytecodeLayerSpec, out_dir: str
) -> Tuple[Optional[LayerDescriptor], List[CompileResult]]:
    """Write the layer if anything compiled; returns its descriptor (or None) and each compiler's result."""
    with tempfile.TemporaryDirectory(prefix="bytecode-") as work_dir:
        spool_dir, out_root = os.path.join(work_dir, "spool"), os.path.join(work_dir, "out")
        os.makedirs(spool_dir)
        tree = read_layer_tree(spec.layer, spool_dir)
        results, modules = [], {}
        for compiler in spec.compilers:
            wanted = modules_for(tree, compiler.minor)
            if wanted:
                modules.update((m.image_path, m) for m in wanted)
                results.append(run_compiler(compiler, [(m.source, m.image_path) for m in wanted], out_root, work_dir))
        entries = bytecode_entries(tree, modules, results, out_root)
        if not any(result.compiled for result in results):
            return None, results
        by = ", ".join(f"CPython {r.version}" for r in results)
        settings = dataclasses.replace(
            spec.settings, created_by=f"python bytecode (unchecked-hash, {by}) of {spec.settings.created_by}")
        return write_layer_files(entries, settings, out_dir), results


def main(argv: list) -> int:
    spec_path, = argv
    try:
        layer, results = build_bytecode_layer(BytecodeLayerSpec.from_json(load_spec(spec_path)), ".")
    except CompileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for result in results:
        print(f"CPython {result.version}: {len(result.compiled)} compiled, {len(result.failed)} do not compile"
              + "".join(f"\n  {path}: {error}" for path, error in result.failed[:20]), file=sys.stderr)
    print(layer.diff_id if layer else "nothing to compile", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
