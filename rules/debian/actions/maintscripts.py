"""What a package's preinst/postinst (and triggers file) would do, without running them.

We never run maintainer scripts: their effects (accounts, alternatives, the CA
bundle, ld.so.cache, ...) are replaced by declarations.  This module reads the
scripts the way a reviewer would: it tokenizes the shell well enough to find
each simple command, resolves plain `VAR=value` assignments, and reports the
commands whose effects the image must reproduce.  Anything it cannot place is
returned as unrecognized so that a human decides.

Commands inside `$(...)` and backquotes are not scanned: in maintainer scripts
they are queries (dpkg --print-architecture, getent ...), not effects.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, fields
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

SCANNED_SCRIPTS = ("preinst", "postinst")

WORD = "word"
OP = "op"
NEWLINE = "\n"
# Longest first, so "&&" wins over "&".
OPERATORS = ("<<-", "&&", "||", ";;", ";&", "<<", ">>", ">&", "<&", "&>", ">|", ";", "&", "|", "(", ")", "<", ">")
OPERATOR_CHARS = set(";&|()<>")
SEPARATORS = {NEWLINE, "&&", "||", ";;", ";&", ";", "&", "|", "(", ")"}
REDIRECTIONS = {"<<-", "<<", ">>", ">&", "<&", "&>", ">|", "<", ">"}
RESERVED = {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "{", "}", "esac", "time"}
LOOP_HEADERS = {"for", "select"}
ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.S)
VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")

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


class ShellSyntaxError(ValueError):
    pass


# ---------------------------------------------------------------- tokenizer


def tokenize(text: str) -> List[Tuple[str, str]]:
    """Words (quotes removed) and operators of a shell script; heredoc bodies are dropped."""
    return list(Tokenizer(text).tokens())


class Tokenizer:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0
        self.pending_heredocs: List[Tuple[str, bool]] = []  # (delimiter, strip leading tabs)

    def tokens(self) -> Iterator[Tuple[str, str]]:
        heredoc_op = ""
        while True:
            token = self.next_token()
            if token is None:
                return
            kind, value = token
            if heredoc_op and kind == WORD:
                self.pending_heredocs.append((value, heredoc_op == "<<-"))
            heredoc_op = value if kind == OP and value in ("<<", "<<-") else ""
            if kind == OP and value == NEWLINE:
                self.skip_heredoc_bodies()
            yield token

    def next_token(self) -> Optional[Tuple[str, str]]:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char in " \t\r":
                self.pos += 1
            elif text.startswith("\\\n", self.pos):
                self.pos += 2
            elif char == "#":
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
            elif char == "\n":
                self.pos += 1
                return OP, NEWLINE
            elif char in OPERATOR_CHARS:
                op = next(o for o in OPERATORS if text.startswith(o, self.pos))
                self.pos += len(op)
                return OP, op
            else:
                return WORD, self.read_word()
        return None

    def read_word(self) -> str:
        text = self.text
        parts = []
        while self.pos < len(text):
            char = text[self.pos]
            if char in " \t\r\n" or char in OPERATOR_CHARS:
                break
            if text.startswith("\\\n", self.pos):
                self.pos += 2
            elif char == "\\":
                parts.append(text[self.pos + 1: self.pos + 2])
                self.pos += 2
            elif char == "'":
                end = self.find_closing("'", self.pos + 1)
                parts.append(text[self.pos + 1: end])
                self.pos = end + 1
            elif char == '"':
                parts.append(self.read_double_quoted())
            elif text.startswith("$(", self.pos) or text.startswith("${", self.pos):
                parts.append(self.read_balanced())
            elif char == "`":
                end = self.find_closing("`", self.pos + 1)
                parts.append(text[self.pos: end + 1])
                self.pos = end + 1
            else:
                parts.append(char)
                self.pos += 1
        return "".join(parts)

    def find_closing(self, quote: str, start: int) -> int:
        end = self.text.find(quote, start)
        if end < 0:
            raise ShellSyntaxError(f"unterminated {quote} starting at offset {start - 1}")
        return end

    def read_double_quoted(self) -> str:
        text = self.text
        parts = []
        self.pos += 1
        while self.pos < len(text):
            char = text[self.pos]
            if char == '"':
                self.pos += 1
                return "".join(parts)
            if char == "\\" and text[self.pos + 1: self.pos + 2] in ('"', "\\", "$", "`", "\n"):
                escaped = text[self.pos + 1]
                parts.append("" if escaped == "\n" else escaped)
                self.pos += 2
            elif text.startswith("$(", self.pos) or text.startswith("${", self.pos):
                parts.append(self.read_balanced())
            else:
                parts.append(char)
                self.pos += 1
        raise ShellSyntaxError("unterminated double quote")

    def read_balanced(self) -> str:
        """`$(...)` or `${...}` kept verbatim, with what nests inside: quotes, more `$(...)`."""
        text = self.text
        start = self.pos
        opener = text[self.pos + 1]
        closer = ")" if opener == "(" else "}"
        self.pos += 2
        depth, in_double = 1, False
        while self.pos < len(text):
            char = text[self.pos]
            if char == "\\":
                self.pos += 2
                continue
            if text.startswith("$(", self.pos) or text.startswith("${", self.pos):
                self.read_balanced()
                continue
            if char == '"':
                in_double = not in_double
            elif in_double:
                pass  # quotes and parentheses inside "..." do not count
            elif char == "'":
                self.pos = self.find_closing("'", self.pos + 1)
            elif char == opener:
                depth += 1
            elif char == closer:
                depth -= 1
                if depth == 0:
                    self.pos += 1
                    return text[start: self.pos]
            self.pos += 1
        raise ShellSyntaxError(f"unterminated {text[start: start + 2]}")

    def skip_heredoc_bodies(self) -> None:
        for delimiter, strip_tabs in self.pending_heredocs:
            while self.pos < len(self.text):
                end = self.text.find("\n", self.pos)
                end = len(self.text) if end < 0 else end
                line = self.text[self.pos: end]
                self.pos = end + 1
                if (line.lstrip("\t") if strip_tabs else line) == delimiter:
                    break
        self.pending_heredocs = []


# ---------------------------------------------------------------- commands


def simple_commands(tokens: Sequence[Tuple[str, str]]) -> Iterator[List[str]]:
    """The words of each simple command, with case patterns, function headers and redirections removed."""
    words: List[str] = []
    in_case_patterns = False
    index = 0
    while index < len(tokens):
        kind, value = tokens[index]
        index += 1
        if in_case_patterns and not words:
            if kind == WORD and value == "esac":
                in_case_patterns = False
            elif kind == OP and value == ")":
                in_case_patterns = False
            continue  # pattern words, "|" between them, newlines before them
        if kind == WORD:
            words.append(value)
            if len(words) == 3 and words[0] == "case" and words[2] == "in":
                words, in_case_patterns = [], True
            continue
        if value == "(" and len(words) == 1 and index < len(tokens) and tokens[index] == (OP, ")"):
            words, index = [], index + 1  # `name() {`: a function definition
            continue
        if value in REDIRECTIONS:
            if words and words[-1].isdigit():
                words.pop()  # the fd of `2>&1`
            index += 1 if index < len(tokens) and tokens[index][0] == WORD else 0
            continue
        if words:
            yield words
            words = []
        if value in (";;", ";&"):
            in_case_patterns = True
    if words:
        yield words


def command_words(words: List[str]) -> List[str]:
    """Drop leading reserved words; a `for x in ...` header is no command at all."""
    while words and words[0] in RESERVED:
        words = words[1:]
    if words and words[0] in LOOP_HEADERS:
        return []
    return words


def split_assignments(words: List[str]) -> Tuple[Dict[str, str], List[str]]:
    assignments: Dict[str, str] = {}
    while words and ASSIGNMENT.match(words[0]):
        name, value = ASSIGNMENT.match(words[0]).groups()
        assignments[name] = value
        words = words[1:]
    return assignments, words


def substitute(word: str, variables: Mapping[str, str]) -> str:
    def value(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        return variables.get(name, match.group(0))
    return VARIABLE.sub(value, word)


def is_dynamic(word: str) -> bool:
    return "$" in word or "`" in word


def shell_join(words: Sequence[str]) -> str:
    return " ".join(w if w and not re.search(r"[^\w@%+=:,./-]", w) else "'" + w.replace("'", "'\\''") + "'"
                    for w in words)


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


def function_names(tokens: Sequence[Tuple[str, str]]) -> set:
    return {tokens[i][1] for i in range(len(tokens) - 2)
            if tokens[i][0] == WORD and tokens[i + 1] == (OP, "(") and tokens[i + 2] == (OP, ")")}


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
    """Options (long, short, `--opt=value`, bundled short flags) and positionals; None if unknown/dynamic."""
    options: Dict[str, str] = {}
    positionals: List[str] = []
    words = list(args)
    while words:
        word = words.pop(0)
        if word == "--":
            positionals += words
            break
        if not word.startswith("-") or word == "-":
            positionals.append(word)
            continue
        name, has_value, value = word.partition("=")
        if not word.startswith("--") and len(word) > 2:
            expanded = [aliases.get(f"-{c}") for c in word[1:]]
            if None in expanded or any(e in value_options for e in expanded):
                return None
            options.update({e: "" for e in expanded})
            continue
        name = aliases.get(name, name)
        if name in value_options and not has_value:
            if not words:
                return None
            value = words.pop(0)
        options[name] = value
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
