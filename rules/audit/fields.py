"""Fields that audits add to `oci_image` (registered as plugin fields, like Pants' `skip_hadolint`)."""

from __future__ import annotations

from typing import Iterable, Optional, Tuple

import re

from pants.engine.addresses import Address
from pants.engine.target import BoolField, IntField, InvalidFieldException, StringField, StringSequenceField
from pants.util.strutil import help_text

from oci.target_types import OciImageTarget

# Policy rules an image may be allowed to break, with what each forbids.
POLICY_RULES = {
    "config-time-packages": "configuration-management tools (puppet, ansible, crudini, ...) in a runtime image",
    "init-system": "an init system (systemd, sysvinit, ...): the container runtime is the init",
    "compilers": "compilers and toolchains (gcc, cpp, clang, ...)",
    "dev-packages": "-dev packages (headers and static libraries)",
    "root-user": "an image with a command that runs as root",
    "size-budget": "more compressed bytes than `max_size`",
    "package-budget": "more packages than `max_packages`",
}

SIZE_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
              "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(text: str) -> int:
    """`"300MB"`, `"1.5GiB"`, `"1024"` -> bytes; ValueError for anything else."""
    match = SIZE_PATTERN.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size such as 300MB, 1.5GiB or 1048576")
    number, unit = match.groups()
    return int(float(number) * SIZE_UNITS[(unit or "").lower()])


class OciImagePolicyAllowField(StringSequenceField):
    alias = "policy_allow"
    help = help_text(
        f"""
        Policy rules of `pants lint` (`[oci-policy]`) this image may break, with the reason in a
        comment next to it. A config-time image (one that runs puppet or ansible to produce
        configuration, never a service) says `policy_allow=["config-time-packages"]`. Rules:
        {"; ".join(f"`{name}`: {what}" for name, what in POLICY_RULES.items())}.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[Iterable[str]], address: Address) -> Optional[Tuple[str, ...]]:
        value = super().compute_value(raw_value, address)
        unknown = sorted(set(value or ()) - set(POLICY_RULES))
        if unknown:
            raise InvalidFieldException(
                f"The {cls.alias!r} field of {address} names unknown policy rules {unknown}; "
                f"the rules are {', '.join(POLICY_RULES)}."
            )
        return value


class OciImageMaxSizeField(StringField):
    alias = "max_size"
    help = help_text(
        """
        Budget for the image's compressed size (all layers, parents' included: what a node pulls
        to run it), e.g. `"300MB"` or `"1.5GiB"`. `pants lint` reports an image over it.
        Defaults to `[oci-policy].max_size`.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> Optional[str]:
        value = super().compute_value(raw_value, address)
        if value is not None:
            try:
                parse_size(value)
            except ValueError as e:
                raise InvalidFieldException(f"The {cls.alias!r} field of {address}: {e}.") from None
        return value


class OciImageMaxPackagesField(IntField):
    alias = "max_packages"
    help = help_text(
        """
        Budget for the number of Debian packages in the image, parents' included. Defaults to
        `[oci-policy].max_packages`.
        """
    )


class SkipOciPolicyField(BoolField):
    alias = "skip_oci_policy"
    default = False
    help = "If true, `pants lint` does not check this image against `[oci-policy]`."


def rules():
    return [
        OciImageTarget.register_plugin_field(OciImagePolicyAllowField),
        OciImageTarget.register_plugin_field(OciImageMaxSizeField),
        OciImageTarget.register_plugin_field(OciImageMaxPackagesField),
        OciImageTarget.register_plugin_field(SkipOciPolicyField),
    ]
