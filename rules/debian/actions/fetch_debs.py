"""Fetch the .debs of a lock, in parallel, from an ordered list of sources: `python -m debian.actions.fetch_debs spec.json`.

The spec is a `FetchSpec`: the locked .debs (name, version, sha256, size, pool path) and the
sources to try, in order:

- `cache`: the local .deb cache, `<dir>/<sha256>.deb`;
- `mirror`: the apt source the lock names, `<url>/<pool path>`;
- `archive`: an OCI registry holding every .deb as a blob, `/v2/<repo>/blobs/sha256:<hex>`
  (filled by `pants archive-debs`);
- `snapshot`: a snapshot.debian.org-style URL, `<template with {archive} and {timestamp}>/<pool path>`,
  `{timestamp}` being the time the lock was generated.

Decisions:
- Every byte is checked against the lock's sha256 and size, whatever the source; a download
  stops reading one byte past the locked size. A source that serves other bytes is reported and
  the next one is tried.
- A cached .deb that does not match is moved aside to `<dir>/damaged/` (named in the report) and
  fetched again: a damaged cache heals instead of failing every build.
- A failure that may pass (a DNS hiccup, a reset or cut connection, a timeout, HTTP 5xx) is
  tried again twice, after 0.5 s and 1.5 s, before the next source.
- Downloads run in a bounded thread pool (`parallelism`), each written to a temporary file and
  renamed into the cache (a reader never sees half a file) and into `debs/<sha256>.deb`. Each
  thread keeps its connection to a mirror open, and each host is looked up once
  (oci/actions/httpget.py): that is what made a cold fetch as fast as apt's.
- The outputs are `debs/<sha256>.deb` and `fetch.json`: how many .debs each source served, and the
  cache files moved aside. As a Pants Process this is keyed by the lock's hashes, so its output is
  content-addressed by construction.
- A .deb no source has fails the action with one message per package: name, version, every URL
  tried with its outcome, and what to do. Exit status 1, no traceback.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import http.client
import json
import os
import shutil
import socket
import sys
import threading
import time
import urllib.error
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from oci.actions.httpget import HttpGetter
from oci.actions.ocilayout import file_sha256
from oci.actions.specs import load_spec

from .registry import RegistryClient, RegistryError, parse_archive

DEBS_DIR = "debs"
REPORT = "fetch.json"
CHUNK = 1024 * 1024
KINDS = ("cache", "mirror", "archive", "snapshot")
ATTEMPTS = 3  # per URL, for failures that may pass: DNS hiccups, resets, timeouts, cut downloads, 5xx
RETRY_DELAY = 0.5  # seconds before the second try; three times that before the third


@dataclass(frozen=True)
class FetchDeb:
    name: str
    version: str
    architecture: str
    sha256: str
    size: int
    path: str  # pool path, relative to the source's URL
    source: str  # the apt source's name in sources.yaml

    @property
    def filename(self) -> str:
        return f"{DEBS_DIR}/{self.sha256}.deb"

    def to_json(self) -> dict:
        return {"name": self.name, "version": self.version, "architecture": self.architecture,
                "sha256": self.sha256, "size": self.size, "path": self.path, "source": self.source}

    @classmethod
    def from_json(cls, value: Mapping) -> "FetchDeb":
        return cls(value["name"], value["version"], value["architecture"], value["sha256"], int(value["size"]),
                   value["path"], value["source"])


@dataclass(frozen=True)
class FetchSpec:
    debs: Tuple[FetchDeb, ...]
    order: Tuple[str, ...]  # of KINDS
    cache_dir: str  # "" for no cache
    mirrors: Mapping[str, str]  # apt source name -> URL
    archive: str  # "" or [http://|https://]host[:port]/repo
    snapshot_url: str  # "" or a template with {archive} and {timestamp}
    snapshot_timestamp: str  # "" when the lock has none
    parallelism: int
    timeout: float

    def to_json(self) -> dict:
        return {"debs": [d.to_json() for d in self.debs], "order": list(self.order), "cache_dir": self.cache_dir,
                "mirrors": dict(self.mirrors), "archive": self.archive, "snapshot_url": self.snapshot_url,
                "snapshot_timestamp": self.snapshot_timestamp, "parallelism": self.parallelism,
                "timeout": self.timeout}

    @classmethod
    def from_json(cls, value: Mapping) -> "FetchSpec":
        return cls(tuple(FetchDeb.from_json(d) for d in value["debs"]), tuple(value["order"]), value["cache_dir"],
                   dict(value["mirrors"]), value["archive"], value["snapshot_url"], value["snapshot_timestamp"],
                   int(value["parallelism"]), float(value["timeout"]))


@dataclass
class Outcome:
    deb: FetchDeb
    served_by: Optional[str] = None  # a source label, e.g. "cache" or "mirror http://..."
    tried: List[Tuple[str, str]] = field(default_factory=list)  # (where, what happened)
    moved_aside: Optional[str] = None


class Mismatch(Exception):
    pass


def copy_checked(stream, destination: str, deb: FetchDeb) -> None:
    """Copy at most size + 1 bytes to `destination` (via a temporary file); Mismatch unless they are the lock's."""
    digest, size = hashlib.sha256(), 0
    tmp = f"{destination}.part-{os.getpid()}-{id(stream)}"
    try:
        with open(tmp, "wb") as out:
            while size <= deb.size:
                chunk = stream.read(min(CHUNK, deb.size + 1 - size))
                if not chunk:
                    break
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        check_bytes(deb, size, digest.hexdigest())
        os.replace(tmp, destination)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def check_bytes(deb: FetchDeb, size: int, sha256: str) -> None:
    if size < deb.size:
        raise Mismatch(f"truncated: {size} of {deb.size} bytes")
    if size > deb.size:
        raise Mismatch(f"more than the locked {deb.size} bytes")
    if sha256 != deb.sha256:
        raise Mismatch(f"sha256 {sha256}, the lock has {deb.sha256}")


