"""The `oci` backend: reproducible OCI images as Pants targets."""

from oci import action, chain, debian_lock, image, layer, package, packages
from oci.target_types import ImageFilesTarget, OciImageTarget


def target_types():
    return [OciImageTarget, ImageFilesTarget]


def rules():
    return [
        *action.rules(),
        *chain.rules(),
        *layer.rules(),
        *image.rules(),
        *package.rules(),
        *debian_lock.rules(),
        *packages.rules(),
    ]
