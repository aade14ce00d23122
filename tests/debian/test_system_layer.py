"""The system layer's refusals and choices, on hand-written packages.json data."""

from __future__ import annotations

import pytest
import specs

from debian.actions.build_system_layer import ChainPackages, table_accounts
from debian.actions.effectcheck import UncoveredEffect, check_effects
from debian.actions.sysfiles import Alternative, choose_alternatives


def package(name: str, unapplied=(), needs=(), absent=(), files=(), **findings) -> dict:
    scripts = {kind: findings.get(kind, []) for kind in
               ("alternatives", "users", "groups", "memberships", "effects", "unrecognized")}
    by_kind = [dict(e, path=e.get("path", "")) for e in findings.get("effects", [])]
    effects = {"applied": [], "unapplied": list(unapplied), "needs": list(needs), "absent": list(absent),
               "skipped": [], "by_kind": by_kind}
    return {"name": name, "architecture": "amd64", "files": [{"path": f, "kind": "file"} for f in files],
            "maintainer_scripts": scripts, "script_effects": effects}


SERVICE = {"kind": "service", "script": "postinst", "command": "deb-systemd-invoke start app"}
COOKIE = {"script": "postinst", "command": "openssl rand -out /var/lib/app/cookie 42", "path": "/var/lib/app/cookie",
          "reason": "unknown command 'openssl'"}
ACCEPTED = {"app": [{"script": "postinst", "command": "openssl rand -out /var/lib/app/cookie 42",
                     "path": "/var/lib/app/cookie", "reason": "a per-deployment secret"}]}
POLICY = {"service": "ignore", "accounts": "covered"}


def test_kinds_without_rules_follow_the_policy():
    chain = [package("app", effects=[dict(SERVICE, kind="pam", command="pam-auth-update")])]
    with pytest.raises(UncoveredEffect, match=r"app \(postinst\): pam-auth-update\n.*no rule applies pam effects"):
        check_effects(chain, POLICY, {})
    accepted = {"app": [{"script": "postinst", "command": "pam-auth-update", "path": "", "reason": "no PAM logins"}]}
    assert check_effects(chain, POLICY, accepted)[1][0].reason == "no PAM logins"
    notes, _ = check_effects([package("app", effects=[SERVICE])], POLICY, {})
    assert notes == ["app (postinst): service: deb-systemd-invoke start app"]


def test_kinds_the_rules_handle_are_not_judged_by_kind():
    chown = {"kind": "filesystem", "script": "postinst", "command": "chown app /var/lib/app"}
    assert check_effects([package("app", effects=[chown])], POLICY, {}) == ([], [])


def test_an_unapplied_effect_stops_the_build_with_the_entry_to_add():
    with pytest.raises(UncoveredEffect) as error:
        check_effects([package("app", unapplied=[COOKIE])], POLICY, {})
    message = str(error.value)
    assert "app (postinst): openssl rand -out /var/lib/app/cookie 42" in message
    assert "path: /var/lib/app/cookie; not applied: unknown command 'openssl'" in message
    assert ('      app:\n        - script: "postinst"\n          command: "openssl rand -out /var/lib/app/cookie 42"\n'
            '          path: "/var/lib/app/cookie"\n') in message


def test_accepted_effects_pass_one_by_one_and_are_returned():
    _, used = check_effects([package("app", unapplied=[COOKIE])], POLICY, ACCEPTED)
    assert [(e.package, e.command, e.path, e.reason) for e in used] == [
        ("app", COOKIE["command"], "/var/lib/app/cookie", "a per-deployment secret")]
    other_path = dict(COOKIE, path="/var/lib/app/other")
    with pytest.raises(UncoveredEffect, match="/var/lib/app/other"):
        check_effects([package("app", unapplied=[other_path])], POLICY, ACCEPTED)
    assert check_effects([package("web")], POLICY, ACCEPTED) == ([], [])  # an entry for another image's package


def test_whole_kinds_are_no_longer_accepted():
    with pytest.raises(UncoveredEffect, match="whole kinds are no longer accepted"):
        check_effects([package("app")], POLICY, {"app": ["filesystem"]})
    with pytest.raises(UncoveredEffect, match="exactly script, command, path, reason"):
        check_effects([package("app")], POLICY, {"app": [dict(ACCEPTED["app"][0], reason="")]})


def test_effects_must_fit_the_image():
    with pytest.raises(UncoveredEffect, match="app \\(layer\\): effects below /run\n.*installed by no package"):
        check_effects([package("app", needs=["/run"])], POLICY, {})
    assert check_effects([package("app", needs=["/run"]), package("base", files=["run"])], POLICY, {}) == ([], [])
    with pytest.raises(UncoveredEffect, match=r"/etc/init.d/old\* is absent, but base installs /etc/init.d/old-x"):
        check_effects([package("app", absent=["/etc/init.d/old*"]), package("base", files=["etc/init.d/old-x"])],
                      POLICY, {})


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
