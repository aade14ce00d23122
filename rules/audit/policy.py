"""`pants lint` for `oci_image`: the image policy of `[oci-policy]`.

Checks every image, as built, against rules that runtime images should keep:
no configuration-management tools, no init system, no compilers or -dev packages,
no command running as root, and per-image budgets for compressed size and package
count.  An image may be allowed to break a rule with `policy_allow=[...]`; a budget
comes from `max_size` / `max_packages` on the image or the `[oci-policy]` defaults.
Setuid and setgid files are listed for review but do not fail the lint.

Each violation names the image, the package (and the dependency path that brought it
in, from the lock), and the fix.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional, Sequence

from pants.core.goals.lint import LintResult, LintTargetsRequest
from pants.core.util_rules.partitions import PartitionerType
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import FieldSet, Target
from pants.option.option_types import BoolOption, IntOption, SkipOption, StrListOption, StrOption
from pants.option.subsystem import Subsystem
from pants.util.strutil import help_text

from audit.facts import ImageFacts, ImageFactsRequest, ParentImages
from audit.fields import (
    OciImageMaxPackagesField,
    OciImageMaxSizeField,
    OciImagePolicyAllowField,
    SkipOciPolicyField,
    parse_size,
)
from audit.lockgraph import DependencyPath, LockGraph
from audit.origins import LockGraphRequest, LockGraphResult
from audit.sizes import human_bytes
from oci.target_types import OciImageTagsField

ROOT_USERS = ("", "root", "0")
CONFIG_TIME_PACKAGES = ("puppet", "puppet-agent", "ansible", "ansible-core", "crudini", "chef", "salt-common",
                        "salt-minion", "cfengine3", "cloud-init")
INIT_PACKAGES = ("systemd", "systemd-sysv", "sysvinit-core", "init", "openrc", "runit-init", "upstart")
# The compilers themselves: gcc-12-base and libgcc-s1 are runtime libraries every C++ program needs.
COMPILER_PACKAGES = ("gcc", "gcc-[0-9]", "gcc-[0-9][0-9]", "g++", "g++-[0-9]", "g++-[0-9][0-9]", "cpp", "cpp-[0-9]",
                     "cpp-[0-9][0-9]", "clang", "clang-[0-9]", "clang-[0-9][0-9]", "gfortran", "gfortran-[0-9][0-9]",
                     "rustc", "golang-go", "golang-1.[0-9][0-9]-go", "build-essential")
DEV_PACKAGES = ("*-dev",)


class OciPolicySubsystem(Subsystem):
    options_scope = "oci-policy"
    name = "oci-policy"
    help = "The image policy that `pants lint` checks `oci_image` targets against."

    skip = SkipOption("lint")
    config_time_packages = StrListOption(
        default=list(CONFIG_TIME_PACKAGES),
        help=help_text(
            """
            Configuration-management tools that belong in config-time images only (glob patterns).
            A config-time image declares `policy_allow=["config-time-packages"]`.
            """
        ),
    )
    init_packages = StrListOption(
        default=list(INIT_PACKAGES),
        help="Init systems (glob patterns): the container runtime starts the process, nothing boots.",
    )
    compiler_packages = StrListOption(
        default=list(COMPILER_PACKAGES),
        help=help_text(
            """
            Compilers and toolchains (glob patterns); build in a builder image and copy the result.
            The patterns name the compilers themselves: `gcc-12-base` and `libgcc-s1` are runtime
            libraries every C++ program needs, not compilers.
            """
        ),
    )
    dev_packages = StrListOption(
        default=list(DEV_PACKAGES),
        help="Development packages, headers and static libraries (glob patterns).",
    )
    max_size = StrOption(
        default=None,
        help="Default budget for an image's compressed size, e.g. `2GiB`; an image's `max_size` overrides it.",
    )
    max_packages = IntOption(
        default=None,
        help="Default budget for an image's package count; an image's `max_packages` overrides it.",
    )
    list_setuid = BoolOption(
        default=True,
        help="List the setuid and setgid files of each image's packages (for review; they never fail the lint).",
    )


@dataclass(frozen=True)
class OciPolicyFieldSet(FieldSet):
    required_fields = (OciImageTagsField,)

    allow: OciImagePolicyAllowField
    max_size: OciImageMaxSizeField
    max_packages: OciImageMaxPackagesField

    @classmethod
    def opt_out(cls, tgt: Target) -> bool:
        return tgt.get(SkipOciPolicyField).value


class OciPolicyRequest(LintTargetsRequest):
    field_set_type = OciPolicyFieldSet
    tool_subsystem = OciPolicySubsystem
    partitioner_type = PartitionerType.DEFAULT_SINGLE_PARTITION


@dataclass(frozen=True)
class PackageRules:
    """Policy rule name -> glob patterns of package names it forbids."""

    patterns: tuple[tuple[str, tuple[str, ...]], ...]

    @classmethod
    def from_subsystem(cls, policy: OciPolicySubsystem) -> "PackageRules":
        return cls((
            ("config-time-packages", tuple(policy.config_time_packages)),
            ("init-system", tuple(policy.init_packages)),
            ("compilers", tuple(policy.compiler_packages)),
            ("dev-packages", tuple(policy.dev_packages)),
        ))

    def broken_by(self, package: str) -> list[str]:
        return [rule_id for rule_id, patterns in self.patterns
                if any(fnmatch.fnmatchcase(package, p) for p in patterns)]


@dataclass(frozen=True)
class ImagePolicy:
    allow: frozenset
    max_size: Optional[int]
    max_packages: Optional[int]


@dataclass(frozen=True)
class Finding:
    image: str
    rule: str
    message: str
    fix: str = ""
    why: str = ""
    blocking: bool = True

    def render(self) -> list[str]:
        lines = [f"  {'error' if self.blocking else 'info '} [{self.rule}] {self.message}"]
        if self.why:
            lines.append(f"        why: {self.why}")
        if self.fix:
            lines.append(f"        fix: {self.fix}")
        return lines


Why = Callable[[str], Optional[DependencyPath]]


def allow_hint(image: str, rule_id: str) -> str:
    return f"or add `policy_allow=[\"{rule_id}\"]` to {image} if it really needs it"


def package_fix(image: str, rule_id: str, added_by: str, path: Optional[DependencyPath]) -> str:
    if added_by != image:
        return f"it comes with the parent image {added_by}: fix it there, {allow_hint(image, rule_id)}"
    if path is None:
        return f"remove it from {image}, {allow_hint(image, rule_id)}"
    if path.root.essential:
        return (f"it is in Debian's Essential set, which {path.root.image} takes with essential=True: drop that, "
                f"{allow_hint(image, rule_id)}")
    if len(path.packages) == 1:
        return f"remove {path.root.package} from the `packages` of {path.root.image}, {allow_hint(image, rule_id)}"
    return (f"remove {path.root.package} from the `packages` of {path.root.image} or replace it with a package "
            f"that does not pull {path.packages[-1]} in, {allow_hint(image, rule_id)}")


def package_findings(facts: ImageFacts, rules: PackageRules, allow: frozenset, why: Why) -> list[Finding]:
    image = str(facts.address)
    findings = []
    for layer in facts.layers:
        for package in layer.packages:
            for rule_id in rules.broken_by(package.name):
                if rule_id in allow:
                    continue
                path = why(package.name)
                findings.append(Finding(
                    image, rule_id, f"{package.name} {package.version} (added by {layer.added_by})",
                    fix=package_fix(image, rule_id, str(layer.added_by), path),
                    why=path.describe() if path else "",
                ))
    return findings


def is_root(user: str) -> bool:
    return user.split(":", 1)[0] in ROOT_USERS


def service_command(config: dict, has_children: bool) -> list[str]:
    """What the image runs, if it is a service: it has a `cmd`, or an `entrypoint` and no image builds on it.

    A base image that only sets an init entrypoint (dumb-init, tini) for its children is not a service.
    """
    settings = config.get("config") or {}
    entrypoint, cmd = list(settings.get("Entrypoint") or []), list(settings.get("Cmd") or [])
    if cmd or (entrypoint and not has_children):
        return entrypoint + cmd
    return []


def user_findings(facts: ImageFacts, allow: frozenset, has_children: bool = False) -> list[Finding]:
    """A service must not run as root."""
    command = service_command(facts.config, has_children)
    user = (facts.config.get("config") or {}).get("User") or ""
    if not command or not is_root(user) or "root-user" in allow:
        return []
    image = str(facts.address)
    shown = f"user {user!r}" if user else "no `user` set"
    return [Finding(
        image, "root-user", f"runs `{' '.join(command)}` as root ({shown})",
        fix=(f"set `user=` on {image} to an account from the users table (list it in `users=[...]`), "
             f"{allow_hint(image, 'root-user')}"),
    )]


def budget_findings(facts: ImageFacts, policy: ImagePolicy) -> list[Finding]:
    image = str(facts.address)
    findings = []
    total = facts.total_bytes
    why_hint = "`pants image-report --why=NAME` shows why each is there"
    if policy.max_size is not None and total > policy.max_size and "size-budget" not in policy.allow:
        largest = sorted(facts.packages, key=lambda p: -p.installed_bytes)[:3]
        names = ", ".join(f"{p.name} {human_bytes(p.installed_bytes)}" for p in largest) or "none"
        findings.append(Finding(
            image, "size-budget", f"{human_bytes(total)} compressed, over its budget of {human_bytes(policy.max_size)}",
            fix=f"drop packages (largest installed: {names}; {why_hint}) or raise `max_size` of {image}",
        ))
    count = len(facts.packages)
    if policy.max_packages is not None and count > policy.max_packages and "package-budget" not in policy.allow:
        findings.append(Finding(
            image, "package-budget", f"{count} packages, over its budget of {policy.max_packages}",
            fix=f"drop packages ({why_hint}) or raise `max_packages` of {image}",
        ))
    return findings


def setuid_findings(facts: ImageFacts) -> list[Finding]:
    """The setuid/setgid files of the packages this image adds; those of its parents are counted, not repeated."""
    image = str(facts.address)
    own = sorted((p for layer in facts.own_layers for p in layer.packages), key=lambda p: p.name)
    findings = [Finding(image, "setuid", f"{path} ({package.name})", blocking=False)
                for package in own for path in package.setuid]
    inherited = sum(len(p.setuid) for layer in facts.layers if layer.added_by != facts.address
                    for p in layer.packages)
    if inherited:
        findings.append(Finding(image, "setuid", f"{inherited} more from its parent images (listed there)",
                                blocking=False))
    return findings


def check_image(facts: ImageFacts, policy: ImagePolicy, rules: PackageRules, why: Why,
                list_setuid: bool, has_children: bool = False) -> list[Finding]:
    findings = package_findings(facts, rules, policy.allow, why)
    findings += user_findings(facts, policy.allow, has_children)
    findings += budget_findings(facts, policy)
    if list_setuid:
        findings += setuid_findings(facts)
    return findings


def image_policy(field_set: OciPolicyFieldSet, subsystem: OciPolicySubsystem) -> ImagePolicy:
    max_size = field_set.max_size.value or subsystem.max_size
    max_packages = field_set.max_packages.value
    return ImagePolicy(
        allow=frozenset(field_set.allow.value or ()),
        max_size=parse_size(max_size) if max_size else None,
        max_packages=max_packages if max_packages is not None else subsystem.max_packages,
    )


def render_report(results: Sequence[tuple[ImageFacts, list[Finding]]]) -> str:
    lines = []
    for facts, findings in results:
        errors = sum(1 for f in findings if f.blocking)
        status = f"{errors} violation{'s' if errors != 1 else ''}" if errors else "ok"
        lines.append(f"{facts.address}: {status} ({len(facts.packages)} packages, {human_bytes(facts.total_bytes)})")
        for finding in findings:
            lines.extend(finding.render())
    return "\n".join(lines) + "\n"


def no_path(_: str) -> Optional[DependencyPath]:
    return None


def why_in(graph: Optional[LockGraph], chain: Iterable) -> Why:
    if graph is None:
        return no_path
    addresses = [str(a) for a in chain]
    return lambda package: graph.why(addresses, package)


@rule(desc="Check images against the image policy")
async def check_image_policy(
    request: OciPolicyRequest.Batch[OciPolicyFieldSet, Any], subsystem: OciPolicySubsystem, parents: ParentImages
) -> LintResult:
    field_sets = sorted(request.elements, key=lambda fs: str(fs.address))
    all_facts = await MultiGet(Get(ImageFacts, ImageFactsRequest(fs.address)) for fs in field_sets)
    architectures = sorted({f.architecture for f in all_facts if f.packages})
    graphs = await MultiGet(Get(LockGraphResult, LockGraphRequest(a)) for a in architectures)
    graph_of = {g.architecture: g.graph for g in graphs}
    rules = PackageRules.from_subsystem(subsystem)
    results = [
        (facts, check_image(facts, image_policy(fs, subsystem), rules,
                            why_in(graph_of.get(facts.architecture), facts.chain), subsystem.list_setuid,
                            facts.address in parents.addresses))
        for fs, facts in zip(field_sets, all_facts)
    ]
    failed = any(f.blocking for _, findings in results for f in findings)
    return LintResult(1 if failed else 0, render_report(results), "", request.tool_name,
                      request.partition_metadata.description)


def rules():
    return [*collect_rules(), *OciPolicyRequest.rules()]
