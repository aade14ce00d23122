"""A perturbed environment for action Processes, for `pants repro-check --perturb`.

`--repro-check-perturb` (a rule in audit/repro.py turns it into an `ActionPerturbation`)
makes every action Process of the run go through `oci.actions.perturbed`, with another umask,
TZ, locale, working-directory depth and (with libfaketime) clock. The perturbation is part of
each Process, so none of them can be a cache hit of a normal build, and they are cached for the
session only, so that every check really rebuilds. Without the option it is empty and the
Processes are exactly the normal ones.

(An extra rule-graph param limited to the goal's own rebuild, beside a normal build in the same
run, would be neater; Pants 2.17's rule graph rejects it as ambiguous for these rules.)
"""

from __future__ import annotations

import glob
from dataclasses import dataclass

LIBFAKETIME_GLOB = "/usr/lib/*/faketime/libfaketime.so.1"  # Debian's faketime package


@dataclass(frozen=True)
class ActionPerturbation:
    env: tuple[tuple[str, str], ...] = ()
    umask: int = 0o022
    depth: int = 0  # extra levels of working directory below the sandbox root
    description: str = ""

    @property
    def active(self) -> bool:
        return bool(self.description)

    def wrap(self, module: str) -> tuple[str, ...]:
        """The `-m` arguments that run `module` under this perturbation."""
        if not self.active:
            return ("-m", module)
        return ("-m", "oci.actions.perturbed", f"{self.umask:03o}", str(self.depth), module)


def find_libfaketime() -> str | None:
    found = sorted(glob.glob(LIBFAKETIME_GLOB))
    return found[0] if found else None


def repro_perturbation(libfaketime: str | None, shift: str = "+3653d") -> ActionPerturbation:
    """What `repro-check --perturb` changes; with libfaketime the clock is `shift` ahead (FAKETIME syntax)."""
    env = [("TZ", "Pacific/Chatham"), ("LANG", "tr_TR.UTF-8"), ("LC_ALL", "tr_TR.UTF-8")]
    clock = "clock not shifted (libfaketime not found: install Debian's faketime package)"
    if libfaketime:
        env += [("LD_PRELOAD", libfaketime), ("FAKETIME", shift), ("FAKETIME_DONT_FAKE_MONOTONIC", "1")]
        clock = f"clock {shift} via {libfaketime}"
    description = f"umask 077, TZ=Pacific/Chatham, LANG=LC_ALL=tr_TR.UTF-8, working directory 7 levels deeper, {clock}"
    return ActionPerturbation(tuple(env), 0o077, 6, description)

