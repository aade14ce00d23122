"""The resolver, on small in-memory package universes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from debian.actions.debian_repo import PackageRecord
from debian.actions.debian_resolve import (
    PackageConflict,
    ResolutionError,
    Universe,
    UnknownPackage,
    Unsatisfiable,
    resolve,
    unknown_exclusion,
)


def pkg(name: str, version: str = "1.0", **fields) -> PackageRecord:
    return PackageRecord(name=name, version=version, architecture=fields.pop("architecture", "amd64"),
                         suite=fields.pop("suite", "stable"), **fields)


def universe(*records: PackageRecord) -> Universe:
    return Universe.from_records(records)


def test_follows_depends_and_pre_depends():
    u = universe(pkg("app", depends="libfoo"), pkg("libfoo", pre_depends="libc6"), pkg("libc6"), pkg("unrelated"))
    result = resolve(u, ["app"])
    assert sorted(result.packages) == ["app", "libc6", "libfoo"]
    assert result.depends == {"app": ("libfoo",), "libfoo": ("libc6",), "libc6": ()}
    assert result.requested == {"app": "app"}
    assert result.why("libc6") == ["app", "libfoo", "libc6"]


def test_version_constraints():
    u = universe(pkg("app", depends="lib (>= 2.0)"), pkg("lib", "2.1"))
    assert "lib" in resolve(u, ["app"]).packages
    with pytest.raises(Unsatisfiable) as caught:
        resolve(universe(pkg("app", "3", depends="lib (>= 2.0)"), pkg("lib", "1.5-1")), ["app"])
    message = str(caught.value)
    assert "Cannot satisfy 'lib (>= 2.0)'" in message
    assert "app 3 -> (Depends: lib (>= 2.0))" in message
    assert "lib: 1.5-1 (stable)" in message
    assert caught.value.chain == ("app 3", "(Depends: lib (>= 2.0))")


def test_unsatisfiable_shows_the_chain_from_the_request():
    u = universe(pkg("top", depends="middle"), pkg("middle", "2", depends="missing (>= 1) | gone"))
    with pytest.raises(Unsatisfiable) as caught:
        resolve(u, ["top"])
    assert "top 1.0 -> middle 2 -> (Depends: missing (>= 1) | gone)" in str(caught.value)
    assert caught.value.available == {"missing": (), "gone": ()}
    assert "missing: not in the configured apt sources" in str(caught.value)


def test_requests_with_versions_and_alternatives():
    u = universe(pkg("python3", "3.11.2-1"), pkg("mawk"), pkg("gawk"))
    assert resolve(u, ["python3 (>= 3.11)"]).requested == {"python3 (>= 3.11)": "python3"}
    assert resolve(u, ["nawk | gawk"]).requested == {"nawk | gawk": "gawk"}
    with pytest.raises(Unsatisfiable, match=r"Cannot satisfy 'python3 \(>= 3.12\)'.*\n.*requested"):
        resolve(u, ["python3 (>= 3.12)"])
    with pytest.raises(ResolutionError, match="names one package"):
        resolve(u, ["python3, mawk"])
    with pytest.raises(ResolutionError, match=r"Cannot read the package request 'python3 \(>= \)'"):
        resolve(u, ["python3 (>= )"])


def test_unknown_package_suggests_close_names():
    u = universe(pkg("python3"), pkg("python3-yaml"), pkg("libc6"))
    with pytest.raises(UnknownPackage, match=r"no package named 'pyton3'.*Did you mean python3") as caught:
        resolve(u, ["pyton3"])
    assert caught.value.suggestions[0] == "python3"


def test_first_satisfiable_alternative_wins():
    u = universe(pkg("app", depends="absent | old (>= 2) | b | c"), pkg("old", "1"), pkg("b"), pkg("c"))
    assert sorted(resolve(u, ["app"]).packages) == ["app", "b"]


def test_an_alternative_already_chosen_is_preferred():
    u = universe(pkg("app", depends="a | b"), pkg("a"), pkg("b"))
    assert sorted(resolve(u, ["app", "b"]).packages) == ["app", "b"]
    assert resolve(u, ["app", "b"]).depends["app"] == ("b",)


def test_usr_is_merged_is_preferred_over_usrmerge():
    u = universe(pkg("init-system-helpers", depends="usrmerge | usr-is-merged"), pkg("usrmerge", depends="perl"),
                 pkg("perl"), pkg("usr-is-merged"))
    assert sorted(resolve(u, ["init-system-helpers"]).packages) == ["init-system-helpers", "usr-is-merged"]
    with_usrmerge = resolve(u, ["init-system-helpers"], preferences=())
    assert sorted(with_usrmerge.packages) == ["init-system-helpers", "perl", "usrmerge"]


def test_virtual_package_with_one_provider():
    u = universe(pkg("app", depends="mail-transport-agent"), pkg("exim4", provides="mail-transport-agent"))
    result = resolve(u, ["app"])
    assert result.depends["app"] == ("exim4",)


def test_virtual_package_with_several_providers_takes_priority_then_name():
    u = universe(pkg("app", depends="awk"), pkg("gawk", provides="awk"),
                 pkg("mawk", provides="awk", priority="required"), pkg("busybox", provides="awk"))
    assert resolve(u, ["app"]).depends["app"] == ("mawk",)
    u = universe(pkg("app", depends="awk"), pkg("gawk", provides="awk"), pkg("busybox", provides="awk"))
    assert resolve(u, ["app"]).depends["app"] == ("busybox",)
    assert resolve(u, ["app"], preferences=("gawk",)).depends["app"] == ("gawk",)


def test_a_real_package_beats_providers_of_its_name():
    u = universe(pkg("app", depends="foo"), pkg("foo"), pkg("afoo", provides="foo"))
    assert resolve(u, ["app"]).depends["app"] == ("foo",)


def test_versioned_provides():
    u = universe(pkg("python3", depends="libpython3-abi (= 3.11)"),
                 pkg("libpython3.10", provides="libpython3-abi (= 3.10)"),
                 pkg("libpython3.11", provides="libpython3-abi (= 3.11)"),
                 pkg("unversioned", provides="libpython3-abi"))
    assert resolve(u, ["python3"]).depends["python3"] == ("libpython3.11",)


def test_an_unversioned_provides_does_not_meet_a_versioned_dependency():
    u = universe(pkg("app", depends="virtual (>= 1)"), pkg("provider", provides="virtual"))
    with pytest.raises(Unsatisfiable, match="virtual: provided by provider"):
        resolve(u, ["app"])
    assert resolve(universe(pkg("app", depends="virtual"), pkg("provider", provides="virtual")), ["app"])


def test_a_virtual_package_can_be_requested():
    u = universe(pkg("gawk", provides="awk"), pkg("mawk", provides="awk", priority="required"))
    assert resolve(u, ["awk"]).requested == {"awk": "mawk"}


def test_multi_arch_qualifiers_are_accepted():
    u = universe(pkg("tool", depends="python3:any (>= 3), perl:native"), pkg("python3", "3.11", multi_arch="allowed"),
                 pkg("perl"))
    assert resolve(u, ["tool"]).depends["tool"] == ("python3", "perl")


def test_cycles_terminate():
    u = universe(pkg("a", depends="b"), pkg("b", depends="c"), pkg("c", depends="a, c"))
    result = resolve(u, ["a"])
    assert sorted(result.packages) == ["a", "b", "c"]
    assert result.depends["c"] == ("a",)  # the self-dependency is not an edge
    assert result.closure(["b"]) == ["a", "b", "c"]


def test_recommends_are_opt_in_and_soft():
    u = universe(pkg("app", depends="lib", recommends="extra, missing"), pkg("lib", recommends="docs"),
                 pkg("extra"), pkg("docs"))
    assert sorted(resolve(u, ["app"]).packages) == ["app", "lib"]
    result = resolve(u, ["app"], include_recommends=True)
    assert sorted(result.packages) == ["app", "docs", "extra", "lib"]
    assert result.recommends["app"] == ("extra",)
    assert result.skipped_recommends == ("app Recommends: missing",)
    assert result.closure(["app"]) == ["app", "lib"]
    assert result.closure(["app"], follow_recommends=True) == ["app", "docs", "extra", "lib"]


def test_essential_packages_and_their_closure():
    u = universe(pkg("bash", essential=True, pre_depends="libc6"), pkg("dash", essential=True), pkg("libc6"),
                 pkg("app"))
    result = resolve(u, ["app"], include_essential=True)
    assert result.essential == ("bash", "dash")
    assert sorted(result.packages) == ["app", "bash", "dash", "libc6"]
    assert result.why("libc6") == ["bash", "libc6"]
    assert sorted(resolve(u, ["app"]).packages) == ["app"]


def test_excluded_packages_leave_their_dependencies_unmet():
    u = universe(pkg("nova", depends="python3-mypy, libc6, babel | python3-babel"), pkg("python3-mypy", depends="big"),
                 pkg("big"), pkg("libc6"), pkg("babel"), pkg("python3-babel"))
    result = resolve(u, ["nova"], excluded=["python3-mypy", "babel"])
    assert sorted(result.packages) == ["libc6", "nova", "python3-babel"]  # an alternative still meets the group
    assert result.dropped_depends == ("nova Depends: python3-mypy",)
    assert result.depends["nova"] == ("libc6", "python3-babel")


def test_an_excluded_provider_is_not_chosen_for_a_virtual_package():
    u = universe(pkg("app", depends="mail-transport-agent"), pkg("exim4", provides="mail-transport-agent"),
                 pkg("postfix", provides="mail-transport-agent"))
    assert sorted(resolve(u, ["app"], excluded=["exim4"]).packages) == ["app", "postfix"]
    result = resolve(u, ["app"], excluded=["exim4", "postfix"])
    assert sorted(result.packages) == ["app"] and result.dropped_depends == ("app Depends: mail-transport-agent",)


def test_an_exclusion_is_unknown_only_when_no_architecture_has_it():
    amd64, arm64 = universe(pkg("python3-mypy"), pkg("amd64-only")), universe(pkg("python3-mypy"))
    assert resolve(arm64, [], excluded=["amd64-only"]).packages == {}
    assert unknown_exclusion("amd64-only", [amd64, arm64]) is None
    error = unknown_exclusion("python3-mipy", [amd64, arm64])
    assert isinstance(error, UnknownPackage)
    assert "no package named 'python3-mipy' to exclude" in str(error) and "python3-mypy" in str(error)


def test_conflicts_and_breaks_between_chosen_packages_are_refused():
    u = universe(pkg("app", depends="a, b"), pkg("a", conflicts="b"), pkg("b"))
    with pytest.raises(PackageConflict, match="a Conflicts: b, and b 1.0 is in the same image"):
        resolve(u, ["app"])
    u = universe(pkg("app", depends="a, b"), pkg("a", breaks="b (<< 2)"), pkg("b", "1.5"))
    with pytest.raises(PackageConflict, match=r"a Breaks: b \(<< 2\), and b 1.5"):
        resolve(u, ["app"])
    # Not a conflict: a Breaks an older b only, a Conflicts with a virtual name it provides itself.
    u = universe(pkg("app", depends="a, b"), pkg("a", breaks="b (<< 1)", conflicts="mta", provides="mta"), pkg("b"))
    assert sorted(resolve(u, ["app"]).packages) == ["a", "app", "b"]
    # Conflicting with another provider of a virtual name is.
    u = universe(pkg("app", depends="a, b"), pkg("a", conflicts="mta", provides="mta"), pkg("b", provides="mta"))
    with pytest.raises(PackageConflict, match="a Conflicts: mta, and b"):
        resolve(u, ["app"])


def test_conflicts_with_the_parent_closure_are_refused():
    u = universe(pkg("old"), pkg("new", conflicts="old"))
    with pytest.raises(PackageConflict, match="new Conflicts: old"):
        resolve(u, ["new"], inherited=["old"])


def test_malformed_relation_names_the_package():
    u = universe(pkg("app", depends="lib (>= )"))
    with pytest.raises(ResolutionError, match=r"app 1.0 \(stable\) has a malformed Depends"):
        resolve(u, ["app"])


UNIVERSE = [
    pkg("app", depends="a | b, awk, cyc1", recommends="r"), pkg("a", depends="c (>= 2) | d"), pkg("b"),
    pkg("c", "2.0", provides="awk"), pkg("d"), pkg("mawk", provides="awk"), pkg("gawk", provides="awk"),
    pkg("cyc1", depends="cyc2"), pkg("cyc2", depends="cyc1, b | a"), pkg("r", depends="d"),
    pkg("e", essential=True, depends="d | b"),
]


@settings(max_examples=50, deadline=None)
@given(st.permutations(UNIVERSE), st.booleans(), st.booleans())
def test_result_does_not_depend_on_index_order(records, recommends, essential):
    expected = resolve(universe(*UNIVERSE), ["app"], include_recommends=recommends, include_essential=essential)
    result = resolve(universe(*records), ["app"], include_recommends=recommends, include_essential=essential)
    assert result == expected
    assert list(result.packages) == sorted(result.packages)