class Fetcher:
    """Tries each source in order for one .deb; the cache is read first and filled after a download."""

    def __init__(self, spec: FetchSpec, out_dir: str):
        self.spec = spec
        self.out_dir = out_dir
        self.registry = RegistryClient(parse_archive(spec.archive), spec.timeout) if spec.archive else None
        self.http = HttpGetter(spec.timeout)

    def fetch(self, deb: FetchDeb) -> Outcome:
        outcome = Outcome(deb)
        target = os.path.join(self.out_dir, deb.filename)
        for kind in self.spec.order:
            if kind == "cache":
                if self.from_cache(deb, target, outcome):
                    outcome.served_by = "cache"
                    return outcome
                continue
            for label, url in self.urls(kind, deb):
                error = self.download_with_retries(url, deb, target, label)
                if error:
                    outcome.tried.append((url, error))
                    continue
                outcome.served_by = label
                self.keep_in_cache(target, deb)
                return outcome
        return outcome

    def download_with_retries(self, url: str, deb: FetchDeb, target: str, label: str) -> Optional[str]:
        """None once the file is in place, else what went wrong; transient failures are tried again."""
        for attempt in range(ATTEMPTS):
            try:
                self.download(url, deb, target, label)
                return None
            except (Mismatch, OSError, http.client.HTTPException, RegistryError) as e:
                if not is_transient(e) or attempt == ATTEMPTS - 1:
                    return describe_error(e) + (f" (after {ATTEMPTS} tries)" if is_transient(e) else "")
                time.sleep(RETRY_DELAY * 3 ** attempt)
        return "not tried"

    def urls(self, kind: str, deb: FetchDeb) -> List[Tuple[str, str]]:
        spec = self.spec
        base = spec.mirrors.get(deb.source, "")
        if kind == "mirror":
            return [(f"mirror {base}", f"{base}/{deb.path}")] if base else []
        if kind == "archive" and self.registry:
            return [(f"archive {spec.archive}", self.registry.blob_url(deb.sha256))]
        if kind == "snapshot" and spec.snapshot_url and spec.snapshot_timestamp and base:
            prefix = spec.snapshot_url.format(archive=base.rstrip("/").rsplit("/", 1)[-1],
                                              timestamp=spec.snapshot_timestamp).rstrip("/")
            return [(f"snapshot {prefix}", f"{prefix}/{deb.path}")]
        return []

    def download(self, url: str, deb: FetchDeb, target: str, label: str) -> None:
        if label.startswith("archive") and self.registry:
            with self.registry.open_blob(deb.sha256) as response:
                copy_checked(response, target, deb)
            return
        with self.http.get(url) as response:
            copy_checked(response, target, deb)

    def cached_path(self, deb: FetchDeb) -> str:
        return os.path.join(self.spec.cache_dir, f"{deb.sha256}.deb")

    def from_cache(self, deb: FetchDeb, target: str, outcome: Outcome) -> bool:
        if not self.spec.cache_dir:
            return False
        cached = self.cached_path(deb)
        if not os.path.exists(cached):
            outcome.tried.append((cached, "not in the cache"))
            return False
        try:
            size = os.path.getsize(cached)
            check_bytes(deb, size, file_sha256(cached) if size == deb.size else "")
            place(cached, target)
            return True
        except Mismatch as e:
            outcome.moved_aside = move_aside(cached, self.spec.cache_dir)
            outcome.tried.append((cached, f"damaged ({e}); moved aside to {outcome.moved_aside}"))
        except OSError as e:  # another build moved it meanwhile, or it cannot be read: fetch it
            outcome.tried.append((cached, f"unreadable ({e})"))
        return False

    def keep_in_cache(self, source: str, deb: FetchDeb) -> None:
        if not self.spec.cache_dir:
            return
        cached = self.cached_path(deb)
        tmp = f"{cached}.tmp-{os.getpid()}-{deb.sha256[:8]}"
        try:
            os.makedirs(self.spec.cache_dir, exist_ok=True)
            shutil.copyfile(source, tmp)
            os.replace(tmp, cached)
        except OSError as e:  # a read-only cache still lets the build go on
            print(f"warning: could not keep {deb.name} {deb.version} in {self.spec.cache_dir}: {e}", file=sys.stderr)
            if os.path.exists(tmp):
                os.unlink(tmp)


