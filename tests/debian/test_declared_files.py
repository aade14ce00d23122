"""Declared files against the packages of an image's chain: what may be replaced and what is refused."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO_ROOT
from debian.actions.check_declared_files import Declared, DeclaredFile, add_package, check, check_inherited, load_owners


def package(name: str, version: str = "1.0-1", files=(), conffiles=()) -> dict:
    return {"name": name, "version": version, "conffiles": list(conffiles),
            "files": [dict(f) for f in files], "dpkg_metadata": [f"var/lib/dpkg/status.d/{name}"]}


FOO = package("foo", "2.1-3", conffiles=["/etc/foo.conf"], files=[
    {"path": "etc", "kind": "dir"},
    {"path": "etc/foo.conf", "kind": "file"},
    {"path": "etc/foo", "kind": "dir"},
    {"path": "etc/foo/defaults.ini", "kind": "file"},
    {"path": "usr/bin/foo", "kind": "file"},
    {"path": "usr/bin/foo-link", "kind": "symlink", "target": "foo"},
    {"path": "usr/share/foo", "kind": "symlink", "target": "/opt/foo/share"},
])


@pytest.fixture
def owners(tmp_path):
    (tmp_path / "packages").mkdir()
    (tmp_path / "packages/abc.json").write_text(json.dumps({"packages": [FOO]}))
    return load_owners(str(tmp_path / "packages"))


def declared(path: str, overridable: bool = False, can_override: bool = True) -> Declared:
    return Declared(path.lstrip("/"), f"img/{path.rsplit('/', 1)[1]}", "img:etc", can_override, overridable)


def test_new_paths_and_conffiles_may_be_declared(owners):
    assert check([declared("/etc/foo/extra.ini"), declared("/etc/foo.conf"), declared("/srv/app")], owners) == []


def test_replacing_a_package_file_is_refused_with_package_version_and_fix(owners):
    problems = check([declared("/etc/foo/defaults.ini")], owners)
    assert problems == [
        "/etc/foo/defaults.ini (from img/defaults.ini, img:etc) would replace the file /etc/foo/defaults.ini "
        "installed by foo 2.1-3 (not a conffile). Fix: if the replacement is deliberate, add "
        "\"/etc/foo/defaults.ini\" to the `overrides` of img:etc; otherwise change the `destination` of img:etc."
    ]


def test_overrides_allow_files_and_symlinks_of_packages(owners):
    files = [declared("/etc/foo/defaults.ini", overridable=True), declared("/usr/bin/foo-link", overridable=True)]
    assert check(files, owners) == []
    assert "the symlink /usr/bin/foo-link installed by foo 2.1-3" in check([declared("/usr/bin/foo-link")], owners)[0]


def test_a_plain_file_target_is_told_to_use_image_files(owners):
    problem, = check([declared("/usr/bin/foo", can_override=False)], owners)
    assert "declare it with an `image_files` target that lists \"/usr/bin/foo\" in `overrides`" in problem


def test_dpkg_database_files_belong_to_their_package(owners):
    problem, = check([declared("/var/lib/dpkg/status.d/foo")], owners)
    assert "installed by foo 2.1-3" in problem


@pytest.mark.parametrize("path, expected", [
    ("/etc/foo", "would replace the directory /etc/foo of foo 2.1-3"),
    ("/etc/foo.conf/x", "goes below /etc/foo.conf, a file of foo 2.1-3"),
    ("/bin/tool", "goes below /bin, a symlink to usr/bin of the merged-/usr root links: the files layer would "
                  "replace the link with a directory. Declare it at its real path /usr/bin/tool"),
    ("/usr/share/foo/x/y", "goes below /usr/share/foo, a symlink to /opt/foo/share of foo 2.1-3"),
])
def test_directories_and_paths_below_links_or_files_are_refused_even_with_overrides(owners, path, expected):
    problem, = check([declared(path, overridable=True)], owners)
    assert expected in problem, problem


def test_real_path_of_a_relative_link():
    owners: dict = {}
    add_package(owners, package("bar", files=[{"path": "usr/lib/bar", "kind": "symlink", "target": "../share/bar"}]))
    problem, = check([declared("/usr/lib/bar/plugin.so")], owners)
    assert "Declare it at its real path /usr/share/bar/plugin.so" in problem


def test_no_packages_no_links():
    assert check([declared("/bin/tool")], {}) == []  # an image without packages has a real /bin


def test_action_lists_every_problem_and_fails(tmp_path):
    (tmp_path / "packages").mkdir()
    (tmp_path / "packages/abc.json").write_text(json.dumps({"packages": [FOO]}))
    spec = {"image": "img:app", "files": [
        {"path": "etc/foo/defaults.ini", "source": "img/defaults.ini", "origin": "img:etc", "can_override": True,
         "overridable": False},
        {"path": "etc/foo", "source": "img/foo", "origin": "img:etc", "can_override": True,
         "overridable": False},
        {"path": "etc/foo.conf", "source": "img/foo.conf", "origin": "img:etc", "can_override": True,
         "overridable": False},
    ], "inherited": []}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    run = subprocess.run([sys.executable, "-m", "debian.actions.check_declared_files", "spec.json"], cwd=tmp_path,
                         env={"PYTHONPATH": str(REPO_ROOT / "rules")}, capture_output=True, text=True)
    assert run.returncode == 1
    assert run.stderr.startswith("img:app: 2 declared file(s) clash with the image's packages:\n")
    assert "Traceback" not in run.stderr and "/etc/foo.conf" not in run.stderr
    spec["files"] = spec["files"][2:]
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    run = subprocess.run([sys.executable, "-m", "debian.actions.check_declared_files", "spec.json"], cwd=tmp_path,
                         env={"PYTHONPATH": str(REPO_ROOT / "rules")}, capture_output=True, text=True)
    assert (run.returncode, run.stderr) == (0, "")


# The other direction: a package of a child image over a file its parent declared.

def inherited(path: str) -> DeclaredFile:
    return DeclaredFile(path.lstrip("/"), f"base/{path.rsplit('/', 1)[1]}", "base:conf", "base:base")


def new_packages(*files) -> dict:
    owners: dict = {}
    add_package(owners, package("app", "3.0-1", files=files, conffiles=["/etc/app/app.conf"]))
    return owners


def test_a_new_package_file_at_a_parents_declared_path_is_refused_even_as_a_conffile():
    owners = new_packages({"path": "etc/app", "kind": "dir"}, {"path": "etc/app/app.conf", "kind": "file"})
    assert check_inherited([inherited("/etc/app/app.conf"), inherited("/etc/app/other.conf")], owners,
                           "img:child") == [
        "/etc/app/app.conf (from base/app.conf, base:conf) would be replaced by the file /etc/app/app.conf of "
        "app 3.0-1: the package layers of img:child come after the files layer of base:base, and `overrides` "
        "cannot change that. Fix: declare the file in img:child instead, whose files layer comes after its "
        "packages (where conffiles and `overrides` apply); or install app in base:base."
    ]


@pytest.mark.parametrize("files, path, expected", [
    ([{"path": "usr/local/bin/x", "kind": "dir"}], "/usr/local/bin/x", "by the directory /usr/local/bin/x of app"),
    ([{"path": "usr/local/bin/x/y", "kind": "file"}], "/usr/local/bin/x",
     "by a directory (for /usr/local/bin/x/y) of app 3.0-1"),
    ([{"path": "usr/local/bin/x", "kind": "symlink", "target": "y"}], "/usr/local/bin/x",
     "by the symlink /usr/local/bin/x of app"),
    ([{"path": "opt/app", "kind": "symlink", "target": "/srv/app"}], "/opt/app/conf/app.ini",
     "by the symlink /opt/app -> /srv/app of app 3.0-1"),
    ([{"path": "opt/app", "kind": "file"}], "/opt/app/app.ini", "by the file /opt/app of app 3.0-1"),
])
def test_new_package_directories_paths_below_and_symlink_or_file_prefixes_are_refused(files, path, expected):
    problem, = check_inherited([inherited(path)], new_packages(*files), "img:child")
    assert expected in problem and "install app in base:base" in problem, problem


def test_a_symlink_prefix_suggests_the_real_path():
    problem, = check_inherited([inherited("/opt/app/conf/app.ini")],
                               new_packages({"path": "opt/app", "kind": "symlink", "target": "/srv/app"}), "img:child")
    assert "declare it at its real path /srv/app/conf/app.ini" in problem


def test_the_merged_usr_links_of_a_childs_first_packages_refuse_a_parents_bin_file(tmp_path):
    (tmp_path / "packages").mkdir()
    (tmp_path / "packages/abc.json").write_text(json.dumps({"packages": [FOO]}))
    problem, = check_inherited([inherited("/bin/tool")], load_owners(str(tmp_path / "packages")), "img:child")
    assert "by the symlink /bin -> usr/bin of the merged-/usr root links" in problem
    assert "real path /usr/bin/tool" in problem and "install" not in problem


def test_new_package_directories_above_a_declared_file_are_fine():
    owners = new_packages({"path": "etc", "kind": "dir"}, {"path": "etc/app", "kind": "dir"})
    assert check_inherited([inherited("/etc/app/local.conf"), inherited("/srv/x")], owners, "img:child") == []
    assert check_inherited([inherited("/bin/tool")], {}, "img:child") == []  # no new packages


def test_action_reports_both_directions_alike(tmp_path):
    (tmp_path / "packages").mkdir()
    (tmp_path / "packages/abc.json").write_text(json.dumps({"packages": [FOO]}))
    (tmp_path / "new/packages").mkdir(parents=True)
    (tmp_path / "new/packages/abc.json").write_text(json.dumps({"packages": [FOO]}))
    spec = {"image": "img:child", "files": [
        {"path": "etc/foo/defaults.ini", "source": "img/defaults.ini", "origin": "img:etc", "can_override": True,
         "overridable": False},
    ], "inherited": [
        {"path": "etc/foo.conf", "source": "base/foo.conf", "origin": "base:conf", "image": "base:base"},
        {"path": "srv/app", "source": "base/app", "origin": "base:conf", "image": "base:base"},
    ]}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    run = subprocess.run([sys.executable, "-m", "debian.actions.check_declared_files", "spec.json"], cwd=tmp_path,
                         env={"PYTHONPATH": str(REPO_ROOT / "rules")}, capture_output=True, text=True)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    lines = run.stderr.splitlines()
    assert lines[0] == "img:child: 1 declared file(s) clash with the image's packages:"
    assert lines[1].startswith("  - /etc/foo/defaults.ini (from img/defaults.ini, img:etc) would replace the file")
    assert lines[2] == "img:child: 1 declared file(s) of its parents clash with the image's packages:"
    assert lines[3].startswith("  - /etc/foo.conf (from base/foo.conf, base:conf) would be replaced by the file "
                               "/etc/foo.conf of foo 2.1-3")
    assert len(lines) == 4
