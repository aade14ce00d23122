"""The `oci` backend: reproducible OCI images as Pants targets."""

from oci import action, chain, image, layer, package, platforms, publish, pycompile, run, tarball, tools
from oci.tarball import OciImageTarballTarget
from oci.target_types import ImageFilesTarget, OciImageTarget


def target_types():
    return [OciImageTarget, ImageFilesTarget, OciImageTarballTarget]


def rules():
    return [
        *action.rules(),
        *chain.rules(),
        *layer.rules(),
        *image.rules(),
        *package.rules(),
        *platforms.rules(),
        *tools.rules(),
        *publish.rules(),
        *pycompile.rules(),
        *run.rules(),
        *tarball.rules(),
    ]
