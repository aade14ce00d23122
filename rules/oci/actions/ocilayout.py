"""OCI image config, manifest and index, as canonical JSON.

Pure functions from plain data to bytes, so the same inputs give the same
digests: sorted keys, no insignificant whitespace, a fixed `created`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Mapping, Sequence

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"
BASE_DIGEST = "org.opencontainers.image.base.digest"
BASE_NAME = "org.opencontainers.image.base.name"
OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'


def canonical_json(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def file_sha256(path: str) -> str:
    """The hex sha256 of a file, read in 1 MiB pieces: a fetched .deb or wheel checked against its lock."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def epoch_to_rfc3339(epoch: int) -> str:
    # Computed by hand: time.strftime would depend on the host's TZ handling.
    days, seconds = divmod(int(epoch), 86400)
    year, month, day = civil_from_days(days)
    hour, rest = divmod(seconds, 3600)
    minute, second = divmod(rest, 60)
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}Z"


def civil_from_days(days: int) -> tuple[int, int, int]:
    """Proleptic Gregorian date of a day count since 1970-01-01."""
    days += 719468
    era = days // 146097
    day_of_era = days - era * 146097
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36524 - day_of_era // 146096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    month_index = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * month_index + 2) // 5 + 1
    month = month_index + 3 if month_index < 10 else month_index - 9
    year = year_of_era + era * 400 + (1 if month <= 2 else 0)
    return year, month, day


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        out = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


@dataclass(frozen=True)
class Blob:
    descriptor: Descriptor
    data: bytes

    @classmethod
    def of(cls, media_type: str, value, annotations: Mapping[str, str] | None = None) -> "Blob":
        data = canonical_json(value)
        return cls(Descriptor(media_type, sha256_digest(data), len(data), dict(annotations or {})), data)


@dataclass(frozen=True)
class ImageSettings:
    """What an image target sets on top of its parent's config; None keeps the parent's."""

    env: Mapping[str, str] = field(default_factory=dict)
    entrypoint: Sequence[str] | None = None
    cmd: Sequence[str] | None = None
    workdir: str | None = None
    user: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    exposed_ports: Sequence[str] = ()

    def to_json(self) -> dict:
        return {"env": dict(self.env), "entrypoint": optional_list(self.entrypoint), "cmd": optional_list(self.cmd),
                "workdir": self.workdir, "user": self.user, "labels": dict(self.labels),
                "exposed_ports": list(self.exposed_ports)}

    @classmethod
    def from_json(cls, value: Mapping) -> "ImageSettings":
        return cls(env=dict(value["env"]), entrypoint=optional_list(value["entrypoint"]),
                   cmd=optional_list(value["cmd"]), workdir=value["workdir"], user=value["user"],
                   labels=dict(value["labels"]), exposed_ports=tuple(value["exposed_ports"]))


def optional_list(values: Sequence[str] | None) -> list | None:
    return None if values is None else list(values)


def merge_env(parent_env: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """Parent's KEY=VALUE list with overridden keys replaced in place and new keys appended, sorted."""
    merged = dict(item.split("=", 1) if "=" in item else (item, "") for item in parent_env)
    merged.update(env)
    ordered = [k for k in (item.split("=", 1)[0] for item in parent_env) if k in merged]
    ordered += sorted(k for k in env if k not in ordered)
    return [f"{k}={merged[k]}" for k in ordered]


def normalize_port(port: str) -> str:
    number, _, protocol = str(port).partition("/")
    if not number.isdigit() or not 0 < int(number) < 65536 or protocol not in ("", "tcp", "udp", "sctp"):
        raise ValueError(f"exposed port {port!r} is not of the form PORT[/tcp|/udp|/sctp]")
    return f"{int(number)}/{protocol or 'tcp'}"


def child_runtime_config(parent: Mapping, settings: ImageSettings) -> dict:
    """The `config` section of an image: the parent's, overridden the way a Dockerfile would."""
    config = dict(parent)
    env = merge_env(config.get("Env") or [], settings.env)
    if env:
        config["Env"] = env
    if settings.entrypoint is not None:
        config["Entrypoint"] = list(settings.entrypoint)
        config.pop("Cmd", None)  # a new entrypoint drops the inherited command, as Docker does
    if settings.cmd is not None:
        config["Cmd"] = list(settings.cmd)
    if settings.workdir is not None:
        config["WorkingDir"] = settings.workdir
    if settings.user is not None:
        config["User"] = settings.user
    labels = {**(config.get("Labels") or {}), **settings.labels}
    if labels:
        config["Labels"] = labels
    ports = {**(config.get("ExposedPorts") or {}), **{normalize_port(p): {} for p in settings.exposed_ports}}
    if ports:
        config["ExposedPorts"] = ports
    return {k: v for k, v in config.items() if v not in (None, [], {})}


def image_config(parent_config: Mapping | None, settings: ImageSettings, diff_ids: Sequence[str],
                 history: Sequence[Mapping], created: str, architecture: str, os_name: str = "linux") -> dict:
    parent_config = parent_config or {}
    parent_diff_ids = list((parent_config.get("rootfs") or {}).get("diff_ids") or [])
    config = {
        "architecture": architecture,
        "os": os_name,
        "created": created,
        "config": child_runtime_config(parent_config.get("config") or {}, settings),
        "rootfs": {"type": "layers", "diff_ids": parent_diff_ids + list(diff_ids)},
        "history": list(parent_config.get("history") or []) + list(history),
    }
    if parent_config and parent_config.get("architecture") != architecture:
        raise ValueError(f"parent image is {parent_config.get('architecture')}, this image is {architecture}")
    return config


def image_manifest(config: Descriptor, layers: Sequence[Descriptor], annotations: Mapping[str, str]) -> dict:
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": config.to_json(),
        "layers": [layer.to_json() for layer in layers],
    }
    if annotations:
        manifest["annotations"] = dict(annotations)
    return manifest


def image_index(manifest: Descriptor, tags: Sequence[str]) -> dict:
    """index.json of a layout: one entry per tag, all pointing at the same manifest."""
    entries = [
        Descriptor(manifest.media_type, manifest.digest, manifest.size, {REF_NAME: tag}).to_json()
        for tag in sorted(set(tags))
    ] or [manifest.to_json()]
    return {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": entries}


def blob_path(root: str, digest: str) -> str:
    algorithm, _, hex_digest = digest.partition(":")
    return os.path.join(root, "blobs", algorithm, hex_digest)


def write_blob(root: str, blob: Blob) -> None:
    path = blob_path(root, blob.descriptor.digest)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(blob.data)
