"""End to end: `pants repro-check` catches and pinpoints a deliberately non-reproducible build.

The fixture's layer writer is patched to leak the wall clock into one file's mtime, the kind
of bug the reproducibility contract forbids.  A first build is kept as the reference; a
rebuild with caches off, later (the leak reads the real clock: faketime does not reach the
sandboxed actions, whose environment is fixed), in another time zone, locale and umask must be reported as
differing in exactly that layer and that file, while the unaffected images are confirmed,
and a claimed digest is confirmed or refuted (verify mode).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from e2e_repo import IMAGE_DIRS, faketime, make_repo, run_pants

pytestmark = pytest.mark.e2e

CLOCK_LEAK = ('info.mtime = int(__import__("time").time()) if entry.path == "usr/local/bin/app.sh" '
              'else int(mtime)  # deliberately non-reproducible')


def leak_the_clock(repo: Path) -> None:
    tarlayer = repo / "rules/oci/actions/tarlayer.py"
    source = tarlayer.read_text()
    assert "info.mtime = int(mtime)" in source
    tarlayer.write_text(source.replace("info.mtime = int(mtime)", CLOCK_LEAK, 1))


def top_digest(layout: Path) -> str:
    return json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    work = tmp_path_factory.mktemp("repro")
    repo = make_repo(work / "repo")
    leak_the_clock(repo)
    first = run_pants(repo, "package", "::", store=work / "store-a", wrapper=faketime("2030-01-01 00:00:00"))
    assert first.returncode == 0, first.output
    reference = work / "reference"
    shutil.copytree(repo / "dist", reference)
    base_digest = top_digest(reference / IMAGE_DIRS["base"])
    check = run_pants(
        repo, "--no-local-cache", "repro-check", f"--against={reference}",
        f"--expect=images/base:base={base_digest}", f"--expect=images/tool:tool=sha256:{'0' * 64}", "::",
        store=work / "store-b", env={"TZ": "Pacific/Chatham", "LC_ALL": "C"}, umask=0o077,
        wrapper=faketime("2031-06-01 12:00:00"),
    )
    return check, base_digest


def section(output: str, image: str) -> str:
    start = output.index(f"{image}: ")
    end = min([i for i in (output.find("\nimages/", start + 1), output.find(" images reproduced.", start)) if i > 0])
    return output[start:end]


def test_the_check_fails(checked):
    check, _ = checked
    assert check.returncode == 1, check.output
    assert "1 of 4 images reproduced." in check.output  # base; tool's claimed digest is refuted


def test_the_leaking_layer_and_file_are_pinpointed(checked):
    check, _ = checked
    app = section(check.output, "images/app:app")
    assert app.startswith("images/app:app: DIFFERS")
    assert "layer 1 (files of images/app:app; added by images/app:app): different content" in app
    assert "/usr/local/bin/app.sh: mtime " in app and "in the reference" in app
    assert "/etc/app/app.conf" not in app  # only the file that leaked
    assert "layer 0" not in app  # the parent's layer reproduced


def test_a_child_reports_the_parents_layer(checked):
    check, _ = checked
    worker = section(check.output, "images/worker:worker")
    assert worker.startswith("images/worker:worker: DIFFERS")
    assert "layer 1 (files of images/app:app; added by images/app:app)" in worker
    assert "layer 2" not in worker  # its own layer reproduced


def test_verify_mode_confirms_and_refutes_claimed_digests(checked):
    check, base_digest = checked
    base = section(check.output, "images/base:base")
    assert base.startswith("images/base:base: reproduced")
    assert f"expected {base_digest}: confirmed" in base
    tool = section(check.output, "images/tool:tool")
    assert f"expected sha256:{'0' * 64}: REFUTED" in tool and tool.startswith("images/tool:tool: DIFFERS")


def test_perturbed_rebuild_by_the_goal_itself(tmp_path):
    """`--perturb`: the goal rebuilds every step in perturbed sandboxes, past the cache, and compares with dist/."""
    repo = make_repo(tmp_path / "repo")
    leak_the_clock(repo)
    store = tmp_path / "store"
    package = run_pants(repo, "package", "::", store=store)
    assert package.returncode == 0, package.output
    check = run_pants(repo, "repro-check", "--perturb", "::", store=store)  # same store: the cache is warm
    assert check.returncode == 1, check.output
    perturbed = {p for p in check.processes if p.endswith("(perturbed)") and p.startswith(("Build ", "Assemble "))}
    assert len(perturbed) == 8, check.output  # every layer and assembly really ran again
    assert "Perturbed rebuild: umask 077, TZ=Pacific/Chatham" in check.output
    clock = "clock +3653d via " if shutil.which("faketime") else "clock not shifted (libfaketime not found"
    assert clock in check.output
    assert "2 of 4 images reproduced." in check.output
    for image in ("images/base:base", "images/tool:tool"):
        assert section(check.output, image).startswith(f"{image}: reproduced"), check.output
    app = section(check.output, "images/app:app")
    assert app.startswith("images/app:app: DIFFERS")
    assert "layer 1 (files of images/app:app; added by images/app:app): different content" in app
    assert "in the normal build" in app and "/etc/app/app.conf" not in app
    here, there = (int(v) for v in re.search(r"/usr/local/bin/app\.sh: mtime (\d+) here, (\d+) in the normal", app)
                   .groups())
    if shutil.which("faketime"):
        assert here - there > 3600 * 24 * 3000  # the leaked clock was ten years ahead: libfaketime reached it
