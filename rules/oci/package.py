"""`pants package` for `oci_image`: one OCI image layout per image under dist/."""

from __future__ import annotations

from dataclasses import dataclass

from pants.core.goals.package import BuiltPackage, BuiltPackageArtifact, PackageFieldSet
from pants.engine.fs import AddPrefix, Digest
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.unions import UnionRule

from oci.platforms import ImageLayout, ImageLayoutRequest
from oci.target_types import OciImageOutputPathField, OciImageTagsField


@dataclass(frozen=True)
class OciImagePackageFieldSet(PackageFieldSet):
    required_fields = (OciImageTagsField,)

    tags: OciImageTagsField
    output_path: OciImageOutputPathField


@rule(desc="Package an OCI image layout")
async def package_oci_image(field_set: OciImagePackageFieldSet) -> BuiltPackage:
    image = await Get(ImageLayout, ImageLayoutRequest(field_set.address))
    output_path = field_set.output_path.value_or_default(file_ending=None)
    digest = await Get(Digest, AddPrefix(image.layout, output_path))
    tags = ", ".join(field_set.tags.value or ())
    platforms = f" ({', '.join(image.architectures)})" if len(image.architectures) > 1 else ""
    return BuiltPackage(
        digest,
        (BuiltPackageArtifact(output_path, extra_log_lines=(f"    {image.digest} [{tags}]{platforms}",)),),
    )


def rules():
    return [*collect_rules(), UnionRule(PackageFieldSet, OciImagePackageFieldSet)]
