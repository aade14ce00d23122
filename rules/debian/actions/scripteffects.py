"""Maintainer-script effects a package layer gets from tested rules, and the ones left for review.

Input: one package's commands (scriptcommands.py: guards evaluated, pkgos helpers expanded), its
paths as the layer holds them, its tmpfiles.d and systemd unit texts, and the accounts (the users
table and base-passwd's static ids).  Output: a deterministic `Plan`:

- `directories`: directories to make (path, uid, gid, mode);
- `attributes`: owner/mode changes of paths the package ships or an earlier effect made;
- `copies`: files copied from a file the package ships (or created empty by touch), never over a
  path the layer already has;
- `noops`: commands that do nothing on a fresh install (their target is absent, a query, ...);
- `skipped`: commands in a branch that is false on a fresh install (upgrade-only), with the guard;
- `unapplied`: every other command of the handled kinds, with why no rule applies.  The system
  layer refuses them unless each is accepted individually (package, script, command, path).

Decisions:
- rules resolve only what is static: a word with `$`, a backquote or a glob is never guessed;
- owners must be in the accounts; an unknown name leaves the command unapplied;
- an effect only changes the package's own paths (or those its earlier effects made); a parent
  directory that is not in the layer is not made here but listed in `needs`, and the system
  layer checks the image has it (so a package layer never restates another package's /run);
- conditions the scanner cannot evaluate (`[ -e /etc/x ]`) are taken as the fresh install would
  take them, and the command is judged by what the layer holds;
- /var/run is /run (a symlink in bookworm's base-files), and paths are in merged-/usr form.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass, field, replace
from typing import AbstractSet, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from oci.actions.tarlayer import DIR, FILE, HARDLINK, SYMLINK

from . import shell
from .accounts import AccountIds
from .pathfilter import glob_matches, is_glob
from .scriptcommands import HANDLED_KINDS, ScriptCommand

DEFAULT_DIR_MODE = 0o755   # mkdir/install -d under dpkg's umask 022
DEFAULT_FILE_MODE = 0o644
DEFAULT_INSTALL_MODE = 0o755  # install(1) without -m


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True)
class PathState:
    path: str  # absolute, merged-/usr form
    kind: str  # tarlayer kinds: DIR, FILE, SYMLINK, HARDLINK
    mode: int
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class PackageInput:
    name: str
    commands: Tuple[ScriptCommand, ...]
    files: Tuple[PathState, ...]
    tmpfiles: Mapping[str, str] = field(default_factory=dict)  # /usr/lib/tmpfiles.d/x.conf -> text
    units: Mapping[str, str] = field(default_factory=dict)  # /lib/systemd/system/x.service -> text
    image_paths: AbstractSet[str] = frozenset()  # paths other packages of the layer ship


# ---------------------------------------------------------------- outputs


@dataclass(frozen=True)
class Directory:
    path: str
    uid: int
    gid: int
    mode: int
    origin: str


@dataclass(frozen=True)
class Attributes:
    """New owner and/or mode of a path that exists; None leaves that attribute."""

    path: str
    uid: Optional[int]
    gid: Optional[int]
    mode: Optional[int]
    origin: str


@dataclass(frozen=True)
class Copy:
    source: Optional[str]  # None: an empty file (touch)
    dest: str
    uid: int
    gid: int
    mode: int
    origin: str


@dataclass(frozen=True)
class NoOp:
    command: str
    reason: str


@dataclass(frozen=True)
class Unapplied:
    package: str
    script: str
    command: str
    reason: str
    origin: str = ""
    path: str = ""  # the command's first absolute path: part of the key an acceptance names


@dataclass(frozen=True)
class Skipped:
    script: str
    command: str
    guard: str
    origin: str = ""


@dataclass(frozen=True)
class Plan:
    directories: Tuple[Directory, ...] = ()
    attributes: Tuple[Attributes, ...] = ()
    copies: Tuple[Copy, ...] = ()
    removals: Tuple["Removal", ...] = ()
    noops: Tuple[NoOp, ...] = ()
    skipped: Tuple[Skipped, ...] = ()
    unapplied: Tuple[Unapplied, ...] = ()
    needs: Tuple[str, ...] = ()  # directories outside the layer that effects put things in
    absent: Tuple[str, ...] = ()  # paths (or globs) a no-op relies on the image not having

    def to_json(self) -> dict:
        def row(item) -> dict:
            out = {k: v for k, v in item.__dict__.items() if k != "package"}
            if isinstance(out.get("mode"), int):
                out["mode"] = f"{out['mode']:04o}"
            return out
        lists = ("directories", "attributes", "copies", "removals", "noops", "skipped", "unapplied")
        return {**{name: [row(i) for i in getattr(self, name)] for name in lists},
                "needs": list(self.needs), "absent": list(self.absent)}


@dataclass(frozen=True)
class Removal:
    """An empty directory an earlier effect of the same package made, removed again (rmdir)."""

    path: str
    origin: str


class Unresolved(Exception):
    """A command no rule can apply; the message says why."""


# ---------------------------------------------------------------- state


@dataclass
class Node:
    kind: str
    uid: int
    gid: int
    mode: int


class Tree:
    """The package's paths as the effects so far leave them."""

    def __init__(self, files: Iterable[PathState], image_paths: AbstractSet[str] = frozenset()):
        self.nodes: Dict[str, Node] = {f.path: Node(f.kind, f.uid, f.gid, f.mode) for f in files}
        self.others = image_paths

    def exists(self, path: str) -> bool:
        return path in self.nodes or path in self.others

    def is_dir(self, path: str) -> bool:
        node = self.nodes.get(path)
        return node is not None and node.kind == DIR

    def below(self, path: str) -> List[str]:
        prefix = path.rstrip("/") + "/"
        return sorted(p for p in self.nodes if p == path or p.startswith(prefix))



