"""kolla_set_configs against a fake image root (KOLLA_SET_CONFIGS_ROOT): no root privileges needed."""

from __future__ import annotations

import os
import stat

import pytest

from kollaroot import image  # noqa: F401 (fixture)

CONFIG_DIR = "/var/lib/kolla/config_files"


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_command_goes_to_run_command(image):
    image.config({"command": "memcached -p 11211 -m 64"})
    result = image.run()
    assert result.returncode == 0, result.stderr
    run_command = image.path("/run_command")
    assert run_command.read_text() == "memcached -p 11211 -m 64"
    assert mode(run_command) == 0o644


def test_log_dir_is_group_kolla_setgid_and_group_writable(image):
    image.config({"command": "svc"})
    assert image.run().returncode == 0
    logs = image.path("/var/log/kolla")
    assert mode(logs) == 0o2775 and os.stat(logs).st_gid == image.gid


def test_config_file_copied_with_owner_and_perm(image):
    image.write(f"{CONFIG_DIR}/svc.conf", "[DEFAULT]\ndebug = true\n", 0o666)
    image.config({"command": "svc", "config_files": [
        {"source": f"{CONFIG_DIR}/svc.conf", "dest": "/etc/svc/svc.conf", "owner": "svc", "perm": "0600"}]})
    result = image.run()
    assert result.returncode == 0, result.stderr
    dest = image.path("/etc/svc/svc.conf")
    assert dest.read_text() == "[DEFAULT]\ndebug = true\n"
    assert mode(dest) == 0o600
    assert (os.stat(dest).st_uid, os.stat(dest).st_gid) == (image.uid, image.gid)
    assert "Copying /var/lib/kolla/config_files/svc.conf to /etc/svc/svc.conf" in result.stderr


def test_dest_with_trailing_slash_keeps_the_basename_of_each_glob_match(image):
    for name in ("a.conf", "b.conf", "skip.txt"):
        image.write(f"{CONFIG_DIR}/{name}", name)
    image.config({"command": "svc", "config_files": [
        {"source": f"{CONFIG_DIR}/*.conf", "dest": "/etc/svc/", "owner": "svc:kolla", "perm": "644"}]})
    assert image.run().returncode == 0
    assert sorted(p.name for p in image.path("/etc/svc").iterdir()) == ["a.conf", "b.conf"]
    assert image.path("/etc/svc/b.conf").read_text() == "b.conf"


@pytest.mark.parametrize("perm, expected", [("0600", 0o600), ("644", 0o644), ("2775", 0o2775), ("0o640", 0o640)])
def test_perm_spellings(image, perm, expected):
    image.write(f"{CONFIG_DIR}/f", "x")
    image.config({"command": "svc", "config_files": [
        {"source": f"{CONFIG_DIR}/f", "dest": "/etc/f", "owner": "svc", "perm": perm}]})
    assert image.run().returncode == 0
    assert mode(image.path("/etc/f")) == expected


def test_directory_source_copied_recursively_with_execute_bit_on_readable_dirs(image):
    image.write(f"{CONFIG_DIR}/policy.d/a.yaml", "a")
    image.write(f"{CONFIG_DIR}/policy.d/sub/b.yaml", "b")
    image.write("/etc/svc/policy.d/stale.yaml", "old")
    image.config({"command": "svc", "config_files": [
        {"source": f"{CONFIG_DIR}/policy.d", "dest": "/etc/svc/policy.d", "owner": "svc", "perm": "0640"}]})
    assert image.run().returncode == 0
    dest = image.path("/etc/svc/policy.d")
    assert not (dest / "stale.yaml").exists()  # without merge, dest is replaced
    assert (dest / "sub" / "b.yaml").read_text() == "b"
    assert mode(dest) == 0o750 and mode(dest / "sub") == 0o750
    assert mode(dest / "a.yaml") == 0o640 and mode(dest / "sub" / "b.yaml") == 0o640


def test_merge_keeps_what_dest_already_has(image):
    image.write(f"{CONFIG_DIR}/conf.d/new.conf", "new")
    image.write("/etc/svc/conf.d/packaged.conf", "packaged")
    image.config({"command": "svc", "config_files": [
        {"source": f"{CONFIG_DIR}/conf.d", "dest": "/etc/svc/conf.d", "owner": "svc", "perm": "0644",
         "merge": True}]})
    assert image.run().returncode == 0
    names = sorted(p.name for p in image.path("/etc/svc/conf.d").iterdir())
    assert names == ["new.conf", "packaged.conf"]


