"""The plugin as pants.toml loads it: every backend's rules and target types."""

from audit import register as audit
from debian import register as debian
from oci import register as oci
from pypi import register as pypi


def rules() -> list:
    return [*oci.rules(), *debian.rules(), *pypi.rules(), *audit.rules()]


def target_types() -> list:
    return [*oci.target_types(), *pypi.target_types()]
