"""Where each locked .deb comes from, and which build tools made an image: shared by SBOM and provenance."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from pants.engine.rules import collect_rules, rule
from pants.util.frozendict import FrozenDict
from pants.version import VERSION as PANTS_VERSION

from audit.lockgraph import LockGraph
from debian.debian_lock import SourcesManifest
from debian.packages import DebianLock, locked_deb, mirror_urls

BACKEND_DIR = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class DebOrigin:
    name: str
    version: str
    sha256: str
    url: str
    apt_source: str  # the `name` of the source in the sources manifest


@dataclass(frozen=True)
class DebOrigins:
    """Every .deb of the lock for the configured architecture, by sha256, with the files that pin them."""

    by_sha256: FrozenDict[str, DebOrigin]
    lock_path: str
    lock_sha256: str
    manifest_path: str
    manifest_sha256: str


@dataclass(frozen=True)
class DebOriginsRequest:
    """Asked for only by images that have packages: a repository without them needs no lock."""

    architecture: str


@rule
async def deb_origins(request: DebOriginsRequest, lock: DebianLock, manifest: SourcesManifest) -> DebOrigins:
    urls = mirror_urls(manifest)
    origins = {}
    for name, info in sorted(lock.packages(request.architecture).items()):
        deb = locked_deb(name, info, urls)
        origins[deb.sha256] = DebOrigin(name, deb.version, deb.sha256, deb.url, str(info["source"]))
    return DebOrigins(FrozenDict(origins), lock.path, lock.sha256, manifest.path, manifest.sha256)


@dataclass(frozen=True)
class LockGraphRequest:
    architecture: str


@dataclass(frozen=True)
class LockGraphResult:
    lock_sha256: str
    architecture: str
    graph: LockGraph = field(compare=False, hash=False)


@rule
async def lock_graph(request: LockGraphRequest, lock: DebianLock) -> LockGraphResult:
    return LockGraphResult(lock.sha256, request.architecture, LockGraph.from_lock(lock.data, request.architecture))


@dataclass(frozen=True)
class BuilderVersion:
    """Pants' version and a content hash of this backend's sources (rules/oci, actions included)."""

    pants: str
    backend: str  # sha256 of the sorted (path, content) pairs

    @property
    def short_backend(self) -> str:
        return self.backend[:12]


def backend_source_hash(root: Path = BACKEND_DIR) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


@rule
async def builder_version() -> BuilderVersion:
    return BuilderVersion(PANTS_VERSION, backend_source_hash())


def rules():
    return collect_rules()
