"""The users table: one set of account ids for every image."""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml
from pants.engine.fs import DigestContents, PathGlobs
from pants.engine.rules import Get, collect_rules, rule

from debian.subsystem import DebianSubsystem


class UsersTableError(Exception):
    pass


@dataclass(frozen=True)
class UsersTable:
    """Accounts by name, as JSON-ready dicts for the system layer action."""

    path: str
    users: dict = field(hash=False, compare=False)
    groups: dict = field(hash=False, compare=False)
    text: str = ""

    def check_declared(self, image: str, names: tuple[str, ...]) -> None:
        unknown = [name for name in names if name not in self.users]
        if unknown:
            raise UsersTableError(
                f"{image}: `users` names {', '.join(unknown)}, which {self.path} does not define. "
                f"Add them to the `users:` section of {self.path} with a fixed uid."
            )

    def to_json(self) -> dict:
        return {"users": self.users, "groups": self.groups}


def parse_users_table(path: str, raw: bytes) -> UsersTable:
    try:
        data = yaml.safe_load(raw) or {}
    except yaml.YAMLError as e:
        raise UsersTableError(f"{path} is not valid YAML: {e}") from e
    groups = {str(name): int(gid) for name, gid in (data.get("groups") or {}).items()}
    users = {}
    for name, entry in (data.get("users") or {}).items():
        entry = entry or {}
        if "uid" not in entry:
            raise UsersTableError(f"{path}: user {name} has no `uid`.")
        group = entry.get("group", name)
        if group not in groups:
            raise UsersTableError(f"{path}: user {name} has the group {group}, which `groups:` does not define.")
        users[str(name)] = {
            "name": str(name),
            "uid": int(entry["uid"]),
            "gid": groups[group],
            "groups": sorted(entry.get("groups") or ()),
            "home": entry.get("home", "/nonexistent"),
            "shell": entry.get("shell", "/usr/sbin/nologin"),
            "gecos": entry.get("gecos", ""),
        }
    return UsersTable(path, users, groups, raw.decode())


@rule(desc="Read the users table")
async def read_users_table(debian: DebianSubsystem) -> UsersTable:
    contents = await Get(DigestContents, PathGlobs([debian.users_table]))
    return parse_users_table(debian.users_table, contents[0].content if contents else b"")


def rules():
    return collect_rules()
