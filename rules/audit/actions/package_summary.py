"""Summarize one package layer's metadata: `python -m audit.actions.package_summary packages/<hex>.json`.

The layer metadata (`packages.json` of build_package_layer) lists every file of
every package, which is large; audits (SBOM, policy, size reports) need only a
few facts per package.  This prints them as canonical JSON on stdout, so the
summary is cached per layer and shared by every image holding the layer:

    {"packages": [{"name", "version", "architecture", "source", "dpkg_name", "deb_sha256",
                   "installed_bytes", "files", "setuid": [path, ...],
                   "script_effects": [[script, command, path], ...]}]}

`installed_bytes` counts each regular file once (hardlinks add no bytes);
`setuid` lists files and hardlinks with the setuid or setgid bit; `script_effects` the
maintainer-script effects no rule applied (to match against the accepted ones).
"""

from __future__ import annotations

import json
import sys
from typing import Iterable, List

SETID_BITS = 0o6000


def installed_bytes(files: Iterable[dict]) -> int:
    return sum(int(f.get("size", 0)) for f in files if f.get("kind") == "file")


def setid_paths(files: Iterable[dict]) -> List[str]:
    return sorted("/" + f["path"] for f in files
                  if f.get("kind") in ("file", "hardlink") and int(f.get("mode", 0)) & SETID_BITS)


def summarize_package(package: dict) -> dict:
    files = package.get("files") or []
    return {
        "name": package["name"],
        "version": package["version"],
        "architecture": package.get("architecture", ""),
        "source": package.get("source", package["name"]),
        "dpkg_name": package.get("dpkg_name", package["name"]),
        "deb_sha256": (package.get("deb") or {}).get("sha256", ""),
        "installed_bytes": installed_bytes(files),
        "files": sum(1 for f in files if f.get("kind") != "dir"),
        "setuid": setid_paths(files),
        "script_effects": unapplied_effects(package.get("script_effects") or {}),
    }


def unapplied_effects(effects: dict) -> List[List[str]]:
    found = {(e["script"], e["command"], e["path"]) for e in effects.get("unapplied") or ()}
    found |= {(e["script"], e["command"], e["path"]) for e in effects.get("by_kind") or ()}
    return [list(key) for key in sorted(found)]


def summarize(layer_metadata: dict) -> dict:
    packages = [summarize_package(p) for p in layer_metadata.get("packages") or []]
    return {"packages": sorted(packages, key=lambda p: (p["name"], p["architecture"]))}


def main(argv: List[str]) -> int:
    path, = argv
    with open(path, encoding="utf-8") as f:
        summary = summarize(json.load(f))
    sys.stdout.write(json.dumps(summary, sort_keys=True, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
