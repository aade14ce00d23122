"""Write an image's config, manifest and layout index: `python -m oci.actions.assemble_image spec.json`.

Only descriptors go in: the layer blobs themselves never enter this sandbox,
the rule merges them into the layout afterwards.  Outputs `oci-layout`,
`index.json`, the config and manifest blobs, and `image.json`, which a child
image reads to extend this one.
"""

from __future__ import annotations

import json
import os
import sys

from .ocilayout import (
    BASE_DIGEST,
    BASE_NAME,
    CONFIG_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    OCI_LAYOUT,
    Blob,
    Descriptor,
    ImageSettings,
    canonical_json,
    epoch_to_rfc3339,
    image_config,
    image_index,
    image_manifest,
    write_blob,
)


def layer_descriptor(value: dict) -> Descriptor:
    return Descriptor(value["mediaType"], value["digest"], int(value["size"]))


def assemble(spec: dict, out_dir: str) -> dict:
    parent = spec.get("parent") or {}
    created = epoch_to_rfc3339(int(spec.get("created_epoch", 0)))
    own_layers = spec.get("layers") or []
    history = [{"created": created, "created_by": layer.get("created_by", "")} for layer in own_layers]
    config = image_config(
        parent.get("config"),
        ImageSettings.from_json(spec.get("settings") or {}),
        [layer["diff_id"] for layer in own_layers],
        history,
        created,
        spec.get("architecture", "amd64"),
    )
    layers = list(parent.get("layers") or []) + own_layers
    config_blob = Blob.of(CONFIG_MEDIA_TYPE, config)
    annotations = dict(spec.get("annotations") or {})
    if parent:
        annotations[BASE_DIGEST] = parent["manifest"]["digest"]
        annotations[BASE_NAME] = parent["name"]
    manifest_blob = Blob.of(
        MANIFEST_MEDIA_TYPE,
        image_manifest(config_blob.descriptor, [layer_descriptor(layer) for layer in layers], annotations),
    )
    for blob in (config_blob, manifest_blob):
        write_blob(out_dir, blob)
    write_file(out_dir, "oci-layout", OCI_LAYOUT)
    write_file(out_dir, "index.json", canonical_json(image_index(manifest_blob.descriptor, spec.get("tags") or [])))
    image = {
        "name": spec.get("name", ""),
        "config": config,
        "manifest": manifest_blob.descriptor.to_json(),
        "layers": layers,
    }
    write_file(out_dir, "image.json", canonical_json(image))
    return image


def write_file(out_dir: str, name: str, data: bytes) -> None:
    with open(os.path.join(out_dir, name), "wb") as f:
        f.write(data)


def main(argv: list[str]) -> int:
    spec_path, = argv
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    image = assemble(spec, ".")
    print(f"{spec.get('name', '')} {image['manifest']['digest']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
