"""The `oci` backend: reproducible OCI images as Pants targets."""

from oci import action, chain, debian_lock, image, layer, package, packages, platforms, system_layer, users
from oci import bytecode, declared_files, publish, run, tarball, tools
from oci import audit
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
        *declared_files.rules(),
        *package.rules(),
        *debian_lock.rules(),
        *packages.rules(),
        *system_layer.rules(),
        *bytecode.rules(),
        *platforms.rules(),
        *users.rules(),
        *tools.rules(),
        *publish.rules(),
        *run.rules(),
        *tarball.rules(),
        *audit.rules(),
    ]
