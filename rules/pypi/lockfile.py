"""Read a resolve's lockfile (Pants' `generate-lockfiles`, Pex's lock format) and plan an image's wheels.

Decisions:
- The lockfile is the only source of versions and hashes: an image names projects, and their
  closure is walked through the lock's `requires_dists`, with environment markers evaluated for
  the image's interpreter (CPython `[pypi].python_version` on linux/<architecture>) and extras
  followed only where asked.
- One wheel per distribution, the most specific one the image's interpreter accepts (CPython
  tags, then abi3, then pure Python; manylinux up to `[pypi].glibc`). Wheels only: a
  distribution that has no such wheel in the lock (an sdist only) is refused with its name and
  the fix, since building it would run its setup.py in the sandbox and give host-dependent bytes.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from typing import Iterable, Mapping, Optional

with warnings.catch_warnings():  # Pants' packaging 21.3 calls pyparsing 3 by its deprecated names
    warnings.simplefilter("ignore")
    from packaging.markers import Marker
    from packaging.requirements import InvalidRequirement
    from packaging.requirements import Requirement as _Requirement
    from packaging.tags import Tag, compatible_tags, cpython_tags
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename
    from packaging.version import InvalidVersion

from pants.backend.python.subsystems.setup import PythonSetup
from pants.backend.python.target_types import PythonRequirementResolveField
from pants.backend.python.target_types import PythonRequirementsField as PantsRequirementsField
from pants.backend.python.util_rules.pex_requirements import ResolvePexConfig, ResolvePexConfigRequest
from pants.engine.fs import DigestContents, GlobMatchErrorBehavior, PathGlobs
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import AllTargets

from pypi.actions.specs import LockedWheel
from pypi.subsystem import PypiSubsystem

MACHINES = {"amd64": "x86_64", "arm64": "aarch64"}
LEGACY_MANYLINUX = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}


class PypiLockError(Exception):
    pass


def Requirement(text: str) -> _Requirement:  # noqa: N802 - stands for packaging's class
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _Requirement(text)


def canonical_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class LockedDistribution:
    name: str  # canonical
    version: str
    requires_dists: tuple[str, ...]
    artifacts: tuple[tuple[str, str, str], ...]  # (url, algorithm, hash)


@dataclass(frozen=True)
class LockInputs:
    """What a lock was generated from, as Pants' metadata header records it (normalized requirement strings)."""

    requirements: tuple[str, ...]  # the resolve's python_requirement targets
    constraints: tuple[str, ...]  # the resolve's constraints file


@dataclass(frozen=True)
class ResolveLock:
    resolve: str
    path: str
    requirements: tuple[str, ...]  # canonical names of the resolve's own requirements
    distributions: tuple[LockedDistribution, ...]
    generated_from: Optional[LockInputs] = None  # None: no Pants metadata header

    def by_name(self) -> dict[str, LockedDistribution]:
        return {d.name: d for d in self.distributions}


@dataclass(frozen=True)
class ResolveLockRequest:
    resolve: str


METADATA_BEGIN = "// --- BEGIN PANTS LOCKFILE METADATA: DO NOT EDIT OR REMOVE ---"
METADATA_END = "// --- END PANTS LOCKFILE METADATA ---"


def normalized_requirements(texts: Iterable[str]) -> tuple[str, ...]:
    """Requirement strings in one spelling, so that `Foo>=1` and `foo >= 1` compare equal."""
    normalized = set()
    for text in texts:
        requirement = Requirement(text)
        requirement.name = canonical_name(requirement.name)
        normalized.add(str(requirement))
    return tuple(sorted(normalized))


def lock_inputs(text: str) -> Optional[LockInputs]:
    """The requirements and constraints of Pants' metadata header (lockfile metadata version 2 and 3)."""
    lines = text.splitlines()
    if METADATA_BEGIN not in lines or METADATA_END not in lines:
        return None
    header = lines[lines.index(METADATA_BEGIN) + 1: lines.index(METADATA_END)]
    metadata = json.loads("\n".join(line[2:] for line in header))
    return LockInputs(normalized_requirements(metadata.get("generated_with_requirements", ())),
                      normalized_requirements(metadata.get("requirement_constraints", ())))


def parse_lockfile(resolve: str, path: str, text: str) -> ResolveLock:
    body = "".join(line for line in text.splitlines(True) if not line.startswith("//"))
    try:
        lock = json.loads(body)
        locked = lock["locked_resolves"]
        requirements = tuple(sorted(canonical_name(Requirement(r).name) for r in lock["requirements"]))
        generated_from = lock_inputs(text)
    except (ValueError, KeyError, InvalidRequirement) as error:
        raise PypiLockError(f"{path} (resolve {resolve!r}) is not a Pex lockfile ({error}). Regenerate it: "
                            f"./pants generate-lockfiles --resolve={resolve}") from error
    if len(locked) != 1:
        raise PypiLockError(f"{path} holds {len(locked)} locked resolves; images need one (a universal lock)")
    distributions = tuple(
        LockedDistribution(canonical_name(r["project_name"]), r["version"], tuple(r.get("requires_dists", ())),
                           tuple((a["url"], a["algorithm"], a["hash"]) for a in r["artifacts"]))
        for r in locked[0]["locked_requirements"]
    )
    return ResolveLock(resolve, path, requirements, distributions, generated_from)