def normalize(path: str) -> str:
    """A static absolute path, normalized; Unresolved if it is computed or a glob."""
    if re.search(r"[$`*?\[]", path):
        raise Unresolved(f"path {path!r} is only known at run time")
    if not path.startswith("/"):
        raise Unresolved(f"path {path!r} is not absolute")
    path = posixpath.normpath(path)
    if path == "/var/run" or path.startswith("/var/run/"):
        path = path[len("/var"):]  # base-files ships /var/run -> /run
    return merged_usr(path)


MERGED_USR_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


def merged_usr(path: str) -> str:
    """`/bin/sh` -> `/usr/bin/sh`, as the package layers store paths."""
    top = path.split("/")[1] if path.count("/") >= 1 else ""
    return "/usr" + path if top in MERGED_USR_DIRS else path


def owner_ids(spec: str, accounts: AccountIds) -> Tuple[Optional[int], Optional[int]]:
    """`user`, `user:group`, `user:`, `:group`, `user.group` -> ids; Unresolved for names not in the table."""
    if re.search(r"[$`]", spec):
        raise Unresolved(f"owner {spec!r} is only known at run time")
    sep = ":" if ":" in spec else ("." if "." in spec else "")
    user, group = (spec.split(sep, 1) if sep else (spec, None))
    uid = accounts.uid(user) if user else None
    if user and uid is None:
        raise Unresolved(f"user {user!r} is not in the users table")
    if group == "" and user:  # `user:` is the user's login group
        return uid, accounts.primary_gid.get(user)
    gid = accounts.gid(group) if group else None
    if group and gid is None:
        raise Unresolved(f"group {group!r} is not in the users table")
    return uid, gid


def words_of(command: str) -> List[str]:
    """maintscripts.shell_join's quoting, undone."""
    try:
        return shlex.split(command)
    except ValueError as error:
        raise Unresolved(f"cannot split the command: {error}") from None


# ---------------------------------------------------------------- modes


SYMBOLIC_CLAUSE = re.compile(r"^([ugoa]*)([-+=][rwxXst]*)+$")
WHO_BITS = {"u": 0o4700, "g": 0o2070, "o": 0o1007}
PERM_BITS = {"r": 0o444, "w": 0o222, "x": 0o111, "s": 0o6000, "t": 0o1000}


def parse_mode(spec: str, current: int, is_dir: bool) -> int:
    """chmod's MODE: octal, or symbolic clauses (`+x`, `o-rwx,g-w`) applied to `current`."""
    if re.fullmatch(r"[0-7]{1,5}", spec) and int(spec, 8) <= 0o7777:
        return int(spec, 8)
    mode = current
    for clause in spec.split(","):
        if not SYMBOLIC_CLAUSE.match(clause):
            raise Unresolved(f"mode {spec!r} is not understood")
        who = re.match(r"[ugoa]*", clause).group(0)
        for op, perms in re.findall(r"([-+=])([rwxXst]*)", clause[len(who):]):
            mode = apply_clause(mode, who, op, perms, is_dir)
    return mode


