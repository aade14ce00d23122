"""End to end: a build fills a loopback BuildGrid cache; a fresh checkout elsewhere, with an empty
local store, then builds the same dist/ from remote cache hits alone."""

from __future__ import annotations

import pytest

from e2e_repo import layout_files, make_repo, run_pants, stats_counters
from services import buildgrid, python313_available

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not python313_available(),
                       reason="BuildGrid 0.9.1 needs Python 3.13 (pyenv install 3.13, or set BUILDGRID_PYTHON)"),
]


def image_processes(processes: set[str]) -> set[str]:
    return {p for p in processes if p.startswith(("Build ", "Assemble "))}


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    base = tmp_path_factory.mktemp("remote-cache")
    with buildgrid(base / "buildgrid") as grid:
        first = make_repo(base / "a")
        writer = run_pants(first, *grid.pants_options(write=True), "--stats-log", "package", "::",
                           store=base / "store-a")
        assert writer.returncode == 0, writer.output
        # Another path, another (empty) local store and named caches: only the remote cache is shared.
        second = make_repo(base / "elsewhere" / "b")
        reader = run_pants(second, *grid.pants_options(write=False), "--stats-log", "package", "::",
                           store=base / "store-b")
        assert reader.returncode == 0, reader.output
    return first, second, writer, reader


# Besides the image Processes, one cached Process compiles the oci actions, and is shared the same way.
ACTION_COMPILES = 1


def test_first_build_runs_and_uploads_every_image_process(builds):
    _, _, writer, _ = builds
    ran = image_processes(writer.processes)
    assert len(ran) == 8, writer.output  # a layer and an assembly per image
    counters = stats_counters(writer.output)
    assert counters["remote_cache_write_successes"] == len(ran) + ACTION_COMPILES, counters
    assert counters["remote_cache_write_errors"] == 0


def test_fresh_checkout_finds_every_process_in_the_remote_cache(builds):
    _, _, writer, reader = builds
    counters = stats_counters(reader.output)
    expected = len(image_processes(writer.processes)) + ACTION_COMPILES
    assert counters["remote_cache_requests_uncached"] == 0, counters
    assert counters["remote_cache_read_errors"] == 0, counters
    assert counters["local_cache_requests_cached"] == 0, counters  # the local store really was empty
    # Pants races each remote lookup against running the Process locally (speculation with no
    # delay): a Process of a few milliseconds can finish before the cache answers. Each Process is
    # a remote hit or such a race, and only those races ran here.
    raced = counters["remote_cache_speculation_local_completed_first"]
    assert counters["remote_cache_requests_cached"] + raced == expected, counters
    assert len(image_processes(reader.processes)) <= raced, reader.output


def test_remote_hits_give_identical_dist(builds):
    first, second, _, _ = builds
    assert layout_files(first / "dist") == layout_files(second / "dist")
