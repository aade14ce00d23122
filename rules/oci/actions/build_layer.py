"""Write one normalized layer blob: `python -m oci.actions.build_layer spec.json`.

The spec lists the entries (path, kind, mode, owner, source file or link
target).  Outputs `blobs/sha256/<digest>` and `layer.json`, the descriptor.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

from .ocilayout import blob_path
from .tarlayer import Entry, write_layer


def entry_from_json(value: dict) -> Entry:
    return Entry(
        path=value["path"],
        kind=value.get("kind", "file"),
        mode=int(value.get("mode", 0o644)),
        uid=int(value.get("uid", 0)),
        gid=int(value.get("gid", 0)),
        uname=value.get("uname", ""),
        gname=value.get("gname", ""),
        source=value.get("source"),
        target=value.get("target", ""),
    )


def build_layer(spec: dict, out_dir: str) -> dict:
    return write_layer_files([entry_from_json(e) for e in spec["entries"]], spec, out_dir)


def write_layer_files(entries: list[Entry], spec: dict, out_dir: str) -> dict:
    """Write the blob under its digest and `layer.json`, its descriptor; `spec` gives mtime and level."""
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".layer-")
    with os.fdopen(fd, "wb") as out:
        descriptor = write_layer(entries, out, mtime=int(spec.get("mtime", 0)), level=int(spec.get("level", 6)))
    final = blob_path(out_dir, descriptor.digest)
    os.makedirs(os.path.dirname(final), exist_ok=True)
    os.replace(tmp, final)
    result = dict(descriptor.to_json(), created_by=spec.get("created_by", ""))
    with open(os.path.join(out_dir, "layer.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, sort_keys=True)
    return result


def main(argv: list[str]) -> int:
    spec_path, = argv
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    result = build_layer(spec, ".")
    print(f"{result['diff_id']} {len(spec['entries'])} entries", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
