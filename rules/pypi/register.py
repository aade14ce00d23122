"""The `pypi` backend: a content source of `oci_image` targets, from a Pants Python resolve.

It reads the resolve's lockfile (written by `pants generate-lockfiles`), fetches the image's
wheels by hash and installs them into one venv layer at `[pypi].venv`, over the parent's venv.
Imports run one way: pypi -> oci, and pypi -> debian only through debian/provides.py.
"""

from pypi import content, lockfile
from pypi import target_types as image_fields


def rules():
    return [
        *image_fields.rules(),
        *lockfile.rules(),
        *content.rules(),
    ]
