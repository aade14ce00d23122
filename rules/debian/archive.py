"""`pants archive-debs`: every .deb of the Debian lock into an OCI registry, so that old locks keep building.

Debian's mirror keeps only the newest version of each package. This goal fetches every locked
.deb (all architectures, through the same fetch as a build, so every byte is checked against
the lock) and pushes each as a content-addressed blob to `[debian].archive`, under one artifact
manifest per lock tagged `lock-<sha256 of the lock>` whose layers carry package, version,
architecture and source suite. Builds then fetch from it by sha256 (`archive` in
`[debian].fetch_order`). Blobs the registry already has are skipped and counted; the push is
an uncached Process (the registry changes under us).
"""

from __future__ import annotations

import json

from pants.engine.console import Console
from pants.engine.fs import CreateDigest, Digest, FileContent, MergeDigests
from pants.engine.goal import Goal, GoalSubsystem
from pants.engine.process import FallibleProcessResult, ProcessCacheScope
from pants.engine.rules import Get, MultiGet, collect_rules, goal_rule
from pants.util.strutil import help_text

from debian.actions.archive_debs import ArchivedDeb, ArchiveSpec
from debian.debian_lock import SourcesManifest
from debian.packages import DebianLock, FetchDebsRequest, FetchedDebs, LockedDeb, locked_deb, mirror_urls
from debian.subsystem import DebianSubsystem
from oci.action import ActionRequest
from oci.actions.specs import dump_spec


class ArchiveDebsSubsystem(GoalSubsystem):
    name = "archive-debs"
    help = help_text(
        """
        Push every .deb of the Debian lock to the OCI registry `[debian].archive`, as blobs under one
        artifact manifest per lock, so that builds can fetch them after the mirror drops them.
        """
    )


class ArchiveDebsGoal(Goal):
    subsystem_cls = ArchiveDebsSubsystem
    environment_behavior = Goal.EnvironmentBehavior.LOCAL_ONLY


def archived_deb(deb: LockedDeb, info: dict) -> ArchivedDeb:
    return ArchivedDeb(deb.filename, deb.sha256, deb.size, {
        "org.debian.package": deb.name, "org.debian.version": deb.version,
        "org.debian.architecture": deb.architecture, "org.debian.suite": f"{info.get('source')}/{info.get('suite')}",
        "org.opencontainers.image.title": deb.path.rsplit("/", 1)[-1],
    })


def archive_spec(lock: DebianLock, manifest: SourcesManifest, debian: DebianSubsystem) -> ArchiveSpec:
    urls = mirror_urls(manifest)
    debs = {}
    for packages in (lock.data.get("architectures") or {}).values():
        for name, info in packages.items():
            deb = locked_deb(name, info, urls)
            debs.setdefault(deb.sha256, archived_deb(deb, info))
    annotations = {"org.opencontainers.image.description": f"The .debs of {lock.path}",
                   "dev.oci-pants.lock.sha256": lock.sha256,
                   "dev.oci-pants.lock.snapshot_timestamp": str(lock.data.get("snapshot_timestamp") or "")}
    return ArchiveSpec(debian.archive, f"lock-{lock.sha256}", annotations,
                       tuple(sorted(debs.values(), key=lambda d: d.sha256)), debian.fetch_timeout)


@goal_rule
async def archive_debs(
    console: Console, debian: DebianSubsystem, lock: DebianLock, manifest: SourcesManifest
) -> ArchiveDebsGoal:
    if not debian.archive:
        console.print_stderr('archive-debs: set [debian].archive = "host[:port]/repository" in pants.toml '
                             "(an OCI registry repository the .debs go to).")
        return ArchiveDebsGoal(exit_code=2)
    urls = mirror_urls(manifest)
    fetched = await MultiGet(
        Get(FetchedDebs, FetchDebsRequest(tuple(locked_deb(n, i, urls) for n, i in sorted(packages.items())),
                                          f"{lock.path} ({architecture})"))
        for architecture, packages in sorted((lock.data.get("architectures") or {}).items()))
    spec = archive_spec(lock, manifest, debian)
    spec_digest = await Get(Digest, CreateDigest([FileContent("__archive.json", dump_spec(spec.to_json()))]))
    result = await Get(FallibleProcessResult, ActionRequest(
        module="debian.actions.archive_debs", argv=("__archive.json",),
        input_digest=await Get(Digest, MergeDigests([spec_digest, *(f.digest for f in fetched)])),
        description=f"Archive {len(spec.debs)} .debs of {lock.path} in {debian.archive}",
        cache_scope=ProcessCacheScope.PER_SESSION,
    ))
    if result.exit_code != 0:
        console.print_stderr(result.stderr.decode("utf-8", "replace").strip())
        return ArchiveDebsGoal(exit_code=1)
    summary = json.loads(result.stdout)
    console.print_stdout(
        f"Archived the {summary['debs']} .debs of {lock.path} in {debian.archive}: {summary['pushed']} pushed "
        f"({summary['bytes_pushed'] / 1e6:.1f} MB), {summary['skipped']} already there; manifest "
        f"{summary['manifest']} tagged {summary['tag']}.")
    return ArchiveDebsGoal(exit_code=0)


def rules():
    return collect_rules()
