"""Typed specs of the PyPI source's actions, shared by the rules that write them and the actions.

As oci's specs: `from_json` takes every key without a default, so a spec that lacks one stops
the action with the key's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Tuple

from oci.actions.pycompile import Compiler
from oci.actions.specs import LayerSettings


@dataclass(frozen=True)
class LockedWheel:
    """One wheel of the lock: the distribution it installs, where it comes from and its hash."""

    name: str
    version: str
    url: str
    sha256: str  # hex

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1].split("#", 1)[0]

    @property
    def sandbox_path(self) -> str:
        return f"wheels/{self.sha256}/{self.filename}"

    def to_json(self) -> dict:
        return {"name": self.name, "version": self.version, "url": self.url, "sha256": self.sha256}

    @classmethod
    def from_json(cls, value: Mapping) -> "LockedWheel":
        return cls(value["name"], value["version"], value["url"], value["sha256"])


@dataclass(frozen=True)
class WheelFetchSpec:
    wheels: Tuple[LockedWheel, ...]
    cache_dir: str  # "" for no cache
    timeout: int

    def to_json(self) -> dict:
        return {"wheels": [w.to_json() for w in self.wheels], "cache_dir": self.cache_dir, "timeout": self.timeout}

    @classmethod
    def from_json(cls, value: Mapping) -> "WheelFetchSpec":
        return cls(tuple(LockedWheel.from_json(w) for w in value["wheels"]), value["cache_dir"], int(value["timeout"]))


@dataclass(frozen=True)
class VenvLayerSpec:
    """One image's venv layer: its wheels over the parent chain's venv."""

    image: str  # address, for messages
    wheels: Tuple[LockedWheel, ...]  # in sandbox at `sandbox_path`
    venv: str  # image path without the leading "/": "var/lib/kolla/venv"
    interpreter: str  # the image's python, "/usr/bin/python3.11"
    python_version: str  # "3.11"
    create_venv: bool  # no venv in the parent chain: write pyvenv.cfg and bin/python*
    chain_records: Tuple[str, ...]  # sandbox paths of the parent chain's venv records
    debian_provides: str  # sandbox path of debian's provides.json, "" when the chain has no Debian packages
    settings: LayerSettings
    compiler: Optional[Compiler] = None  # `compile_python`: the build machine's Python of `python_version`

    def to_json(self) -> dict:
        return {"image": self.image, "wheels": [w.to_json() for w in self.wheels], "venv": self.venv,
                "interpreter": self.interpreter, "python_version": self.python_version,
                "create_venv": self.create_venv, "chain_records": list(self.chain_records),
                "debian_provides": self.debian_provides, "settings": self.settings.to_json(),
                "compiler": self.compiler.to_json() if self.compiler else None}

    @classmethod
    def from_json(cls, value: Mapping) -> "VenvLayerSpec":
        compiler = Compiler.from_json(value["compiler"]) if value["compiler"] is not None else None
        return cls(value["image"], tuple(LockedWheel.from_json(w) for w in value["wheels"]), value["venv"],
                   value["interpreter"], value["python_version"], bool(value["create_venv"]),
                   tuple(value["chain_records"]), value["debian_provides"], LayerSettings.from_json(value["settings"]),
                   compiler)