def apply_clause(mode: int, who: str, op: str, perms: str, is_dir: bool) -> int:
    mask = 0
    for w in (who.replace("a", "ugo") or "ugo"):
        mask |= WHO_BITS[w]
    bits = 0
    for p in perms:
        if p == "X":
            bits |= 0o111 if (is_dir or mode & 0o111) else 0
        else:
            bits |= PERM_BITS[p]
    bits &= mask
    if not who and op in "+=":  # no who: the umask (022) limits what + and = grant
        bits &= ~0o022
    if op == "+":
        return mode | bits
    if op == "-":
        return mode & ~bits
    return (mode & ~mask) | bits


# ---------------------------------------------------------------- options


def split_options(args: Sequence[str], valued: Mapping[str, str], flags: Mapping[str, str]
                  ) -> Tuple[Dict[str, str], List[str]]:
    """Short/long options to canonical names; Unresolved on any option not listed."""
    try:
        return shell.split_options(args, valued, flags)
    except shell.OptionError as error:
        raise Unresolved(str(error)) from None


CHOWN_FLAGS = {"-R": "recursive", "--recursive": "recursive", "-h": "no-deref", "--no-dereference": "no-deref",
               "-f": "quiet", "--silent": "quiet", "--quiet": "quiet", "-v": "verbose", "-c": "verbose"}
INSTALL_VALUED = {"-m": "mode", "--mode": "mode", "-o": "owner", "--owner": "owner", "-g": "group",
                  "--group": "group", "-t": "target", "--target-directory": "target"}
INSTALL_FLAGS = {"-d": "directory", "--directory": "directory", "-D": "parents", "-c": "ignored",
                 "-C": "compare", "--compare": "compare", "-p": "preserve", "-v": "verbose", "-T": "no-target-dir"}
MKDIR_VALUED = {"-m": "mode", "--mode": "mode"}
MKDIR_FLAGS = {"-p": "parents", "--parents": "parents", "-Z": "selinux", "-v": "verbose"}
CP_FLAGS = {"-f": "force", "-T": "no-target-dir", "-d": "no-deref", "-p": "preserve", "-a": "archive",
            "-v": "verbose", "--preserve": "preserve"}
RM_FLAGS = {"-f": "force", "-r": "recursive", "-R": "recursive", "-v": "verbose", "--force": "force"}
MV_FLAGS = {"-f": "force", "-v": "verbose", "-T": "no-target-dir"}
STATOVERRIDE_FLAGS = {"--add": "add", "--remove": "remove", "--list": "list", "--update": "update",
                      "--force": "force", "--quiet": "quiet", "--force-all": "force", "--force-statoverride-add": "force",
                      "--force-statoverride-del": "force"}


# ---------------------------------------------------------------- rules per command


@dataclass
class Builder:
    """Effects in command order, and the tree they leave."""

    package: str
    accounts: AccountIds
    tree: Tree
    items: Dict[str, list] = field(default_factory=lambda: {k: [] for k in (
        "directories", "attributes", "copies", "removals", "noops", "skipped", "unapplied")})
    made: set = field(default_factory=set)
    needs: set = field(default_factory=set)
    absent: set = field(default_factory=set)

    def make_dir(self, path: str, uid: int, gid: int, mode: int, origin: str) -> None:
        self.tree.nodes[path] = Node(DIR, uid, gid, mode)
        self.made.add(path)
        self.items["directories"].append(Directory(path, uid, gid, mode, origin))

    def set_attributes(self, path: str, uid: Optional[int], gid: Optional[int], mode: Optional[int],
                       origin: str) -> None:
        node = self.tree.nodes[path]
        if (pick(uid, node.uid), pick(gid, node.gid), pick(mode, node.mode)) == (node.uid, node.gid, node.mode):
            self.noop(f"{origin.split(': ', 1)[-1]} ({path})", "the path already has that owner and mode")
            return
        node.uid, node.gid = (node.uid if uid is None else uid), (node.gid if gid is None else gid)
        node.mode = node.mode if mode is None else mode
        self.items["attributes"].append(Attributes(path, uid, gid, mode, origin))

    def copy(self, source: Optional[str], dest: str, uid: int, gid: int, mode: int, origin: str) -> None:
        self.tree.nodes[dest] = Node(FILE, uid, gid, mode)
        self.items["copies"].append(Copy(source, dest, uid, gid, mode, origin))

    def noop(self, command: str, reason: str) -> None:
        self.items["noops"].append(NoOp(command, reason))

    def existing(self, path: str) -> Node:
        node = self.tree.nodes.get(path)
        if node is None:
            where = "another package's path" if path in self.tree.others else "not in the image"
            raise Unresolved(f"{path} is {where}: this package cannot change it")
        return node


