"""Maintainer-script effects: guards, helper expansion and each rule on small inline scripts, then the
real bookworm scripts of the image set, from the .debs `./pants package ::` caches (marker realset)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import yaml

from debian.actions.debcontents import DebInput
from debian.actions.deblayer import package_layer
from debian.actions.accounts import AccountIds
from debian.actions.layereffects import apply_effects
from debian.actions.scriptcommands import scan_commands
from debian.actions.scripteffects import FinalEntry, PackageInput, PathState, final_entries, parse_mode, plan
from debian.actions.scriptflow import guarded_commands
from debian.actions.shell import tokenize
from oci.actions.tarlayer import DIR, FILE

ACCOUNTS = AccountIds(users={"root": 0, "rabbitmq": 42439, "mysql": 42434, "glance": 42415},
                    groups={"root": 0, "adm": 4, "rabbitmq": 42439, "mysql": 42434, "glance": 42415},
                    primary_gid={"root": 0, "rabbitmq": 42439, "mysql": 42434, "glance": 42415})
BASE = tuple(PathState(p, DIR, 0o755) for p in ("/etc", "/var", "/var/lib", "/var/log", "/usr", "/usr/share"))


def run(script: str, files=(), tmpfiles=None, units=None, name="pkg", others=()):
    package = PackageInput(name, scan_commands({"postinst": script}, name), BASE + tuple(files), tmpfiles or {},
                           units or {}, frozenset(others))
    result = plan(package, ACCOUNTS)
    return result, {e.path: e for e in final_entries(package, result)}


def skipped(script: str, name: str = "postinst") -> dict:
    return {" ".join(c.words): c.skipped_by for c in guarded_commands(name, tokenize(script))}


# ---------------------------------------------------------------- guards


def test_upgrade_only_branches_are_skipped_with_their_guard():
    found = skipped('if [ -n "$2" ] && dpkg --compare-versions "$2" lt 1.0; then rm -f /old; fi\n'
                    'if [ -z "$2" ]; then mkdir /new; else rm /x; fi\n'
                    'case "$1" in\n  configure) chown a /b ;;\n  abort-upgrade|upgrade) touch /u ;;\nesac\n')
    assert found["rm -f /old"] == "if [ -n $2 ] && dpkg --compare-versions $2 lt 1.0"
    assert found["mkdir /new"] == "" and found["chown a /b"] == ""
    assert found["rm /x"] == "an earlier branch (if [ -z $2 ]) is taken instead"
    assert found["touch /u"] == "case $1 in abort-upgrade|upgrade)"


def test_compare_versions_with_no_old_version_follows_dpkg():
    found = skipped('if dpkg --compare-versions "$2" lt 2.0; then touch /lt; fi\n'
                    'if dpkg --compare-versions "$2" lt-nl 2.0; then touch /nl; fi\n')
    assert found["touch /lt"] == ""  # an empty version is earlier than any
    assert found["touch /nl"].startswith("if dpkg --compare-versions")  # except for the -nl operators


def test_unknown_conditions_and_function_arguments_are_not_guessed():
    found = skipped('f() {\n  if [ -n "$2" ]; then chown x /f; fi\n}\nif [ -e /etc/x ]; then touch /e; fi\n')
    assert found["chown x /f"] == "" and found["touch /e"] == ""
    assert skipped('case "$1" in install) touch /i ;; esac\n', "preinst")["touch /i"] == ""


def test_skipped_commands_are_recorded_not_applied():
    result, final = run('if [ "$1" = upgrade ]; then chown rabbitmq /var/lib/r; fi\n',
                        [PathState("/var/lib/r", DIR, 0o755)])
    assert "/var/lib/r" not in final
    assert [(s.command, s.guard) for s in result.skipped] == [("chown rabbitmq /var/lib/r", "if [ $1 = upgrade ]")]


# ---------------------------------------------------------------- rules


def test_chown_and_chmod_of_a_shipped_directory():
    result, final = run("chown rabbitmq:rabbitmq /var/lib/rabbitmq\nchmod 750 /var/lib/rabbitmq\n",
                        [PathState("/var/lib/rabbitmq", DIR, 0o755)])
    assert final["/var/lib/rabbitmq"] == FinalEntry("/var/lib/rabbitmq", DIR, 42439, 42439, 0o750)
    assert not result.unapplied


def test_recursive_chown_reaches_every_path_below():
    _, final = run("chown -R rabbitmq: /var/lib/rabbitmq\n",
                   [PathState("/var/lib/rabbitmq", DIR, 0o755), PathState("/var/lib/rabbitmq/x", FILE, 0o644)])
    assert (final["/var/lib/rabbitmq/x"].uid, final["/var/lib/rabbitmq/x"].gid) == (42439, 42439)


def test_find_xargs_chown_is_a_recursive_chown():
    script = 'd=/var/lib/mysql\nfind $d ! -uid "$(id -u mysql)" -print0 | xargs -0 -r chown mysql\n'
    _, final = run(script, [PathState("/var/lib/mysql", DIR, 0o755)])
    assert (final["/var/lib/mysql"].uid, final["/var/lib/mysql"].gid) == (42434, 0)
    result, _ = run("find /var/lib/mysql -name '*.x' -print0 | xargs -0 chown mysql\n",
                    [PathState("/var/lib/mysql", DIR, 0o755)])
    assert "only `find DIR ! -uid X" in result.unapplied[0].reason  # a filter that is not about owners


def test_symbolic_modes():
    assert parse_mode("o-rwx,g-w", 0o775, True) == 0o750
    assert parse_mode("+x", 0o644, False) == 0o755
    assert parse_mode("u+s", 0o755, False) == 0o4755


def test_install_d_makes_the_directory_with_owner_and_mode():
    _, final = run("install -d -o mysql -g adm -m 2750 /var/log/mysql\n")
    assert final["/var/log/mysql"] == FinalEntry("/var/log/mysql", DIR, 42434, 4, 0o2750)


def test_a_parent_outside_the_layer_is_needed_not_made():
    result, final = run("mkdir -p /run/app/sub\n")
    assert "/run/app" not in final and result.needs == ("/run/app",)
    _, final = run("mkdir -p /var/lib/app/sub\n")
    assert final["/var/lib/app"].mode == 0o755 and final["/var/lib/app/sub"].uid == 0


def test_variables_are_resolved_and_unknown_users_are_not_guessed():
    result, final = run("D=/var/lib/foo\nmkdir -p $D\nchown nobody-here $D\n")
    assert final["/var/lib/foo"].uid == 0
    assert [(u.reason, u.path) for u in result.unapplied] == [
        ("user 'nobody-here' is not in the users table", "/var/lib/foo")]


def test_dynamic_paths_are_left_to_the_reviewer():
    result, _ = run('for f in $(ls /etc/x); do chown root "$f"; done\n')
    assert len(result.unapplied) == 1 and "run time" in result.unapplied[0].reason


def test_removals_of_absent_paths_are_noops_but_not_of_shipped_ones():
    result, _ = run("rm -f /etc/old.conf\nrm -f /etc/shipped.conf\n", [PathState("/etc/shipped.conf", FILE, 0o644)])
    assert [n.command for n in result.noops] == ["rm /etc/old.conf"]
    assert result.absent == ("/etc/old.conf",)  # the system layer checks no other package ships it
    assert "which the image has" in result.unapplied[0].reason


def test_statoverride_add_sets_owner_and_mode():
    _, final = run("dpkg-statoverride --list /usr/bin/x >/dev/null || dpkg-statoverride --update --add root mysql "
                   "4750 /usr/bin/x\n", [PathState("/usr/bin", DIR, 0o755), PathState("/usr/bin/x", FILE, 0o755)])
    assert final["/usr/bin/x"] == FinalEntry("/usr/bin/x", FILE, 0, 42434, 0o4750)


def test_copy_from_usr_share_with_owner_never_over_a_shipped_file():
    shipped = [PathState("/usr/share/pkg", DIR, 0o755), PathState("/usr/share/pkg/a.ini", FILE, 0o644)]
    _, final = run("install -D -m 0640 -o root -g glance /usr/share/pkg/a.ini /etc/glance/a.ini\n", shipped)
    assert final["/etc/glance/a.ini"] == FinalEntry("/etc/glance/a.ini", FILE, 0, 42415, 0o640, "/usr/share/pkg/a.ini")
    result, _ = run("cp /usr/share/pkg/a.ini /etc/a\n", shipped, others=["/etc/a"])
    assert "already in the image" in result.unapplied[0].reason


def test_tmpfiles_d_lines_make_directories_and_skip_boot_only_lines():
    result, final = run("", tmpfiles={"/usr/lib/tmpfiles.d/m.conf": "d /run/mysqld 0755 mysql root -\nr! /etc/x.lock\n"
                                                                    "z /dev/kvm 0660 - kvm -\n"})
    assert final["/run/mysqld"] == FinalEntry("/run/mysqld", DIR, 42434, 0, 0o755)
    assert len(result.noops) == 2 and not result.unapplied


def test_unit_directories_take_user_group_and_mode():
    unit = "[Unit]\nDescription=x\n[Service]\nUser=glance\nGroup=glance\nRuntimeDirectory=glance lock/glance\n" \
           "RuntimeDirectoryMode=0750\nCacheDirectory=glance\n"
    result, final = run("", units={"/usr/lib/systemd/system/g.service": unit})
    assert final["/run/glance"] == FinalEntry("/run/glance", DIR, 42415, 42415, 0o750)
    assert final["/var/cache/glance"].mode == 0o755
    # /run/lock is made at boot by systemd-tmpfiles, by no package: left for review
    assert [(u.command, u.path) for u in result.unapplied] == [("g.service: RuntimeDirectory=lock/glance",
                                                                 "/run/lock/glance")]


def test_template_units_are_not_guessed():
    result, _ = run("", units={"/usr/lib/systemd/system/u@.service": "[Service]\nStateDirectory=u/%i\n"})
    assert (result.unapplied[0].script, result.unapplied[0].path) == ("unit", "/var/lib/u/%i")


def test_rmdir_of_a_directory_the_package_made_removes_it():
    _, final = run("mkdir -p /var/lib/up\nrmdir /var/lib/up\n")
    assert "/var/lib/up" not in final


def test_helper_with_a_changed_body_is_not_expanded():
    script = "pkgos_write_new_conf () {\n\tcp /usr/share/$1/$2 /etc/$1/$2\n}\npkgos_write_new_conf glance a.conf\n"
    result, final = run(script)
    assert "/etc/glance/a.conf" not in final
    assert any("differs from the reviewed one" in u.reason for u in result.unapplied)


def test_plans_are_deterministic():
    script = "mkdir -p /var/lib/b /var/lib/a\nchown mysql /var/lib/a\n"
    assert run(script)[0] == run(script)[0]


# ---------------------------------------------------------------- real scripts
# Marked realset: they read the lock's .debs from the cache that `./pants package ::` fills.

REPO = Path(__file__).resolve().parents[2]
DEBS = Path(os.path.expanduser("~/.cache/oci-pants/debs"))


def lock_debs(*names: str) -> list:
    lock = yaml.safe_load((REPO / "3rdparty/debian/lock.yaml").read_text())["architectures"]["amd64"]
    paths = [DEBS / f"{lock[n]['sha256']}.deb" for n in names]
    missing = [n for p, n in zip(paths, names) if not p.exists()]
    assert not missing, f"{missing}: not in ~/.cache/oci-pants/debs; run `./pants package ::` first"
    return [DebInput(str(p), n) for p, n in zip(paths, names)]


def real_ids() -> AccountIds:
    table = yaml.safe_load((REPO / "images/users.yaml").read_text())
    users = {n: {"uid": u["uid"], "gid": table["groups"][u.get("group", n)]} for n, u in table["users"].items()}
    return AccountIds.with_base({"users": users, "groups": table["groups"]})


def real_layer(*names: str):
    """{path: entry} of a package layer of `names` with effects applied, and each package's record."""
    with tempfile.TemporaryDirectory() as spool:
        layer = package_layer(lock_debs(*names), spool)
        entries, records = apply_effects(layer.packages, layer.entries, real_ids())
    return {"/" + e.path: e for e in entries}, {name: r for (name, _), r in records.items()}


