"""Write a files layer: `python -m oci.actions.build_layer spec.json` (a `FilesLayerSpec`).

Outputs `blobs/sha256/<digest>` and `layer.json`, its descriptor. `write_layer_files` is the
one place every layer writer (files, packages, bytecode, system) ends in.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

import dataclasses

from .ocilayout import blob_path
from .specs import FilesLayerSpec, LayerDescriptor, LayerSettings, load_spec
from .tarlayer import FILE, Entry, write_layer

LAYER_JSON = "layer.json"


def file_entry(spec) -> Entry:
    return Entry(path=spec.path, kind=FILE, mode=spec.mode, uid=spec.uid, gid=spec.gid, source=spec.source)


def build_layer(spec: FilesLayerSpec, out_dir: str) -> LayerDescriptor:
    return write_layer_files([file_entry(e) for e in spec.entries], spec.settings, out_dir)


def write_layer_files(entries: list[Entry], settings: LayerSettings, out_dir: str) -> LayerDescriptor:
    """Write the blob under its digest and `layer.json`, its descriptor."""
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".layer-")
    with os.fdopen(fd, "wb") as out:
        written = write_layer(entries, out, mtime=settings.mtime, level=settings.level)
    final = blob_path(out_dir, written.digest)
    os.makedirs(os.path.dirname(final), exist_ok=True)
    os.replace(tmp, final)
    descriptor = dataclasses.replace(written, created_by=settings.created_by)
    with open(os.path.join(out_dir, LAYER_JSON), "w", encoding="utf-8") as f:
        json.dump(descriptor.to_json(), f, sort_keys=True)
    return descriptor


def main(argv: list[str]) -> int:
    spec_path, = argv
    spec = FilesLayerSpec.from_json(load_spec(spec_path))
    descriptor = build_layer(spec, ".")
    print(f"{descriptor.diff_id} {len(spec.entries)} entries", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