def rule_chown(b: Builder, args: List[str], origin: str, chgrp: bool = False) -> None:
    options, positionals = split_options(args, {}, CHOWN_FLAGS)
    if len(positionals) < 2:
        raise Unresolved("chown needs an owner and a path")
    spec, paths = positionals[0], [normalize(p) for p in positionals[1:]]
    uid, gid = owner_ids(":" + spec if chgrp else spec, b.accounts)
    for path in paths:
        b.existing(path)
        for target in (b.tree.below(path) if "recursive" in options else [path]):
            b.set_attributes(target, uid, gid, None, origin)


def rule_chmod(b: Builder, args: List[str], origin: str) -> None:
    options, positionals = split_options(args, {}, CHOWN_FLAGS)
    if len(positionals) < 2:
        raise Unresolved("chmod needs a mode and a path")
    spec, paths = positionals[0], [normalize(p) for p in positionals[1:]]
    for path in paths:
        b.existing(path)
        for target in (b.tree.below(path) if "recursive" in options else [path]):
            node = b.tree.nodes[target]
            if node.kind == SYMLINK:
                continue  # chmod follows links; -R skips them
            b.set_attributes(target, None, None, parse_mode(spec, node.mode, node.kind == DIR), origin)


def rule_mkdir(b: Builder, args: List[str], origin: str) -> None:
    options, positionals = split_options(args, MKDIR_VALUED, MKDIR_FLAGS)
    if not positionals:
        raise Unresolved("mkdir needs a path")
    mode = parse_mode(options["mode"], DEFAULT_DIR_MODE, True) if "mode" in options else DEFAULT_DIR_MODE
    for path in map(normalize, positionals):
        if b.tree.exists(path):
            b.noop(f"mkdir {path}", "the directory is already in the image")
            continue
        if "parents" in options:
            make_parents(b, path, origin)
        else:
            ensure_parent(b, path)
        b.make_dir(path, 0, 0, mode, origin)


def make_parents(b: Builder, path: str, origin: str) -> None:
    """`mkdir -p`: missing parents below one the layer has are made; if the layer has none, the image
    must have the parent."""
    missing = []
    parent = posixpath.dirname(path)
    while parent != "/" and not b.tree.exists(parent):
        missing.append(parent)
        parent = posixpath.dirname(parent)
    if parent == "/" and missing:
        # None of them is in this layer: the image must have the parent (/run/lock from base-files,
        # whose 1777 mode a made-up /run/lock here would replace).
        b.needs.add(missing[0])
        return
    for directory in reversed(missing):
        b.make_dir(directory, 0, 0, DEFAULT_DIR_MODE, origin)


def ensure_parent(b: Builder, path: str) -> None:
    parent = posixpath.dirname(path)
    if parent != "/" and not b.tree.exists(parent):
        b.needs.add(parent)


def rule_install(b: Builder, args: List[str], origin: str) -> None:
    options, positionals = split_options(args, INSTALL_VALUED, INSTALL_FLAGS)
    owner = f"{options.get('owner', '0')}:{options.get('group', '0')}"
    uid, gid = owner_ids(owner, b.accounts)
    if "directory" in options:
        mode = parse_mode(options.get("mode", "755"), DEFAULT_DIR_MODE, True)
        for path in map(normalize, positionals):
            if b.tree.is_dir(path):  # install -d on an existing directory sets its owner and mode
                b.set_attributes(path, uid, gid, mode, origin)
                continue
            make_parents(b, path, origin)
            b.make_dir(path, uid, gid, mode, origin)
        return
    if len(positionals) != 2 or "target" in options:
        raise Unresolved("only `install [-D] SOURCE DEST` copies are understood")
    source, dest = map(normalize, positionals)
    copy_file(b, source, dest, uid, gid, parse_mode(options.get("mode", "755"), DEFAULT_INSTALL_MODE, False),
              origin, "parents" in options)


