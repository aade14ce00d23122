"""Write one layer of Debian packages: `python -m debian.actions.build_package_layer spec.json`.

The spec is a `PackageLayerSpec`: the .debs with their lock sha256 and size, the layer settings
and dpkg-style path filters.  Outputs, like build_layer: `blobs/sha256/<digest>` and `layer.json`;
plus `packages.json`: {"packages": [{name, version, architecture, multi_arch, source,
dpkg_name, deb, conffiles, files, dpkg_metadata, status_paragraph, maintainer_scripts, shared_objects}]}
sorted by name, for cross-layer conflict checks, the system layer (alternatives, accounts, the dpkg
status file) and SBOMs, whose `files` are what the layer holds (the path filter applied); plus
`extras/<image path>`: copies of the few package files the system layer is made from.
Each package's maintainer-script effects are applied in the layer (layereffects.py), with the
accounts of the spec, and recorded as its `script_effects`.  The order of `debs` does not matter.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import dataclass
from typing import Mapping, Sequence, Tuple

from oci.actions.build_layer import write_layer_files
from oci.actions.ocilayout import file_sha256
from oci.actions.specs import LayerDescriptor, LayerSettings, load_spec
from oci.actions.tarlayer import FILE, HARDLINK, Entry, LayerError, open_content

from .debfile import DebError
from .debcontents import DebInput
from .deblayer import DuplicatePackage, FileConflict, filtered_layer, layer_packages_json, merge_debs
from .accounts import AccountIds
from .layereffects import apply_effects
from .pathfilter import PathFilter, PatternError

PACKAGES_JSON = "packages.json"
EXTRAS_DIR = "extras"
# What build_system_layer reads (accounts, nsswitch.conf, the CA bundle, ld.so.conf); a trailing "/" means
# "everything below".
DEFAULT_EXTRAS = (
    "usr/share/base-passwd/passwd.master",
    "usr/share/base-passwd/group.master",
    "usr/share/base-files/",
    "usr/share/debianutils/shells",
    "usr/share/ca-certificates/",
    "etc/ld.so.conf",
    "etc/ld.so.conf.d/",
)


@dataclass(frozen=True)
class DebSpec:
    path: str  # in the sandbox
    name: str
    sha256: str  # hex, from the lock
    size: int

    def to_json(self) -> dict:
        return {"path": self.path, "name": self.name, "sha256": self.sha256, "size": self.size}

    @classmethod
    def from_json(cls, value: Mapping) -> "DebSpec":
        return cls(value["path"], value["name"], value["sha256"], int(value["size"]))


@dataclass(frozen=True)
class PackageLayerSpec:
    debs: Tuple[DebSpec, ...]
    settings: LayerSettings
    path_filter: PathFilter  # empty: every file
    accounts: AccountIds  # names the maintainer-script effects may give paths to

    def to_json(self) -> dict:
        return {"debs": [d.to_json() for d in self.debs], "settings": self.settings.to_json(),
                "path_filter": self.path_filter.to_json(), "accounts": self.accounts.to_json()}

    @classmethod
    def from_json(cls, value: Mapping) -> "PackageLayerSpec":
        return cls(tuple(DebSpec.from_json(d) for d in value["debs"]), LayerSettings.from_json(value["settings"]),
                   PathFilter.from_json(value["path_filter"]), AccountIds.from_json(value["accounts"]))


class DebMismatch(ValueError):
    """A .deb is not the file the lock describes."""


def verify_deb(deb: DebSpec) -> None:
    """Check size, then sha256, against the lock before anything reads the .deb."""
    size = os.path.getsize(deb.path)
    sha256 = file_sha256(deb.path) if size == deb.size else "(not computed)"
    if size != deb.size or sha256 != deb.sha256:
        raise DebMismatch(
            f"{deb.name}: {deb.path} does not match the lock: expected sha256 {deb.sha256} and size {deb.size}, "
            f"got sha256 {sha256} and size {size}. The lock is stale or the cached .deb is damaged: regenerate "
            "the lock (`pants generate-lockfiles --resolve=debian`) or delete the file from the .deb cache "
            "([debian].deb_cache).")


def build_package_layer(spec: PackageLayerSpec, out_dir: str) -> LayerDescriptor:
    """Verify, read and merge the .debs, write the layer and packages.json; returns the layer's descriptor."""
    for deb in spec.debs:
        verify_deb(deb)
    inputs = [DebInput(deb.path, deb.name, deb.sha256) for deb in spec.debs]
    with tempfile.TemporaryDirectory(prefix="deb-spool-") as spool_dir:
        packages, merged = merge_debs(inputs, spool_dir)
        # Effects first: a path filter must not decide which of a script's paths exist.
        with_effects, effects = apply_effects(packages, merged, spec.accounts)
        layer = filtered_layer(packages, with_effects, merged, spec.path_filter)
        result = write_layer_files(list(layer.entries), spec.settings, out_dir)
        # The system layer's inputs come whole, whatever the path filter leaves in the image.
        write_extras(layer.unfiltered, DEFAULT_EXTRAS, out_dir)
    with open(os.path.join(out_dir, PACKAGES_JSON), "w", encoding="utf-8") as f:
        # dumps, not dump: only the one-shot encoder is json's C one, several times faster here.
        f.write(json.dumps(layer_packages_json(layer.packages, effects), sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False))
    return result


def write_extras(entries: Sequence[Entry], wanted: Sequence[str], out_dir: str) -> None:
    """Copy the wanted files (hardlinks resolved) to extras/<image path>; paths were checked when read."""
    files = {e.path: e for e in entries if e.kind == FILE}
    for entry in entries:
        if entry.kind in (FILE, HARDLINK) and is_wanted(entry.path, wanted):
            copy_content(files[entry.target] if entry.kind == HARDLINK else entry,
                         os.path.join(out_dir, EXTRAS_DIR, entry.path))


def is_wanted(path: str, wanted: Sequence[str]) -> bool:
    return any(path == w or (w.endswith("/") and path.startswith(w)) for w in wanted)


def copy_content(entry: Entry, destination: str) -> None:
    os.makedirs(os.path.dirname(destination), exist_ok=True)
    stream, size = open_content(entry)
    with stream, open(destination, "wb") as out:
        out.write(stream.read(size))


def main(argv: list) -> int:
    spec_path, = argv
    try:
        spec = PackageLayerSpec.from_json(load_spec(spec_path))
        result = build_package_layer(spec, ".")
    except (DebError, DebMismatch, FileConflict, DuplicatePackage, LayerError, PatternError) as error:
        print(f"error: {error}", file=sys.stderr)  # the message is the whole story; no traceback
        return 1
    print(f"{result.diff_id} {len(spec.debs)} packages", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