def place(cached: str, target: str) -> None:
    """The cached file at `target`: a hard link when the file systems allow it, else a copy."""
    try:
        os.link(cached, target)
    except OSError:
        tmp = f"{target}.part-{os.getpid()}-{threading.get_ident()}"
        shutil.copyfile(cached, tmp)
        os.replace(tmp, target)


def move_aside(path: str, cache_dir: str) -> str:
    damaged = os.path.join(cache_dir, "damaged")
    destination = os.path.join(damaged, f"{os.path.basename(path)}.{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    try:
        os.makedirs(damaged, exist_ok=True)
        os.replace(path, destination)
    except OSError as e:  # moved by a build running at the same time, or a read-only cache
        return f"(not moved: {e})"
    return destination


def is_transient(error: Exception) -> bool:
    if isinstance(error, urllib.error.HTTPError):
        return error.code in (408, 429) or error.code >= 500
    if isinstance(error, Mismatch):
        return str(error).startswith("truncated")
    if isinstance(error, urllib.error.URLError):
        return not isinstance(error.reason, ConnectionRefusedError)  # nothing listens: trying again will not help
    return isinstance(error, (OSError, http.client.HTTPException))


def describe_error(error: Exception) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return f"unreachable ({error.reason})"
    if isinstance(error, Mismatch):
        return str(error) if str(error).startswith("truncated") else f"wrong bytes ({error})"
    if isinstance(error, http.client.IncompleteRead):
        return f"truncated: the connection closed after {len(error.partial)} bytes"
    if isinstance(error, (TimeoutError, socket.timeout)):
        return "unreachable (timed out)"
    return str(error) or type(error).__name__


def fetch_all(spec: FetchSpec, out_dir: str) -> List[Outcome]:
    os.makedirs(os.path.join(out_dir, DEBS_DIR), exist_ok=True)
    fetcher = Fetcher(spec, out_dir)
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, spec.parallelism)) as pool:
        return list(pool.map(fetcher.fetch, spec.debs))


