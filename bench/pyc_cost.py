#!/usr/bin/env python3
"""What `compile_python=True` costs in bytes and saves in start-up time, on the real image set.

    ./pants package ::            # dist/ without .pyc files, as the set is built
    python3 bench/pyc_cost.py     # a copy with compile_python=True along nova-api's and keystone's chains

Builds a copy of this repository's build inputs (bench/benchlib.make_repo) in which the images of
COMPILED say `compile_python=True`, packages them there, then prints the size of
each image with and without .pyc files (bench/image_sizes.py on both dist/ directories) and the
time of `nova-manage --version` in nova-api, three runs of each inside one container per side
(podman, runc, --network=none). The same store is used, so only the bytecode layers and the
assemblies are built. Standard library only (Python 3.9+); needs podman.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as B  # noqa: E402

KEY = "pyc"
COMPILED = ("python-base", "openstack-base", "keystone", "nova-base", "nova-api")

PODMAN_RUN = ("podman", "--runtime", "runc", "run", "--rm", "--network=none",
              "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")
# Runs the command three times in one container, so that image pulls are not timed.
TIMER = ("import subprocess, time\n"
         "for _ in range(3):\n"
         "    start = time.monotonic()\n"
         "    subprocess.run(['nova-manage', '--version'], capture_output=True, check=True)\n"
         "    print('%.2f' % (time.monotonic() - start))\n")


def turn_on(repo: Path) -> None:
    for name in COMPILED:
        build = repo / "images" / name / "BUILD"
        text = build.read_text()
        if "\noci_image(\n" not in text:
            raise SystemExit(f"error: {build} has no `oci_image(` line to add compile_python to")
        build.write_text(text.replace("\noci_image(\n", "\noci_image(\n    compile_python=True,\n", 1))


def sizes(dist: Path, work: Path, tag: str) -> Dict[str, int]:
    out = work / f"sizes-{tag}.json"
    subprocess.run([sys.executable, str(B.REPO_ROOT / "bench/image_sizes.py"), "--dist", str(dist),
                    "--only", *COMPILED, "--json", str(out)], check=True, stdout=subprocess.DEVNULL)
    return {row["name"]: row["total"] for row in json.loads(out.read_text())["rows"]}


def start_times(dist: Path) -> List[float]:
    layout = dist / "images.nova-api" / "nova-api"
    result = subprocess.run([*PODMAN_RUN, f"oci:{layout}:latest", "python3", "-c", TIMER],
                            check=True, capture_output=True, text=True)
    return [float(line) for line in result.stdout.split()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dist", default=str(B.REPO_ROOT / "dist"),
                        help="the set as built without .pyc files (default: dist)")
    B.add_run_options(parser)
    args = parser.parse_args(argv)
    work = B.work_dir(args.work, KEY)
    repo = B.make_repo(work / "repo")
    turn_on(repo)
    B.run("package with compile_python", ["./pants", "--no-pantsd", "--no-dynamic-ui", "package",
                                          *(f"images/{name}" for name in COMPILED)],
          work / "logs" / "package.log", cwd=repo).check()
    plain, compiled = Path(args.dist), repo / "dist"
    without, with_pyc = sizes(plain, work, "plain"), sizes(compiled, work, "compiled")
    times = {"without": start_times(plain), "with": start_times(compiled)}
    rows = [(name, f"{B.mb(without[name])}", f"{B.mb(with_pyc[name])}", f"+{B.mb(with_pyc[name] - without[name])}")
            for name in COMPILED]
    rows.append(("`nova-manage --version` in nova-api, s", " ".join(f"{t:.1f}" for t in times["without"]),
                 " ".join(f"{t:.1f}" for t in times["with"]), ""))
    table = B.md_table(("image", "without .pyc MB", "with .pyc MB", "difference MB"), rows)
    print(table)
    if args.json:
        B.write_json(Path(args.json), {"benchmark": KEY, "command": B.command_line(), "sizes_without": without,
                                       "sizes_with": with_pyc, "start_seconds": times})
    if args.markdown:
        B.write_markdown_section(Path(args.markdown), KEY, f"Command: `{B.command_line()}`.\n\n{table}")
    B.remove_work(work, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
