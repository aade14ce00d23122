"""What a package's preinst/postinst (and triggers file) would do, without running them.

We never run maintainer scripts: their effects (accounts, alternatives, the CA
bundle, ld.so.cache, ...) are replaced by declarations.  This module reads the
scripts the way a reviewer would: shell.py finds each simple command and resolves
plain `VAR=value` assignments, and this module classifies the commands whose
effects the image must reproduce.  Anything it cannot place is
returned as unrecognized so that a human decides.

Commands inside `$(...)` and backquotes are not scanned: in maintainer scripts
they are queries (dpkg --print-architecture, getent ...), not effects.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, fields
from typing import Dict, List, Mapping, Optional, Tuple

from .shell import (
    OptionError,
    ShellSyntaxError,
    command_words,
    function_names,
    is_dynamic,
    shell_join,
    simple_commands,
    split_assignments,
    split_options,
    substitute,
    tokenize,
)

SCANNED_SCRIPTS = ("preinst", "postinst")


# Commands whose effect is known but must be replaced by a declaration, by kind.
EFFECT_KINDS = {
    "ldconfig": "ldconfig",
    "update-ca-certificates": "ca-certificates",
    "dpkg-trigger": "trigger",
    "py3compile": "byte-compile", "pycompile": "byte-compile", "py3clean": "byte-compile", "pyclean": "byte-compile",
    "pypy3compile": "byte-compile", "pypy3clean": "byte-compile",
    "systemctl": "service", "deb-systemd-helper": "service", "deb-systemd-invoke": "service",
    "update-rc.d": "service", "invoke-rc.d": "service", "service": "service", "start-stop-daemon": "service",
    "telinit": "service",
    "dpkg-maintscript-helper": "maintscript-helper",
    "dpkg-statoverride": "statoverride",
    "dpkg-divert": "diversion",
    "setcap": "capabilities",
    "update-alternatives": "alternatives",
    "adduser": "accounts", "addgroup": "accounts", "useradd": "accounts", "groupadd": "accounts",
    "usermod": "accounts", "gpasswd": "accounts", "deluser": "accounts", "delgroup": "accounts",
    "userdel": "accounts", "groupdel": "accounts", "chsh": "accounts", "chfn": "accounts",
    "update-passwd": "accounts", "systemd-sysusers": "accounts", "groupmod": "accounts", "shadowconfig": "accounts",
    "add-shell": "shells", "remove-shell": "shells", "update-shells": "shells",
    "systemd-tmpfiles": "tmpfiles",
    "pam-auth-update": "pam",
    "ucf": "conffiles", "ucfr": "conffiles",
    "locale-gen": "locales", "update-locale": "locales",
    "mandb": "caches", "install-info": "caches", "update-mime-database": "caches", "fc-cache": "caches",
    "update-desktop-database": "caches", "glib-compile-schemas": "caches", "gtk-update-icon-cache": "caches",
    "update-icon-caches": "caches", "update-catalog": "caches", "update-xmlcatalog": "caches",
    "update-menus": "caches", "update-mime": "caches",
    "update-initramfs": "boot", "update-grub": "boot",
    "update-binfmts": "binfmt",
    "dbus-uuidgen": "machine-id", "systemd-machine-id-setup": "machine-id",
    "restorecon": "filesystem",
    "chown": "filesystem", "chmod": "filesystem", "chgrp": "filesystem", "mkdir": "filesystem",
    "ln": "filesystem", "rm": "filesystem", "rmdir": "filesystem", "mv": "filesystem", "cp": "filesystem",
    "install": "filesystem", "touch": "filesystem", "mknod": "filesystem", "mkfifo": "filesystem",
    "sed": "filesystem", "tee": "filesystem",
}
# Builtins and read-only tools: no effect on the image.
NO_EFFECT = {
    ":", ".", "[", "[[", "source", "set", "exit", "return", "echo", "printf", "true", "false", "test", "shift",
    "local", "export", "readonly", "unset", "trap", "read", "wait", "break", "continue", "umask", "cd",
    "which", "command", "type", "hash", "getent", "id", "dpkg", "dpkg-query", "dpkg-architecture", "dpkg-vendor",
    "grep", "egrep", "fgrep", "awk", "cut", "head", "tail", "cat", "basename", "dirname", "readlink", "realpath",
    "stat", "sort", "uniq", "tr", "wc", "seq", "sleep", "logger", "expr", "uname", "ls", "cmp", "diff", "date",
    "ischroot", "systemd-detect-virt", "pidof", "pgrep", "env", "md5sum", "sha256sum", "find", "xargs",
    "mountpoint", "getcap", "db_metaget",
    "db_get", "db_set", "db_input", "db_go", "db_fset", "db_fget", "db_subst", "db_version", "db_capb",
    "db_title", "db_purge", "db_unregister", "db_register", "db_reset", "db_stop", "db_x_loadtemplatefile",
}


@dataclass(frozen=True)
class AlternativeSlave:
    link: str
    name: str
    path: str

    def to_json(self) -> dict:
        return {"link": self.link, "name": self.name, "path": self.path}


@dataclass(frozen=True)
class AlternativeInstall:
    """`update-alternatives --install link name path priority [--slave link name path]...`."""

    link: str
    name: str
    path: str
    priority: int
    slaves: Tuple[AlternativeSlave, ...]
    script: str
    command: str

    def to_json(self) -> dict:
        # The keys of sysfiles.Alternative.from_json, so a finding can be passed on as is.
        return {"link": self.link, "name": self.name, "path": self.path, "priority": self.priority,
                "slaves": [s.to_json() for s in self.slaves], "script": self.script, "command": self.command}


@dataclass(frozen=True)
class UserCreation:
    """adduser/useradd of one account; None where the command leaves the tool's default."""

    name: str
    system: bool
    uid: Optional[str]
    home: Optional[str]
    shell: Optional[str]
    primary_group: Optional[str]
    user_group: bool  # a group of the same name is created for it
    gecos: Optional[str]
    create_home: bool
    script: str
    command: str

    def to_json(self) -> dict:
        return {"name": self.name, "system": self.system, "uid": self.uid, "home": self.home, "shell": self.shell,
                "primary_group": self.primary_group, "user_group": self.user_group, "gecos": self.gecos,
                "create_home": self.create_home, "script": self.script, "command": self.command}


