"""The `debian` backend: a content source of `oci_image` targets, from a locked Debian archive.

It resolves `packages` to the lock, builds package, bytecode and system layers, and writes the
accounts, the dpkg database and what maintainer scripts would have done, from declarations."""

from debian import archive, bytecode, content, debian_lock, declared_files, packages, provides, system_layer, users
from debian import target_types as image_fields


def rules():
    return [
        *image_fields.rules(),
        *content.rules(),
        *debian_lock.rules(),
        *packages.rules(),
        *archive.rules(),
        *system_layer.rules(),
        *bytecode.rules(),
        *users.rules(),
        *declared_files.rules(),
        *provides.rules(),
    ]