def test_preserve_properties_keeps_the_source_mode(image):
    image.write(f"{CONFIG_DIR}/tool", "#!/bin/sh\n", 0o751)
    image.config({"command": "svc", "config_files": [
        {"source": f"{CONFIG_DIR}/tool", "dest": "/usr/local/bin/tool", "owner": "root", "perm": "0600",
         "preserve_properties": True}]})
    result = image.run()
    assert result.returncode == 0, result.stderr
    assert mode(image.path("/usr/local/bin/tool")) == 0o751


def test_optional_missing_source_is_skipped(image):
    image.config({"command": "svc", "config_files": [
        {"source": f"{CONFIG_DIR}/absent.conf", "dest": "/etc/absent.conf", "owner": "svc", "perm": "0600",
         "optional": True}]})
    result = image.run()
    assert result.returncode == 0, result.stderr
    assert not image.path("/etc/absent.conf").exists()


def test_missing_required_source_is_refused_before_anything_changes(image):
    image.write(f"{CONFIG_DIR}/present.conf", "x")
    image.config({"command": "svc", "config_files": [
        {"source": f"{CONFIG_DIR}/present.conf", "dest": "/etc/present.conf", "owner": "svc", "perm": "0600"},
        {"source": f"{CONFIG_DIR}/absent.conf", "dest": "/etc/absent.conf", "owner": "svc", "perm": "0600"}]})
    result = image.run()
    assert result.returncode == 1
    assert ("/var/lib/kolla/config_files/config.json: config_files[1].source: "
            "/var/lib/kolla/config_files/absent.conf matches no file") in result.stderr
    assert not image.path("/etc/present.conf").exists()
    assert not image.path("/run_command").exists()


def test_unknown_user_is_refused_naming_key_and_file(image):
    image.write(f"{CONFIG_DIR}/f", "x")
    image.config({"command": "svc", "config_files": [
        {"source": f"{CONFIG_DIR}/f", "dest": "/etc/f", "owner": "nobody-here", "perm": "0600"}]})
    result = image.run()
    assert result.returncode == 1
    assert ("/var/lib/kolla/config_files/config.json: config_files[0].owner: unknown user 'nobody-here'"
            in result.stderr)


def test_unknown_group_is_refused(image):
    image.config({"command": "svc", "permissions": [{"path": "/run", "owner": "svc:nogroup-here"}]})
    result = image.run()
    assert result.returncode == 1
    assert "permissions[0].owner: unknown group 'nogroup-here'" in result.stderr


@pytest.mark.parametrize("text, message", [
    ("{not json", "config.json: not valid JSON"),
    ("[]", "config.json: the file must hold an object"),
    ('{"config_files": []}', "config.json: command: required key missing"),
    ('{"command": "x", "config_files": {}}', "config.json: config_files: must be a list"),
    ('{"command": "x", "config_files": [{"dest": "/etc/x"}]}', "config_files[0].source: required key missing"),
    ('{"command": "x", "config_files": [{"source": "/a", "dest": "/b", "merge": "yes"}]}',
     "config_files[0].merge: must be true or false"),
    ('{"command": "x", "config_files": [{"source": "/a", "dest": "/b", "perm": "0999"}]}',
     "config_files[0].perm: not an octal mode"),
    ('{"command": "x", "config_files": [{"source": "/a", "dest": "/b", "perm": 420}]}',
     "config_files[0].perm: write the mode as a string"),
    ('{"command": "x", "config_files": [{"source": "a", "dest": "/b"}]}',
     "config_files[0].source: must be an absolute path"),
    ('{"command": "x", "permissions": [{"path": "/x", "owner": "svc", "exclude": ["("]}]}',
     "permissions[0].exclude[0]: not a regular expression"),
])
def test_malformed_config_is_refused_with_exit_1(image, text, message):
    image.config(text)
    result = image.run()
    assert result.returncode == 1, result.stderr
    assert message in result.stderr
    assert "/var/lib/kolla/config_files/config.json" in result.stderr


def test_missing_config_file_is_refused(image):
    result = image.run()
    assert result.returncode == 1
    assert "/var/lib/kolla/config_files/config.json: no such file" in result.stderr


@pytest.mark.parametrize("strategy", [None, "", "COPY_TWICE", "copy_always"])
def test_strategy_other_than_copy_always_or_copy_once_is_refused(image, strategy):
    image.config({"command": "svc"})
    result = image.run(strategy=strategy)
    assert result.returncode == 1
    assert "KOLLA_CONFIG_STRATEGY is" in result.stderr and "COPY_ALWAYS or COPY_ONCE" in result.stderr
    assert not image.path("/run_command").exists()


def test_copy_once_copies_only_once(image):
    source = image.write(f"{CONFIG_DIR}/f", "first")
    image.config({"command": "svc", "config_files": [
        {"source": f"{CONFIG_DIR}/f", "dest": "/etc/f", "owner": "svc", "perm": "0600"}]})
    assert image.run(strategy="COPY_ONCE").returncode == 0
    assert image.path("/configured").exists()
    source.write_text("second")
    result = image.run(strategy="COPY_ONCE")
    assert result.returncode == 0
    assert image.path("/etc/f").read_text() == "first"
    assert "COPY_ONCE" in result.stderr


