"""`pants provenance`: an in-toto Statement with SLSA Provenance v1 for each `oci_image`.

Written next to the layout as `dist/<layout dir>.intoto.json`.  The subject is the image's
manifest digest, under each name it is published as; the resolved dependencies are the
source revision, the lock and the sources manifest (by sha256) and every .deb in the image;
the byproducts are the config and layer blobs; the builder is Pants plus a content hash
of this backend; the compressor (zlib version of the action interpreter, level) is in the
internal parameters.  No clock, host or path goes in: the statement is reproducible.

The source revision is `git rev-parse HEAD` of the build root, with `dirty: true` when
tracked files differ from it (the statement then cannot vouch for the sources) and the
`origin` remote as the URI when there is one.  Outside a git work tree it is recorded as
`{"name": "source", "annotations": {"revision": "unknown"}}`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pants.core.util_rules.distdir import DistDir
from pants.core.util_rules.system_binaries import GitBinaryException
from pants.engine.addresses import Address
from pants.engine.console import Console
from pants.engine.fs import CreateDigest, Digest, FileContent, MergeDigests, Workspace
from pants.engine.goal import Goal, GoalSubsystem
from pants.engine.process import ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, goal_rule, rule
from pants.engine.target import FilteredTargets
from pants.option.option_types import StrOption
from pants.option.subsystem import Subsystem
from pants.util.strutil import help_text
from pants.vcs.git import GitWorktree, GitWorktreeRequest, MaybeGitWorktree

from oci.action import ActionRequest
from audit.actions.purl import deb_purl
from audit.facts import AuditSubject, ImageFacts, ImageFactsRequest, audit_subjects
from audit.origins import BuilderVersion, DebOrigins, DebOriginsRequest
from oci.subsystem import OciSubsystem

SPEC = "__provenance_spec.json"
BUILD_TYPE = "https://oci-pants.invalid/build-types/oci-image/v1"


class ProvenanceSubsystem(Subsystem):
    options_scope = "oci-provenance"
    help = "What the SLSA provenance of `pants provenance` says about the builder."

    builder_id = StrOption(
        default="https://oci-pants.invalid/builders/local",
        help=help_text(
            """
            `runDetails.builder.id`: the URI of the build platform. Set it in CI to the runner's
            identity, e.g. `--oci-provenance-builder-id=https://ci.example.org/runners/images`.
            """
        ),
    )
    distro = StrOption(default="debian-12", help="The `distro` qualifier of the Debian packages' purls.")


class ProvenanceGoalSubsystem(GoalSubsystem):
    name = "provenance"
    help = help_text(
        """
        Write an in-toto Statement v1 with an SLSA Provenance v1 predicate for each `oci_image`:
        `dist/<layout dir>.intoto.json`. Options: `[oci-provenance]`.
        """
    )


class ProvenanceGoal(Goal):
    subsystem_cls = ProvenanceGoalSubsystem
    environment_behavior = Goal.EnvironmentBehavior.LOCAL_ONLY


@dataclass(frozen=True)
class SourceRevision:
    commit: str | None  # None outside a git work tree
    remote: str | None
    dirty: bool

    def to_resource(self) -> dict:
        if self.commit is None:
            return {"name": "source", "annotations": {"revision": "unknown"}}
        resource: dict = {"name": "source", "digest": {"gitCommit": self.commit}}
        if self.remote:
            resource["uri"] = f"git+{self.remote}"
        if self.dirty:
            resource["annotations"] = {"dirty": True}
        return resource


def git_remote(worktree: GitWorktree) -> str | None:
    try:
        # GitWorktree has no public call for this; the same un-sandboxed git it uses for `commit_id`.
        url = worktree._git_binary._invoke_unsandboxed(
            worktree._create_git_cmdline(["config", "--get", "remote.origin.url"]))
    except GitBinaryException:
        return None
    return url.strip() or None


@rule(desc="Read the source revision")
async def source_revision() -> SourceRevision:
    maybe = await Get(MaybeGitWorktree, GitWorktreeRequest())
    worktree = maybe.git_worktree
    if worktree is None:
        return SourceRevision(None, None, False)
    try:
        commit = worktree.commit_id
    except GitBinaryException:  # a repository without commits
        return SourceRevision(None, None, False)
    return SourceRevision(commit.strip(), git_remote(worktree), bool(worktree.changed_files()))


@dataclass(frozen=True)
class ProvenanceRequest:
    subject: AuditSubject


@dataclass(frozen=True)
class ImageProvenance:
    address: Address
    path: str
    digest: Digest


def provenance_path(output_path: str) -> str:
    return f"{output_path}.intoto.json"


def subjects(facts: ImageFacts) -> list[dict]:
    names = [f"{registry}/{facts.names.repository}" for registry in facts.names.registries] or [facts.names.repository]
    digest = {"sha256": facts.manifest_digest.split(":", 1)[1]}
    return [{"name": name, "digest": digest} for name in names]


def deb_resources(facts: ImageFacts, origins: DebOrigins | None, distro: str) -> list[dict]:
    resources = []
    for layer in facts.layers:
        for package in layer.packages:
            origin = origins.by_sha256.get(package.deb_sha256) if origins else None
            resource = {
                "name": deb_purl(package.name, package.version, package.architecture, distro),
                "digest": {"sha256": package.deb_sha256},
                "annotations": {"addedBy": str(layer.added_by), "layer": layer.digest},
            }
            if origin:
                resource["uri"] = origin.url
            resources.append(resource)
    return sorted(resources, key=lambda r: r["name"])


def pinning_files(origins: DebOrigins | None) -> list[dict]:
    if origins is None:
        return []
    return [{"name": origins.lock_path, "digest": {"sha256": origins.lock_sha256}},
            {"name": origins.manifest_path, "digest": {"sha256": origins.manifest_sha256}}]


def byproducts(facts: ImageFacts) -> list[dict]:
    """The config blob and every layer blob, with the diff_id and the image that added it."""
    found = [{"name": "config", "digest": {"sha256": facts.config_digest.split(":", 1)[1]},
              "mediaType": "application/vnd.oci.image.config.v1+json"}]
    for index, layer in enumerate(facts.layers):
        found.append({
            "name": f"layer {index}",
            "digest": {"sha256": layer.digest.split(":", 1)[1]},
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "annotations": {"diffId": layer.diff_id, "createdBy": layer.created_by, "addedBy": str(layer.added_by),
                            "size": layer.size},
        })
    return found


@rule(desc="Write an image's provenance")
async def image_provenance(
    request: ProvenanceRequest, settings: ProvenanceSubsystem, oci: OciSubsystem, builder: BuilderVersion,
    revision: SourceRevision,
) -> ImageProvenance:
    subject = request.subject
    facts = await Get(ImageFacts, ImageFactsRequest(subject.address, subject.architecture))
    origins = await Get(DebOrigins, DebOriginsRequest(facts.architecture)) if facts.packages else None
    path = provenance_path(subject.output_base)
    spec = {
        "subjects": subjects(facts),
        "build_type": BUILD_TYPE,
        "external_parameters": {
            "target": str(subject.address),
            "sourceDateEpoch": oci.source_date_epoch,
            "architecture": facts.architecture,
            "lockfile": origins.lock_path if origins else None,
        },
        "internal_parameters": {"parentImages": [str(a) for a in facts.chain[:-1]]},
        "compression_level": oci.compression_level,
        "resolved_dependencies": [revision.to_resource(), *pinning_files(origins),
                                  *deb_resources(facts, origins, settings.distro)],
        "builder": {"id": settings.builder_id, "version": {"pants": builder.pants, "oci-backend": builder.backend}},
        "byproducts": byproducts(facts),
    }
    spec_digest = await Get(Digest, CreateDigest([FileContent(SPEC, json.dumps(spec, sort_keys=True).encode())]))
    result = await Get(ProcessResult, ActionRequest(
        module="audit.actions.provenance",
        argv=(SPEC, path),
        input_digest=spec_digest,
        description=f"Write the provenance of {subject.address} ({subject.architecture})",
        output_files=(path,),
    ))
    return ImageProvenance(subject.address, path, result.output_digest)


@goal_rule
async def write_provenance(
    console: Console, workspace: Workspace, targets: FilteredTargets, dist: DistDir, oci: OciSubsystem
) -> ProvenanceGoal:
    subjects = audit_subjects(targets, oci.architecture)
    statements = await MultiGet(Get(ImageProvenance, ProvenanceRequest(subject)) for subject in subjects)
    merged = await Get(Digest, MergeDigests(s.digest for s in statements))
    workspace.write_digest(merged, path_prefix=str(dist.relpath))
    for item in statements:
        console.print_stdout(f"Wrote {dist.relpath / item.path}")
    return ProvenanceGoal(exit_code=0)


def rules():
    return collect_rules()
