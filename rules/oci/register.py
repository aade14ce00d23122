"""The `oci` backend: reproducible OCI images as Pants targets."""

from oci import action, image, layer, package
from oci.target_types import ImageFilesTarget, OciImageTarget


def target_types():
    return [OciImageTarget, ImageFilesTarget]


def rules():
    return [*action.rules(), *layer.rules(), *image.rules(), *package.rules()]