def test_copy_always_copies_every_time(image):
    source = image.write(f"{CONFIG_DIR}/f", "first")
    image.config({"command": "svc", "config_files": [
        {"source": f"{CONFIG_DIR}/f", "dest": "/etc/f", "owner": "svc", "perm": "0600"}]})
    assert image.run().returncode == 0
    source.write_text("second")
    assert image.run().returncode == 0
    assert image.path("/etc/f").read_text() == "second"
    assert not image.path("/configured").exists()


def test_image_default_is_restored_when_the_config_stops_listing_it(image):
    image.write("/etc/svc/svc.conf", "packaged default")
    image.write(f"{CONFIG_DIR}/svc.conf", "deployed")
    image.write(f"{CONFIG_DIR}/extra.conf", "extra")
    image.config({"command": "svc", "config_files": [
        {"source": f"{CONFIG_DIR}/svc.conf", "dest": "/etc/svc/svc.conf", "owner": "svc", "perm": "0600"},
        {"source": f"{CONFIG_DIR}/extra.conf", "dest": "/etc/svc/extra.conf", "owner": "svc", "perm": "0600"}]})
    assert image.run().returncode == 0
    assert image.path("/etc/svc/svc.conf").read_text() == "deployed"
    assert image.path("/etc/kolla/defaults/etc/svc/svc.conf").read_text() == "packaged default"
    image.config({"command": "svc"})
    assert image.run().returncode == 0
    assert image.path("/etc/svc/svc.conf").read_text() == "packaged default"
    assert not image.path("/etc/svc/extra.conf").exists()


def test_permissions_recurse_and_exclude(image):
    for name in ("a.log", "sub/b.log", "keep/c.log", "x.pid"):
        image.write(f"/var/log/kolla/svc/{name}", "", 0o600)
    image.config({"command": "svc", "permissions": [
        {"path": "/var/log/kolla/svc", "owner": "svc:kolla", "perm": "0640", "recurse": True,
         "exclude": ["/keep$", r"\.pid$"]}]})
    result = image.run()
    assert result.returncode == 0, result.stderr
    logs = image.path("/var/log/kolla/svc")
    assert mode(logs) == 0o750 and mode(logs / "sub") == 0o750
    assert mode(logs / "a.log") == 0o640 and mode(logs / "sub" / "b.log") == 0o640
    assert mode(logs / "keep") == 0o755 and mode(logs / "keep" / "c.log") == 0o600
    assert mode(logs / "x.pid") == 0o600


def test_permissions_without_recurse_touch_only_the_path(image):
    image.write("/var/lib/svc/state", "", 0o600)
    image.config({"command": "svc", "permissions": [{"path": "/var/lib/svc", "owner": "svc", "perm": "0700"}]})
    assert image.run().returncode == 0
    assert mode(image.path("/var/lib/svc")) == 0o700
    assert mode(image.path("/var/lib/svc/state")) == 0o600


def test_permissions_on_a_missing_path_only_warn(image):
    image.config({"command": "svc", "permissions": [{"path": "/var/lib/absent*", "owner": "svc"}]})
    result = image.run()
    assert result.returncode == 0
    assert "WARNING" in result.stderr and "/var/lib/absent*" in result.stderr


def test_directories_and_files(image):
    image.write("/var/log/kolla/svc/kept.log", "kept")
    image.config({"command": "svc",
                  "directories": [{"path": "/run/svc/sockets", "owner": "svc", "perm": "0750"}],
                  "files": [{"path": "/var/log/kolla/svc/svc.log", "owner": "svc", "perm": "0640"},
                            {"path": "/var/log/kolla/svc/kept.log", "owner": "svc", "perm": "0600"}]})
    result = image.run()
    assert result.returncode == 0, result.stderr
    assert image.path("/run/svc/sockets").is_dir() and mode(image.path("/run/svc/sockets")) == 0o750
    assert image.path("/var/log/kolla/svc/svc.log").read_text() == ""
    assert mode(image.path("/var/log/kolla/svc/svc.log")) == 0o640
    assert image.path("/var/log/kolla/svc/kept.log").read_text() == "kept"


def test_config_yaml_is_preferred_when_pyyaml_is_there(image):
    pytest.importorskip("yaml")
    image.config({"command": "from-json"})
    image.config("command: from-yaml\nconfig_files: []\n", name="config.yaml")
    assert image.run().returncode == 0
    assert image.path("/run_command").read_text() == "from-yaml"


