"""Shared test setup: the plugin and its actions import from rules/."""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "rules"))

# The generated apt repository (tests/aptrepo.py) and its fixtures.
from aptrepo import apt_keys, apt_repo, apt_repo_factory  # noqa: E402,F401


# Markers of tests that need `./pants package ::` first and take minutes on dist/.
ON_REQUEST = ("services", "realset", "controlplane")


def pytest_collection_modifyitems(config, items):
    """Tests of the real image set run only when asked for by name (`-m services`, `-m realset`, `-m controlplane`): a -m
    given on the command line replaces pytest.ini's, so `-m "not e2e"` alone would otherwise run them."""
    import pytest

    expression = config.option.markexpr or ""
    for marker in ON_REQUEST:
        if marker in expression.replace(f"not {marker}", ""):
            continue
        skip = pytest.mark.skip(reason=f"needs the real image set in dist/: run with `-m {marker}`")
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)
