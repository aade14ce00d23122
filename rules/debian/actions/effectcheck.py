"""An image's check of its packages' maintainer-script effects, and the list of what it accepted.

Kinds the system layer replaces (`covered`) or an image does without (`ignore`: services,
byte-compiling, ...) follow `[debian].script_effects`.  The kinds the effect rules handle
(filesystem, statoverride, tmpfiles, unrecognized) were applied in the package layers; what stayed
unapplied, and every command of a kind whose policy is `error` (diversions, pam, ucf, ...), is
accepted one by one, never by kind: an entry of `[debian].accepted_script_effects` names the
package, the script, the command as packages.json prints it, its path and a one-line reason.
An unapplied effect without an entry stops the build with the entry to add.  An entry that
matches nothing in one image is fine (it is for another image).

Two more checks tie the package layers to the image: a directory an effect puts things in
(`needs`, /run for /run/mysqld) must be in the image, or the effect is unapplied in that image
(script `layer`, acceptable like any other); and a path a no-op relied on being absent
(`rm -f /etc/init.d/x`) must not be installed by another package of the image.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Sequence, Tuple

from .pathfilter import glob_matches, is_glob
from .scriptcommands import HANDLED_KINDS

ENTRY_KEYS = ("script", "command", "path", "reason")


class UncoveredEffect(Exception):
    pass


@dataclass(frozen=True)
class AcceptedEffect:
    package: str
    script: str
    command: str
    path: str
    reason: str

    def to_json(self) -> dict:
        return {"package": self.package, "script": self.script, "command": self.command, "path": self.path,
                "reason": self.reason}


def accepted_entries(accepted: Mapping[str, Sequence]) -> Dict[Tuple[str, str, str, str], AcceptedEffect]:
    """(package, script, command, path) -> entry; a malformed entry (an old per-kind list, say) is refused."""
    found: Dict[Tuple[str, str, str, str], AcceptedEffect] = {}
    for package, entries in sorted(accepted.items()):
        for entry in entries or ():
            if not isinstance(entry, Mapping) or sorted(entry) != sorted(ENTRY_KEYS) or not entry["reason"]:
                raise UncoveredEffect(
                    f"`[debian].accepted_script_effects` has {package}: {entry!r}; each entry must be a mapping "
                    f"with exactly {', '.join(ENTRY_KEYS)} (a non-empty reason): whole kinds are no longer accepted")
            effect = AcceptedEffect(package, *(str(entry[k]) for k in ENTRY_KEYS))
            found[(package, effect.script, effect.command, effect.path)] = effect
    return found


def kind_effects(packages: Iterable[dict], policy: Mapping[str, str]) -> Tuple[List[dict], List[str]]:
    """Findings of kinds no rule handles whose policy is `error`, as unapplied effects; and ignored ones."""
    unapplied, notes = [], []
    for package in packages:
        for effect in script_effects(package).get("by_kind", ()):
            verdict = policy.get(effect["kind"], "error")
            if effect["kind"] in HANDLED_KINDS or verdict == "covered":
                continue
            if verdict == "ignore":
                notes.append(f"{package['name']} ({effect['script']}): {effect['kind']}: {effect['command']}")
                continue
            unapplied.append(dict(package=package["name"], script=effect["script"], command=effect["command"],
                                  path=effect["path"],
                                  reason=f"no rule applies {effect['kind']} effects"))
    return unapplied, notes


def unapplied_problems(unapplied: Iterable[dict], accepted: Mapping[Tuple[str, str, str, str], AcceptedEffect]
                       ) -> Tuple[List[str], List[AcceptedEffect]]:
    problems, used = [], []
    for effect in unapplied:
        key = (effect["package"], effect["script"], effect["command"], effect["path"])
        if key in accepted:
            used.append(accepted[key])
            continue
        problems.append(f"{effect['package']} ({effect['script']}): {effect['command']}\n"
                        f"    path: {effect['path'] or '(none)'}; not applied: {effect['reason']}\n"
                        f"    to accept it, add to [debian].accepted_script_effects:\n"
                        + indent(entry_yaml(effect["package"], effect), 6))
    return problems, sorted(set(used), key=lambda e: (e.package, e.script, e.command, e.path))


def rule_unapplied(packages: Iterable[dict]) -> List[dict]:
    return [dict(effect, package=package["name"]) for package in packages
            for effect in script_effects(package)["unapplied"]]


def script_effects(package: dict) -> dict:
    return package.get("script_effects") or {"unapplied": [], "needs": [], "absent": [], "applied": [],
                                             "by_kind": []}


def accepted_in(effects: Iterable[Tuple[str, str, str, str]], accepted: Mapping[str, Sequence]
                ) -> List[AcceptedEffect]:
    """The accepted entries that (package, script, command, path) keys of an image match (for reports)."""
    entries = accepted_entries(accepted)
    return sorted({entries[key] for key in effects if key in entries},
                  key=lambda e: (e.package, e.script, e.command, e.path))


def entry_yaml(package: str, effect: dict) -> str:
    quoted = {k: json.dumps(effect[k]) for k in ("script", "command", "path")}  # JSON strings are YAML strings
    return (f"{package}:\n  - script: {quoted['script']}\n    command: {quoted['command']}\n"
            f"    path: {quoted['path']}\n    reason: \"<why the image does without it>\"\n")


def indent(text: str, spaces: int) -> str:
    return "".join(" " * spaces + line + "\n" for line in text.splitlines())


def placement_problems(packages: Sequence[dict]) -> Tuple[List[dict], List[str]]:
    """Unmet `needs` as unapplied effects (acceptable one by one: the image may do without the
    directory), and `absent` paths that another package of the image installs (always refused)."""
    installed = {"/" + f["path"]: p["name"] for p in packages for f in p["files"]}
    made = {a["path"] for p in packages for a in script_effects(p)["applied"]}
    unmet, problems = [], []
    for package in packages:
        effects = script_effects(package)
        for path in effects["needs"]:
            if path not in installed and path not in made:
                unmet.append(dict(package=package["name"], script="layer", command=f"effects below {path}",
                                  path=path, reason=f"{path} is installed by no package of this image"))
        for pattern in effects["absent"]:
            hits = [p for p in matching(pattern, installed) if installed[p] != package["name"]]
            if hits:
                problems.append(f"{package['name']}: a maintainer-script command was taken as a no-op because "
                                f"{pattern} is absent, but {installed[hits[0]]} installs {hits[0]}")
    return unmet, problems


def matching(pattern: str, paths: Mapping[str, object]) -> List[str]:
    """The paths a static path or glob names, sorted."""
    if not is_glob(pattern):
        return [pattern] if pattern in paths else []
    return glob_matches(pattern, paths)


def check_effects(packages: Sequence[dict], policy: Mapping[str, str], accepted: Mapping[str, Sequence]
                  ) -> Tuple[List[str], List[AcceptedEffect]]:
    """Refuse effects nobody applied or accepted; return (ignored findings, accepted effects used)."""
    by_kind, notes = kind_effects(packages, policy)
    unmet, placement = placement_problems(packages)
    unapplied, used = unapplied_problems(rule_unapplied(packages) + by_kind + unmet, accepted_entries(accepted))
    if unapplied or placement:
        raise UncoveredEffect("\n".join(filter(None, [
            unapplied and "maintainer-script effects that no rule applies and nobody accepted:\n  "
            + "\n  ".join(unapplied) + "Declare what the image needs instead (image_files with owner and mode), "
            "or accept the effect with the entry shown if the image does without it.",
            placement and "maintainer-script effects that do not fit this image:\n  " + "\n  ".join(placement),
        ])))
    return notes, used
