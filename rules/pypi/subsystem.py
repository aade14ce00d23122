"""`[pypi]` options: where the venv goes, which interpreter it uses and which wheels fit it."""

from __future__ import annotations

from pants.option.option_types import IntOption, StrOption
from pants.option.subsystem import Subsystem
from pants.util.strutil import help_text


class PypiSubsystem(Subsystem):
    options_scope = "pypi"
    help = "Python distributions from a Pants resolve, installed into an image's venv."

    venv = StrOption(
        default="/var/lib/kolla/venv",
        help="Image path of the venv (Kolla's source images use /var/lib/kolla/venv).",
    )
    interpreter = StrOption(
        default="/usr/bin/python3.11",
        help=help_text(
            """
            The image's interpreter the venv runs on, from the image's Debian packages (bookworm's
            python3.11). The build refuses a venv in an image whose packages do not ship it.
            """
        ),
    )
    python_version = StrOption(
        default="3.11",
        help="The X.Y version of `interpreter`: site-packages path and the wheel tags accepted.",
    )
    glibc = StrOption(
        default="2.36",
        help="The image's glibc version (bookworm: 2.36): the newest manylinux wheel tag accepted.",
    )
    wheel_cache = StrOption(
        default="~/.cache/oci-pants/wheels",
        help="Local cache of fetched wheels, by sha256; empty for none.",
    )
    fetch_timeout = IntOption(default=60, help="Seconds before one wheel download gives up.")