def copy_file(b: Builder, source: str, dest: str, uid: int, gid: int, mode: int, origin: str,
              parents: bool) -> None:
    node = b.tree.nodes.get(source)
    if node is None or node.kind not in (FILE, HARDLINK):
        raise Unresolved(f"the source {source} is not a file this package ships")
    if b.tree.is_dir(dest):
        dest = posixpath.join(dest, posixpath.basename(source))
    if parents:
        make_parents(b, dest, origin)
    else:
        ensure_parent(b, dest)
    if b.tree.exists(dest):
        raise Unresolved(f"{dest} is already in the image: the copy would replace a shipped file")
    b.copy(source, dest, uid, gid, mode, origin)


def rule_cp(b: Builder, args: List[str], origin: str) -> None:
    options, positionals = split_options(args, {}, CP_FLAGS)
    if len(positionals) != 2:
        raise Unresolved("only `cp SOURCE DEST` is understood")
    source, dest = map(normalize, positionals)
    node = b.tree.nodes.get(source)
    keep = "preserve" in options or "archive" in options
    mode = node.mode if node and keep else (node.mode & ~0o022 if node else 0)
    uid, gid = (node.uid, node.gid) if node and keep else (0, 0)
    copy_file(b, source, dest, uid, gid, mode, origin, False)


def rule_touch(b: Builder, args: List[str], origin: str) -> None:
    options, positionals = split_options(args, {}, {"-c": "no-create"})
    for path in map(normalize, positionals):
        if b.tree.exists(path) or "no-create" in options:
            b.noop(f"touch {path}", "only the timestamp would change (SOURCE_DATE_EPOCH fixes it)")
            continue
        ensure_parent(b, path)
        b.copy(None, path, 0, 0, DEFAULT_FILE_MODE, origin)


def matching(b: Builder, pattern: str) -> List[str]:
    """Image paths a static path or glob names (globs only for removals: nothing is created)."""
    if not pattern.startswith("/") or re.search(r"[$`]", pattern):
        raise Unresolved(f"path {pattern!r} is only known at run time")

    pattern = posixpath.normpath(pattern)
    if not is_glob(pattern):
        return [pattern] if b.tree.exists(pattern) else []
    return glob_matches(pattern, [*b.tree.nodes, *b.tree.others])


def absent_or_unresolved(b: Builder, name: str, paths: Sequence[str], verb: str) -> None:
    present = [p for pattern in paths for p in matching(b, pattern)]
    if present:
        raise Unresolved(f"{name} would {verb} {', '.join(present[:3])}, which the image has")
    b.absent.update(merged_usr(posixpath.normpath(p)) for p in paths)  # the image must not have them either
    b.noop(f"{name} {' '.join(paths)}", "nothing there on a fresh install: the paths are absent from the image")


def rule_rm(b: Builder, args: List[str], origin: str) -> None:
    _, positionals = split_options(args, {}, RM_FLAGS)
    absent_or_unresolved(b, "rm", positionals, "remove")


def rule_rmdir(b: Builder, args: List[str], origin: str) -> None:
    _, positionals = split_options(args, {}, {"-p": "parents", "--ignore-fail-on-non-empty": "ignore"})
    made = [normalize(p) for p in positionals if normalize(p) in b.made and len(b.tree.below(normalize(p))) == 1]
    for path in made:  # an empty directory this package's own effects made: gone again
        del b.tree.nodes[path]
        b.made.discard(path)
        b.items["removals"].append(Removal(path, origin))
    rest = [p for p in positionals if normalize(p) not in made]
    if rest or not made:
        absent_or_unresolved(b, "rmdir", rest, "remove")


def rule_mv(b: Builder, args: List[str], origin: str) -> None:
    _, positionals = split_options(args, {}, MV_FLAGS)
    if len(positionals) != 2:
        raise Unresolved("only `mv SOURCE DEST` is understood")
    absent_or_unresolved(b, "mv", positionals[:1], "move")


def rule_sed(b: Builder, args: List[str], origin: str) -> None:
    if not any(a == "-i" or (a.startswith("-i") and not a.startswith("--")) for a in args):
        raise Unresolved("sed without -i writes to a redirection the scanner does not see")
    rest = [a for a in args if not a.startswith("-")]
    if "-e" in args or "-f" in args or len(rest) < 2:
        raise Unresolved("only `sed -i SCRIPT FILE...` is understood")
    absent_or_unresolved(b, "sed -i", rest[1:], "edit")