@dataclass(frozen=True)
class GroupCreation:
    name: str
    system: bool
    gid: Optional[str]
    script: str
    command: str

    def to_json(self) -> dict:
        return {"name": self.name, "system": self.system, "gid": self.gid, "script": self.script,
                "command": self.command}


@dataclass(frozen=True)
class GroupMembership:
    user: str
    group: str
    script: str
    command: str

    def to_json(self) -> dict:
        return {"user": self.user, "group": self.group, "script": self.script, "command": self.command}


@dataclass(frozen=True)
class ScriptEffect:
    """A recognized command whose effect has to be replaced declaratively (kind: see EFFECT_KINDS)."""

    kind: str
    script: str
    command: str

    def to_json(self) -> dict:
        return {"kind": self.kind, "script": self.script, "command": self.command}


@dataclass(frozen=True)
class UnrecognizedEffect:
    script: str
    command: str
    reason: str

    def to_json(self) -> dict:
        return {"script": self.script, "command": self.command, "reason": self.reason}


@dataclass(frozen=True)
class ScriptFindings:
    """Everything found in one package's scripts, in script order."""

    alternatives: Tuple[AlternativeInstall, ...] = ()
    users: Tuple[UserCreation, ...] = ()
    groups: Tuple[GroupCreation, ...] = ()
    memberships: Tuple[GroupMembership, ...] = ()
    effects: Tuple[ScriptEffect, ...] = ()
    unrecognized: Tuple[UnrecognizedEffect, ...] = ()

    def to_json(self) -> dict:
        return {name: [item.to_json() for item in getattr(self, name)]
                for name in ("alternatives", "users", "groups", "memberships", "effects", "unrecognized")}


# ---------------------------------------------------------------- findings


class FindingsBuilder:
    def __init__(self) -> None:
        self.found: Dict[str, list] = {f.name: [] for f in fields(ScriptFindings)}

    def add(self, name: str, item) -> None:
        self.found[name].append(item)

    def build(self) -> ScriptFindings:
        return ScriptFindings(**{name: tuple(items) for name, items in self.found.items()})


def scan_maintainer_scripts(scripts: Mapping[str, str], triggers: str = "") -> ScriptFindings:
    """Findings of preinst and postinst, then of the triggers control file."""
    builder = FindingsBuilder()
    for script in SCANNED_SCRIPTS:
        if script in scripts:
            scan_script(script, scripts[script], builder)
    scan_triggers(triggers, builder)
    return builder.build()


