"""Push one tag of an OCI image layout to a registry with skopeo, and explain failures.

    python -m oci.actions.push_image --skopeo PATH --layout DIR --tag TAG [--source-tag TAG] \
        --registry HOST[:PORT] --repository NAME [--insecure] [--retry-times N] [--immutable-tag TAG]

The manifest (or, for a multi-platform image, the image index and every platform's manifest)
goes up byte for byte (`--preserve-digests`), so the digest in the registry is the one
`pants package` printed; the pushed digest is checked against the layout's.  skopeo skips
blobs the registry already has, which makes a second publish cheap.

`--source-tag` names the image in the layout when the pushed tag is not one of the layout's
(the immutable tag).  With `--immutable-tag`, the registry is asked first what that tag names:
another digest refuses the push, whichever tag it is for (a published version is never
replaced, and the floating tags never move to an image that contradicts it); the same digest
makes a push of the immutable tag itself a no-op.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Sequence

from .ocilayout import INDEX_MEDIA_TYPE

# (pattern in skopeo's error, explanation); the first match wins.
DIAGNOSES = (
    (re.compile(r"connection refused|no such host|no route to host|network is unreachable|i/o timeout|"
                r"connection reset|server misbehaving|context deadline exceeded"),
     "cannot reach the registry {registry}. Check that it is running and that `{registry}` is the right "
     "host and port in the `registries` field."),
    (re.compile(r"server gave HTTP response to HTTPS client"),
     "the registry {registry} speaks plain HTTP. If that is intended (a test registry), add it to "
     "[oci-publish].insecure_registries."),
    (re.compile(r"x509:|certificate signed by unknown authority|tls: "),
     "the TLS certificate of {registry} is not trusted. Put its CA certificate in "
     "/etc/containers/certs.d/{registry}/ca.crt, or for a test registry add it to [oci-publish].insecure_registries."),
    (re.compile(r"unauthorized|authentication required|denied|status code 401|status code 403|"
                r"invalid username/password"),
     "the registry {registry} refused the push: missing or wrong credentials. Log in with "
     "`skopeo login {registry}` (or `podman login`), or point REGISTRY_AUTH_FILE at an auth.json; "
     "[oci-publish].env_vars lists the variables that reach skopeo."),
    (re.compile(r"manifest invalid|unsupported manifest|manifest unknown|cannot preserve digests|"
                r"would change the manifest"),
     "the registry {registry} does not accept this image's OCI manifest unchanged, and publishing never "
     "rewrites it (the published digest must be the built one)."),
)


class PushError(Exception):
    pass


@dataclass(frozen=True)
class PushTarget:
    skopeo: str
    layout: str
    tag: str
    registry: str
    repository: str
    insecure: bool
    retry_times: int
    source_tag: str = ""
    immutable_tag: str = ""

    @property
    def reference(self) -> str:
        return f"{self.registry}/{self.repository}:{self.tag}"

    @property
    def layout_tag(self) -> str:
        return self.source_tag or self.tag

    def inspect_argv(self, tag: str) -> list[str]:
        tls = ["--tls-verify=false"] if self.insecure else []
        return [self.skopeo, "inspect", "--raw", f"--retry-times={self.retry_times}", *tls,
                f"docker://{self.registry}/{self.repository}:{tag}"]

    def skopeo_argv(self, digestfile: str, all_platforms: bool) -> list[str]:
        tls = ["--dest-tls-verify=false"] if self.insecure else []
        # Without --all skopeo would push only the host's platform of a multi-platform image.
        platforms = ["--all"] if all_platforms else []
        return [
            self.skopeo, "copy", "--preserve-digests", f"--retry-times={self.retry_times}",
            f"--digestfile={digestfile}", *tls, *platforms,
            f"oci:{self.layout}:{self.layout_tag}", f"docker://{self.reference}",
        ]


@dataclass(frozen=True)
class Tagged:
    """What a tag of the layout points at: one image manifest, or an index over platforms."""

    digest: str
    is_index: bool


def tagged(layout: str, tag: str) -> Tagged:
    with open(os.path.join(layout, "index.json"), "rb") as f:
        index = json.load(f)
    for descriptor in index.get("manifests", []):
        if descriptor.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            return Tagged(descriptor["digest"], descriptor.get("mediaType") == INDEX_MEDIA_TYPE)
    raise PushError(f"the layout {layout} has no image tagged {tag!r}")


def diagnose(stderr: str, registry: str) -> str:
    for pattern, explanation in DIAGNOSES:
        if pattern.search(stderr):
            return explanation.format(registry=registry)
    return f"skopeo could not push to {registry}; its message is above."


def last_error_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


NOT_FOUND = re.compile(r"manifest unknown|not found|name unknown|no such manifest", re.IGNORECASE)


def registry_digest(target: PushTarget, tag: str) -> str | None:
    """The digest `tag` names in the registry (sha256 of the raw manifest), or None when it is absent."""
    result = subprocess.run(target.inspect_argv(tag), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if result.returncode == 0:
        return "sha256:" + hashlib.sha256(result.stdout).hexdigest()
    stderr = result.stderr.decode("utf-8", "replace")
    if NOT_FOUND.search(stderr):
        return None
    raise PushError(f"{diagnose(stderr, target.registry)}\n  skopeo: {last_error_line(stderr)}")


def check_immutable_tag(target: PushTarget, expected: Tagged) -> bool:
    """True when the immutable tag already names this image (nothing to push for it); raise when another."""
    published = registry_digest(target, target.immutable_tag)
    if published is None or published == expected.digest:
        return published is not None
    raise PushError(
        f"the immutable tag {target.registry}/{target.repository}:{target.immutable_tag} already names {published}, "
        f"and this image is {expected.digest}. Published tags are never overwritten: build from the lock that tag "
        "was made from, or publish under a new immutable tag (a refreshed lock gives one)."
    )


def push(target: PushTarget) -> str:
    """Push and return the pushed manifest digest; raise PushError with an explanation on failure."""
    expected = tagged(target.layout, target.layout_tag)
    if target.immutable_tag and check_immutable_tag(target, expected) and target.tag == target.immutable_tag:
        return expected.digest
    with tempfile.TemporaryDirectory() as tmp:
        digestfile = os.path.join(tmp, "digest")
        result = subprocess.run(target.skopeo_argv(digestfile, expected.is_index), stderr=subprocess.PIPE, text=True)
        if result.returncode != 0:
            raise PushError(
                f"{diagnose(result.stderr, target.registry)}\n  skopeo: {last_error_line(result.stderr)}"
            )
        with open(digestfile) as f:
            pushed = f.read().strip()
    if pushed != expected.digest:
        raise PushError(f"the registry stored manifest {pushed}, but the layout's is {expected.digest}")
    return pushed


def parse_args(argv: Sequence[str]) -> PushTarget:
    parser = argparse.ArgumentParser(prog="push_image")
    parser.add_argument("--skopeo", required=True)
    parser.add_argument("--layout", required=True)
    parser.add_argument("--tag", required=True)
    parser.add_argument("--registry", required=True)
    parser.add_argument("--repository", required=True)
    parser.add_argument("--insecure", action="store_true")
    parser.add_argument("--retry-times", type=int, default=0)
    parser.add_argument("--source-tag", default="")
    parser.add_argument("--immutable-tag", default="")
    args = parser.parse_args(argv)
    return PushTarget(args.skopeo, args.layout, args.tag, args.registry, args.repository, args.insecure,
                      args.retry_times, args.source_tag, args.immutable_tag)


def main(argv: Sequence[str]) -> int:
    target = parse_args(argv)
    try:
        digest = push(target)
    except PushError as e:
        print(f"error: publishing {target.reference} failed: {e}", file=sys.stderr)
        return 1
    print(f"Pushed {target.reference}@{digest}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
