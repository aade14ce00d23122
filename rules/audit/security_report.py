"""`pants security-report`: what a lock refresh changes, image by image, and which CVEs it fixes.

    cp 3rdparty/debian/lock.yaml /tmp/lock-before.yaml
    pants generate-lockfiles --resolve=debian
    pants security-report --old-lock=/tmp/lock-before.yaml ::      (or --since=GIT_REV)

For every image: the packages of its closure whose pin changed (name, old -> new version), the
CVE IDs named by the Debian changelog entries between the two versions, the digest the current
lock builds, the layers a host that has the old image must pull, and the references it is to be
published under. Prints a summary and writes dist/security-report/changes.json, which
ci/security_refresh.py (the whole response: refresh, rebuild, checks, publish, report) reads.

Decisions:
- An image is affected when a package of its closure (its parents' included) changed pin
  (sha256), appeared or went away. Only affected images are to be checked and published; the
  others build from cache hits and publishing them again would only add tags.
- The immutable tag is `<lock date>-<lock digest>`: the day of the lock's `snapshot_timestamp`
  (YYYYMMDD, when generate-lockfiles last changed a package) and the first 12 hex digits of the
  lock file's sha256. It names the lock, so the same lock gives the same tag on every machine and
  another lock never reuses one; `pants publish --oci-publish-immutable-tag` refuses to move it.
- The CVE IDs come from the new .debs themselves, fetched as the build fetches them
  (`[debian].fetch_order`, the .deb cache first) and read by the sandboxed action
  debian/actions/deb_changelog.py: images may leave /usr/share/doc out, the .deb has it.
- The pull bytes are `pants update-cost`'s reckoning (its functions, not a second copy).
- The default architecture (`[oci].architecture`) is reported; a multi-platform image's digest
  is its image index.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Mapping, Sequence

import yaml
from pants.core.util_rules.distdir import DistDir
from pants.engine.console import Console
from pants.engine.fs import CreateDigest, Digest, FileContent, MergeDigests, Workspace
from pants.engine.goal import Goal, GoalSubsystem
from pants.engine.process import ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, goal_rule, rule
from pants.engine.target import FilteredTargets, Target
from pants.option.option_types import StrOption
from pants.util.strutil import help_text
from pants.vcs.git import GitWorktreeRequest, MaybeGitWorktree

from audit.facts import ImageFacts, ImageFactsRequest, image_targets
from audit.sizes import human_bytes
from audit.update_cost import Budget, OldLock, UpdateCostError, image_cost, level_costs, read_old_lock
from debian.debian_lock import SourcesManifest
from debian.packages import DebianLock, FetchDebsRequest, FetchedDebs, locked_deb, mirror_urls
from debian.subsystem import DebianSubsystem
from oci.action import ActionRequest
from oci.platforms import ImageLayout, ImageLayoutRequest
from oci.subsystem import OciSubsystem
from oci.target_types import OciImageOutputPathField

CHANGELOG_SPEC = "__changelogs.json"
SHORT_DIGEST = 12


class SecurityReportSubsystem(GoalSubsystem):
    name = "security-report"
    help = help_text(
        """
        After a lock refresh: per `oci_image`, the packages changed (old -> new version), the CVE IDs
        their Debian changelogs name, the new digest, the bytes a host must pull and the immutable tag
        to publish under. Give the lock before the refresh with `--old-lock=PATH` or `--since=GIT_REV`.
        """
    )

    old_lock = StrOption(default=None, help="The lock before the refresh (a file).")
    since = StrOption(default=None, help="A git revision whose committed lock is the one before the refresh.")
    output_dir = StrOption(default="security-report", help="Directory under dist/ for changes.json.")


class SecurityReportGoal(Goal):
    subsystem_cls = SecurityReportSubsystem
    environment_behavior = Goal.EnvironmentBehavior.LOCAL_ONLY


@dataclass(frozen=True)
class PackageChange:
    name: str
    source: str
    old_version: str | None
    new_version: str | None
    new_sha256: str | None


def closure_of(lock: Mapping, chain: Sequence[str], architecture: str) -> dict:
    """name -> pin of the image's closure: that of the nearest image of the chain the lock lists."""
    images = lock.get("images") or {}
    pins = ((lock.get("architectures") or {}).get(architecture)) or {}
    for address in reversed(chain):
        entry = (images.get(address) or {}).get(architecture)
        if entry is not None:
            return {name: pins.get(name) or {} for name in entry.get("closure") or ()}
    return {}


