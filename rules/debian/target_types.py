"""The fields the Debian source adds to `oci_image`: packages, exclusions and accounts.

Registered as plugin fields, so that rules/oci knows nothing of them.
"""

from __future__ import annotations

from pants.engine.target import BoolField, StringSequenceField
from pants.util.strutil import help_text

from oci.target_types import OciImageTarget, ReviewedExclusionsField


class DebianPackagesField(StringSequenceField):
    alias = "packages"
    help = help_text(
        """
        Debian packages to install, optionally with a version constraint (`"python3 (>= 3.11)"`).
        Their closure is taken from the lock (`pants generate-lockfiles --resolve=debian`); only the
        packages the parent image lacks are added, as layers shared with every image that needs them.
        """
    )


class DebianExcludePackagesField(ReviewedExclusionsField):
    alias = "exclude_packages"
    help = help_text(
        """
        Packages that the dependencies of this image's packages would pull in but that it does without,
        each with the reason it was reviewed and left out: `{"python3-mypy": "type checker, never imported"}`.
        A dependency only excluded packages could meet stays unmet (the lock lists each one under
        `dropped_depends`). Descendant images inherit the exclusions unless they ask for the package.
        """
    )

    reason_example = '{"python3-mypy": "type checker, never imported"}'


class DebianRecommendsField(BoolField):
    alias = "recommends"
    default = False
    help = "Also install the Recommends of the packages (not by default)."


class DebianEssentialField(BoolField):
    alias = "essential"
    default = False
    help = "Also install Debian's Essential set (coreutils, grep, sed, ...), usually set on a base image."


class DebianUsersField(StringSequenceField):
    alias = "users"
    help = help_text(
        """
        Accounts from the users table (`[debian].users_table`) to add to this image and its children:
        /etc/passwd, /etc/group and /etc/shadow get them with their fixed uid and gid.
        """
    )


DEBIAN_IMAGE_FIELDS = (DebianPackagesField, DebianExcludePackagesField, DebianRecommendsField,
                       DebianEssentialField, DebianUsersField)


def rules():
    return [OciImageTarget.register_plugin_field(field) for field in DEBIAN_IMAGE_FIELDS]