def owned(entry, uid: int, gid: int, mode: int) -> bool:
    return (entry.uid, entry.gid, entry.mode) == (uid, gid, mode)


@pytest.mark.realset
def test_real_rabbitmq_server():
    entries, records = real_layer("rabbitmq-server")
    assert owned(entries["/var/lib/rabbitmq"], 42439, 42439, 0o755)
    assert owned(entries["/var/lib/rabbitmq/mnesia"], 42439, 42439, 0o750)
    assert owned(entries["/var/log/rabbitmq"], 42439, 42439, 0o755)
    assert {u["path"] for u in records["rabbitmq-server"]["unapplied"]} >= {"/var/lib/rabbitmq/.erlang.cookie"}


@pytest.mark.realset
def test_real_mariadb_server():
    entries, records = real_layer("mariadb-server")
    assert owned(entries["/run/mysqld"], 42434, 0, 0o755)
    assert entries["/var/lib/mysql"].uid == 42434
    assert entries["/usr/lib/mysql/plugin/auth_pam_tool_dir/auth_pam_tool"].mode == 0o4755
    assert "/var/lib/mysql-upgrade" not in entries  # made by preinst, rmdir'd by postinst
    assert "/var/log/mysql" not in entries  # the package neither ships nor makes it
    assert records["mariadb-server"]["needs"] == ["/run", "/var/lib"]  # from base-files, below this layer


