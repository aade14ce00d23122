"""The system layer: what maintainer scripts would have written, from declarations."""

from __future__ import annotations

from dataclasses import dataclass

from pants.engine.addresses import Address
from pants.engine.fs import CreateDigest, Digest, FileContent, MergeDigests
from pants.engine.process import ProcessResult
from pants.engine.rules import Get, collect_rules, rule

from debian.actions.build_system_layer import SystemLayerSpec
from oci.action import ActionRequest
from oci.actions.specs import dump_spec
from oci.layer import Layer, LayerOutput
from debian.packages import path_filter
from debian.subsystem import DebianSubsystem
from oci.subsystem import OciSubsystem
from debian.users import UsersTable

SPEC = "__system_layer.json"


@dataclass(frozen=True)
class SystemLayerRequest:
    address: Address
    package_metadata: Digest  # packages/*.json and extras/ of every package layer in the chain
    users: tuple[str, ...]  # declared by the image and its parents


@rule(desc="Build an image's system layer")
async def build_system_layer(
    request: SystemLayerRequest, table: UsersTable, oci: OciSubsystem, debian: DebianSubsystem
) -> Layer:
    table.check_declared(str(request.address), request.users)
    spec = SystemLayerSpec(
        image=str(request.address),
        users_table=table.to_json(),
        users_table_path=table.path,
        declared_users=tuple(sorted(request.users)),
        timezone=debian.timezone,
        effect_policy=dict(debian.script_effects),
        accepted_effects={k: tuple(v) for k, v in debian.accepted_script_effects.items()},
        path_filter=path_filter(debian),
        settings=oci.layer_settings(f"system files of {request.address}"),
    )
    spec_digest = await Get(Digest, CreateDigest([FileContent(SPEC, dump_spec(spec.to_json()))]))
    input_digest = await Get(Digest, MergeDigests([spec_digest, request.package_metadata]))
    result = await Get(ProcessResult, ActionRequest(
        module="debian.actions.build_system_layer",
        argv=(SPEC,),
        input_digest=input_digest,
        description=f"Build system layer of {request.address}",
        output_files=("layer.json",),
        output_directories=("blobs",),
    ))
    return await Get(Layer, LayerOutput(result.output_digest))


def rules():
    return collect_rules()
