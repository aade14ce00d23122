"""Push every .deb of a lock to an OCI registry: `python -m debian.actions.archive_debs spec.json`.

The spec is an `ArchiveSpec`: the archive (`[debian].archive`), the tag of the lock's manifest
and the .debs (`debs/<sha256>.deb` in the sandbox) with their annotations. Each .deb goes up as
a content-addressed blob; one OCI artifact manifest per lock lists them all, each layer
annotated with package, version, architecture and source suite, and is tagged
`lock-<sha256 of the lock>`. The fetch reads blobs by sha256 only, so the manifest is what
keeps the blobs referenced (a registry's garbage collection keeps them) and what a person reads.

Idempotent: a blob the registry has is skipped and counted. Prints a JSON summary on stdout
({"pushed", "skipped", "bytes_pushed", "manifest", "tag"}); a failure names the .deb, the
registry and the fix, exit status 1.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import sys
import urllib.error
from dataclasses import dataclass
from typing import Mapping, Tuple

from oci.actions.specs import load_spec

from .registry import RegistryClient, RegistryError, parse_archive

ARTIFACT_TYPE = "application/vnd.oci-pants.debian-lock.v1+json"
DEB_MEDIA_TYPE = "application/vnd.debian.binary-package"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY = b"{}"


@dataclass(frozen=True)
class ArchivedDeb:
    path: str  # in the sandbox
    sha256: str
    size: int
    annotations: Mapping[str, str]

    def to_json(self) -> dict:
        return {"path": self.path, "sha256": self.sha256, "size": self.size, "annotations": dict(self.annotations)}

    @classmethod
    def from_json(cls, value: Mapping) -> "ArchivedDeb":
        return cls(value["path"], value["sha256"], int(value["size"]), dict(value["annotations"]))


@dataclass(frozen=True)
class ArchiveSpec:
    archive: str
    tag: str
    annotations: Mapping[str, str]  # of the manifest
    debs: Tuple[ArchivedDeb, ...]
    timeout: float

    def to_json(self) -> dict:
        return {"archive": self.archive, "tag": self.tag, "annotations": dict(self.annotations),
                "debs": [d.to_json() for d in self.debs], "timeout": self.timeout}

    @classmethod
    def from_json(cls, value: Mapping) -> "ArchiveSpec":
        return cls(value["archive"], value["tag"], dict(value["annotations"]),
                   tuple(ArchivedDeb.from_json(d) for d in value["debs"]), float(value["timeout"]))


def artifact_manifest(spec: ArchiveSpec) -> bytes:
    layers = [{"mediaType": DEB_MEDIA_TYPE, "digest": f"sha256:{d.sha256}", "size": d.size,
               "annotations": dict(sorted(d.annotations.items()))}
              for d in sorted(spec.debs, key=lambda d: (d.annotations.get("org.debian.package", ""), d.sha256))]
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST_MEDIA_TYPE, "artifactType": ARTIFACT_TYPE,
                "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": f"sha256:{hashlib.sha256(EMPTY).hexdigest()}",
                           "size": len(EMPTY)},
                "layers": layers, "annotations": dict(sorted(spec.annotations.items()))}
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()


def push_all(spec: ArchiveSpec, client: RegistryClient) -> dict:
    pushed = skipped = pushed_bytes = 0
    blobs = [(hashlib.sha256(EMPTY).hexdigest(), None, len(EMPTY))] + [(d.sha256, d, d.size) for d in spec.debs]
    for sha256, deb, size in blobs:
        try:
            if client.has_blob(sha256):
                skipped += deb is not None  # the config blob is not counted
                continue
            if deb is None:
                client.push_blob(sha256, EMPTY, size)
            else:
                check_file(deb)
                with open(deb.path, "rb") as body:
                    client.push_blob(sha256, body, size)
            pushed += deb is not None
            pushed_bytes += size if deb else 0
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            what = (f"{deb.annotations.get('org.debian.package')} {deb.annotations.get('org.debian.version')}"
                    if deb else "the empty config blob")
            raise RegistryError(f"pushing {what} (sha256:{sha256}) to {spec.archive} failed: {explain(e)}") from None
    manifest = artifact_manifest(spec)
    try:
        digest = client.put_manifest(spec.tag, manifest, MANIFEST_MEDIA_TYPE)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        raise RegistryError(f"pushing the manifest {spec.archive}:{spec.tag} failed: {explain(e)}") from None
    return {"pushed": pushed, "skipped": skipped, "bytes_pushed": pushed_bytes, "tag": spec.tag,
            "manifest": digest or f"sha256:{hashlib.sha256(manifest).hexdigest()}", "debs": len(spec.debs)}


def check_file(deb: ArchivedDeb) -> None:
    if os.path.getsize(deb.path) != deb.size:
        raise OSError(f"{deb.path} is not {deb.size} bytes")


def explain(error: Exception) -> str:
    if isinstance(error, urllib.error.HTTPError):
        body = error.read(300).decode("utf-8", "replace").strip()
        hint = (" (credentials missing or refused: log in with `skopeo login` or `podman login`, or set "
                "REGISTRY_AUTH_FILE)" if error.code in (401, 403) else "")
        return f"HTTP {error.code} {error.reason}{hint}: {body}"
    if isinstance(error, urllib.error.URLError):
        return (f"cannot reach the registry ({error.reason}); check that it runs and that [debian].archive "
                "names the right host and port")
    return str(error) or type(error).__name__


def main(argv) -> int:
    spec_path, = argv
    spec = ArchiveSpec.from_json(load_spec(spec_path))
    try:
        summary = push_all(spec, RegistryClient(parse_archive(spec.archive), spec.timeout))
    except RegistryError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