def rule_ln(b: Builder, args: List[str], origin: str) -> None:
    _, positionals = split_options(args, {}, {"-s": "symbolic", "-f": "force", "-n": "no-deref", "-T": "no-dir",
                                              "-v": "verbose"})
    if len(positionals) != 2:
        raise Unresolved("only `ln -s TARGET LINK` is understood")
    link = normalize(positionals[1])
    node = b.tree.nodes.get(link)
    if node is not None and node.kind == SYMLINK:
        b.noop(f"ln {' '.join(args)}", f"{link} is shipped as a symlink already")
        return
    raise Unresolved(f"makes the link {link}, which the package does not ship")


def rule_statoverride(b: Builder, args: List[str], origin: str) -> None:
    options, positionals = split_options(args, {}, STATOVERRIDE_FLAGS)
    if "list" in options:
        b.noop("dpkg-statoverride --list", "a query")
        return
    if "remove" in options:
        b.noop(f"dpkg-statoverride --remove {' '.join(positionals)}", "a fresh install has no overrides to remove")
        return
    if "add" not in options or len(positionals) != 4:
        raise Unresolved("only `dpkg-statoverride --add USER GROUP MODE PATH` is understood")
    user, group, mode, path = positionals
    uid, gid = owner_ids(f"{user}:{group}", b.accounts)
    node = b.existing(normalize(path))
    b.set_attributes(normalize(path), uid, gid, parse_mode(mode, node.mode, node.kind == DIR), origin)


def rule_tmpfiles_command(b: Builder, args: List[str], origin: str, tmpfiles: Mapping[str, str]) -> None:
    names = [a for a in args if not a.startswith("-") and not a.startswith("${DPKG_ROOT")]
    if "--create" not in args or not names:
        raise Unresolved("only `systemd-tmpfiles --create NAME.conf` is understood")
    shipped = {posixpath.basename(p) for p in tmpfiles}
    missing = [n for n in names if posixpath.basename(n) not in shipped]
    if missing:
        raise Unresolved(f"{', '.join(missing)} is not a tmpfiles.d file of this package")
    b.noop(f"systemd-tmpfiles --create {' '.join(names)}", "its lines are applied from the file (tmpfiles rule)")


# find tests that only leave out paths the command would not change (those already so owned).
FIND_OWNER_TESTS = {"-uid", "-gid", "-user", "-group"}
XARGS_FLAGS = {"-0": "null", "--null": "null", "-r": "no-run-if-empty", "--no-run-if-empty": "no-run-if-empty"}


def rule_find_xargs(b: Builder, words: List[str], origin: str) -> None:
    """`find DIR [! -uid X ...] -print0 | xargs -0 [-r] [sudo] chown|chgrp|chmod ARG`: as `-R` on DIR.

    Only negated owner tests are allowed: they leave out paths that already have the owner, so
    the outcome on a fresh install is the recursive change.
    """
    bar = words.index("|")
    find, xargs = words[:bar], words[bar + 1:]
    starts = [w for w in find[1:] if not w.startswith(("-", "!", "(", ")"))][:1]
    tests = find[1 + len(starts):]
    if find[0] != "find" or not starts or not owner_tests_only(tests):
        raise Unresolved("only `find DIR ! -uid X -print0 | xargs -0 chown ...` is understood")
    _, command = split_options(xargs[1:], {}, XARGS_FLAGS)
    command = command[1:] if command[:1] == ["sudo"] else command
    if len(command) != 2 or command[0] not in ("chown", "chgrp", "chmod"):
        raise Unresolved("only chown, chgrp or chmod of one owner or mode after xargs is understood")
    RULES[command[0]](b, ["-R", command[1], starts[0]], origin)


def owner_tests_only(tests: Sequence[str]) -> bool:
    rest = list(tests)
    while rest:
        word = rest.pop(0)
        if word == "!" and rest[:1] and rest[0] in FIND_OWNER_TESTS and len(rest) > 1:
            rest = rest[2:]
        elif word not in ("-print0", "-or", "-o"):
            return False
    return True


RULES = {
    "chown": rule_chown, "chgrp": lambda b, a, o: rule_chown(b, a, o, chgrp=True), "chmod": rule_chmod,
    "mkdir": rule_mkdir, "install": rule_install, "cp": rule_cp, "touch": rule_touch, "rm": rule_rm,
    "rmdir": rule_rmdir, "mv": rule_mv, "sed": rule_sed, "ln": rule_ln, "dpkg-statoverride": rule_statoverride,
}


