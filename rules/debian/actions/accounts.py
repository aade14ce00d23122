"""/etc/passwd, /etc/group, /etc/shadow and /etc/gshadow, written from declarations.

Debian's base-passwd seeds these files from its master copies in preinst, and
packages add their system users with adduser in postinst.  We run neither:
the master files give the static system accounts, and every other account
comes from one fixed table, so a uid never depends on install order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Optional, Sequence

# base-passwd's static accounts (passwd.master and group.master of bookworm): the same ids on
# every Debian system, so a maintainer-script effect may name them before /etc/passwd exists.
BASE_USERS = {"root": (0, 0), "daemon": (1, 1), "bin": (2, 2), "sys": (3, 3), "sync": (4, 65534),
              "games": (5, 60), "man": (6, 12), "lp": (7, 7), "mail": (8, 8), "news": (9, 9), "uucp": (10, 10),
              "proxy": (13, 13), "www-data": (33, 33), "backup": (34, 34), "list": (38, 38), "irc": (39, 39),
              "_apt": (42, 65534), "nobody": (65534, 65534)}
BASE_GROUPS = {"root": 0, "daemon": 1, "bin": 2, "sys": 3, "adm": 4, "tty": 5, "disk": 6, "lp": 7, "mail": 8,
               "news": 9, "uucp": 10, "man": 12, "proxy": 13, "kmem": 15, "dialout": 20, "fax": 21, "voice": 22,
               "cdrom": 24, "floppy": 25, "tape": 26, "sudo": 27, "audio": 29, "dip": 30, "www-data": 33,
               "backup": 34, "operator": 37, "list": 38, "irc": 39, "src": 40, "shadow": 42, "utmp": 43,
               "video": 44, "sasl": 45, "plugdev": 46, "staff": 50, "games": 60, "users": 100, "nogroup": 65534}


class AccountError(ValueError):
    pass


@dataclass(frozen=True)
class AccountIds:
    """Names to ids for the maintainer-script effect rules: base-passwd's static accounts, then the
    users table."""

    users: Mapping[str, int]
    groups: Mapping[str, int]
    primary_gid: Mapping[str, int]  # user -> gid of its primary group

    def uid(self, name: str) -> Optional[int]:
        return int(name) if name.isdigit() else self.users.get(name)

    def gid(self, name: str) -> Optional[int]:
        return int(name) if name.isdigit() else self.groups.get(name)

    def to_json(self) -> dict:
        return {"users": dict(self.users), "groups": dict(self.groups), "primary_gid": dict(self.primary_gid)}

    @classmethod
    def from_json(cls, value: Mapping) -> "AccountIds":
        return cls(dict(value["users"]), dict(value["groups"]), dict(value["primary_gid"]))

    @classmethod
    def with_base(cls, table: Mapping) -> "AccountIds":
        """The users table ({"users": {name: {uid, gid}}, "groups": {name: gid}}) over base-passwd's ids."""
        users = {name: uid for name, (uid, _) in BASE_USERS.items()}
        primary = {name: gid for name, (_, gid) in BASE_USERS.items()}
        users.update({name: int(u["uid"]) for name, u in table["users"].items()})
        primary.update({name: int(u["gid"]) for name, u in table["users"].items()})
        return cls(users, {**BASE_GROUPS, **{k: int(v) for k, v in table["groups"].items()}}, primary)


@dataclass(frozen=True)
class Group:
    name: str
    gid: int
    members: tuple[str, ...] = ()

    def group_line(self) -> str:
        return f"{self.name}:x:{self.gid}:{','.join(self.members)}"

    def gshadow_line(self) -> str:
        return f"{self.name}:*::{','.join(self.members)}"


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int
    gecos: str = ""
    home: str = "/nonexistent"
    shell: str = "/usr/sbin/nologin"

    def passwd_line(self) -> str:
        return f"{self.name}:x:{self.uid}:{self.gid}:{self.gecos}:{self.home}:{self.shell}"

    def shadow_line(self) -> str:
        # '*' : no password can ever match; 0 days since epoch keeps the file reproducible.
        return f"{self.name}:*:0:0:99999:7:::"


def parse_passwd(text: str) -> list[User]:
    users = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) != 7:
            raise AccountError(f"passwd line {number} has {len(fields)} fields, not 7: {line!r}")
        name, _, uid, gid, gecos, home, shell = fields
        users.append(User(name, int(uid), int(gid), gecos, home, shell))
    return users


def parse_group(text: str) -> list[Group]:
    groups = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) != 4:
            raise AccountError(f"group line {number} has {len(fields)} fields, not 4: {line!r}")
        name, _, gid, members = fields
        groups.append(Group(name, int(gid), tuple(m for m in members.split(",") if m)))
    return groups


@dataclass(frozen=True)
class Accounts:
    users: tuple[User, ...]
    groups: tuple[Group, ...]

    def files(self) -> dict[str, bytes]:
        """The four account files, in the order of the declarations."""
        return {
            "etc/passwd": lines(u.passwd_line() for u in self.users),
            "etc/shadow": lines(u.shadow_line() for u in self.users),
            "etc/group": lines(g.group_line() for g in self.groups),
            "etc/gshadow": lines(g.gshadow_line() for g in self.groups),
        }


def lines(items: Iterable[str]) -> bytes:
    return "".join(f"{item}\n" for item in items).encode()


def merge_accounts(base: Accounts, users: Sequence[User], groups: Sequence[Group],
                   memberships: Mapping[str, Sequence[str]] = {}) -> Accounts:
    """Base accounts plus table accounts; a name or id used twice with other values is an error."""
    all_groups = {g.name: g for g in base.groups}
    for group in groups:
        add_unique(all_groups, group, "group", lambda g: g.gid)
    all_users = {u.name: u for u in base.users}
    for user in users:
        add_unique(all_users, user, "user", lambda u: u.uid)
        if not any(g.gid == user.gid for g in all_groups.values()):
            raise AccountError(f"user {user.name}: its group id {user.gid} is not declared")
    for group_name, members in sorted(memberships.items()):
        if group_name not in all_groups:
            raise AccountError(f"group {group_name} is not declared, so users cannot join it")
        group = all_groups[group_name]
        all_groups[group_name] = Group(group.name, group.gid, tuple(sorted({*group.members, *members})))
    return Accounts(tuple(all_users.values()), tuple(all_groups.values()))


def add_unique(existing: dict, item, kind: str, number) -> None:
    same_name = existing.get(item.name)
    if same_name is not None and same_name != item:
        raise AccountError(f"{kind} {item.name} is declared twice with different values: {same_name} and {item}")
    clash = [other for other in existing.values() if number(other) == number(item) and other.name != item.name]
    if clash:
        raise AccountError(f"{kind} {item.name} takes id {number(item)}, which {clash[0].name} already has")
    existing[item.name] = item
