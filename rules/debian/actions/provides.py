"""What an image's Debian packages provide to other content sources: `python -m debian.actions.provides spec.json`.

The narrow interface other sources read instead of packages.json: the shared-library names the
chain's packages install (each shared object's SONAME, and its file name, as ldconfig links
both), which of the spec's paths a package installs, and the top-level Python modules of
`usr/lib/python3/dist-packages` by package. Reads `packages/*.json` of the chain; writes
`provides.json` ({sonames, present_paths, python_modules: {module: package}}).
"""

from __future__ import annotations

import glob
import json
import posixpath
import sys
from typing import List, Sequence

from oci.actions.specs import load_spec

PROVIDES_JSON = "provides.json"
DIST_PACKAGES = "usr/lib/python3/dist-packages/"


def python_module(path: str) -> str:
    """The importable top-level name of a dist-packages path ('' for metadata and other files)."""
    top = path[len(DIST_PACKAGES):].split("/", 1)[0]
    if top.endswith((".dist-info", ".egg-info", ".pth")) or top.startswith(("_", ".")) or not top:
        return ""
    return top.split(".", 1)[0] if "/" not in path[len(DIST_PACKAGES):] else top


def provides(packages: Sequence[dict], paths: Sequence[str]) -> dict:
    sonames: set = set()
    present: set = set()
    modules: dict = {}
    wanted = {p.lstrip("/") for p in paths}
    for package in packages:
        for record in package.get("shared_objects") or ():
            sonames.add(posixpath.basename(record["path"]))
            if record.get("soname"):
                sonames.add(record["soname"])
        for file in package["files"]:
            if file["path"] in wanted:
                present.add("/" + file["path"])
            if file["path"].startswith(DIST_PACKAGES) and python_module(file["path"]):
                modules.setdefault(python_module(file["path"]), package["name"])
    return {"sonames": sorted(sonames), "present_paths": sorted(present),
            "python_modules": dict(sorted(modules.items()))}


def read_packages(metadata_dir: str) -> List[dict]:
    packages = []
    for path in sorted(glob.glob(f"{metadata_dir}/packages/*.json")):
        with open(path, encoding="utf-8") as f:
            packages.extend(json.load(f)["packages"])
    return packages


def main(argv: Sequence[str]) -> int:
    spec_path, = argv
    spec = load_spec(spec_path)
    result = provides(read_packages(spec["metadata_dir"]), spec["paths"])
    with open(PROVIDES_JSON, "w", encoding="utf-8") as f:
        json.dump(result, f, sort_keys=True, separators=(",", ":"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
