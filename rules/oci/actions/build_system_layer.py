"""Write an image's system layer: `python -m oci.actions.build_system_layer spec.json`.

What maintainer scripts would have written, made from declarations: accounts,
the CA bundle, alternatives, nsswitch.conf and the time zone.  The spec lists
every path the image's packages install, every alternative they offer, the few
package files these are made from (`extras`: image path -> file in the sandbox)
and the accounts from the users table.
"""

from __future__ import annotations

import json
import sys

from .accounts import Accounts, Group, User, merge_accounts, parse_group, parse_passwd
from .build_layer import write_layer_files
from .sysfiles import (
    CA_CERT_DIR,
    NSSWITCH_TEMPLATE,
    Alternative,
    alternative_entries,
    ca_bundle,
    choose_alternatives,
    localtime,
    nsswitch,
)
from .tarlayer import FILE, Entry

PASSWD_MASTER = "usr/share/base-passwd/passwd.master"
GROUP_MASTER = "usr/share/base-passwd/group.master"
ROOT_ONLY = Accounts((User("root", 0, 0, "root", "/root", "/bin/sh"),), (Group("root", 0),))


def read_extra(extras: dict, path: str) -> bytes | None:
    source = extras.get(path)
    if source is None:
        return None
    with open(source, "rb") as f:
        return f.read()


def base_accounts(extras: dict) -> Accounts:
    passwd, group = read_extra(extras, PASSWD_MASTER), read_extra(extras, GROUP_MASTER)
    if passwd is None or group is None:
        return ROOT_ONLY
    return Accounts(tuple(parse_passwd(passwd.decode())), tuple(parse_group(group.decode())))


def account_entries(spec: dict, extras: dict) -> list[Entry]:
    table = spec.get("accounts") or {}
    users = [User(u["name"], int(u["uid"]), int(u["gid"]), u.get("gecos", ""), u.get("home", "/nonexistent"),
                  u.get("shell", "/usr/sbin/nologin")) for u in table.get("users") or ()]
    groups = [Group(g["name"], int(g["gid"])) for g in table.get("groups") or ()]
    accounts = merge_accounts(base_accounts(extras), users, groups, table.get("memberships") or {})
    modes = {"etc/shadow": 0o640, "etc/gshadow": 0o640}
    shadow_gid = next((g.gid for g in accounts.groups if g.name == "shadow"), 0)
    return [
        Entry(path, FILE, modes.get(path, 0o644), 0, shadow_gid if path in modes else 0, data=data)
        for path, data in accounts.files().items()
    ]


def system_entries(spec: dict) -> list[Entry]:
    extras = dict(spec.get("extras") or {})
    installed = set(spec.get("installed") or ())
    candidates = [Alternative.from_json(a) for a in spec.get("alternatives") or ()]
    certificates = {path: read_extra(extras, path) for path in extras if path.startswith(CA_CERT_DIR + "/")}
    entries = account_entries(spec, extras)
    entries += alternative_entries(choose_alternatives(candidates, installed), candidates, installed)
    entries += ca_bundle({p: c for p, c in certificates.items() if p.endswith(".crt")})
    entries.append(nsswitch(read_extra(extras, NSSWITCH_TEMPLATE)))
    entries += localtime(spec.get("timezone") or "Etc/UTC", installed)
    return entries


def main(argv: list[str]) -> int:
    spec_path, = argv
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    entries = system_entries(spec)
    result = write_layer_files(entries, spec, ".")
    print(f"{result['diff_id']} {len(entries)} system entries", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
