"""Write an image's config, manifest and layout index: `python -m oci.actions.assemble_image spec.json`.

Only descriptors go in: the layer blobs themselves never enter this sandbox,
the rule merges them into the layout afterwards.  Outputs `oci-layout`,
`index.json`, the config and manifest blobs, and `image.json`, which a child
image reads to extend this one.
"""

from __future__ import annotations

import os
import sys

from .ocilayout import (
    BASE_DIGEST,
    BASE_NAME,
    CONFIG_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    OCI_LAYOUT,
    Blob,
    canonical_json,
    epoch_to_rfc3339,
    image_config,
    image_index,
    image_manifest,
    write_blob,
)
from .specs import BuiltImageJson, ImageSpec, load_spec


def assemble(spec: ImageSpec, out_dir: str) -> BuiltImageJson:
    parent = spec.parent
    created = epoch_to_rfc3339(spec.created_epoch)
    history = [{"created": created, "created_by": layer.created_by} for layer in spec.layers]
    config = image_config(parent.config if parent else None, spec.settings,
                          [layer.diff_id for layer in spec.layers], history, created, spec.architecture)
    layers = (*(parent.layers if parent else ()), *spec.layers)
    config_blob = Blob.of(CONFIG_MEDIA_TYPE, config)
    annotations = dict(spec.annotations)
    if parent:
        annotations[BASE_DIGEST] = parent.manifest.digest
        annotations[BASE_NAME] = parent.name
    manifest_blob = Blob.of(
        MANIFEST_MEDIA_TYPE,
        image_manifest(config_blob.descriptor, [layer.blob_descriptor() for layer in layers], annotations),
    )
    for blob in (config_blob, manifest_blob):
        write_blob(out_dir, blob)
    write_file(out_dir, "oci-layout", OCI_LAYOUT)
    write_file(out_dir, "index.json", canonical_json(image_index(manifest_blob.descriptor, spec.tags)))
    image = BuiltImageJson(spec.name, config, manifest_blob.descriptor, layers)
    write_file(out_dir, "image.json", canonical_json(image.to_json()))
    return image


def write_file(out_dir: str, name: str, data: bytes) -> None:
    with open(os.path.join(out_dir, name), "wb") as f:
        f.write(data)


def main(argv: list[str]) -> int:
    spec_path, = argv
    spec = ImageSpec.from_json(load_spec(spec_path))
    image = assemble(spec, ".")
    print(f"{spec.name} {image.manifest.digest}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