def stale_lock_changes(lock: ResolveLock, current: LockInputs) -> list[str]:
    """How the resolve's requirements and constraints now differ from those the lock was generated from."""
    if lock.generated_from is None:
        return ["it has no Pants metadata header, so what it was generated from is unknown"]
    changes = []
    for kind, old, new in (("requirements", lock.generated_from.requirements, current.requirements),
                           ("constraints", lock.generated_from.constraints, current.constraints)):
        added, removed = sorted(set(new) - set(old)), sorted(set(old) - set(new))
        changes += [f"{kind} added since: {', '.join(added)}"] if added else []
        changes += [f"{kind} removed since: {', '.join(removed)}"] if removed else []
    return changes


@rule(desc="Read a Python resolve's lockfile")
async def read_resolve_lock(request: ResolveLockRequest, python_setup: PythonSetup) -> ResolveLock:
    path = python_setup.resolves.get(request.resolve)
    if path is None:
        raise PypiLockError(f"No Python resolve {request.resolve!r}: [python].resolves has "
                            f"{sorted(python_setup.resolves)}.")
    contents = await Get(DigestContents, PathGlobs(
        [path], glob_match_error_behavior=GlobMatchErrorBehavior.error,
        description_of_origin=f"the lockfile of resolve {request.resolve!r} (run ./pants generate-lockfiles "
                              f"--resolve={request.resolve})"))
    return parse_lockfile(request.resolve, path, contents[0].content.decode())


@dataclass(frozen=True)
class TargetInterpreter:
    python_version: str  # "3.11"
    architecture: str  # OCI: amd64, arm64
    glibc: str  # "2.36"

    @classmethod
    def of(cls, pypi: PypiSubsystem, architecture: str) -> "TargetInterpreter":
        return cls(pypi.python_version, architecture, pypi.glibc)

    def marker_environment(self) -> dict[str, str]:
        machine = MACHINES.get(self.architecture, self.architecture)
        return {"implementation_name": "cpython", "implementation_version": f"{self.python_version}.0",
                "os_name": "posix", "platform_machine": machine, "platform_python_implementation": "CPython",
                "platform_release": "", "platform_system": "Linux", "platform_version": "",
                "python_full_version": f"{self.python_version}.0", "python_version": self.python_version,
                "sys_platform": "linux", "extra": ""}

    def tags(self) -> list[Tag]:
        machine = MACHINES.get(self.architecture, self.architecture)
        major, minor = (int(p) for p in self.python_version.split("."))
        newest = int(self.glibc.split(".")[1])
        platforms = []
        for glibc_minor in range(newest, 4, -1):
            platforms.append(f"manylinux_2_{glibc_minor}_{machine}")
            if glibc_minor in LEGACY_MANYLINUX:
                platforms.append(f"{LEGACY_MANYLINUX[glibc_minor]}_{machine}")
        interpreter = f"cp{major}{minor}"
        return [*cpython_tags((major, minor), [interpreter], platforms),
                *compatible_tags((major, minor), interpreter, platforms)]


def marker_holds(marker: Optional[Marker], environment: Mapping[str, str], extras: Iterable[str]) -> bool:
    if marker is None:
        return True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return any(marker.evaluate({**environment, "extra": extra}) for extra in ("", *extras))


def check_locked_version(lock: ResolveLock, requirement: _Requirement, text: str, image: str) -> None:
    """An image's own version specifier (`keystone>=31`) the lock does not meet: the lock predates it."""
    version = lock.by_name()[canonical_name(requirement.name)].version
    if requirement.specifier and not requirement.specifier.contains(version, prereleases=True):
        raise PypiLockError(
            f"{image} asks for {text!r} in `python_requirements`, but {lock.path} (resolve {lock.resolve!r}) locks "
            f"{version}: the lock is stale for this image. Raise the pin in the resolve's constraints file and run "
            f"./pants generate-lockfiles --resolve={lock.resolve}, or ask for what the lock has."
        )


