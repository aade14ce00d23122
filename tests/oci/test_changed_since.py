"""End to end: incremental CI with `--changed-since` in a git checkout of the e2e repository,
through `ci/build-changed.sh`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from e2e_repo import REPO_ROOT, PantsRun, make_repo, run_pants

pytestmark = pytest.mark.e2e

BUILD_CHANGED = "ci/build-changed.sh"


def git(repo: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=CI", "-c", "user.email=ci@example.org", "-c", "commit.gpgsign=false", *args]
    return subprocess.run(command, cwd=repo, check=True, stdout=subprocess.PIPE, text=True).stdout


def build_changed(repo: Path, rev: str, *pants_options: str, store: Path, dry_run: bool = False) -> PantsRun:
    """ci/build-changed.sh with run_pants' isolation options."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANTS_")}
    if dry_run:
        env["DRY_RUN"] = "1"
    command = [f"./{BUILD_CHANGED}", rev, "--no-pantsd", "--no-dynamic-ui", f"--local-store-dir={store}",
               f"--named-caches-dir={store}-named", *pants_options]
    result = subprocess.run(command, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, timeout=900)
    return PantsRun(result.returncode, result.stdout)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """A committed copy of the e2e repository, built once so that unchanged images are cache hits,
    then with one edit: app's env (its files, hence its layer, stay the same)."""
    base = tmp_path_factory.mktemp("changed")
    repo = make_repo(base / "repo")
    (repo / "ci").mkdir()
    shutil.copy2(REPO_ROOT / BUILD_CHANGED, repo / BUILD_CHANGED)
    shutil.copy2(REPO_ROOT / ".gitignore", repo / ".gitignore")
    git(repo, "init", "--quiet")
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "--message", "e2e repository")
    store = base / "store"
    warm = run_pants(repo, "package", "::", store=store)
    assert warm.returncode == 0, warm.output
    build = repo / "images/app/BUILD"
    build.write_text(build.read_text().replace("    user=", '    env={"APP_COLOR": "blue"},\n    user='))
    return repo, store


def test_changed_since_selects_the_image_and_its_descendants(checkout):
    repo, store = checkout
    listed = run_pants(repo, "--changed-since=HEAD", "--changed-dependents=transitive", "list", store=store)
    assert listed.returncode == 0, listed.output
    # Every target of the edited BUILD file, and the image built on app; not base, not tool.
    assert set(listed.output.split()) == {"images/app:app", "images/app:bin", "images/app:conf",
                                          "images/worker:worker"}


def test_build_changed_assembles_only_the_changed_images(checkout):
    repo, store = checkout
    run = build_changed(repo, "HEAD", "--pants-distdir=dist-changed", store=store)
    assert run.returncode == 0, run.output
    assert "--changed-since=HEAD --changed-dependents=transitive package" in run.output
    # Same files: the layers are cache hits; the new config re-assembles app and its child.
    assert run.processes == {"Assemble images/app:app (2 levels)", "Assemble images/worker:worker (3 levels)"}
    assert sorted(p.name for p in (repo / "dist-changed").iterdir()) == ["images.app", "images.worker"]


def test_build_changed_builds_everything_when_the_plugin_changed(checkout):
    repo, store = checkout
    plugin = repo / "rules/oci/__init__.py"
    original = plugin.read_text()
    plugin.write_text(original + "# edited\n")
    try:
        run = build_changed(repo, "HEAD", store=store, dry_run=True)
    finally:
        plugin.write_text(original)
    assert run.returncode == 0, run.output
    assert "rules/oci/__init__.py" in run.output
    assert run.output.rstrip().endswith(" package ::"), run.output
    untouched = build_changed(repo, "HEAD", store=store, dry_run=True)
    assert "--changed-since=HEAD" in untouched.output, untouched.output


def test_build_changed_refuses_an_unknown_revision(checkout):
    repo, store = checkout
    run = build_changed(repo, "no-such-rev", store=store, dry_run=True)
    assert run.returncode == 2 and "no-such-rev is not a commit" in run.output