def package_changes(old: Mapping, new: Mapping, chain: Sequence[str], architecture: str) -> tuple[PackageChange, ...]:
    before, after = closure_of(old, chain, architecture), closure_of(new, chain, architecture)
    changes = []
    for name in sorted(set(before) | set(after)):
        was, now = before.get(name), after.get(name)
        if was and now and was.get("sha256") == now.get("sha256"):
            continue
        source = (now or was or {}).get("source_package") or name
        changes.append(PackageChange(name, str(source), was.get("version") if was else None,
                                     now.get("version") if now else None, now.get("sha256") if now else None))
    return tuple(changes)


def parse_old_lock(text: str, options: SecurityReportSubsystem) -> dict:
    """The lock before the refresh; an empty file means none (the first publication: every package is new)."""
    where = f"--old-lock={options.old_lock}" if options.old_lock else f"the lock at --since={options.since}"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise UpdateCostError(f"{where} is not YAML ({e}); give the lock file as it was before the refresh.") from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not {"architectures", "images"} <= set(data):
        raise UpdateCostError(f"{where} is not a Debian lock (no `architectures` and `images`); give a copy of "
                              "3rdparty/debian/lock.yaml from before `pants generate-lockfiles --resolve=debian`.")
    return data


def immutable_tag(lock: DebianLock) -> str:
    stamp = str(lock.data.get("snapshot_timestamp") or "")
    day = stamp[:8] if stamp[:8].isdigit() else "00000000"
    return f"{day}-{lock.sha256[:SHORT_DIGEST]}"


@dataclass(frozen=True)
class ChangelogRequest:
    changes: tuple[PackageChange, ...]  # updated packages only (an old and a new version), unique by name


@dataclass(frozen=True)
class ChangelogReports:
    report_json: str

    def of(self, name: str) -> dict:
        return json.loads(self.report_json)["packages"].get(name) or {}


@rule(desc="Read the changelogs of updated packages")
async def read_changelogs(request: ChangelogRequest, lock: DebianLock, manifest: SourcesManifest,
                          oci: OciSubsystem) -> ChangelogReports:
    if not request.changes:
        return ChangelogReports('{"packages": {}}')
    urls = mirror_urls(manifest)
    pins = lock.packages(oci.architecture)
    debs = tuple(locked_deb(c.name, pins[c.name], urls) for c in request.changes)
    fetched = await Get(FetchedDebs, FetchDebsRequest(debs, "the security report"))
    spec = {"packages": [{"name": c.name, "source": c.source, "old_version": c.old_version,
                          "new_version": c.new_version, "deb": deb.filename}
                         for c, deb in zip(request.changes, debs)]}
    spec_file = FileContent(CHANGELOG_SPEC, json.dumps(spec, sort_keys=True).encode())
    spec_digest = await Get(Digest, CreateDigest([spec_file]))
    result = await Get(ProcessResult, ActionRequest(
        module="debian.actions.deb_changelog",
        argv=(CHANGELOG_SPEC,),
        input_digest=await Get(Digest, MergeDigests([spec_digest, fetched.digest])),
        description=f"Read the changelogs of {len(debs)} updated packages",
    ))
    return ChangelogReports(result.stdout.decode())


@dataclass(frozen=True)
class ImageChanges:
    address: str
    layout_dir: str
    digest: str
    repository: str
    registries: tuple[str, ...]
    tags: tuple[str, ...]
    changes: tuple[PackageChange, ...]
    pull_bytes: int
    pulled_layers: tuple[dict, ...]

    @property
    def affected(self) -> bool:
        return bool(self.changes)

    def to_json(self, changelogs: ChangelogReports) -> dict:
        packages = [{"name": c.name, "source": c.source, "old_version": c.old_version,
                     "new_version": c.new_version, **changelog_fields(changelogs.of(c.name))} for c in self.changes]
        cves = sorted({cve for p in packages for cve in p["cves"]}, key=cve_order)
        return {"address": self.address, "layout_dir": self.layout_dir, "digest": self.digest,
                "repository": self.repository, "registries": list(self.registries), "tags": list(self.tags),
                "affected": self.affected, "packages": packages, "cves": cves, "pull_bytes": self.pull_bytes,
                "pulled_layers": list(self.pulled_layers)}


