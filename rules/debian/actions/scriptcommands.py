"""The commands of a package's preinst and postinst that scripteffects.py applies or leaves for review.

maintscripts.py classifies commands for the policy by kind; this module lists them one by one, for
the rules that apply them, with three things the classification alone does not give:

- guards: each command carries the branch that keeps it from a fresh install (scriptflow.py);
  such commands are listed as skipped with that guard, never applied;
- `find DIR ... | xargs chown OWNER`: listed as one command, for the rule that applies it;
- dpkg's environment: `DPKG_ROOT` is empty when installing into / and `DPKG_MAINTSCRIPT_PACKAGE`
  is the package, so `$DPKG_ROOT/etc/x` is the static `/etc/x`;
- helpers: openstack-pkg-tools pastes its `pkgos_*` library into each postinst.  A helper whose
  body is exactly the reviewed one (REVIEWED_HELPERS: sha256 of its tokens) is cut out of the
  script and each call is expanded into the commands that body runs on a fresh install
  (`pkgos_write_new_conf glance glance-api.conf` -> `install -d` of /etc/glance and an
  `install -D` copy from /usr/share/<package>/).  Helpers that edit config, talk to a database or
  register endpoints stay opaque: each call is one unrecognized command, accepted by name or not
  at all.  A helper whose body differs from the reviewed one is not expanded: its calls are
  unrecognized, and its body is scanned like any other function.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Sequence, Tuple

from .maintscripts import SCANNED_SCRIPTS, FindingsBuilder, classify
from .scriptflow import guarded_commands
from .shell import (
    OP,
    WORD,
    ShellSyntaxError,
    command_words,
    function_names,
    is_dynamic,
    shell_join,
    split_assignments,
    substitute,
    tokenize,
)

Token = Tuple[str, str]
# Kinds whose commands scripteffects.py applies or lists; the rest stay with `[debian].script_effects`.
HANDLED_KINDS = ("filesystem", "statoverride", "tmpfiles", "unrecognized")


@dataclass(frozen=True)
class ScriptCommand:
    script: str
    command: str  # shell_join of the words, variables resolved
    kind: str  # maintscripts.py's kind, or "unrecognized"
    note: str = ""  # unrecognized: why
    origin: str = ""  # the helper call it was expanded from
    skipped_by: str = ""  # the guard that is false on a fresh install

    def to_json(self) -> dict:
        return {"script": self.script, "command": self.command, "kind": self.kind, "note": self.note,
                "origin": self.origin, "skipped_by": self.skipped_by}


def pkgos_write_new_conf(args: Sequence[str], package: str) -> List[Tuple[str, str]]:
    pkg, name = args[0], args[1]
    return [("filesystem", f"install -g {pkg} -o {pkg} -m 0750 -d /etc/{pkg}"),
            ("filesystem", f"install -D -m 0640 -o root -g {pkg} /usr/share/{package}/{name} /etc/{pkg}/{name}")]


def pkgos_adduser(args: Sequence[str], package: str) -> List[Tuple[str, str]]:
    name, shell = args[0], (args[1] if len(args) > 1 else "/bin/false")
    return [("accounts", f"addgroup --quiet --system {name}"),
            ("accounts", f"adduser --system --home /var/lib/{name} --no-create-home --quiet --disabled-password "
                         f"--shell {shell} --group {name}")]


def pkgos_var_user_group(args: Sequence[str], package: str) -> List[Tuple[str, str]]:
    name = args[0]
    mode = "755" if name == "nova" else "0750"  # the reviewed body's own exception
    return [("accounts", f"deluser -q {name} adm"), *pkgos_adduser(args, package),
            ("filesystem", f"mkdir -p /var/lib/{name}"), ("filesystem", f"chown {name}:{name} /var/lib/{name}"),
            ("filesystem", f"chmod {mode} /var/lib/{name}"), ("filesystem", f"mkdir -p /var/log/{name}"),
            ("filesystem", f"chown {name}:adm /var/log/{name}"), ("filesystem", f"chmod 0750 /var/log/{name}")]


def pkgos_init(args: Sequence[str], package: str) -> List[Tuple[str, str]]:
    return [("service", f"update-rc.d {args[0]} defaults"), ("service", f"invoke-rc.d {args[0]} start")]


def pkgos_inifile(args: Sequence[str], package: str) -> List[Tuple[str, str]]:
    return [] if args[:1] == ["get"] else [("unrecognized", "pkgos_inifile " + shell_join(args))]


EXPANSIONS: Dict[str, Callable[[Sequence[str], str], List[Tuple[str, str]]]] = {
    "pkgos_write_new_conf": pkgos_write_new_conf, "pkgos_adduser": pkgos_adduser,
    "pkgos_var_user_group": pkgos_var_user_group, "pkgos_init": pkgos_init, "pkgos_inifile": pkgos_inifile,
}
# Read config files or debconf only (debconf answers are never stored in an image).
QUERIES = {"pkgos_gen_pass", "pkgos_read_config", "pkgos_get_id", "pkgos_search_directive_line_num",
           "pkgos_extract_section", "pkgos_dbc_read_conf", "pkgos_read_admin_creds", "pkgos_rabbit_read_conf"}
# Effects no rule applies: each call is reported, to be accepted by name.
OPAQUE = {"pkgos_add_section", "pkgos_remove_section", "pkgos_add_directive", "pkgos_deprecate_directive",
          "pkgos_comment_out_directive", "pkgos_safesed", "pkgos_rabbit_write_conf", "pkgos_mysql_query",
          "pkgos_dbc_postinst", "pkgos_write_admin_creds", "pkgos_register_endpoint_config",
          "pkgos_register_endpoint_postinst", "pkgos_prerm_db_clean", "pkgos_postrm_db_clean", "pkgos_postrm"}
KNOWN_HELPERS = set(EXPANSIONS) | QUERIES | OPAQUE
# sha256 of the tokens of each helper as openstack-pkg-tools 124 (bookworm) ships it; reviewed in
# glance-common's postinst (keystone, nova-common, nova-api and glance-api carry the same bodies).
REVIEWED_HELPERS = {
    "pkgos_add_directive": "1fc0a21d17ce2183f79e00a33e36c7e2376a61253ab9421eb1a480ee35488ece",
    "pkgos_add_section": "bf14bd9b60c7fd13395b798e944faf17f823e486867f59fc7b64eb2f37f57da8",
    "pkgos_adduser": "1ee56819ca213aa11363c7562ab3f2e86e879563a32cbdca9fffd14e4af8ddc8",
    "pkgos_comment_out_directive": "fa6f53322e5954d1a8a42217a69cabf6e30bbb5d95c850fa222cacfa844cc937",
    "pkgos_dbc_postinst": "76f5761fe7198befbe8034a845605eb0564f411b467a94854d86154ca65387f7",
    "pkgos_dbc_read_conf": "52417a6c3583a5d8aadf2760c79b561e8e77732a5ff5af1792475d6f4f4f574e",
    "pkgos_deprecate_directive": "e129dd51309f351404c2ad7e3b7038b8795c9f7c8de5b78bb7333ca2d535496f",
    "pkgos_extract_section": "a23cf7e3d8363bb05c53e8cb32f0936348898e9d093eb97447631e2dbb4c1801",
    "pkgos_gen_pass": "0c72bcdc882d29163b3a902363041cca8a2f9c0eae650360e2103c601de26535",
    "pkgos_get_id": "5c93af354d3d012beed09daefa24ab3628995c17fc830710259e643c6925a663",
    "pkgos_inifile": "aff0fa5097c39366aa7cb418ea3bfc405600b2df89cb2a2c29adfcefc86fc53c",
    "pkgos_init": "21ab95654da60aeabce6610c58684c6f2c6998dd1898ecb64482cbf4f66fcf66",
    "pkgos_mysql_query": "77310f2d05c870b1b02b9bd6742a8d71efee407671b5dd674b3f7e25e1a7650c",
    "pkgos_postrm": "ef274d43af6c4ba18f23530ae7a2ae9cbf95d2a7cdca28d0244365b13a064033",
    "pkgos_postrm_db_clean": "d4b63a9086b568c94f5e3f78734366f1408b16ed3cb0cb9ad8129dacf6cb01af",
    "pkgos_prerm_db_clean": "b4696c78c418b9f38f9bea02afcd85938394b1a43f2824af8dedce2c94dea15a",
    "pkgos_rabbit_read_conf": "9fb9949bf3cde9bc8248d9fbbdefe145e5b473b80768f11cd729f0994c80a186",
    "pkgos_rabbit_write_conf": "15effd5d656db9af24128065e23506c175b74deab8692d98a506f1b8534bdeba",
    "pkgos_read_admin_creds": "56ddaabcb55401e694a0f2015a40532b13a1a480132d1bf61a4c1b50ab844a02",
    "pkgos_read_config": "c5e5776cbdf29578695b6f16102a7971463c477c929ee82e4fbc32a1c801f8e8",
    "pkgos_register_endpoint_config": "635075912156b09bdd0865344eba4d337228a2dbb75e265467c8ea9c66e9b330",
    "pkgos_register_endpoint_postinst": "501ec1ebef3045cadb68a7a68feb234d2bf32987b57ad827792ce2cf4a51d1d0",
    "pkgos_remove_section": "290d3eb9a2410c3216ec04b6e36ec9f510f4acef15abe7f774a0427d80f2bcc2",
    "pkgos_safesed": "9b330f9c29d0a566bcfc2af0fc0409c7c505001ff28ac77202c1b5d34a1ae577",
    "pkgos_search_directive_line_num": "d548dd554ba81a4eddc320d4e051b01f64f4024ce1b53e22a66515a708a6e9eb",
    "pkgos_var_user_group": "2f3c9fdf8dc578e91d44459a56c30ccdbe6779c502b32eaf032aa0d02f0cba5a",
    "pkgos_write_admin_creds": "c8dfd572721c099f17018bf5d325735fb84976ed668625052ca6b589eed7e884",
    "pkgos_write_new_conf": "7acf4a6ff4219986addb68c837951826e0c3b05c5bc85299909f3e07058f3adf",
}


def function_spans(tokens: Sequence[Token]) -> Dict[str, Tuple[int, int]]:
    """name -> (start, end) token indices of `name () { ... }` definitions (end exclusive)."""
    spans: Dict[str, Tuple[int, int]] = {}
    index = 0
    while index < len(tokens) - 2:
        if tokens[index][0] == WORD and tokens[index + 1] == (OP, "(") and tokens[index + 2] == (OP, ")"):
            end = body_end(tokens, index + 3)
            if end is not None:
                spans[tokens[index][1]] = (index, end)
                index = end
                continue
        index += 1
    return spans


def body_end(tokens: Sequence[Token], index: int) -> int | None:
    while index < len(tokens) and tokens[index] == (OP, "\n"):
        index += 1
    if index >= len(tokens) or tokens[index] != (WORD, "{"):
        return None
    depth = 0
    for position in range(index, len(tokens)):
        if tokens[position] == (WORD, "{"):
            depth += 1
        elif tokens[position] == (WORD, "}"):
            depth -= 1
            if depth == 0:
                return position + 1
    return None


def body_hash(tokens: Sequence[Token], span: Tuple[int, int]) -> str:
    return hashlib.sha256(repr(list(tokens[span[0]: span[1]])).encode()).hexdigest()


def reviewed_helpers(tokens: Sequence[Token], reviewed: Mapping[str, str]) -> Dict[str, Tuple[int, int]]:
    """Known helpers this script defines with exactly the reviewed body."""
    return {name: span for name, span in function_spans(tokens).items()
            if name in KNOWN_HELPERS and reviewed.get(name) == body_hash(tokens, span)}


def scan_commands(scripts: Mapping[str, str], package: str,
                  reviewed: Mapping[str, str] = REVIEWED_HELPERS) -> Tuple[ScriptCommand, ...]:
    """Commands of the handled kinds, preinst then postinst, in script order, helper calls expanded."""
    commands: List[ScriptCommand] = []
    for script in SCANNED_SCRIPTS:
        if script in scripts:
            commands += scan_script(script, scripts[script], package, reviewed)
    return tuple(c for c in commands if c.kind in HANDLED_KINDS)


def scan_script(script: str, text: str, package: str, reviewed: Mapping[str, str]) -> List[ScriptCommand]:
    try:
        tokens = tokenize(text)
    except ShellSyntaxError as error:
        return [ScriptCommand(script, "", "unrecognized", f"the script does not tokenize: {error}")]
    helpers = reviewed_helpers(tokens, reviewed)
    kept = [t for i, t in enumerate(tokens) if not any(s <= i < e for s, e in helpers.values())]
    functions = function_names(tokens)
    variables: Dict[str, str] = {"DPKG_MAINTSCRIPT_PACKAGE": package, "DPKG_ROOT": ""}
    out: List[ScriptCommand] = []
    for guarded in guarded_commands(script, kept):
        assignments, words = split_assignments(command_words(list(guarded.words)))
        if not words:
            if not guarded.skipped_by:  # an assignment in an upgrade-only branch does not happen either
                variables.update({k: substitute(v, variables) for k, v in assignments.items()})
            continue
        words = [substitute(w, variables) for w in words]
        if words[0] == "xargs" and guarded.piped_from[:1] == ("find",):
            source = [substitute(w, variables) for w in guarded.piped_from]
            out.append(ScriptCommand(script, f"{shell_join(source)} | {shell_join(words)}", "filesystem",
                                     skipped_by=guarded.skipped_by))
            continue
        out += [ScriptCommand(c.script, c.command, c.kind, c.note, c.origin, guarded.skipped_by)
                for c in command_of(script, words, helpers, functions, package)]
    return out


def command_of(script: str, words: List[str], helpers: Mapping[str, Tuple[int, int]], functions: set,
               package: str) -> List[ScriptCommand]:
    name = words[0]
    call = shell_join(words)
    if name in helpers:
        if name in QUERIES:
            return []
        if name in OPAQUE or any(is_dynamic(w) for w in words[1:]):
            return [ScriptCommand(script, call, "unrecognized", f"{name}: a helper no rule applies")]
        return [ScriptCommand(script, text, kind, "a config edit no rule applies" if kind == "unrecognized" else "",
                              origin=call) for kind, text in EXPANSIONS[name](words[1:], package)]
    if name in KNOWN_HELPERS and name in functions:
        return [ScriptCommand(script, call, "unrecognized", f"{name}: its body differs from the reviewed one")]
    builder = FindingsBuilder()
    classify(script, words, functions, builder)
    found = builder.build()
    return ([ScriptCommand(e.script, e.command, e.kind) for e in found.effects]
            + [ScriptCommand(u.script, u.command, "unrecognized", u.reason) for u in found.unrecognized])


def reviewed_hashes(reference_script: str) -> Dict[str, str]:
    """The body hashes of the known helpers in a script a reviewer read (to refresh REVIEWED_HELPERS)."""
    tokens = tokenize(reference_script)
    return {name: body_hash(tokens, span) for name, span in function_spans(tokens).items() if name in KNOWN_HELPERS}
