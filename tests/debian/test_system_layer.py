"""The system layer's refusals and choices, on hand-written packages.json data."""

from __future__ import annotations

import pytest
import specs

from debian.actions.build_system_layer import ChainPackages, UncoveredEffect, check_effects, table_accounts
from debian.actions.sysfiles import Alternative, choose_alternatives


def package(name: str, **findings) -> dict:
    scripts = {kind: findings.get(kind, []) for kind in
               ("alternatives", "users", "groups", "memberships", "effects", "unrecognized")}
    return {"name": name, "architecture": "amd64", "files": [], "maintainer_scripts": scripts}


CHOWN = {"kind": "filesystem", "script": "postinst", "command": "chown app /var/lib/app"}
POLICY = {"service": "ignore", "accounts": "covered"}


def test_uncovered_effect_names_package_script_and_command():
    chain = ChainPackages((package("app", effects=[CHOWN]),))
    with pytest.raises(UncoveredEffect, match=r"app \(postinst\): filesystem: chown app /var/lib/app"):
        check_effects(chain, POLICY, {})


def test_accepted_and_ignored_effects_pass():
    service = {"kind": "service", "script": "postinst", "command": "deb-systemd-invoke start app"}
    chain = ChainPackages((package("app", effects=[CHOWN, service]),))
    notes = check_effects(chain, POLICY, {"app": ["filesystem"]})
    assert notes == ["app (postinst): service: deb-systemd-invoke start app"]


def test_unrecognized_commands_are_errors_unless_accepted():
    odd = {"script": "postinst", "command": "frobnicate --all", "reason": "unknown command"}
    chain = ChainPackages((package("app", unrecognized=[odd]),))
    with pytest.raises(UncoveredEffect, match="frobnicate"):
        check_effects(chain, POLICY, {})
    assert check_effects(chain, POLICY, {"app": ["unrecognized"]}) == []


TABLE = {"users": {"app": {"name": "app", "uid": 42410, "gid": 42410, "groups": ["kolla"], "home": "/var/lib/app",
                           "shell": "/usr/sbin/nologin", "gecos": ""}},
         "groups": {"app": 42410, "kolla": 42400}}


def test_accounts_that_packages_create_come_from_the_table_or_stop_the_build():
    creates_app = {"name": "app", "command": "adduser --system app"}
    chain = ChainPackages((package("app", users=[creates_app]),))
    accounts = table_accounts(specs.system_layer(TABLE), chain)
    assert [u["uid"] for u in accounts["users"]] == [42410]
    assert accounts["memberships"] == {"kolla": ["app"]}
    stranger = ChainPackages((package("svc", users=[{"name": "svc", "command": "adduser --system svc"}]),))
    with pytest.raises(UncoveredEffect, match=r"svc creates the user svc \(adduser --system svc\)"):
        table_accounts(specs.system_layer(TABLE), stranger)


def test_alternatives_pick_the_highest_installed_priority():
    candidates = [Alternative("/usr/bin/awk", "awk", "/usr/bin/gawk", 10),
                  Alternative("/usr/bin/awk", "awk", "/usr/bin/mawk", 5),
                  Alternative("/usr/bin/awk", "awk", "/usr/bin/original-awk", 5)]
    assert choose_alternatives(candidates, {"usr/bin/mawk", "usr/bin/original-awk"})[0].path == "/usr/bin/mawk"
    assert choose_alternatives(candidates, {"usr/bin/gawk", "usr/bin/mawk"})[0].path == "/usr/bin/gawk"
