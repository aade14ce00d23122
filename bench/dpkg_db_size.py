#!/usr/bin/env python3
"""What dpkg's database costs per image, from the OCI layouts `pants package ::` wrote under dist/.

    python3 bench/dpkg_db_size.py                      # table on stdout
    python3 bench/dpkg_db_size.py --json FILE          # also write the rows as JSON
    python3 bench/dpkg_db_size.py --before FILE        # add the change of each system layer against FILE

For every image: the packages its /var/lib/dpkg/status lists, the status file's bytes (raw and
gzip -6 alone), the bytes of the image's system layer (the last layer whose history says
"system files of"; tar and gzip blob), and the dpkg database files of all its layers
(var/lib/dpkg/status.d/* and info/*, raw). Layers are read, never unpacked; standard library only.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import tarfile
from typing import Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from image_sizes import blob, find_layouts, read_json  # noqa: E402

STATUS = "var/lib/dpkg/status"
DB_DIRS = ("var/lib/dpkg/status.d/", "var/lib/dpkg/info/")


def layer_members(path: str) -> Dict[str, int]:
    """Path -> size of the regular files of a layer, and the status file's bytes under the key STATUS + '!'."""
    found: Dict[str, int] = {}
    with tarfile.open(path, "r:*") as tar:
        for member in tar:
            name = member.name.lstrip("./")
            if member.isfile() and (name == STATUS or name.startswith(DB_DIRS)):
                found[name] = member.size
                if name == STATUS:
                    found[STATUS + "!"] = tar.extractfile(member).read()  # type: ignore[assignment, union-attr]
    return found


def image_row(layout: str) -> dict:
    index = read_json(os.path.join(layout, "index.json"))
    manifest = read_json(blob(layout, index["manifests"][0]["digest"]))
    config = read_json(blob(layout, manifest["config"]["digest"]))
    history = [h for h in config.get("history", []) if not h.get("empty_layer")]
    diff_ids = config["rootfs"]["diff_ids"]
    row = {"name": os.path.basename(layout.rstrip("/")), "packages": 0, "status": 0, "status_gz": 0,
           "system": 0, "system_gz": 0, "db_files": 0}
    for number, (descriptor, step) in enumerate(zip(manifest["layers"], history)):
        path = blob(layout, descriptor["digest"])
        members = layer_members(path)
        row["db_files"] += sum(size for name, size in members.items() if not name.endswith("!"))
        status: Optional[bytes] = members.get(STATUS + "!")  # type: ignore[assignment]
        if status is not None:
            row.update(status=len(status), status_gz=len(gzip.compress(status, 6, mtime=0)),
                       packages=status.count(b"\nStatus: install ok installed\n"))
        if step.get("created_by", "").startswith("system files of"):
            with gzip.open(path) as stream:
                row["system"] = sum(len(chunk) for chunk in iter(lambda: stream.read(1 << 20), b""))
            row.update(system_gz=int(descriptor["size"]), system_diff_id=diff_ids[number])
    return row


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dist", default="dist")
    parser.add_argument("--json", help="write the rows as JSON to this file")
    parser.add_argument("--before", help="rows written by --json earlier, to show what each system layer gained")
    args = parser.parse_args(argv)
    rows = [image_row(layout) for layout in find_layouts(args.dist)]
    before = {r["name"]: r for r in read_json(args.before)} if args.before else {}
    print(f"{'image':16} {'pkgs':>5} {'status B':>9} {'gz B':>7} {'system tar B':>12} {'system gz B':>11} "
          f"{'gz +B':>7} {'db files B':>10}")
    for r in rows:
        gained = r["system_gz"] - before[r["name"]]["system_gz"] if r["name"] in before else 0
        print(f"{r['name']:16} {r['packages']:5} {r['status']:9} {r['status_gz']:7} {r['system']:12} "
              f"{r['system_gz']:11} {gained:7} {r['db_files']:10}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
