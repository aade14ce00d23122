"""Debian version ordering (checked against dpkg itself) and relation parsing."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from debian.actions.debian_version import (
    InvalidRelation,
    InvalidVersion,
    Relation,
    Version,
    compare_versions,
    parse_relations,
    parse_version,
    version_key,
    version_satisfies,
)


def sign(number: int) -> int:
    return (number > 0) - (number < 0)


# (a, b, expected sign of compare(a, b)).  Most come from dpkg's own test suite
# (lib/dpkg/t/t-version.c) and Debian policy's examples.
ORDERING = [
    ("0:0-0", "0:0-0", 0),
    ("0:0-00", "0:0-0", 0),
    ("0:1.1-1", "0:1.1-1", 0),
    ("1.0", "0:1.0", 0),
    ("1.0", "1.0-0", 0),
    ("1.002", "1.2", 0),
    ("0:0-0", "1:0-0", -1),
    ("1:0-0", "0:0-0", 1),
    ("2:1", "1:9", 1),
    ("0:0-0", "0:0-1", -1),
    ("0:0-0", "0:1-0", -1),
    ("0:a-0", "0:b-0", -1),
    ("1.10", "1.9", 1),
    ("1.0~rc1", "1.0", -1),
    ("1.0~", "1.0", -1),
    ("1.0~~", "1.0~", -1),
    ("1.0~~a", "1.0~~", 1),
    ("1.0~~", "1.0~~a", -1),
    ("0~", "0", -1),
    ("1.0a", "1.0", 1),
    ("1.0+", "1.0a", 1),  # non-letters sort after letters
    ("1.0.1", "1.0a", 1),
    ("1.0-1~bpo1", "1.0-1", -1),
    ("1.0-1+b1", "1.0-1", 1),
    ("1.2.3~rc1-1", "1.2.3-1", -1),
    ("2.30-1", "2.4-1", 1),
    ("1.0-1", "1.0-1.1", -1),
    ("3.11.2-1+b1", "3.11.2-1~", 1),
    ("1:1.2.13.dfsg-1", "1.2.13.dfsg-9", 1),
    ("9.2p1-1", "9.2-1", 1),
    ("7.88.1-10+deb12u5", "7.88.1-10+deb12u12", -1),
]


@pytest.mark.parametrize("a,b,expected", ORDERING)
def test_compare_versions(a, b, expected):
    assert sign(compare_versions(a, b)) == expected
    assert sign(compare_versions(b, a)) == -expected


def test_version_key_sorts_like_dpkg():
    versions = ["1.0", "1.0~rc1", "1:0.5", "1.0-1", "1.0+b1", "0.9", "1.0~~"]
    assert sorted(versions, key=version_key) == ["0.9", "1.0~~", "1.0~rc1", "1.0", "1.0-1", "1.0+b1", "1:0.5"]


def test_parse_version_parts():
    assert parse_version("1:2.3-4-5") == Version(1, "2.3-4", "5")
    assert parse_version("2.3") == Version(0, "2.3", "")
    assert str(parse_version("1:2.3-4")) == "1:2.3-4"


@pytest.mark.parametrize("text", ["", " ", "a:1.0", "1.0 2", "1.0-", ":1.0", "1.0_1", "1:-1"])
def test_invalid_versions_are_refused(text):
    with pytest.raises(InvalidVersion):
        parse_version(text)


@pytest.mark.parametrize("op,required,expected", [
    ("<<", "2.0", True), ("<=", "1.5", True), ("=", "1.5", True), (">=", "1.5", True), (">>", "1.5", False),
    (">>", "1.4", True), ("=", "1.5-0", True), (None, None, True),
])
def test_version_satisfies(op, required, expected):
    assert version_satisfies("1.5", op, required) is expected


VERSION_PART = st.text(alphabet="0123456789.+~ab", min_size=1, max_size=6).map(lambda s: "1" + s)
VERSIONS = st.builds(
    lambda epoch, upstream, revision: f"{epoch}{upstream}{revision}",
    st.sampled_from(["", "0:", "1:", "2:"]),
    VERSION_PART,
    st.sampled_from(["", "-1", "-0", "-1~bpo1", "-2+b1", "-1.1", "-a"]),
)


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="needs dpkg as the reference")
@settings(max_examples=150, deadline=None)
@given(VERSIONS, VERSIONS)
def test_ordering_matches_dpkg(a, b):
    for relation, holds in (("lt", compare_versions(a, b) < 0), ("eq", compare_versions(a, b) == 0)):
        dpkg = subprocess.run(["dpkg", "--compare-versions", a, relation, b], capture_output=True)
        assert (dpkg.returncode == 0) == holds, (a, relation, b, dpkg.stderr)


@given(VERSIONS, VERSIONS, VERSIONS)
def test_ordering_is_a_total_order(a, b, c):
    assert sign(compare_versions(a, b)) == -sign(compare_versions(b, a))
    if compare_versions(a, b) <= 0 and compare_versions(b, c) <= 0:
        assert compare_versions(a, c) <= 0


def test_parse_relations_groups_and_alternatives():
    assert parse_relations("libc6 (>= 2.34), python3:any (>= 3.11~) | python3-foo, perl:any") == (
        (Relation("libc6", None, ">=", "2.34"),),
        (Relation("python3", "any", ">=", "3.11~"), Relation("python3-foo")),
        (Relation("perl", "any"),),
    )


def test_parse_relations_reads_every_operator_and_the_obsolete_ones():
    groups = parse_relations("a (<< 1), b (<= 1), c (= 1), d (>= 1), e (>> 1), f (< 1), g (> 1)")
    assert [group[0].op for group in groups] == ["<<", "<=", "=", ">=", ">>", "<=", ">="]


def test_parse_relations_drops_architecture_and_profile_restrictions():
    assert parse_relations("foo [amd64 !i386] <!nocheck> <cross>, bar:native (>= 1) [linux-any]") == (
        (Relation("foo"),),
        (Relation("bar", "native", ">=", "1"),),
    )


def test_parse_relations_tolerates_layout():
    text = "a,\n b  (  >=  1.0 ) |c ,\n\t d,"
    assert parse_relations(text) == ((Relation("a"),), (Relation("b", None, ">=", "1.0"), Relation("c")),
                                     (Relation("d"),))
    assert parse_relations("") == ()


def test_parse_relations_reads_versioned_provides():
    assert parse_relations("python3-supported-max (= 3.11), python3-profiler") == (
        (Relation("python3-supported-max", None, "=", "3.11"),),
        (Relation("python3-profiler"),),
    )


@pytest.mark.parametrize("text", ["a (>= )", "a (=> 1)", "a | | b", "(>= 1)", "a (>= 1", "a b", "a (>= 1.0 junk)"])
def test_malformed_relations_are_refused(text):
    with pytest.raises(InvalidRelation, match="relation field"):
        parse_relations(text)


def test_relation_allows_and_prints():
    relation = Relation("libc6", "any", ">=", "2.36")
    assert relation.allows("2.36-9") and not relation.allows("2.35-1") and not relation.allows(None)
    assert Relation("x").allows(None)
    assert str(relation) == "libc6:any (>= 2.36)"