def apply_command(b: Builder, command: ScriptCommand, tmpfiles: Mapping[str, str]) -> None:
    origin = f"{b.package} {command.script}: {command.origin or command.command}"
    if command.skipped_by:
        b.items["skipped"].append(Skipped(command.script, command.command, command.skipped_by, command.origin))
        return
    try:
        if command.kind == "unrecognized":
            raise Unresolved(command.note or "not recognized by the scanner")
        words = words_of(command.command)
        name = posixpath.basename(words[0])
        if "|" in words:
            rule_find_xargs(b, words, origin)
        elif name == "systemd-tmpfiles":
            rule_tmpfiles_command(b, words[1:], origin, tmpfiles)
        elif name in RULES:
            RULES[name](b, words[1:], origin)
        else:
            raise Unresolved(f"no rule for {name!r}")
    except Unresolved as why:
        b.items["unapplied"].append(Unapplied(b.package, command.script, command.command, str(why), command.origin,
                                              first_path(command.command)))


# ---------------------------------------------------------------- tmpfiles.d and units


@dataclass(frozen=True)
class TmpfilesLine:
    type: str
    path: str
    mode: str
    user: str
    group: str
    argument: str
    source: str


def parse_tmpfiles(name: str, text: str) -> List[TmpfilesLine]:
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        words = raw.split("#", 1)[0].split() if not raw.lstrip().startswith("#") else []
        if not words:
            continue
        words += ["-"] * (6 - len(words))
        argument = " ".join(raw.split()[6:])
        lines.append(TmpfilesLine(words[0], words[1], words[2], words[3], words[4], argument, f"{name}:{number}"))
    return lines


BOOT_ONLY_TYPES = set("rRxXe")


def apply_tmpfiles_line(b: Builder, line: TmpfilesLine) -> None:
    origin = f"{b.package} {line.source}: {line.type} {line.path}"
    kind = line.type.rstrip("!+-=~^")
    try:
        if "%" in line.path or "%" in line.user or "%" in line.group:
            raise Unresolved("uses specifiers only known at boot")
        if kind in BOOT_ONLY_TYPES or "!" in line.type:
            b.noop(f"{line.type} {line.path}", "removal/cleanup or a boot-only line: nothing to make in an image")
            return
        if kind in ("z", "Z") and line.path.startswith("/dev/"):
            b.noop(f"{line.type} {line.path}", "device nodes come from the container runtime")
            return
        if kind not in ("d", "D", "v", "q", "Q"):
            raise Unresolved(f"tmpfiles type {line.type!r} has no rule")
        tmpfiles_directory(b, line, origin)
    except Unresolved as why:
        b.items["unapplied"].append(Unapplied(b.package, "tmpfiles.d", f"{line.source}: {line.type} {line.path}",
                                              str(why), path=line.path))


def tmpfiles_directory(b: Builder, line: TmpfilesLine, origin: str) -> None:
    path = normalize(line.path)
    uid, gid = owner_ids(f"{dash(line.user, '0')}:{dash(line.group, '0')}", b.accounts)
    mode = int(line.mode.lstrip("~"), 8) if line.mode != "-" else DEFAULT_DIR_MODE
    if b.tree.is_dir(path):
        b.set_attributes(path, uid, gid, mode, origin)  # d adjusts an existing directory's owner and mode
        return
    make_parents(b, path, origin)
    b.make_dir(path, uid, gid, mode, origin)


def dash(value: str, default: str) -> str:
    return default if value == "-" else value


UNIT_DIRECTORIES = {"RuntimeDirectory": "/run", "StateDirectory": "/var/lib", "CacheDirectory": "/var/cache",
                    "LogsDirectory": "/var/log", "ConfigurationDirectory": "/etc"}


def unit_settings(text: str) -> Dict[str, str]:
    """The [Service] section's settings (last one wins; an empty value resets)."""
    settings: Dict[str, str] = {}
    section = ""
    for raw in text.replace("\\\n", " ").splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif section == "Service" and "=" in line and not line.startswith(("#", ";")):
            key, value = (part.strip() for part in line.split("=", 1))
            settings[key] = value if key not in UNIT_DIRECTORIES or not value else \
                " ".join(filter(None, [settings.get(key, ""), value]))
    return settings


