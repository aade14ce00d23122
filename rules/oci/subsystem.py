"""`[oci]` options: the knobs of the reproducibility contract."""

from __future__ import annotations

from pants.option.option_types import IntOption, StrOption
from pants.option.subsystem import Subsystem
from pants.util.strutil import help_text

from oci.actions.specs import LayerSettings


class OciSubsystem(Subsystem):
    options_scope = "oci"
    help = "Reproducible OCI image builds."

    source_date_epoch = IntOption(
        default=0,
        help=help_text(
            """
            Seconds since the epoch used for every file mtime and for the image's `created` time.
            Fixed so that the same inputs give the same digests whenever they are built.
            """
        ),
    )
    compression_level = IntOption(
        default=6,
        help="gzip level of layer blobs (1-9). Blob digests depend on it; diff_ids do not.",
    )
    architecture = StrOption(
        default="amd64",
        help="OCI architecture of the images (the `architecture` of their config).",
    )
    max_layers = IntOption(
        default=127,
        help="Most layers an image may have, its parents' included (overlayfs mounts fail beyond 127).",
    )

    def layer_settings(self, created_by: str) -> LayerSettings:
        return LayerSettings(self.source_date_epoch, self.compression_level, created_by)