@pytest.mark.realset
def test_real_memcached():
    entries, records = real_layer("memcached")
    assert owned(entries["/run/memcached"], 42709, 42709, 0o755)  # Debian's memcache account (images/users.yaml)
    assert not records["memcached"]["unapplied"]


@pytest.mark.realset
def test_real_glance():
    entries, records = real_layer("glance-common", "glance-api")
    paste = entries["/etc/glance/glance-api-paste.ini"]
    assert owned(paste, 0, 42415, 0o640) and paste.opener is not None
    assert owned(entries["/etc/glance"], 42415, 42415, 0o750)
    assert owned(entries["/var/lib/glance"], 42415, 42415, 0o750)
    assert owned(entries["/var/log/glance"], 42415, 4, 0o750)
    assert owned(entries["/run/glance"], 42415, 42415, 0o755)


@pytest.mark.realset
def test_real_nova_and_keystone():
    entries, _ = real_layer("nova-common", "keystone")
    assert owned(entries["/etc/nova/api-paste.ini"], 0, 42436, 0o640)
    assert owned(entries["/var/lib/nova"], 42436, 42436, 0o755)
    assert owned(entries["/etc/keystone"], 42425, 42425, 0o750)
    assert owned(entries["/etc/keystone/fernet-keys"], 42425, 42425, 0o700)
    assert owned(entries["/var/lib/keystone"], 42425, 42425, 0o750)
    assert owned(entries["/var/log/keystone"], 42425, 4, 0o750)


@pytest.mark.realset
def test_every_unapplied_effect_of_the_lock_is_accepted_individually():
    accepted = yaml.safe_load((REPO / "3rdparty/debian/accepted-script-effects.yaml").read_text())
    keys = {(p, e["script"], e["command"], e["path"]) for p, entries in accepted.items() for e in entries}
    _, records = real_layer("rabbitmq-server", "mariadb-server", "keystone", "glance-common", "nova-common")
    missing = [(p, u["script"], u["command"], u["path"]) for p, r in records.items() for u in r["unapplied"]
               if (p, u["script"], u["command"], u["path"]) not in keys]
    assert missing == []
