"""The `pypi` backend: a content source of `oci_image` targets, from a Pants Python resolve.

It reads the resolve's lockfile (written by `pants generate-lockfiles`), fetches the image's
wheels by hash and installs them into one venv layer at `[pypi].venv`, over the parent's venv.
Imports run one way: pypi -> oci, and pypi -> debian only through debian/provides.py.

Of Pants' Python backend it registers only what resolves and their lockfiles need (the
`python_requirement(s)` targets and `generate-lockfiles`): the whole `pants.backend.python`
(pytest, pex binaries, dependency inference, ...) roughly doubled every cold start here.
"""

from pants.backend.python.goals import lockfile as python_lockfile
from pants.backend.python.macros import python_requirements as python_requirements_macro
from pants.backend.python.macros.python_requirements import PythonRequirementsTargetGenerator
from pants.backend.python.target_types import PythonRequirementTarget
from pants.backend.python.util_rules import pex_requirements  # the resolve's constraints, for a stale lock
from pants.core.target_types import TargetGeneratorSourcesHelperTarget

from pypi import content, lint, lockfile, why
from pypi import target_types as image_fields


def target_types():
    return (PythonRequirementTarget, PythonRequirementsTargetGenerator, TargetGeneratorSourcesHelperTarget)


def rules():
    return [
        *python_lockfile.rules(),
        *python_requirements_macro.rules(),
        *pex_requirements.rules(),
        *image_fields.rules(),
        *lockfile.rules(),
        *content.rules(),
        *lint.rules(),
        *why.rules(),
    ]