def closure(lock: ResolveLock, wanted: Iterable[str], excluded: Iterable[str], target: TargetInterpreter,
            image: str) -> tuple[LockedDistribution, ...]:
    """The locked distributions `wanted` (project names, extras allowed) need, less `excluded`.

    Any distribution of the lock may be asked for (a base image takes the shared libraries of its
    children's requirements), not only the resolve's own requirements.
    """
    by_name, environment, skip = lock.by_name(), target.marker_environment(), {canonical_name(e) for e in excluded}
    extras: dict[str, set[str]] = {}
    queue = []
    for text in wanted:
        requirement = Requirement(text)
        name = canonical_name(requirement.name)
        if name not in lock.by_name():
            raise PypiLockError(
                f"{image} asks for {text!r} in `python_requirements`, which is not locked in resolve "
                f"{lock.resolve!r} ({lock.path}): add it to the python_requirement targets of that resolve (e.g. "
                f"3rdparty/python/*-requirements.txt) and run ./pants generate-lockfiles --resolve={lock.resolve}."
            )
        check_locked_version(lock, requirement, text, image)
        queue.append((name, frozenset(requirement.extras)))
    while queue:
        name, asked_extras = queue.pop()
        if name in skip or (name in extras and asked_extras <= extras[name]):
            continue
        extras.setdefault(name, set()).update(asked_extras)
        if name not in by_name:
            raise PypiLockError(f"{image}: {name} is required but not in {lock.path}; regenerate the lockfile")
        for text in by_name[name].requires_dists:
            requirement = Requirement(text)
            if marker_holds(requirement.marker, environment, extras[name]):
                queue.append((canonical_name(requirement.name), frozenset(requirement.extras)))
    return tuple(by_name[name] for name in sorted(extras))


def best_wheel(distribution: LockedDistribution, tags: list[Tag]) -> Optional[LockedWheel]:
    rank = {tag: index for index, tag in enumerate(tags)}
    best: Optional[tuple[int, LockedWheel]] = None
    for url, algorithm, digest in distribution.artifacts:
        filename = url.rsplit("/", 1)[-1].split("#", 1)[0]
        if algorithm != "sha256" or not filename.endswith(".whl"):
            continue
        try:
            wheel_tags = parse_wheel_filename(filename)[3]
        except (InvalidWheelFilename, InvalidVersion):
            continue
        score = min((rank[t] for t in wheel_tags if t in rank), default=None)
        if score is not None and (best is None or score < best[0]):
            best = (score, LockedWheel(distribution.name, distribution.version, url, digest))
    return best[1] if best else None


def wheels_for(distributions: Iterable[LockedDistribution], target: TargetInterpreter, lock: ResolveLock,
               image: str) -> tuple[LockedWheel, ...]:
    tags, wheels, missing = target.tags(), [], []
    for distribution in distributions:
        wheel = best_wheel(distribution, tags)
        if wheel is None:
            missing.append(f"{distribution.name} {distribution.version}")
        else:
            wheels.append(wheel)
    if missing:
        raise PypiLockError(
            f"{image}: no wheel for CPython {target.python_version} on linux/{target.architecture} in {lock.path} "
            f"for: {', '.join(missing)}. The PyPI source installs wheels only (an sdist would run its build in "
            "the sandbox). Pin a version that has such a wheel in the resolve's constraints file and run "
            f"./pants generate-lockfiles --resolve={lock.resolve}, or leave it out with `python_exclude` "
            "when a Debian package of the image provides the module, e.g. python_exclude={\"ovs\": "
            "\"Debian's python3-openvswitch\"}."
        )
    return tuple(wheels)


@dataclass(frozen=True)
class LockFreshnessRequest:
    resolve: str


@dataclass(frozen=True)
class LockFreshness:
    resolve: str
    path: str
    changes: tuple[str, ...]  # empty: the lock is what generate-lockfiles would write from today's inputs

    def problem(self, image: str) -> Optional[str]:
        if not self.changes:
            return None
        return (f"{image}: the lockfile {self.path} of Python resolve {self.resolve!r} is stale, not generated from "
                f"the resolve's current inputs: {'; '.join(self.changes)}. Building from it would install what the "
                f"requirements no longer say. Run ./pants generate-lockfiles --resolve={self.resolve} and commit the "
                "lockfile.")


@rule(desc="Check a Python resolve's lockfile against its requirements and constraints")
async def lock_freshness(request: LockFreshnessRequest, python_setup: PythonSetup) -> LockFreshness:
    lock, targets, config = await MultiGet(
        Get(ResolveLock, ResolveLockRequest(request.resolve)),
        Get(AllTargets),
        Get(ResolvePexConfig, ResolvePexConfigRequest(request.resolve)),
    )
    # The same inputs as Pants' generate-lockfiles: every python_requirement of the resolve, its constraints file.
    requirements = [str(requirement) for target in targets
                    if target.has_fields((PythonRequirementResolveField, PantsRequirementsField))
                    and target[PythonRequirementResolveField].normalized_value(python_setup) == request.resolve
                    for requirement in target[PantsRequirementsField].value]
    constraints = [str(c) for c in config.constraints_file.constraints] if config.constraints_file else []
    current = LockInputs(normalized_requirements(requirements), normalized_requirements(constraints))
    return LockFreshness(request.resolve, lock.path, tuple(stale_lock_changes(lock, current)))


def rules():
    return collect_rules()
