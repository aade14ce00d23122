"""Why an image has a Python distribution: the requirement of its chain that pulls it in.

`pants image-report --why=NAME` asks here for names no Debian package of the image has. The
answer is the shortest path through the lock's `requires_dists` (markers evaluated for the
image's interpreter, as the closure is) from the `python_requirements` of the highest image of
the chain that reaches it.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Iterable, Optional

from pants.backend.python.subsystems.setup import PythonSetup
from pants.engine.addresses import Address
from pants.engine.rules import Get, MultiGet, collect_rules, rule

from oci.chain import ImageTarget, ImageTargetRequest
from pypi.lockfile import (
    Requirement,
    ResolveLock,
    ResolveLockRequest,
    TargetInterpreter,
    canonical_name,
    marker_holds,
)
from pypi.subsystem import PypiSubsystem
from pypi.target_types import PythonRequirementsField, PythonResolveField


def dependency_path(lock: ResolveLock, wanted: Iterable[str], goal: str,
                    target: TargetInterpreter) -> Optional[tuple[str, ...]]:
    """The shortest chain of distributions from one of `wanted` to `goal`, canonical names."""
    by_name, environment, goal = lock.by_name(), target.marker_environment(), canonical_name(goal)
    starts = [(canonical_name(Requirement(text).name), frozenset(Requirement(text).extras)) for text in wanted]
    previous: dict[str, Optional[str]] = {name: None for name, _ in starts}
    queue = collections.deque(starts)
    while queue:
        name, extras = queue.popleft()
        if name == goal:
            path = [name]
            while previous[path[-1]] is not None:
                path.append(previous[path[-1]])
            return tuple(reversed(path))
        for text in by_name[name].requires_dists if name in by_name else ():
            requirement = Requirement(text)
            following = canonical_name(requirement.name)
            if following not in previous and marker_holds(requirement.marker, environment, extras):
                previous[following] = name
                queue.append((following, frozenset(requirement.extras)))
    return None


@dataclass(frozen=True)
class PythonWhyRequest:
    chain: tuple[Address, ...]  # root image first
    distribution: str
    architecture: str


@dataclass(frozen=True)
class PythonWhy:
    image: Optional[Address]  # the image whose python_requirements reach the distribution
    path: tuple[str, ...]

    def describe(self) -> str:
        return f"{self.image} asks for {' -> '.join(self.path)}" if self.image else "no python_requirements reach it"


@rule(desc="Explain why an image has a Python distribution")
async def python_why(request: PythonWhyRequest, pypi: PypiSubsystem, python_setup: PythonSetup) -> PythonWhy:
    images = await MultiGet(Get(ImageTarget, ImageTargetRequest(a)) for a in request.chain)
    target = TargetInterpreter.of(pypi, request.architecture)
    for image in images:
        wanted = image.target[PythonRequirementsField].value or ()
        if not wanted:
            continue
        resolve = image.target[PythonResolveField].value or python_setup.default_resolve
        lock = await Get(ResolveLock, ResolveLockRequest(resolve))
        path = dependency_path(lock, wanted, request.distribution, target)
        if path:
            return PythonWhy(image.target.address, path)
    return PythonWhy(None, ())


def rules():
    return collect_rules()
