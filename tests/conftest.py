"""Shared test setup: the plugin and its actions import from rules/."""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "rules"))

# The generated apt repository (tests/aptrepo.py) and its fixtures.
from aptrepo import apt_keys, apt_repo, apt_repo_factory  # noqa: E402,F401


def pytest_collection_modifyitems(config, items):
    """Tests of the real image set run only when asked for by name (`-m realset`): a -m given on the
    command line replaces pytest.ini's, so `-m "not e2e"` alone would otherwise take minutes on dist/."""
    import pytest

    if "realset" in (config.option.markexpr or "").replace("not realset", ""):
        return
    skip = pytest.mark.skip(reason="reads the real image set in dist/: run with `-m realset`")
    for item in items:
        if "realset" in item.keywords:
            item.add_marker(skip)
