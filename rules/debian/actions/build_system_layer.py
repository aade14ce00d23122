"""Write an image's system layer: `python -m debian.actions.build_system_layer spec.json`.

What maintainer scripts would have written, made from declarations: accounts,
the CA bundle and its hash links, alternatives, nsswitch.conf, the time zone and
/etc/ld.so.cache; and what dpkg itself would have written: /var/lib/dpkg/status for every
package of the chain (from the stanzas packages.json records), info/format, an opaque whiteout
that hides the package layers' status.d/ from the image's filesystem (per-layer scanners still
read it in each layer), and the path filter as dpkg configuration.  The sandbox holds
`packages/*.json` (what every package of the image installed and what its
scripts would do) and `extras/` (the few package files these are made from);
the spec holds the users table, the image's declared users and the policy for
script effects.  The effects themselves were applied in the package layers
(layereffects.py); here effectcheck.py refuses what nobody applied or accepted, and
the directories they made are restated so that a later package layer cannot reset them.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import Any, Mapping, Tuple

from oci.actions.build_layer import write_layer_files
from oci.actions.specs import LayerSettings, load_spec
from oci.actions.tarlayer import DIR, FILE, Entry

from .accounts import (
    BASE_GROUPS,
    BASE_USERS,
    AccountError,
    Accounts,
    Group,
    User,
    merge_accounts,
    parse_group,
    parse_passwd,
)
from .debcontents import merged_usr_root_links
from .dpkgdb import StatusError, StatusRecord, dpkg_path_filter_cfg, image_database_entries
from .effectcheck import UncoveredEffect, check_effects, script_effects
from .elf import SharedObject
from .pathfilter import PathFilter
from .ldcache import GENERATOR, LD_SO_CACHE, TRIPLETS, ImageTree, LdCacheError, Node, build_ld_cache, cache_bytes
from .sysfiles import (
    CA_CERT_DIR,
    NSSWITCH_TEMPLATE,
    Alternative,
    alternative_entries,
    ca_bundle,
    installed_templates,
    choose_alternatives,
    localtime,
    nsswitch,
)

@dataclass(frozen=True)
class SystemLayerSpec:
    image: str
    users_table: Mapping[str, Any]  # {"users": {name: account}, "groups": {name: gid}}
    users_table_path: str
    declared_users: Tuple[str, ...]  # by the image and its parents
    timezone: str
    effect_policy: Mapping[str, str]  # effect kind -> covered, ignore or error
    accepted_effects: Mapping[str, Tuple[Mapping[str, str], ...]]  # package -> {script, command, path, reason}
    path_filter: PathFilter  # [debian].path_excludes/path_includes, for /etc/dpkg/dpkg.cfg.d/
    settings: LayerSettings

    def to_json(self) -> dict:
        return {"image": self.image, "users_table": dict(self.users_table), "users_table_path": self.users_table_path,
                "declared_users": list(self.declared_users), "timezone": self.timezone,
                "effect_policy": dict(self.effect_policy),
                "accepted_effects": {k: [dict(e) for e in v] for k, v in self.accepted_effects.items()},
                "path_filter": self.path_filter.to_json(), "settings": self.settings.to_json()}

    @classmethod
    def from_json(cls, value: Mapping) -> "SystemLayerSpec":
        return cls(value["image"], value["users_table"], value["users_table_path"], tuple(value["declared_users"]),
                   value["timezone"], dict(value["effect_policy"]),
                   {k: tuple(v) for k, v in value["accepted_effects"].items()},
                   PathFilter.from_json(value["path_filter"]), LayerSettings.from_json(value["settings"]))


PASSWD_MASTER = "usr/share/base-passwd/passwd.master"
GROUP_MASTER = "usr/share/base-passwd/group.master"
DPKG_PATH_FILTER_CFG = "etc/dpkg/dpkg.cfg.d/oci-path-filter"
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


def account_entries(table: dict, extras: dict) -> list[Entry]:
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


@dataclass(frozen=True)
class ChainPackages:
    """What the image's packages (its parents' included) install and what their scripts would do."""

    packages: tuple

    @classmethod
    def load(cls, directory: str) -> "ChainPackages":
        packages = []
        for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else ():
            with open(os.path.join(directory, name), encoding="utf-8") as f:
                packages += json.load(f)["packages"]
        return cls(tuple(sorted(packages, key=lambda p: (p["name"], p["architecture"]))))

    def installed(self) -> set[str]:
        return {f["path"] for p in self.packages for f in p["files"]}

    def findings(self, kind: str) -> list[tuple[str, dict]]:
        return [(p["name"], item) for p in self.packages for item in p["maintainer_scripts"][kind]]

    def owners(self) -> dict[str, str]:
        return {f["path"]: p["name"] for p in self.packages for f in p["files"]}

    def architecture(self) -> str | None:
        """The image's architecture: libc6's, or the one architecture its other packages are built for."""
        libc = sorted(p["architecture"] for p in self.packages if p["name"] == "libc6")
        specific = sorted({p["architecture"] for p in self.packages} - {"all"})
        return libc[0] if libc else (specific[0] if len(specific) == 1 else None)

    def tree(self, on_top: list[Entry]) -> ImageTree:
        """The image's files as its packages and then `on_top` (this layer's entries so far) leave them."""
        nodes = {f["path"]: Node(f["kind"], f.get("target", "")) for p in self.packages for f in p["files"]}
        nodes.update((e.path, Node(e.kind, e.target)) for e in on_top)
        return ImageTree(nodes)

    def status_records(self) -> list[StatusRecord]:
        return [StatusRecord.from_json(p) for p in self.packages]

    def shared_objects(self) -> dict[str, SharedObject]:
        """Path -> ELF facts of the libraries the package layers recorded (damaged ones left out, as ldconfig does)."""
        return {s["path"]: SharedObject.from_json(s) for p in self.packages for s in p.get("shared_objects") or ()
                if "error" not in s}


def extras_in(directory: str) -> dict[str, str]:
    """Image path -> sandbox path of every package file extracted for this layer."""
    found = {}
    for root, _, files in os.walk(directory):
        for name in files:
            source = os.path.join(root, name)
            found[os.path.relpath(source, directory)] = source
    return found


def effect_directories(chain: ChainPackages) -> list[Entry]:
    """Directories the package layers' effects made or changed, restated above every package layer.

    A later package layer that ships the same directory (glance-api's /etc/glance, root 0755) would
    otherwise put back the .deb's owner over glance-common's glance:glance 0750.
    """
    found: dict[str, tuple[dict, str]] = {}
    for package in chain.packages:
        for applied in script_effects(package)["applied"]:
            if applied["kind"] != DIR:
                continue
            earlier = found.get(applied["path"])
            if earlier is not None and earlier[0] != applied:
                raise UncoveredEffect(f"{applied['path']}: the maintainer scripts of {earlier[1]} and "
                                      f"{package['name']} leave it differently ({earlier[0]} and {applied})")
            found[applied["path"]] = (applied, package["name"])
    return [Entry(path.lstrip("/"), DIR, int(a["mode"], 8), a["uid"], a["gid"]) for path, (a, _) in sorted(found.items())]


def system_entries(spec: SystemLayerSpec, warnings: list | None = None) -> list[Entry]:
    chain = ChainPackages.load("packages")
    extras = extras_in("extras")
    installed = chain.installed()
    check_effects(chain.packages, spec.effect_policy, spec.accepted_effects)
    candidates = [Alternative.from_json(a) for _, a in chain.findings("alternatives")]
    certificates = {path: read_extra(extras, path) for path in extras if path.startswith(CA_CERT_DIR + "/")}
    entries = account_entries(table_accounts(spec, chain), extras)
    entries += alternative_entries(choose_alternatives(candidates, installed), candidates, installed)
    entries += ca_bundle({p: c for p, c in certificates.items() if p.endswith(".crt")}, chain.owners(), warnings)
    if chain.packages:
        entries.append(nsswitch(read_extra(extras, NSSWITCH_TEMPLATE)))
        entries += installed_templates(lambda path: read_extra(extras, path))
        entries += merged_usr_root_links()
    entries += localtime(spec.timezone, installed)
    if chain.packages:
        entries += ld_cache_entries(chain, extras, entries)
        entries += dpkg_entries(chain, spec.path_filter)
    taken = {e.path for e in entries}
    return entries + [e for e in effect_directories(chain) if e.path not in taken]


def dpkg_entries(chain: ChainPackages, path_filter: PathFilter) -> list[Entry]:
    """dpkg's database for the whole chain, and the path filter for dpkg runs on top of the image."""
    entries = image_database_entries(chain.status_records(), chain.architecture() or "all")
    if path_filter:
        data = dpkg_path_filter_cfg(path_filter.excludes, path_filter.includes)
        entries.append(Entry(DPKG_PATH_FILTER_CFG, FILE, 0o644, data=data))
    return entries


def ld_cache_entries(chain: ChainPackages, extras: dict, entries: list[Entry]) -> list[Entry]:
    """What the libc-bin trigger's `ldconfig` would leave: the cache and the soname links it creates."""
    architecture = chain.architecture()
    if architecture not in TRIPLETS:
        return []
    cache = build_ld_cache(chain.tree(entries), chain.shared_objects(), lambda path: read_extra(extras, path),
                           architecture)
    taken = {e.path for e in entries}
    links = [link for link in cache.links if link.path not in taken]
    return links + [Entry(LD_SO_CACHE, FILE, 0o644, data=cache_bytes(cache.entries, GENERATOR))]


def table_accounts(spec: SystemLayerSpec, chain: ChainPackages) -> dict:
    """The table's accounts this image needs: those declared, and those its packages create."""
    table = spec.users_table
    wanted = set(spec.declared_users)
    missing = []
    for package, user in chain.findings("users"):
        if user["name"] in table["users"]:
            wanted.add(user["name"])
        elif not base_account(user["name"]):
            missing.append(f"{package} creates the user {user['name']} ({user['command']})")
    group_names = {u_group for name in wanted for u_group in table["users"][name]["groups"]}
    for package, group in chain.findings("groups"):
        if group["name"] in table["groups"]:
            group_names.add(group["name"])
        elif not base_account(group["name"]):
            missing.append(f"{package} creates the group {group['name']} ({group['command']})")
    if missing:
        raise UncoveredEffect(
            "accounts that packages create are not in the users table " + spec.users_table_path
            + ":\n  " + "\n  ".join(missing) + "\nAdd them there with fixed ids."
        )
    users = [table["users"][name] for name in sorted(wanted)]
    primary = {user["gid"] for user in users}
    groups = [{"name": n, "gid": gid} for n, gid in sorted(table["groups"].items())
              if n in group_names or gid in primary]
    memberships: dict = {}
    for user in users:
        for group in user["groups"]:
            memberships.setdefault(group, []).append(user["name"])
    return {"users": users, "groups": groups, "memberships": memberships}


# Accounts base-passwd's master files already hold; packages "create" them idempotently. gnats
# left the master files before bookworm; a package that still creates it gets the old static one.
BASE_ACCOUNTS = frozenset({*BASE_USERS, *BASE_GROUPS, "gnats"})


def base_account(name: str) -> bool:
    return name in BASE_ACCOUNTS


def main(argv: list[str]) -> int:
    spec_path, = argv
    spec = SystemLayerSpec.from_json(load_spec(spec_path))
    warnings: list = []
    try:
        entries = system_entries(spec, warnings)
    except (UncoveredEffect, AccountError, LdCacheError, StatusError) as error:
        print(f"error: {spec.image}: {error}", file=sys.stderr)
        return 1
    for warning in warnings:
        print(f"warning: {spec.image}: {warning}", file=sys.stderr)
    result = write_layer_files(entries, spec.settings, ".")
    print(f"{result.diff_id} {len(entries)} system entries", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
