"""Run an action in a perturbed process: `python -m oci.actions.perturbed UMASK DEPTH MODULE ARGS...`.

For `pants repro-check --perturb`: the action runs with umask UMASK (octal) and from a working
directory DEPTH levels below the sandbox root, whose entries are linked into it; what the
action creates there is moved back to the root afterwards, so its outputs are where Pants
looks for them.  The other perturbations (TZ, locale, clock via libfaketime) are environment
variables of the Process.
"""

from __future__ import annotations

import os
import runpy
import shutil
import sys

SCRATCH = ".perturbed"


def deep_directory(root: str, depth: int) -> str:
    """root/.perturbed/d1/.../dN with every entry of root linked into it."""
    deep = os.path.join(root, SCRATCH, *(f"d{level}" for level in range(1, depth + 1)))
    os.makedirs(deep)
    for name in os.listdir(root):
        if name != SCRATCH:
            os.symlink(os.path.join(root, name), os.path.join(deep, name))
    return deep


def move_back(deep: str, root: str) -> None:
    """Move what the action created in `deep` (anything but the links) to `root`."""
    for name in os.listdir(deep):
        path = os.path.join(deep, name)
        if not os.path.islink(path):
            os.replace(path, os.path.join(root, name))
    shutil.rmtree(os.path.join(root, SCRATCH))


def main(argv: list) -> int:
    umask, depth, module, *args = argv
    os.umask(int(umask, 8))
    root = os.getcwd()
    deep = deep_directory(root, int(depth))
    os.chdir(deep)
    sys.argv = [module, *args]
    code = 0
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
    finally:
        os.chdir(root)
        move_back(deep, root)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
