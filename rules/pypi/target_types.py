"""The fields the PyPI source adds to `oci_image`: distributions into the image's venv.

Registered as plugin fields, so that rules/oci knows nothing of them. Distributions are named
by project, not by address: their versions and hashes come from the resolve's lockfile, which
Pants' own `generate-lockfiles` writes under the resolve's upper constraints.
"""

from __future__ import annotations

from pants.engine.target import StringField, StringSequenceField
from pants.util.strutil import help_text

from oci.target_types import OciImageTarget, ReviewedExclusionsField


class PythonRequirementsField(StringSequenceField):
    alias = "python_requirements"
    help = help_text(
        """
        Python distributions to install from PyPI into the image's venv (`[pypi].venv`), by project
        name, optionally with extras (`"oslo.messaging[kafka]"`). Each must be a requirement of the
        image's resolve (`python_resolve`); the closure and its pins come from that resolve's lockfile.
        Only what the parent image's venv lacks is added. Wheels only.
        """
    )


class PythonResolveField(StringField):
    alias = "python_resolve"
    help = "The Python resolve of `python_requirements` (default: `[python].default_resolve`)."


class PythonExcludeField(ReviewedExclusionsField):
    alias = "python_exclude"
    help = help_text(
        """
        Distributions of the closure the venv does without, each with the reason, usually that a
        Debian package of the image provides the module through the venv's system site-packages:
        `{"ovs": "Debian's python3-openvswitch"}`. Descendant images inherit the exclusions.
        """
    )

    reason_example = '{"ovs": "Debian\'s python3-openvswitch"}'


PYPI_IMAGE_FIELDS = (PythonRequirementsField, PythonResolveField, PythonExcludeField)


def rules():
    return [OciImageTarget.register_plugin_field(field) for field in PYPI_IMAGE_FIELDS]
