"""Shared test setup: the plugin and its actions import from rules/."""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "rules"))

# The generated apt repository (tests/aptrepo.py) and its fixtures.
from aptrepo import apt_keys, apt_repo, apt_repo_factory  # noqa: E402,F401
