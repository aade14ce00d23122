"""Two copies of one Python module: a distribution of the venv and a Debian package of the chain.

The venv runs with system site-packages, so a module that both Debian's dist-packages and the venv
hold is imported from the venv by the services while Debian's own tools (kolla_set_configs, ...)
keep the other one. Both directions are refused, in one place, over the whole chain:
- forward: the image's own venv layer installs a module a Debian package of the chain has
  (PyYAML over python3-yaml); the fix is `python_exclude` on the image, or dropping the package;
- reverse: the image adds a Debian package over a module the parent chain's venv already has
  (python3-yaml under a parent's PyYAML); the fix is dropping the package, or `python_exclude` in
  the image whose venv installed the distribution.

The check reads the venv records (the files each distribution installed) and debian's
`DebianProvides.python_modules`; `pypi/content.py` refuses at build time, `pypi/lint.py`
reports the same findings under `pants lint`. An image is checked against its whole chain: an
ancestor's clash was refused at the ancestor, so what is found here is this image's doing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from pypi.actions.build_venv_layer import top_level_modules


@dataclass(frozen=True)
class VenvDistribution:
    name: str  # as the wheel's METADATA spells it
    version: str
    image: str  # the image whose venv layer installed it
    files: tuple[str, ...]  # relative to the venv root


@dataclass(frozen=True)
class ModuleClash:
    image: str  # the image the clash is found in
    module: str
    distribution: str  # "PyYAML 6.0.1"
    venv_image: str  # the image whose venv installed the distribution
    package: str  # the Debian package

    @property
    def reverse(self) -> bool:
        """The Debian package came over a venv an ancestor had."""
        return self.venv_image != self.image

    def describe(self) -> str:
        if not self.reverse:
            return (f"{self.distribution} of its venv and Debian's {self.package} both provide `{self.module}`: "
                    f"leave it out with python_exclude={{\"{self.distribution.split()[0]}\": \"Debian's "
                    f"{self.package}\"}}, or drop {self.package} from the chain's `packages`")
        return (f"Debian's {self.package}, added here, provides `{self.module}`, which {self.distribution} of the "
                f"venv of {self.venv_image} already has: drop {self.package} from the image's `packages` (the venv's "
                f"copy serves), or leave the distribution out of {self.venv_image} with python_exclude="
                f"{{\"{self.distribution.split()[0]}\": \"Debian's {self.package}\"}}")


def venv_distributions(records: Iterable[Mapping]) -> tuple[VenvDistribution, ...]:
    """The distributions of venv records (venv-record.json of each venv layer of a chain)."""
    return tuple(VenvDistribution(d["name"], d["version"], record["image"], tuple(d["files"]))
                 for record in records for d in record["distributions"])


def module_clashes(image: str, distributions: Iterable[VenvDistribution], debian_modules: Mapping[str, str],
                   site_packages: str) -> tuple[ModuleClash, ...]:
    """Every top-level module both a venv distribution and a Debian package (`debian_modules`) provide."""
    clashes = {
        ModuleClash(image, module, f"{d.name} {d.version}", d.image, debian_modules[module])
        for d in distributions for module in top_level_modules(d.files, site_packages) if module in debian_modules
    }
    return tuple(sorted(clashes, key=lambda c: (c.module, c.distribution)))


def clash_message(image: str, clashes: Iterable[ModuleClash]) -> str:
    return (f"{image}: two copies of one Python module, the venv's shadowing the Debian package's (the venv "
            "imports Debian's modules through system site-packages):\n  "
            + "\n  ".join(clash.describe() for clash in clashes))