def scan_script(script: str, text: str, builder: FindingsBuilder) -> None:
    try:
        tokens = tokenize(text)
    except ShellSyntaxError as error:
        builder.add("unrecognized", UnrecognizedEffect(script, "", f"the script does not tokenize: {error}"))
        return
    variables: Dict[str, str] = {}
    functions = function_names(tokens)
    for words in simple_commands(tokens):
        assignments, words = split_assignments(command_words(words))
        if not words:
            variables.update({k: substitute(v, variables) for k, v in assignments.items()})
            continue
        words = [substitute(w, variables) for w in words]
        classify(script, words, functions, builder)


def classify(script: str, words: List[str], functions: set, builder: FindingsBuilder) -> None:
    command = shell_join(words)
    if is_dynamic(words[0]):
        builder.add("unrecognized", UnrecognizedEffect(script, command, "the command name is computed at run time"))
        return
    name = posixpath.basename(words[0])
    if name in NO_EFFECT or words[0] in functions:
        return
    parser = SPECIFIC_PARSERS.get(name)
    if parser is not None and parser(script, command, words[1:], builder):
        return
    if name in ACCOUNT_CREATORS:  # a generic "accounts" effect would hide an account nobody declares
        builder.add("unrecognized", UnrecognizedEffect(script, command, "cannot tell which account this creates"))
        return
    if name == "dpkg-maintscript-helper" and words[1:2] == ["supports"]:
        return
    kind = EFFECT_KINDS.get(name)
    if kind is None:
        builder.add("unrecognized", UnrecognizedEffect(script, command, f"unknown command {name!r}"))
    else:
        builder.add("effects", ScriptEffect(kind, script, command))


# update-alternatives options that take a value; they may come before the action.
ALTERNATIVES_VALUE_OPTIONS = {"--altdir", "--admindir", "--instdir", "--root", "--log"}


def parse_update_alternatives(script: str, command: str, args: List[str], builder: FindingsBuilder) -> bool:
    """Record an --install; other actions (--set, --remove, ...) fall through to generic effects.

    When the master is static but some slaves are not (xz-utils builds its
    --slave list with `$(...)`), the master and the static slaves are still
    recorded, and the rest is reported as unrecognized.
    """
    if "--install" not in args:
        return False
    rest = args[args.index("--install") + 1:]
    problem = master_problem(rest)
    if problem:
        builder.add("unrecognized", UnrecognizedEffect(script, command, problem))
        return True
    link, name, path, priority = rest[:4]
    slaves, rest = [], rest[4:]
    while len(rest) >= 4 and rest[0] == "--slave" and not any(map(is_dynamic, rest[1:4])):
        slaves.append(AlternativeSlave(*rest[1:4]))
        rest = rest[4:]
    builder.add("alternatives", AlternativeInstall(link, name, path, int(priority), tuple(slaves), script, command))
    if rest:
        builder.add("unrecognized", UnrecognizedEffect(
            script, command, f"update-alternatives --install {name}: arguments not understood or only known at "
                             f"run time: {shell_join(rest)}"))
    return True


def master_problem(rest: List[str]) -> str:
    if len(rest) < 4:
        return "update-alternatives --install needs <link> <name> <path> <priority>"
    if any(is_dynamic(w) for w in rest[:4]):
        return "update-alternatives --install with values only known at run time"
    if not rest[3].lstrip("-").isdigit():
        return f"priority {rest[3]!r} is not an integer"
    if not (rest[0].startswith("/") and rest[2].startswith("/")):
        return "update-alternatives --install needs absolute link and path"
    return ""


def parse_options(args: List[str], value_options: set, aliases: Mapping[str, str]
                  ) -> Optional[Tuple[Dict[str, str], List[str]]]:
    """Options (long, short, `--opt=value`, bundled short flags) and positionals; None if unknown/dynamic.

    `aliases` maps short spellings to long names; options outside both are kept as they are spelt.
    """
    valued = {**{name: name for name in value_options},
              **{short: name for short, name in aliases.items() if name in value_options}}
    flags = {short: name for short, name in aliases.items() if name not in value_options}
    try:
        options, positionals = split_options(args, valued, flags, other_flags=True)
    except OptionError:
        return None
    if any(is_dynamic(w) for w in [*positionals, *options.values()]):
        return None
    return options, positionals


ADDUSER_VALUE_OPTIONS = {"--home", "--shell", "--ingroup", "--uid", "--gid", "--gecos", "--comment", "--conf",
                         "--firstuid", "--lastuid", "--firstgid", "--lastgid", "--stdoutmsglevel",
                         "--stderrmsglevel", "--logmsglevel"}
ADDUSER_ALIASES = {"-q": "--quiet", "-c": "--conf"}


