"""audit/security_report.py's planning and ci/security_refresh.py's input checks, without Pants."""

from __future__ import annotations

import re
import subprocess
import sys
from types import SimpleNamespace

import pytest

from audit.security_report import immutable_tag, package_changes, parse_old_lock
from audit.update_cost import UpdateCostError
from debian.packages import DebianLock
from e2e_repo import REPO_ROOT


def pin(version: str, sha: str, source: str = "openssl") -> dict:
    return {"version": version, "sha256": sha * 64, "source_package": source}


OLD = {"architectures": {"amd64": {"libssl3": pin("3.0.20-1", "a"), "mawk": pin("1.3.4", "b", "mawk"),
                                   "gone": pin("1", "c", "gone")}},
       "images": {"images/base:base": {"amd64": {"closure": ["libssl3", "mawk", "gone"]}},
                  "images/app:app": {"amd64": {"closure": ["mawk"]}}}}
NEW = {"architectures": {"amd64": {"libssl3": pin("3.0.22-1", "d"), "mawk": pin("1.3.4", "b", "mawk"),
                                   "fresh": pin("2", "e", "fresh")}},
       "images": {"images/base:base": {"amd64": {"closure": ["libssl3", "mawk", "fresh"]}},
                  "images/app:app": {"amd64": {"closure": ["mawk"]}}}}


def test_changes_are_the_closure_pins_that_differ_and_a_child_inherits_its_parents_closure():
    changes = package_changes(OLD, NEW, ["images/base:base", "images/files-only:files-only"], "amd64")
    assert [(c.name, c.old_version, c.new_version) for c in changes] == [
        ("fresh", None, "2"), ("gone", "1", None), ("libssl3", "3.0.20-1", "3.0.22-1")]
    assert changes[2].source == "openssl" and changes[2].new_sha256 == "d" * 64
    assert package_changes(OLD, NEW, ["images/app:app"], "amd64") == ()
    assert package_changes(OLD, NEW, ["images/none:none"], "amd64") == ()


def test_the_immutable_tag_names_the_lock():
    lock = DebianLock("3rdparty/debian/lock.yaml", "0123456789abcdef" * 4, {"snapshot_timestamp": "20261201T010203Z"})
    assert immutable_tag(lock) == "20261201-0123456789ab"


@pytest.mark.parametrize("text, message", [
    ("- a list\n", "--old-lock=old.yaml is not a Debian lock (no `architectures` and `images`)"),
    ("key: [unclosed\n", "--old-lock=old.yaml is not YAML"),
])
def test_an_old_lock_that_is_no_lock_is_refused_with_the_fix(text, message):
    with pytest.raises(UpdateCostError, match=re.escape(message)):
        parse_old_lock(text, SimpleNamespace(old_lock="old.yaml", since=None))


def test_an_empty_old_lock_is_the_first_publication():
    assert parse_old_lock("", SimpleNamespace(old_lock="/dev/null", since=None)) == {}


@pytest.mark.parametrize("args, message", [
    (["--registry", "https://registry.example"], "registry 'https://registry.example': write it as HOST or HOST:PORT"),
    (["--old-lock", "/nonexistent/lock.yaml"], "--old-lock /nonexistent/lock.yaml: no such file"),
])
def test_the_refresh_script_refuses_bad_input_before_running_pants(args, message):
    result = subprocess.run([sys.executable, str(REPO_ROOT / "ci/security_refresh.py"), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
    assert result.returncode == 2 and message in result.stderr
