"""A minimal OCI distribution client over urllib: blobs by digest, one manifest by tag.

Decisions:
- The archive is written `[http://|https://]host[:port]/repository`; without a scheme it is
  HTTPS, except for 127.0.0.1 and localhost, which speak plain HTTP (as Docker assumes).
- Credentials come from the first auth file that has the host: `REGISTRY_AUTH_FILE`,
  `$XDG_RUNTIME_DIR/containers/auth.json`, `~/.docker/config.json` (what `skopeo login`,
  `podman login` and `docker login` write). A `401` with a Bearer challenge is answered with a
  token from the realm it names (anonymous when no credentials), as registries expect.
- Blobs go up in one monolithic `PUT` each; a blob the registry has (`HEAD` 200) is skipped.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Dict, Optional


class RegistryError(Exception):
    pass


@dataclass(frozen=True)
class Archive:
    base: str  # scheme://host[:port]
    host: str
    repository: str

    def __str__(self) -> str:
        return f"{self.host}/{self.repository}"


def parse_archive(value: str) -> Archive:
    scheme, _, rest = value.rpartition("://")
    host, _, repository = rest.partition("/")
    if not host or not repository:
        raise RegistryError(f"[debian].archive is {value!r}: write it as host[:port]/repository "
                            "(e.g. registry.example.org/debian-archive or http://127.0.0.1:5000/debs)")
    if not scheme:
        scheme = "http" if host.split(":")[0] in ("127.0.0.1", "localhost") else "https"
    return Archive(f"{scheme}://{host}", host, repository.strip("/"))


def auth_files() -> list:
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    return [p for p in (os.environ.get("REGISTRY_AUTH_FILE", ""),
                        os.path.join(runtime, "containers/auth.json") if runtime else "",
                        os.path.expanduser("~/.docker/config.json")) if p]


def basic_credentials(host: str) -> Optional[str]:
    for path in auth_files():
        try:
            with open(path, encoding="utf-8") as f:
                auths = json.load(f).get("auths") or {}
        except (OSError, ValueError):
            continue
        for key in (host, f"https://{host}", f"http://{host}"):
            if auths.get(key, {}).get("auth"):
                return auths[key]["auth"]
    return None


class RegistryClient:
    def __init__(self, archive: Archive, timeout: float):
        self.archive = archive
        self.timeout = timeout
        self.basic = basic_credentials(archive.host)
        self.token: Optional[str] = None

    def blob_url(self, sha256: str) -> str:
        return f"{self.archive.base}/v2/{self.archive.repository}/blobs/sha256:{sha256}"

    def request(self, method: str, url: str, data=None, headers: Optional[Dict[str, str]] = None):
        """urlopen with credentials; one retry after answering a Bearer challenge."""
        for attempt in (0, 1):
            request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
            if self.token:
                request.add_unredirected_header("Authorization", f"Bearer {self.token}")
            elif self.basic:
                request.add_unredirected_header("Authorization", f"Basic {self.basic}")
            try:
                return urllib.request.urlopen(request, timeout=self.timeout)
            except urllib.error.HTTPError as e:
                if e.code != 401 or attempt or not self.answer_challenge(e.headers.get("WWW-Authenticate", "")):
                    raise
        raise AssertionError("unreachable")

    def answer_challenge(self, challenge: str) -> bool:
        if not challenge.lower().startswith("bearer "):
            return False
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        realm = params.pop("realm", "")
        if not realm:
            return False
        request = urllib.request.Request(f"{realm}?{urllib.parse.urlencode(params)}")
        if self.basic:
            request.add_unredirected_header("Authorization", f"Basic {self.basic}")
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            body = json.load(response)
        self.token = body.get("token") or body.get("access_token")
        return bool(self.token)

    def open_blob(self, sha256: str):
        return self.request("GET", self.blob_url(sha256))

    def has_blob(self, sha256: str) -> bool:
        try:
            with self.request("HEAD", self.blob_url(sha256)):
                return True
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return False
            raise

    def push_blob(self, sha256: str, body, size: int) -> None:
        """Upload `body` (bytes or a file opened for reading) as the blob sha256:<hex>, in one PUT."""
        start = f"{self.archive.base}/v2/{self.archive.repository}/blobs/uploads/"
        with self.request("POST", start, data=b"") as response:
            location = urllib.parse.urljoin(start, response.headers["Location"])
        separator = "&" if "?" in location else "?"
        with self.request("PUT", f"{location}{separator}digest=sha256:{sha256}", data=body,
                          headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)}):
            pass

    def put_manifest(self, tag: str, manifest: bytes, media_type: str) -> str:
        url = f"{self.archive.base}/v2/{self.archive.repository}/manifests/{tag}"
        with self.request("PUT", url, data=manifest, headers={"Content-Type": media_type}) as response:
            return response.headers.get("Docker-Content-Digest", "")
