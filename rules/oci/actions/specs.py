"""Typed specs: what a rule hands to an action, as one JSON file per Process.

The rule builds a spec and writes `spec.to_json()`; the action reads it back with
`Spec.from_json()`. Both sides share the class, and `from_json` takes every key without a
default, so a spec that lacks one stops the action with the key's name instead of building
something else. Layer descriptors have one type here, used by the writer, the rules and the
assembly alike; digests are always `sha256:<hex>` strings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Tuple

from .ocilayout import Descriptor, ImageSettings


def dump_spec(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True).encode()


def load_spec(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@dataclass(frozen=True)
class LayerSettings:
    """How a layer is written: file mtimes, gzip level and its line in the image history."""

    mtime: int
    level: int
    created_by: str

    def to_json(self) -> dict:
        return {"mtime": self.mtime, "level": self.level, "created_by": self.created_by}

    @classmethod
    def from_json(cls, value: Mapping) -> "LayerSettings":
        return cls(int(value["mtime"]), int(value["level"]), str(value["created_by"]))


@dataclass(frozen=True)
class LayerDescriptor:
    media_type: str
    digest: str  # of the compressed blob
    size: int
    diff_id: str  # of the uncompressed tar
    created_by: str

    def to_json(self) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, "diff_id": self.diff_id,
                "created_by": self.created_by}

    @classmethod
    def from_json(cls, value: Mapping) -> "LayerDescriptor":
        return cls(value["mediaType"], value["digest"], int(value["size"]), value["diff_id"], value["created_by"])

    def blob_descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, self.size)


@dataclass(frozen=True)
class FileEntrySpec:
    """A repository file in a files layer."""

    path: str  # image path without the leading "/"
    mode: int
    uid: int
    gid: int
    source: str  # path in the sandbox

    def to_json(self) -> dict:
        return {"path": self.path, "mode": self.mode, "uid": self.uid, "gid": self.gid, "source": self.source}

    @classmethod
    def from_json(cls, value: Mapping) -> "FileEntrySpec":
        return cls(value["path"], int(value["mode"]), int(value["uid"]), int(value["gid"]), value["source"])


@dataclass(frozen=True)
class FilesLayerSpec:
    entries: Tuple[FileEntrySpec, ...]
    settings: LayerSettings

    def to_json(self) -> dict:
        return {"entries": [e.to_json() for e in self.entries], "settings": self.settings.to_json()}

    @classmethod
    def from_json(cls, value: Mapping) -> "FilesLayerSpec":
        return cls(tuple(FileEntrySpec.from_json(e) for e in value["entries"]),
                   LayerSettings.from_json(value["settings"]))


@dataclass(frozen=True)
class BuiltImageJson:
    """`image.json`: what an assembled image tells the images built on it."""

    name: str
    config: Mapping[str, Any]
    manifest: Descriptor
    layers: Tuple[LayerDescriptor, ...]  # the parents' included

    def to_json(self) -> dict:
        return {"name": self.name, "config": self.config, "manifest": self.manifest.to_json(),
                "layers": [layer.to_json() for layer in self.layers]}

    @classmethod
    def from_json(cls, value: Mapping) -> "BuiltImageJson":
        manifest = value["manifest"]
        return cls(value["name"], value["config"], Descriptor(manifest["mediaType"], manifest["digest"],
                                                              int(manifest["size"])),
                   tuple(LayerDescriptor.from_json(layer) for layer in value["layers"]))


@dataclass(frozen=True)
class ImageSpec:
    name: str
    parent: Optional[BuiltImageJson]
    layers: Tuple[LayerDescriptor, ...]  # this image's own, in order
    settings: ImageSettings
    created_epoch: int
    architecture: str
    tags: Tuple[str, ...]
    annotations: Mapping[str, str]

    def to_json(self) -> dict:
        return {"name": self.name, "parent": self.parent.to_json() if self.parent else None,
                "layers": [layer.to_json() for layer in self.layers], "settings": self.settings.to_json(),
                "created_epoch": self.created_epoch, "architecture": self.architecture, "tags": list(self.tags),
                "annotations": dict(self.annotations)}

    @classmethod
    def from_json(cls, value: Mapping) -> "ImageSpec":
        parent = value["parent"]
        return cls(value["name"], BuiltImageJson.from_json(parent) if parent is not None else None,
                   tuple(LayerDescriptor.from_json(layer) for layer in value["layers"]),
                   ImageSettings.from_json(value["settings"]), int(value["created_epoch"]), value["architecture"],
                   tuple(value["tags"]), dict(value["annotations"]))
