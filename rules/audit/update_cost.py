"""`pants update-cost`: what a lock update costs the nodes that run the images.

    pants update-cost --old-lock=/tmp/lock-before.yaml ::
    pants update-cost --since=HEAD~1 ::          the lock as committed at that revision

For every image: the compressed bytes a node that has the image built from the old lock
must pull to get the image built from the current lock, and the same for a node that has
the whole set.  Beside it, the cost with one layer of packages per image (what a
Dockerfile with one `RUN apt-get install` per image gives): such a layer is rebuilt, and
pulled whole, when any of its packages changes or its parent image was rebuilt.

How the layered cost is found.  Package layers are a pure function of their .debs
(name and sha256), so a layer of the current build is already on the node when the old
lock gives the same group of .debs; otherwise it is pulled.  The old groups are planned
from the old lock with the same planner the build uses (`layer_plan.plan_layers`).  A
system layer is counted as pulled when any package of its image's chain changed (its
bytes may well be equal; this over-counts by at most its size).  Files layers do not
depend on the lock.  Config and manifest blobs (a few kB) are left out.

A constraints bump of the PyPI source (`--old-python-lock`, or `--since`): a venv layer is a pure
function of its wheels, so it is on the node when the old lock of the resolve of the image that
added it pins every one of its distributions to the same wheel (name and sha256), and pulled
otherwise; in the one-layer-per-image comparison (a `RUN pip install` per image) an image's venv
is rebuilt when any distribution of its chain changed. Every resolve counts: `--since` reads each
lockfile of `[python].resolves` at that revision; `--old-python-lock=RESOLVE=PATH` is repeatable,
one per resolve (a bare PATH is `[python].default_resolve`'s, as before), like `--old-lock` names
the one Debian lock. A resolve without an old lock is taken as unchanged. The layer is checked
against its own resolve's old lock, not all of them: a node with only that image never had the
other resolves' layers.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence, Union

import yaml
from pants.core.util_rules.distdir import DistDir
from pants.core.util_rules.system_binaries import GitBinaryException
from pants.engine.console import Console
from pants.engine.fs import CreateDigest, Digest, DigestContents, FileContent, PathGlobs, Workspace
from pants.engine.goal import Goal, GoalSubsystem
from pants.engine.rules import Get, MultiGet, collect_rules, goal_rule
from pants.engine.target import FilteredTargets
from pants.option.option_types import StrListOption, StrOption
from pants.util.strutil import help_text
from pants.vcs.git import GitWorktreeRequest, MaybeGitWorktree

from pants.backend.python.subsystems.setup import PythonSetup

from debian.actions.debian_lock import diff_locks
from audit.facts import ImageFacts, ImageFactsRequest, LayerFacts, image_targets
from audit.sizes import human_bytes
from debian.layer_plan import LayerBudget, PlannedPackage, layers_left, plan_layers
from debian.subsystem import DebianSubsystem
from oci.subsystem import OciSubsystem
from oci.chain import ImageTarget, ImageTargetRequest
from pypi.lockfile import PypiLockError, ResolveLock, canonical_name, parse_lockfile
from pypi.target_types import PythonResolveField

Identity = frozenset  # of (package name, .deb sha256): what makes a package layer's bytes


class UpdateCostSubsystem(GoalSubsystem):
    name = "update-cost"
    help = help_text(
        """
        Bytes each `oci_image`, and the whole set, must pull after a lock update, beside the cost
        with one package layer per image (Dockerfile RUN style). Give the old lock with
        `--old-lock=PATH` or `--since=GIT_REV`.
        """
    )

    old_lock = StrOption(default=None, help="The lock before the update (a file).")
    old_python_lock = StrListOption(
        default=[],
        help=help_text(
            """
            Python lockfiles before a constraints bump, `RESOLVE=PATH`, once per resolve (a bare PATH is
            `[python].default_resolve`'s). With `--since`, each resolve's lockfile committed at that
            revision is read unless given here.
            """
        ),
    )
    since = StrOption(default=None, help="A git revision whose committed lock is the one before the update.")
    output_dir = StrOption(default="update-cost", help="Directory under dist/ for report.json.")


class UpdateCostGoal(Goal):
    subsystem_cls = UpdateCostSubsystem
    environment_behavior = Goal.EnvironmentBehavior.LOCAL_ONLY


class UpdateCostError(Exception):
    pass


@dataclass(frozen=True)
class OldLock:
    """The lock before the update, as the build reads it: per image requests and closures, per package pins."""

    data: Mapping

    def packages(self, architecture: str) -> Mapping[str, Mapping]:
        return (self.data.get("architectures") or {}).get(architecture) or {}

    def closure(self, address: str | None, architecture: str) -> set:
        if not address:
            return set()
        return set((((self.data.get("images") or {}).get(address) or {}).get(architecture) or {}).get("closure") or ())

    def parent_request(self, address: str) -> str | None:
        return ((self.data.get("requests") or {}).get(address) or {}).get("parent")

    def added(self, address: str, architecture: str) -> dict:
        """name -> pin of the packages this image adds over its package-declaring parent."""
        locked = self.packages(architecture)
        names = self.closure(address, architecture) - self.closure(self.parent_request(address), architecture)
        return {name: locked[name] for name in sorted(names) if name in locked}


@dataclass(frozen=True)
class Budget:
    own_layer_bytes: int
    group_layer_bytes: int
    package_layers_per_image: int
    max_layers: int

    @classmethod
    def of(cls, debian: DebianSubsystem, oci: OciSubsystem) -> "Budget":
        return cls(debian.own_layer_bytes, debian.group_layer_bytes, debian.package_layers_per_image,
                   oci.max_layers)


def old_groups(added: Mapping[str, Mapping], parent_layers: int, budget: Budget) -> set:
    """The package layers the old lock gave this image, as identities (the build's own planner)."""
    if not added:
        return set()
    room = max(1, min(budget.package_layers_per_image, layers_left(parent_layers, budget.max_layers, reserved=1)))
    plan = plan_layers([PlannedPackage(name, int(pin["size"])) for name, pin in added.items()],
                       LayerBudget(budget.own_layer_bytes, budget.group_layer_bytes, room))
    return {frozenset((p.name, added[p.name]["sha256"]) for p in group) for group in plan}


def identity(layer: LayerFacts) -> Identity:
    return frozenset((p.name, p.deb_sha256) for p in layer.packages)


@dataclass(frozen=True)
class OldPythonLock:
    """The PyPI lock before a constraints bump: every (distribution, wheel sha256) it pinned."""

    wheels: frozenset
    versions: Mapping[str, str]

    @classmethod
    def of(cls, lock: ResolveLock) -> "OldPythonLock":
        return cls(frozenset((d.name, digest) for d in lock.distributions for _, _, digest in d.artifacts),
                   {d.name: d.version for d in lock.distributions})

    def keeps(self, layer: LayerFacts) -> bool:
        return all((canonical_name(d.name), d.wheel_sha256) in self.wheels for d in layer.python_distributions)


@dataclass(frozen=True)
class OldPythonLocks:
    """The old lock of every resolve given, and the resolve of each image: a venv layer is checked against
    the old lock of the resolve of the image that added it."""

    by_resolve: Mapping[str, OldPythonLock]
    resolve_of: Mapping[str, str]  # image address -> its `python_resolve`

    def keeps(self, layer: LayerFacts) -> bool:
        old = self.by_resolve.get(self.resolve_of.get(str(layer.added_by), ""))
        return old is None or old.keeps(layer)


AnyOldPythonLock = Union[OldPythonLock, OldPythonLocks]


def python_changes(old: OldPythonLock, new: ResolveLock) -> str:
    new_versions = {d.name: d.version for d in new.distributions}
    lines = [f"  {name} {old.versions.get(name, '(none)')} -> {new_versions.get(name, '(none)')}"
             for name in sorted(set(old.versions) | set(new_versions)) if old.versions.get(name) != new_versions.get(name)]
    return f"Python distribution changes (resolve {new.resolve}):\n" + ("\n".join(lines) if lines else "  none")


def is_system_layer(layer: LayerFacts) -> bool:
    return layer.created_by.startswith("system files of ")


@dataclass(frozen=True)
class LevelCost:
    """One image of a chain as the current lock built it, against the old lock."""

    address: str
    package_layers: tuple[LayerFacts, ...]
    system_layer: LayerFacts | None
    old_identities: frozenset  # of Identity
    packages_changed: bool  # the packages this image adds differ from the old lock's

    @property
    def new_package_layers(self) -> tuple[LayerFacts, ...]:
        return tuple(layer for layer in self.package_layers if identity(layer) not in self.old_identities)

    @property
    def run_layer_bytes(self) -> int:
        """Its packages as one Dockerfile RUN layer: about the bytes of its package and system layers."""
        return sum(layer.size for layer in self.package_layers) + (self.system_layer.size if self.system_layer else 0)


def level_costs(facts: ImageFacts, old: OldLock, budget: Budget) -> list[LevelCost]:
    """Root image first.  Each level's layers, what the old lock planned for it and whether it changed."""
    levels = []
    for index, address in enumerate(facts.chain):
        own = [layer for layer in facts.layers if layer.added_by == address]
        parent_layers = sum(1 for layer in facts.layers if layer.added_by in facts.chain[:index])
        package_layers = tuple(layer for layer in own if layer.packages)
        system = next((layer for layer in own if is_system_layer(layer)), None)
        added = old.added(str(address), facts.architecture)
        old_ids = old_groups(added, parent_layers, budget)
        new_pins = {(p.name, p.deb_sha256) for layer in package_layers for p in layer.packages}
        old_pins = {(name, pin["sha256"]) for name, pin in added.items()}
        levels.append(LevelCost(str(address), package_layers, system, frozenset(old_ids), new_pins != old_pins))
    return levels


@dataclass(frozen=True)
class ImageCost:
    address: str
    layered_layers: tuple[LayerFacts, ...]  # what a node with the old image pulls
    run_style_bytes: int
    total_bytes: int

    @property
    def layered_bytes(self) -> int:
        return sum(layer.size for layer in self.layered_layers)

    def to_json(self) -> dict:
        return {"address": self.address, "layered_bytes": self.layered_bytes, "run_style_bytes": self.run_style_bytes,
                "total_bytes": self.total_bytes,
                "pulled_layers": [{"digest": layer.digest, "size": layer.size, "created_by": layer.created_by}
                                  for layer in self.layered_layers]}


def venv_costs(facts: ImageFacts, old_python: AnyOldPythonLock | None) -> tuple[list[LayerFacts], dict[str, int]]:
    """The venv layers a node pulls, and each chain level's venv bytes a `RUN pip install` would rebuild."""
    pulled: list[LayerFacts] = []
    rebuilt: dict[str, int] = {}
    changed = False
    for address in facts.chain:
        venv = [layer for layer in facts.layers if layer.added_by == address and layer.python_distributions]
        new = [layer for layer in venv if old_python is not None and not old_python.keeps(layer)]
        pulled += new
        changed = changed or bool(new)
        if changed and venv:
            rebuilt[str(address)] = sum(layer.size for layer in venv)
    return pulled, rebuilt


def image_cost(facts: ImageFacts, levels: Sequence[LevelCost], old_python: AnyOldPythonLock | None = None) -> ImageCost:
    pulled: list[LayerFacts] = []
    chain_changed = False
    run_bytes = 0
    for level in levels:
        chain_changed = chain_changed or level.packages_changed
        pulled += level.new_package_layers
        if chain_changed and level.system_layer is not None:
            pulled.append(level.system_layer)
        if chain_changed:
            run_bytes += level.run_layer_bytes
    venv_pulled, venv_rebuilt = venv_costs(facts, old_python)
    return ImageCost(str(facts.address), tuple(pulled + venv_pulled), run_bytes + sum(venv_rebuilt.values()),
                     facts.total_bytes)


@dataclass(frozen=True)
class SetCost:
    layered_bytes: int
    run_style_bytes: int
    total_bytes: int

    def to_json(self) -> dict:
        return {"layered_bytes": self.layered_bytes, "run_style_bytes": self.run_style_bytes,
                "unique_bytes": self.total_bytes}


def set_cost(all_facts: Sequence[ImageFacts], costs: Sequence[ImageCost],
             levels: Mapping[str, Sequence[LevelCost]], old_python: AnyOldPythonLock | None = None) -> SetCost:
    """A node with every old image: each pulled layer once, and each rebuilt RUN layer once."""
    layered = {layer.digest: layer.size for cost in costs for layer in cost.layered_layers}
    run_levels: dict = {}
    for address, chain in levels.items():
        changed = False
        for level in chain:
            changed = changed or level.packages_changed
            if changed:
                run_levels[level.address] = level.run_layer_bytes
    venv_levels = {address: size for facts in all_facts for address, size in venv_costs(facts, old_python)[1].items()}
    unique = {layer.digest: layer.size for facts in all_facts for layer in facts.layers}
    return SetCost(sum(layered.values()), sum(run_levels.values()) + sum(venv_levels.values()), sum(unique.values()))


def report_lines(costs: Iterable[ImageCost], totals: SetCost, summary: str) -> list[str]:
    costs = list(costs)
    width = max([len(c.address) for c in costs] + [len("whole set")])
    lines = [summary, "", f"{'image':<{width}}  {'layered':>10}  {'one layer per image':>20}  {'image size':>10}"]
    for cost in costs:
        lines.append(f"{cost.address:<{width}}  {human_bytes(cost.layered_bytes):>10}  "
                     f"{human_bytes(cost.run_style_bytes):>20}  {human_bytes(cost.total_bytes):>10}")
    lines.append(f"{'whole set':<{width}}  {human_bytes(totals.layered_bytes):>10}  "
                 f"{human_bytes(totals.run_style_bytes):>20}  {human_bytes(totals.total_bytes):>10}")
    return lines


def read_old_lock(options: UpdateCostSubsystem, lockfile: str, worktree) -> str:
    if bool(options.old_lock) == bool(options.since):
        raise UpdateCostError("Give the lock before the update with exactly one of --old-lock=PATH or --since=GIT_REV.")
    if options.old_lock:
        path = options.old_lock if os.path.isabs(options.old_lock) else os.path.join(os.getcwd(), options.old_lock)
        try:
            with open(path, encoding="utf-8") as f:
                return f.read()
        except OSError as e:
            raise UpdateCostError(f"Cannot read --old-lock={options.old_lock}: {e.strerror}.") from None
    if worktree is None:
        raise UpdateCostError("--since needs a git work tree; use --old-lock=PATH instead.")
    try:
        # GitWorktree has no public call for this; the same un-sandboxed git it uses itself.
        return worktree._git_binary._invoke_unsandboxed(
            worktree._create_git_cmdline(["show", f"{options.since}:{lockfile}"]))
    except GitBinaryException as e:
        raise UpdateCostError(f"Cannot read {lockfile} at {options.since}: {e}") from None


def old_python_lock_paths(values: Iterable[str], default_resolve: str, resolves: Iterable[str]) -> dict[str, str]:
    """`--old-python-lock` values, `RESOLVE=PATH` or a bare PATH (the default resolve's), by resolve."""
    paths: dict[str, str] = {}
    for value in values:
        resolve, sep, path = value.partition("=")
        resolve, path = (resolve, path) if sep and resolve in resolves else (default_resolve, value)
        if resolve in paths:
            raise UpdateCostError(f"--old-python-lock names resolve {resolve!r} twice; give one lockfile per resolve.")
        paths[resolve] = path
    return paths


def read_old_python_lock(resolve: str, path: str | None, since: str | None, lockfile: str, worktree) -> str | None:
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                return f.read()
        except OSError as e:
            raise UpdateCostError(f"Cannot read --old-python-lock={resolve}={path}: {e.strerror}.") from None
    if since and worktree is not None:
        try:
            return worktree._git_binary._invoke_unsandboxed(
                worktree._create_git_cmdline(["show", f"{since}:{lockfile}"]))
        except GitBinaryException:
            return None  # no lock of this resolve at that revision: nothing to compare
    return None


@dataclass(frozen=True)
class PythonLocks:
    old: OldPythonLocks | None  # None: no old lock given for any resolve
    new: tuple[ResolveLock, ...]  # the current lock of each resolve that has an old one


async def python_locks(options: UpdateCostSubsystem, python_setup: PythonSetup, worktree,
                       images: Sequence[ImageFacts]) -> PythonLocks:
    """Each resolve's lock before the bump (those given, or all at `--since`) and now."""
    paths = old_python_lock_paths(options.old_python_lock, python_setup.default_resolve, python_setup.resolves)
    old_texts = {resolve: read_old_python_lock(resolve, paths.get(resolve), options.since, lockfile, worktree)
                 for resolve, lockfile in sorted(python_setup.resolves.items())}
    old_texts = {resolve: text for resolve, text in old_texts.items() if text is not None}
    if not old_texts:
        return PythonLocks(None, ())
    current = await MultiGet(Get(DigestContents, PathGlobs([python_setup.resolves[r]])) for r in old_texts)
    new = tuple(parse_lockfile(r, python_setup.resolves[r], c[0].content.decode())
                for r, c in zip(old_texts, current) if c)
    old = {r: OldPythonLock.of(parse_lockfile(r, f"the old {python_setup.resolves[r]}", text))
           for r, text in old_texts.items()}
    addresses = sorted({address for facts in images for address in facts.chain})
    targets = await MultiGet(Get(ImageTarget, ImageTargetRequest(address)) for address in addresses)
    resolve_of = {str(a): t.target[PythonResolveField].value or python_setup.default_resolve
                  for a, t in zip(addresses, targets)}
    return PythonLocks(OldPythonLocks(old, resolve_of), new)


@goal_rule
async def update_cost(
    console: Console, workspace: Workspace, targets: FilteredTargets, dist: DistDir,
    options: UpdateCostSubsystem, debian: DebianSubsystem, oci: OciSubsystem, python_setup: PythonSetup,
) -> UpdateCostGoal:
    worktree = (await Get(MaybeGitWorktree, GitWorktreeRequest())).git_worktree if options.since else None
    try:
        old = OldLock(yaml.safe_load(read_old_lock(options, debian.lockfile, worktree)) or {})
    except UpdateCostError as e:
        console.print_stderr(str(e))
        return UpdateCostGoal(exit_code=2)
    current = await Get(DigestContents, PathGlobs([debian.lockfile]))
    new_data = yaml.safe_load(current[0].content) if current else {}
    all_facts = await MultiGet(Get(ImageFacts, ImageFactsRequest(t.address)) for t in image_targets(targets))
    budget = Budget.of(debian, oci)
    levels = {str(f.address): level_costs(f, old, budget) for f in all_facts}
    try:
        python = await python_locks(options, python_setup, worktree, all_facts)
    except (UpdateCostError, PypiLockError) as e:
        console.print_stderr(str(e))
        return UpdateCostGoal(exit_code=2)
    costs = [image_cost(f, levels[str(f.address)], python.old) for f in all_facts]
    totals = set_cost(all_facts, costs, levels, python.old)
    summary = "Package changes:\n" + diff_locks(old.data, new_data)
    for new_python in python.new:
        summary += "\n" + python_changes(python.old.by_resolve[new_python.resolve], new_python)
    console.print_stdout("\n".join(report_lines(costs, totals, summary)))
    report = json.dumps({"images": [c.to_json() for c in costs], "set": totals.to_json()}, sort_keys=True, indent=1)
    digest = await Get(Digest, CreateDigest([FileContent("report.json", report.encode())]))
    workspace.write_digest(digest, path_prefix=str(dist.relpath / options.output_dir))
    return UpdateCostGoal(exit_code=0)


def rules():
    return collect_rules()
