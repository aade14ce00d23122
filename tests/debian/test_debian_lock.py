"""`python3 -m debian.actions.debian_lock` end to end on the generated repository, and lock diffs."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from aptrepo import DEFAULT_PACKAGES, DebSpec
from debian.actions.debian_lock import LockRequestError, build_lock, diff_locks

RULES = Path(__file__).resolve().parents[2] / "rules"
QUIET = lambda message: None  # noqa: E731


def lock_request(repo, images=None, architectures=("amd64",), **source) -> dict:
    return {
        "sources": [{**repo.source_json(), **source}],
        "architectures": list(architectures),
        "images": images if images is not None else {
            "//images/base:base": {"packages": ["base-files"], "recommends": False, "essential": True,
                                   "parent": None},
            "//images/app:app": {"packages": ["tool", "python3 (>= 3.11)"], "recommends": False, "essential": False,
                                 "parent": "//images/base:base"},
            "//images/py:py": {"packages": ["python3"], "recommends": True, "essential": False, "parent": None},
        },
    }


def run_lock(tmp_path: Path, request: dict, *extra: str, name: str = "lock.json"):
    """Run the action the way Pants runs it: `-m`, the actions on PYTHONPATH, nothing else in the environment."""
    (tmp_path / "request.json").write_text(json.dumps(request))
    result = subprocess.run(
        [sys.executable, "-B", "-s", "-m", "debian.actions.debian_lock", "request.json", name, *extra],
        cwd=tmp_path, env={"PYTHONPATH": str(RULES), "PYTHONHASHSEED": "0"}, capture_output=True, text=True,
    )
    return result


def test_lock_end_to_end(apt_repo, tmp_path):
    result = run_lock(tmp_path, lock_request(apt_repo))
    assert result.returncode == 0, result.stderr
    assert f"Fetching {apt_repo.url}/dists/fixture/InRelease" in result.stderr
    assert "packages in fixture/main/binary-amd64" in result.stderr
    lock = json.loads((tmp_path / "lock.json").read_text())
    assert lock["version"] == 1
    packages = lock["architectures"]["amd64"]

    tool = packages["tool"]
    deb = apt_repo.debs["tool"].read_bytes()
    assert tool == {
        "version": "1.0-1", "architecture": "amd64", "sha256": hashlib.sha256(deb).hexdigest(), "size": len(deb),
        "url": "pool/main/t/tool/tool_1.0-1_amd64.deb", "source": "fixture", "suite": "fixture",
        "depends": ["python3", "mawk", "ping"], "recommends": [], "essential": False, "installed_size": 1,
        "multi_arch": "no", "source_package": "tool", "source_version": "1.0-1",
    }
    for name, info in packages.items():
        assert (apt_repo.root / info["url"]).read_bytes() == apt_repo.debs[name].read_bytes()
    assert packages["python3"]["source_package"] == "python3-defaults"
    assert packages["bash"]["essential"] is True
    assert "usr-is-merged" in packages and "usrmerge" not in packages

    essential = ["base-files", "bash", "init-system-helpers", "libc6", "perl-base", "usr-is-merged"]
    images = lock["images"]
    assert images["//images/base:base"]["amd64"] == {"requested": ["base-files"], "closure": essential}
    app = images["//images/app:app"]["amd64"]
    assert app["requested"] == ["python3", "tool"]
    assert set(app["closure"]) >= set(essential) | {"tool", "mawk", "ping", "pong", "python3", "python3.11"}
    assert "ca-certificates" not in app["closure"]  # a Recommends, and app does not ask for them
    py = images["//images/py:py"]["amd64"]["closure"]
    assert {"ca-certificates", "openssl", "debconf"} <= set(py) and "bash" not in py
    assert lock["requests"] == lock_request(apt_repo)["images"]


def test_lock_is_reproducible(apt_repo, tmp_path):
    first = run_lock(tmp_path, lock_request(apt_repo), name="first.json")
    (tmp_path / "elsewhere").mkdir()
    request = lock_request(apt_repo)
    request["images"] = dict(reversed(list(request["images"].items())))  # another order, same meaning
    second = run_lock(tmp_path / "elsewhere", request, name="second.json")
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    first_lock = (tmp_path / "first.json").read_bytes()
    assert first_lock == (tmp_path / "elsewhere" / "second.json").read_bytes()
    assert first_lock.endswith(b"}\n")


def test_lock_takes_newest_version_across_suites_and_prints_diff(apt_repo_factory, tmp_path):
    repo = apt_repo_factory()
    request = lock_request(repo, suites=["fixture", "fixture-updates"])
    apt_repo_factory([DebSpec("ping", "0.9-1", depends="pong")], suite="fixture-updates")
    assert run_lock(tmp_path, request, name="old.json").returncode == 0

    apt_repo_factory([DebSpec("python3.11", "3.11.2-6+deb12u1", depends="libc6 (>= 2.36)")],
                     suite="fixture-updates")
    result = run_lock(tmp_path, request, "--previous", "old.json", name="new.json")
    assert result.returncode == 0, result.stderr
    new = json.loads((tmp_path / "new.json").read_text())
    assert new["architectures"]["amd64"]["python3.11"]["suite"] == "fixture-updates"
    assert new["architectures"]["amd64"]["ping"]["suite"] == "fixture"  # 1.0-1 beats the update's 0.9-1
    assert "upgraded    python3.11 3.11.2-6 -> 3.11.2-6+deb12u1" in result.stderr
    # The update dropped `media-types | mime-support`; nothing else needs media-types.
    assert "removed     media-types 10.0.0" in result.stderr


def test_diff_locks():
    def lock(**packages):
        return {"architectures": {"amd64": {
            name: {"version": version, "sha256": sha} for name, (version, sha) in packages.items()}}}

    old = lock(a=("1.0", "x"), b=("2.0", "x"), c=("1:0.1", "x"), d=("1.0", "x"))
    new = lock(a=("1.0", "x"), b=("2.0~rc1", "y"), c=("1:0.2", "y"), d=("1.0", "z"), e=("3", "x"))
    assert diff_locks(old, new) == (
        "amd64:\n"
        "  downgraded  b 2.0 -> 2.0~rc1\n"
        "  upgraded    c 1:0.1 -> 1:0.2\n"
        "  rebuilt     d 1.0 (same version, new sha256)\n"
        "  added       e 3"
    )
    assert diff_locks(new, old).splitlines()[-1] == "  removed     e 3"
    assert diff_locks(old, old) == "No package changes."
    assert diff_locks(None, lock(a=("1", "x"))) == "amd64:\n  added       a 1"


def test_several_architectures(apt_repo_factory, tmp_path):
    arm64 = tuple(DebSpec(s.name, s.version, "arm64", s.depends, s.pre_depends, essential=s.essential)
                  for s in DEFAULT_PACKAGES if s.name in ("libc6", "bash"))
    repo = apt_repo_factory(DEFAULT_PACKAGES + arm64, architectures=("amd64", "arm64"))
    images = {"//:img": {"packages": ["bash", "media-types"], "recommends": False, "essential": False,
                         "parent": None}}
    lock = build_lock(lock_request(repo, images, architectures=("amd64", "arm64")), log=QUIET)
    assert lock["architectures"]["arm64"]["bash"]["url"] == "pool/main/b/bash/bash_5.2-2_arm64.deb"
    assert lock["architectures"]["arm64"]["media-types"]["architecture"] == "all"
    assert lock["images"]["//:img"]["arm64"]["closure"] == ["bash", "libc6", "media-types"]


def test_errors_are_reported_without_a_traceback(apt_repo, tmp_path):
    images = {"//:img": {"packages": ["pyhton3"], "recommends": False, "essential": False, "parent": None}}
    result = run_lock(tmp_path, lock_request(apt_repo, images))
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith("error: //:img (amd64): There is no package named 'pyhton3'")
    assert "Did you mean python3" in result.stderr and "Traceback" not in result.stderr

    apt_repo.tamper_signed_text()
    result = run_lock(tmp_path, lock_request(apt_repo))
    assert result.returncode == 1 and "BAD signature" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "lock.json").exists()


def test_parent_must_be_in_the_request(apt_repo):
    images = {"//:child": {"packages": ["bash"], "recommends": False, "essential": False, "parent": "//:gone"}}
    with pytest.raises(LockRequestError, match="its parent //:gone is not among the images"):
        build_lock(lock_request(apt_repo, images), log=QUIET)


def test_a_child_never_changes_its_parents_choices(apt_repo):
    # `tool` needs awk; the child asks for gawk. Resolved together, gawk would satisfy the base's
    # awk too and the base's layers would change whenever a leaf image is added.
    images = {
        "//base": {"packages": ["tool"], "recommends": False, "essential": False, "parent": None},
        "//leaf": {"packages": ["gawk"], "recommends": False, "essential": False, "parent": "//base"},
    }
    alone = build_lock(lock_request(apt_repo, {"//base": images["//base"]}), log=QUIET)
    both = build_lock(lock_request(apt_repo, images), log=QUIET)
    base_closure = both["images"]["//base"]["amd64"]["closure"]
    assert base_closure == alone["images"]["//base"]["amd64"]["closure"]
    assert "mawk" in base_closure and "gawk" not in base_closure
    leaf_closure = both["images"]["//leaf"]["amd64"]["closure"]
    assert set(base_closure) < set(leaf_closure) and "gawk" in leaf_closure
    assert both["architectures"]["amd64"]["tool"]["depends"] == alone["architectures"]["amd64"]["tool"]["depends"]


def test_exclusions_are_inherited_recorded_and_overridable(apt_repo):
    images = {
        "//base": {"packages": ["tool"], "recommends": False, "essential": False, "parent": None,
                   "exclude": {"ping": "reviewed: never run", "pong": "reviewed: never run"}},
        "//leaf": {"packages": ["gawk"], "recommends": False, "essential": False, "parent": "//base"},
        "//pinger": {"packages": ["ping"], "recommends": False, "essential": False, "parent": "//base"},
    }
    lock = build_lock(lock_request(apt_repo, images), log=QUIET)
    base = lock["images"]["//base"]["amd64"]
    assert "tool" in base["closure"] and not {"ping", "pong"} & set(base["closure"])
    assert base["dropped_depends"] == ["tool Depends: ping | pong"]
    assert lock["architectures"]["amd64"]["tool"]["depends"] == ["python3", "mawk"]
    assert not {"ping", "pong"} & set(lock["images"]["//leaf"]["amd64"]["closure"])
    assert "dropped_depends" not in lock["images"]["//leaf"]["amd64"]
    # Asking for an excluded package by name brings it back; what it needs is still excluded.
    pinger = lock["images"]["//pinger"]["amd64"]
    assert "ping" in pinger["closure"] and "pong" not in pinger["closure"]
    assert pinger["dropped_depends"] == ["ping Depends: pong"]
    assert lock["requests"]["//base"]["exclude"] == images["//base"]["exclude"]


def test_excluding_what_the_parent_installs_is_refused(apt_repo):
    images = {
        "//base": {"packages": ["tool"], "recommends": False, "essential": False, "parent": None},
        "//leaf": {"packages": ["gawk"], "recommends": False, "essential": False, "parent": "//base",
                   "exclude": {"mawk": "gawk is enough"}},
    }
    with pytest.raises(LockRequestError, match=r"//leaf \(amd64\): it excludes mawk, which its parent images "
                                               "already install"):
        build_lock(lock_request(apt_repo, images), log=QUIET)


def test_a_misspelt_exclusion_is_refused(apt_repo):
    images = {"//base": {"packages": ["tool"], "recommends": False, "essential": False, "parent": None,
                         "exclude": {"pnig": "typo of ping"}}}
    with pytest.raises(LockRequestError, match="//base: There is no package named 'pnig' to exclude.*ping"):
        build_lock(lock_request(apt_repo, images), log=QUIET)