def apply_unit(b: Builder, name: str, text: str) -> None:
    settings = unit_settings(text)
    for key, base in sorted(UNIT_DIRECTORIES.items()):
        for entry in settings.get(key, "").split():
            origin = f"{b.package} {posixpath.basename(name)}: {key}={entry}"
            try:
                unit_directory(b, name, settings, key, posixpath.join(base, entry.split(":")[0]), origin)
            except Unresolved as why:
                b.items["unapplied"].append(Unapplied(b.package, "unit", f"{posixpath.basename(name)}: {key}={entry}",
                                                      str(why), path=posixpath.join(base, entry.split(":")[0])))


def unit_directory(b: Builder, name: str, settings: Mapping[str, str], key: str, path: str, origin: str) -> None:
    if "@" in posixpath.basename(name) or "%" in path or settings.get("DynamicUser", "no") in ("yes", "true", "1"):
        raise Unresolved("a template unit, specifier or DynamicUser: the owner is only known at run time")
    user = settings.get("User", "root") if key != "ConfigurationDirectory" else "root"
    group = settings.get("Group") or (None if key == "ConfigurationDirectory" else None)
    uid, gid = owner_ids(f"{user}:{group}" if group and key != "ConfigurationDirectory" else f"{user}:", b.accounts)
    gid = 0 if gid is None else gid
    mode = int(settings.get(key + "Mode", "0755"), 8)
    path = normalize(path)
    parent = posixpath.dirname(path)
    if parent != normalize(UNIT_DIRECTORIES[key]) and not b.tree.exists(parent):
        raise Unresolved(f"its parent {parent} is made at boot (systemd-tmpfiles), by no package")
    if b.tree.is_dir(path):
        b.set_attributes(path, uid, gid, mode, origin)
        return
    make_parents(b, path, origin)
    b.make_dir(path, uid, gid, mode, origin)


# ---------------------------------------------------------------- the plan


@dataclass(frozen=True)
class FinalEntry:
    """A path the effects create or change, as they leave it."""

    path: str
    kind: str
    uid: int
    gid: int
    mode: int
    source: Optional[str] = None  # copies: the shipped file the content comes from


def plan(package: PackageInput, accounts: AccountIds) -> Plan:
    """Effects of one package: script commands in order, then tmpfiles.d files, then units (by path)."""
    b = Builder(package.name, accounts, Tree(package.files, package.image_paths))
    for command in package.commands:
        if command.kind in HANDLED_KINDS:
            apply_command(b, command, package.tmpfiles)
    for name in sorted(package.tmpfiles):
        for line in parse_tmpfiles(name, package.tmpfiles[name]):
            apply_tmpfiles_line(b, line)
    for name in sorted(package.units):
        apply_unit(b, name, package.units[name])
    return Plan(**{key: tuple(values) for key, values in b.items.items()}, needs=tuple(sorted(b.needs)),
                absent=tuple(sorted(b.absent)))


def final_entries(package: PackageInput, result: Plan) -> Tuple[FinalEntry, ...]:
    """What the image gets: each touched path once, in its final state, sorted by path."""
    shipped = {f.path: f for f in package.files}
    state: Dict[str, FinalEntry] = {}
    removed = {r.path for r in result.removals}
    for item in sorted_effects(result):
        if isinstance(item, Directory):
            state[item.path] = FinalEntry(item.path, DIR, item.uid, item.gid, item.mode)
        elif isinstance(item, Copy):
            state[item.dest] = FinalEntry(item.dest, FILE, item.uid, item.gid, item.mode, item.source)
        else:
            base = state.get(item.path) or from_shipped(shipped[item.path])
            state[item.path] = replace(base, uid=pick(item.uid, base.uid), gid=pick(item.gid, base.gid),
                                       mode=pick(item.mode, base.mode))
    return tuple(state[p] for p in sorted(state) if p not in removed)


def sorted_effects(result: Plan) -> list:
    """Directories, copies and attribute changes in the order they were made (origin order is kept per list)."""
    return [*result.directories, *result.copies, *result.attributes]


def from_shipped(f: PathState) -> FinalEntry:
    return FinalEntry(f.path, f.kind, f.uid, f.gid, f.mode)


def pick(new: Optional[int], old: int) -> int:
    return old if new is None else new


def first_path(command: str) -> str:
    """The first absolute path among a command's arguments ("" if none): what an acceptance names."""
    try:
        words = shlex.split(command)
    except ValueError:
        return ""
    if words[:1] == ["sed"]:  # its first operand is the sed script, which may start with "/"
        operands = [w for w in words[1:] if not w.startswith("-")]
        words = words[:1] + operands[1:]
    return next((w for w in words[1:] if w.startswith("/")), "")