class TestCheck:
    def configure(self, image):
        image.write(f"{CONFIG_DIR}/svc.conf", "deployed")
        image.write(f"{CONFIG_DIR}/conf.d/a.conf", "a")
        image.config({"command": "svc --serve", "config_files": [
            {"source": f"{CONFIG_DIR}/svc.conf", "dest": "/etc/svc/", "owner": "svc", "perm": "0600"},
            {"source": f"{CONFIG_DIR}/conf.d", "dest": "/etc/svc/conf.d", "owner": "svc", "perm": "0640"}]})

    def test_unchanged_after_a_copy(self, image):
        self.configure(image)
        assert image.run().returncode == 0
        result = image.run("--check", strategy=None)
        assert result.returncode == 0, result.stderr
        assert "unchanged" in result.stderr

    def test_changed_before_any_copy(self, image):
        self.configure(image)
        result = image.run("--check")
        assert result.returncode == 1
        assert "/etc/svc/svc.conf is missing" in result.stderr
        assert not image.path("/etc/svc").exists()  # --check changes nothing

    @pytest.mark.parametrize("change, line", [
        (lambda image: image.write(f"{CONFIG_DIR}/svc.conf", "edited"), "/etc/svc/svc.conf differs"),
        (lambda image: image.path("/etc/svc/svc.conf").chmod(0o644), "/etc/svc/svc.conf has mode 0644, not 0600"),
        (lambda image: image.write(f"{CONFIG_DIR}/conf.d/b.conf", "b"), "/etc/svc/conf.d/b.conf is missing"),
        (lambda image: image.write("/etc/svc/conf.d/stray.conf", "s"), "/etc/svc/conf.d/stray.conf is not in"),
        (lambda image: image.write("/run_command", "other"), "/run_command differs"),
    ])
    def test_each_kind_of_change(self, image, change, line):
        self.configure(image)
        assert image.run().returncode == 0
        change(image)
        result = image.run("--check")
        assert result.returncode == 1, result.stderr
        assert line in result.stderr

    def test_an_error_is_not_reported_as_changed(self, image):
        image.config("{broken")
        assert image.run("--check").returncode == 2
        image.config({"command": "svc", "config_files": [
            {"source": f"{CONFIG_DIR}/absent", "dest": "/etc/absent", "owner": "svc", "perm": "0600"}]})
        assert image.run("--check").returncode == 2


def test_unexpected_error_exits_2(image):
    image.write(f"{CONFIG_DIR}/f", "x")
    image.write("/etc/blocker", "a file where a directory must go")
    image.config({"command": "svc", "config_files": [
        {"source": f"{CONFIG_DIR}/f", "dest": "/etc/blocker/f", "owner": "svc", "perm": "0600"}]})
    result = image.run()
    assert result.returncode == 2
    assert "Unexpected error" in result.stderr


def test_another_root_is_refused_under_sudo(image):
    """The kolla group runs kolla_set_configs as root through sudo: it must not follow a tree of its own."""
    image.config({"command": "svc"})
    result = image.run(env={"SUDO_UID": "42400"})
    assert result.returncode == 2
    assert "refused under sudo" in result.stderr
    assert not image.path("/run_command").exists()


def test_permissions_leave_symlinks_and_their_targets_alone(image, tmp_path):
    outside = tmp_path / "outside"
    outside.write_text("not the service's\n")
    outside.chmod(0o600)
    logs = image.path("/var/log/kolla/svc")
    logs.mkdir(parents=True)
    (logs / "planted.log").symlink_to(outside)
    image.config({"command": "svc", "permissions": [
        {"path": "/var/log/kolla/svc", "owner": "svc", "perm": "0666", "recurse": True}]})
    result = image.run()
    assert result.returncode == 0, result.stderr
    assert mode(outside) == 0o600
    assert "is a symlink: owner and permissions not set" in result.stderr


def test_a_copy_replaces_a_symlink_at_its_destination_instead_of_writing_through_it(image, tmp_path):
    outside = tmp_path / "outside"
    outside.write_text("kept\n")
    image.write(f"{CONFIG_DIR}/svc.conf", "[DEFAULT]\n")
    image.path("/etc/svc").mkdir(parents=True)
    image.path("/etc/svc/svc.conf").symlink_to(outside)
    image.config({"command": "svc", "config_files": [
        {"source": f"{CONFIG_DIR}/svc.conf", "dest": "/etc/svc/svc.conf", "owner": "svc", "perm": "0600",
         "merge": True}]})
    assert image.run().returncode == 0
    assert outside.read_text() == "kept\n"
    assert not image.path("/etc/svc/svc.conf").is_symlink()
    assert image.path("/etc/svc/svc.conf").read_text() == "[DEFAULT]\n"
