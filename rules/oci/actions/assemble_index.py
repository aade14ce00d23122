"""Write a multi-platform layout's image index: `python -m oci.actions.assemble_index spec.json`.

The spec lists each platform's manifest descriptor; the per-platform blobs are
merged in by the rule.  Outputs `oci-layout`, `index.json` (one entry per tag,
pointing at the image index) and the image index blob.
"""

from __future__ import annotations

import json
import sys

from .assemble_image import write_file
from .ocilayout import INDEX_MEDIA_TYPE, OCI_LAYOUT, Blob, Descriptor, canonical_json, image_index, write_blob


def platform_manifest(entry: dict) -> dict:
    manifest = Descriptor(entry["mediaType"], entry["digest"], int(entry["size"])).to_json()
    manifest["platform"] = {"architecture": entry["architecture"], "os": entry.get("os", "linux")}
    return manifest


def assemble_index(spec: dict, out_dir: str) -> Descriptor:
    manifests = sorted((platform_manifest(m) for m in spec["manifests"]), key=lambda m: m["platform"]["architecture"])
    index_blob = Blob.of(INDEX_MEDIA_TYPE, {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": manifests})
    write_blob(out_dir, index_blob)
    write_file(out_dir, "oci-layout", OCI_LAYOUT)
    write_file(out_dir, "index.json", canonical_json(image_index(index_blob.descriptor, spec.get("tags") or [])))
    return index_blob.descriptor


def main(argv: list[str]) -> int:
    spec_path, = argv
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    descriptor = assemble_index(spec, ".")
    print(f"{spec.get('name', '')} {descriptor.digest}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