def changelog_fields(report: Mapping) -> dict:
    fields = {"cves": list(report.get("cves") or ()), "changelog_entries": list(report.get("entries") or ())}
    if report.get("note"):
        fields["note"] = report["note"]
    return fields


def cve_order(cve: str) -> tuple[int, int]:
    _, year, number = cve.split("-")
    return int(year), int(number)


def image_changes(target: Target, facts: ImageFacts, layout: ImageLayout, old: OldLock, new: Mapping,
                  budget: Budget) -> ImageChanges:
    chain = [str(a) for a in facts.chain]
    cost = image_cost(facts, level_costs(facts, old, budget))
    pulled = tuple({"digest": layer.digest, "size": layer.size, "created_by": layer.created_by}
                   for layer in cost.layered_layers)
    return ImageChanges(
        str(target.address), target[OciImageOutputPathField].value_or_default(file_ending=None), layout.digest,
        facts.names.repository, facts.names.registries, facts.names.tags,
        package_changes(old.data, new, chain, facts.architecture), cost.layered_bytes, pulled,
    )


def updated_packages(images: Sequence[ImageChanges]) -> tuple[PackageChange, ...]:
    unique = {c.name: c for image in images for c in image.changes if c.old_version and c.new_version}
    return tuple(unique[name] for name in sorted(unique))


def summary_lines(images: Sequence[dict], tag: str) -> list[str]:
    affected = [image for image in images if image["affected"]]
    lines = [f"{len(affected)} of {len(images)} images affected; immutable tag {tag}"]
    for image in affected:
        lines.append(f"{image['address']}  {image['digest']}  pulls {human_bytes(image['pull_bytes'])} "
                     f"({len(image['pulled_layers'])} layers)")
        for package in image["packages"]:
            cves = " ".join(package["cves"]) or package.get("note") or "no CVE named"
            lines.append(f"    {package['name']} {package['old_version'] or '(new)'} -> "
                         f"{package['new_version'] or '(removed)'}  {cves}")
    return lines


@goal_rule
async def security_report(
    console: Console, workspace: Workspace, targets: FilteredTargets, dist: DistDir,
    options: SecurityReportSubsystem, debian: DebianSubsystem, oci: OciSubsystem, lock: DebianLock,
) -> SecurityReportGoal:
    worktree = (await Get(MaybeGitWorktree, GitWorktreeRequest())).git_worktree if options.since else None
    try:
        old = OldLock(parse_old_lock(read_old_lock(options, debian.lockfile, worktree), options))
    except UpdateCostError as e:
        console.print_stderr(f"security-report: {e}")
        return SecurityReportGoal(exit_code=2)
    images = image_targets(targets)
    facts = await MultiGet(Get(ImageFacts, ImageFactsRequest(t.address)) for t in images)
    layouts = await MultiGet(Get(ImageLayout, ImageLayoutRequest(t.address)) for t in images)
    budget = Budget.of(debian, oci)
    changes = [image_changes(t, f, lay, old, lock.data, budget) for t, f, lay in zip(images, facts, layouts)]
    changelogs = await Get(ChangelogReports, ChangelogRequest(updated_packages(changes)))
    tag = immutable_tag(lock)
    report = {"lock": {"path": lock.path, "sha256": lock.sha256,
                       "snapshot_timestamp": str(lock.data.get("snapshot_timestamp") or "")},
              "immutable_tag": tag, "architecture": oci.architecture,
              "images": [image.to_json(changelogs) for image in changes]}
    console.print_stdout("\n".join(summary_lines(report["images"], tag)))
    content = json.dumps(report, sort_keys=True, indent=1).encode()
    digest = await Get(Digest, CreateDigest([FileContent("changes.json", content)]))
    workspace.write_digest(digest, path_prefix=str(dist.relpath / options.output_dir))
    return SecurityReportGoal(exit_code=0)


def rules():
    return collect_rules()
