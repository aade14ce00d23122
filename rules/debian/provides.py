"""The narrow interface through which another content source reads an image's Debian facts.

A source that installs on top of Debian's packages (PyPI's venv on bookworm's python3.11) needs a
few facts about them: does the image ship this interpreter, which shared libraries does it
provide, which Python modules. It asks here, with the same arguments oci gave it; the Debian
content of the image is the engine's memoized answer to oci's own request, so nothing is built
twice. The answer is `provides.json` (debian/actions/provides.py), never Debian's packages.json.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pants.engine.addresses import Address
from pants.engine.fs import EMPTY_DIGEST, AddPrefix, CreateDigest, Digest, DigestContents, FileContent, MergeDigests
from pants.engine.process import ProcessResult
from pants.engine.rules import Get, collect_rules, rule

from debian.content import DebianContentRequest, DebianState
from oci.action import ActionRequest
from oci.actions.specs import dump_spec
from oci.content import ContentState, ImageContent

PROVIDES_JSON = "provides.json"


@dataclass(frozen=True)
class DebianProvidesRequest:
    address: Address
    architecture: str
    parent_layers: int
    parent_states: tuple[ContentState, ...]
    paths: tuple[str, ...]  # image paths to look for, "/usr/bin/python3.11"


@dataclass(frozen=True)
class DebianProvides:
    digest: Digest  # provides.json, or empty when the chain has no Debian packages
    present_paths: tuple[str, ...]
    python_modules: tuple[tuple[str, str], ...]  # (top-level module, Debian package)


@rule(desc="Read what an image's Debian packages provide")
async def debian_provides(request: DebianProvidesRequest) -> DebianProvides:
    content = await Get(ImageContent, DebianContentRequest(
        request.address, request.architecture, request.parent_layers, request.parent_states))
    if not isinstance(content.state, DebianState):
        return DebianProvides(EMPTY_DIGEST, (), ())
    spec = {"metadata_dir": "metadata", "paths": sorted(request.paths)}
    metadata = await Get(Digest, AddPrefix(content.state.package_metadata, "metadata"))
    spec_digest = await Get(Digest, CreateDigest([FileContent("__provides_spec.json", dump_spec(spec))]))
    result = await Get(ProcessResult, ActionRequest(
        module="debian.actions.provides",
        argv=("__provides_spec.json",),
        input_digest=await Get(Digest, MergeDigests([metadata, spec_digest])),
        description=f"Read what the Debian packages of {request.address} provide",
        output_files=(PROVIDES_JSON,),
    ))
    provides = json.loads((await Get(DigestContents, Digest, result.output_digest))[0].content)
    return DebianProvides(result.output_digest, tuple(provides["present_paths"]),
                          tuple(sorted(provides["python_modules"].items())))


def rules():
    return collect_rules()