def report(outcomes: Sequence[Outcome]) -> dict:
    served: Dict[str, int] = {}
    for outcome in outcomes:
        if outcome.served_by:
            served[outcome.served_by] = served.get(outcome.served_by, 0) + 1
    moved = [{"name": o.deb.name, "version": o.deb.version, "sha256": o.deb.sha256, "moved_to": o.moved_aside}
             for o in outcomes if o.moved_aside]
    return {"served": dict(sorted(served.items())), "moved_aside": moved, "debs": len(outcomes)}


SHOWN = 10


def failure_message(failed: Sequence[Outcome], spec: FetchSpec) -> str:
    lines = [f"{len(failed)} locked .deb(s) could not be fetched from any source (tried in the order "
             f"[debian].fetch_order = {list(spec.order)}):"]
    for outcome in failed[:SHOWN]:
        deb = outcome.deb
        lines.append(f"  {deb.name} {deb.version} ({deb.architecture}, sha256 {deb.sha256}, {deb.size} bytes):")
        lines += [f"    - {where}: {what}" for where, what in outcome.tried] or ["    - no source configured"]
    if len(failed) > SHOWN:
        lines.append(f"  ... and {len(failed) - SHOWN} more: " + ", ".join(
            f"{o.deb.name} {o.deb.version}" for o in failed[SHOWN:]))
    return "\n".join(lines + ["Fix: " + "\n     ".join(fixes(failed, spec))])


def fixes(failed: Sequence[Outcome], spec: FetchSpec) -> List[str]:
    seen = " ".join(what for outcome in failed for _, what in outcome.tried)
    found = []
    if "HTTP 404" in seen or "HTTP 410" in seen:
        found.append(
            "the mirror no longer has these versions (Debian keeps only the newest version of each package). "
            + ("Fill the archive with `pants archive-debs` while a lock is fresh; " if spec.archive else
               "Set `[debian].archive` to an OCI registry filled by `pants archive-debs` while the lock was fresh, ")
            + ("or set `[debian].snapshot_url` (e.g. \"https://snapshot.debian.org/archive/{archive}/{timestamp}\"), "
               if not spec.snapshot_url else "")
            + "or take the mirror's current versions with `pants generate-lockfiles --resolve=debian`.")
    if "unreachable" in seen or "timed out" in seen:
        found.append("a source could not be reached: check the network and the URLs in the apt sources manifest "
                     "and pants.toml; .debs already in [debian].deb_cache need no network.")
    if "wrong bytes" in seen:
        found.append("a source served other bytes than the lock pins; it was not used. If the archive really "
                     "changed, regenerate the lock (`pants generate-lockfiles --resolve=debian`); otherwise "
                     "look for a proxy rewriting downloads.")
    if "truncated" in seen:
        found.append("a download was cut short (connection lost, or the server's file is incomplete): run the "
                     "build again; what was fetched whole is in the cache already.")
    if spec.archive and ("HTTP 401" in seen or "HTTP 403" in seen):
        found.append(f"the registry {spec.archive} refused access: log in with `skopeo login` or `podman login` "
                     "(or point REGISTRY_AUTH_FILE at an auth file).")
    return found or ["add a source that has these .debs to [debian].fetch_order."]


def main(argv: Sequence[str]) -> int:
    spec_path, = argv
    spec = FetchSpec.from_json(load_spec(spec_path))
    try:
        outcomes = fetch_all(spec, ".")
    except (RegistryError, ValueError, OSError) as error:  # a source that cannot even be asked
        print(f"error: the .debs of {len(spec.debs)} packages could not be fetched: {error}", file=sys.stderr)
        return 1
    for outcome in outcomes:
        if outcome.moved_aside:
            print(f"warning: {outcome.deb.name} {outcome.deb.version}: the cached {outcome.deb.sha256}.deb did "
                  f"not match the lock; moved aside to {outcome.moved_aside} and fetched again", file=sys.stderr)
    failed = [o for o in outcomes if not o.served_by]
    if failed:
        print(f"error: {failure_message(failed, spec)}", file=sys.stderr)
        return 1
    summary = report(outcomes)
    with open(REPORT, "w", encoding="utf-8") as f:
        json.dump(summary, f, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