def parse_adduser(script: str, command: str, args: List[str], builder: FindingsBuilder,
                  group_command: bool = False) -> bool:
    parsed = parse_options(args, ADDUSER_VALUE_OPTIONS, ADDUSER_ALIASES)
    if parsed is None or not 1 <= len(parsed[1]) <= 2:
        return False
    options, positionals = parsed
    system = "--system" in options
    if len(positionals) == 2:
        builder.add("memberships", GroupMembership(positionals[0], positionals[1], script, command))
    elif group_command or ("--group" in options and not system):
        builder.add("groups", GroupCreation(positionals[0], system, options.get("--gid"), script, command))
    else:
        home = options.get("--home")
        builder.add("users", UserCreation(
            name=positionals[0], system=system, uid=options.get("--uid"), home=home,
            shell=options.get("--shell"), primary_group=options.get("--ingroup") or options.get("--gid"),
            user_group="--group" in options, gecos=options.get("--gecos", options.get("--comment")),
            create_home="--no-create-home" not in options and home != "/nonexistent", script=script,
            command=command))
    return True


def parse_addgroup(script: str, command: str, args: List[str], builder: FindingsBuilder) -> bool:
    return parse_adduser(script, command, args, builder, group_command=True)


USERADD_VALUE_OPTIONS = {"--base-dir", "--comment", "--home-dir", "--expiredate", "--inactive", "--gid", "--groups",
                         "--skel", "--key", "--password", "--shell", "--uid", "--root", "--prefix", "--selinux-user"}
USERADD_ALIASES = {"-b": "--base-dir", "-c": "--comment", "-d": "--home-dir", "-e": "--expiredate",
                   "-f": "--inactive", "-g": "--gid", "-G": "--groups", "-k": "--skel", "-K": "--key",
                   "-p": "--password", "-s": "--shell", "-u": "--uid", "-R": "--root", "-P": "--prefix",
                   "-Z": "--selinux-user", "-l": "--no-log-init", "-m": "--create-home", "-M": "--no-create-home",
                   "-N": "--no-user-group", "-o": "--non-unique", "-r": "--system", "-U": "--user-group"}


def parse_useradd(script: str, command: str, args: List[str], builder: FindingsBuilder) -> bool:
    parsed = parse_options(args, USERADD_VALUE_OPTIONS, USERADD_ALIASES)
    if parsed is None or len(parsed[1]) != 1:
        return False
    options, (name,) = parsed
    builder.add("users", UserCreation(
        name=name, system="--system" in options, uid=options.get("--uid"), home=options.get("--home-dir"),
        shell=options.get("--shell"), primary_group=options.get("--gid"),
        user_group="--gid" not in options and "--no-user-group" not in options,  # Debian's USERGROUPS_ENAB yes
        gecos=options.get("--comment"), create_home="--create-home" in options, script=script, command=command))
    for group in filter(None, options.get("--groups", "").split(",")):
        builder.add("memberships", GroupMembership(name, group, script, command))
    return True


GROUPADD_VALUE_OPTIONS = {"--gid", "--key", "--password", "--root", "--prefix"}
GROUPADD_ALIASES = {"-g": "--gid", "-K": "--key", "-p": "--password", "-R": "--root", "-P": "--prefix",
                    "-f": "--force", "-o": "--non-unique", "-r": "--system"}


def parse_groupadd(script: str, command: str, args: List[str], builder: FindingsBuilder) -> bool:
    parsed = parse_options(args, GROUPADD_VALUE_OPTIONS, GROUPADD_ALIASES)
    if parsed is None or len(parsed[1]) != 1:
        return False
    options, (name,) = parsed
    builder.add("groups", GroupCreation(name, "--system" in options, options.get("--gid"), script, command))
    return True


ACCOUNT_CREATORS = {"adduser", "addgroup", "useradd", "groupadd"}
SPECIFIC_PARSERS = {
    "update-alternatives": parse_update_alternatives,
    "adduser": parse_adduser,
    "addgroup": parse_addgroup,
    "useradd": parse_useradd,
    "groupadd": parse_groupadd,
}


def scan_triggers(text: str, builder: FindingsBuilder) -> None:
    """The triggers control file: `activate-noawait ldconfig` is how libraries ask for ldconfig."""
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) != 2:
            continue
        directive, trigger = words
        kind = "ldconfig" if trigger == "ldconfig" and directive.startswith("activate") else "trigger"
        builder.add("effects", ScriptEffect(kind, "triggers", " ".join(words)))
