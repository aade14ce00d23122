"""deb822 parsing, and fetching + verifying apt indexes from the generated repository on loopback."""

from __future__ import annotations

import datetime
import hashlib
import os
import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aptrepo import DEFAULT_PACKAGES, DebSpec
from debian.actions import deb822, debian_repo
from debian.actions.debian_repo import (
    AptSource,
    BadSignature,
    FetchFailed,
    HashMismatch,
    IndexNotListed,
    KeyringNotFound,
    MissingSignature,
    ReleaseExpired,
    SizeMismatch,
    SuiteMismatch,
    UnknownSigningKey,
    load_packages,
    newest_by_name,
)

QUIET = lambda message: None  # noqa: E731


def paragraphs(text: str) -> list:
    return list(deb822.parse_paragraphs(text, "Packages"))


def test_paragraphs_fields_and_continuations():
    text = (
        "Package: a\nVersion: 1.0\nDescription: short\n long line one\n .\n\tindented by tab\n\n"
        "Package: b\nDepends: x,\n y\n"
    )
    assert paragraphs(text) == [
        {"Package": "a", "Version": "1.0", "Description": "short\n long line one\n .\n\tindented by tab"},
        {"Package": "b", "Depends": "x,\n y"},
    ]


def test_paragraph_separators_comments_and_whitespace():
    text = "\n\n# a comment\nPackage: a\nEmpty:\nSpaced:   value  \n \n\n\n  \t\nPackage: b\n\n"
    assert paragraphs(text) == [{"Package": "a", "Empty": "", "Spaced": "value"}, {"Package": "b"}]


def test_field_names_keep_their_spelling_and_fold_on_request():
    [paragraph] = paragraphs("package: a\nPRE-DEPENDS: b\nX-Custom: c\n")
    assert paragraph == {"package": "a", "PRE-DEPENDS": "b", "X-Custom": "c"}
    canonical = {"package": "Package", "pre-depends": "Pre-Depends"}
    assert deb822.fold_field_names(paragraph, canonical) == {"Package": "a", "Pre-Depends": "b", "X-Custom": "c"}


@pytest.mark.parametrize("text,line,reason", [
    ("Package: a\nVersion: 1\n\nPackage: b\nno colon here\n", 5, "expected 'Field: value'"),
    ("Package: a\n\n continued\n", 3, "continuation line outside of a field"),
    ("Package: a\nVersion: 1\nPackage: b\n", 3, "appears twice"),
    ("Package: a\n: value\n", 2, "expected 'Field: value'"),
])
def test_malformed_text_names_file_and_line(text, line, reason):
    with pytest.raises(deb822.MalformedIndex, match=reason) as caught:
        paragraphs(text)
    assert caught.value.line == line
    assert str(caught.value).startswith(f"Packages, line {line}: ")
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("text", [
    "A:b: c\nD: e", "A: b\nC:d", "A: b\nC:", "A: b\nC:  d", "A: b \nC: d", "A: b\nC: d ", "A: b\n\tc\nD: e",
    "A: b\n c: d\nE: f", "A: b\n\n\nC: d\n", "A: b\n \nC: d",
])
def test_awkward_paragraphs_parse_like_the_careful_parser(text):
    assert list(deb822.parse_paragraphs(text, "x")) == list(deb822._paragraphs_in_block(text, 0, len(text), "x"))


FIELD_NAMES = st.sampled_from(["Package", "Version", "Depends", "Description", "X-Custom", "Tag", "A"])
VALUES = st.text(alphabet="ab :,()|.~-+é", max_size=12).map(str.strip)
CONTINUATIONS = st.lists(st.text(alphabet="ab :.", min_size=1, max_size=8).map(lambda s: " " + s.rstrip()),
                         max_size=2).map(lambda lines: [line for line in lines if line.strip()])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.dictionaries(FIELD_NAMES, st.tuples(VALUES, CONTINUATIONS), min_size=1, max_size=6),
                min_size=1, max_size=5))
def test_fast_path_agrees_with_the_careful_parser(documents):
    """Whatever path a paragraph takes, the result is the same as the line-by-line parser's."""
    text = "\n".join(
        "".join(f"{name}: {value}\n" + "".join(f"{line}\n" for line in more) for name, (value, more) in d.items())
        for d in documents
    )
    careful = list(deb822._paragraphs_in_block(text, 0, len(text), "x"))
    assert list(deb822.parse_paragraphs(text, "x")) == careful
    assert len(careful) == len(documents)


RELEASE = """\
Origin: Debian
Suite: stable
Codename: bookworm
Date: Sat, 10 Jun 2023 08:53:28 UTC
Valid-Until: Sat, 17 Jun 2023 08:53:28 UTC
Acquire-By-Hash: yes
Architectures: all amd64 arm64
Components: main contrib
MD5Sum:
 0ed6d4c8891eb86358b94bb35d9e4da4  1484322 contrib/Contents-all
SHA256:
 9e0b5aabb2465b3d2e7a7fe27f9913846277833f7a2826e7767acccff5b588c5  8790396 main/binary-amd64/Packages.xz
 515e692f2c4121c6fcec444ef100cc18f79a991910615f3a88c8b7becfc94d2f 50060337 main/binary-amd64/Packages
"""


def test_parse_release():
    release = deb822.parse_release(RELEASE, "InRelease")
    assert (release.suite, release.codename, release.acquire_by_hash) == ("stable", "bookworm", True)
    assert release.architectures == ("all", "amd64", "arm64")
    assert release.components == ("main", "contrib")
    assert release.files["main/binary-amd64/Packages.xz"] == deb822.ReleaseFile(
        "9e0b5aabb2465b3d2e7a7fe27f9913846277833f7a2826e7767acccff5b588c5", 8790396)
    assert set(release.files) == {"main/binary-amd64/Packages.xz", "main/binary-amd64/Packages"}
    utc = datetime.timezone.utc
    assert not release.expired(datetime.datetime(2023, 6, 17, 8, 0, tzinfo=utc))
    assert release.expired(datetime.datetime(2023, 6, 17, 9, 0, tzinfo=utc))


@pytest.mark.parametrize("text,reason", [
    (RELEASE.split("SHA256:")[0], "no SHA256 table"),
    (RELEASE.replace(" 8790396 ", " 87x "), "bad SHA256 line"),
    ("Origin: x\nSHA256:\n", "neither Suite nor Codename"),
    ("Suite: a\n\nSuite: b\n", "one paragraph"),
])
def test_malformed_release(text, reason):
    with pytest.raises(deb822.MalformedIndex, match=reason):
        deb822.parse_release(text, "InRelease")


# Fetching and verification against the generated repository.


def source_for(repo, **overrides) -> AptSource:
    return AptSource.from_json({**repo.source_json(), **overrides})


def test_good_repository_loads_every_field(apt_repo):
    loaded = load_packages(source_for(apt_repo), "amd64", log=QUIET)
    records = {r.name: r for r in loaded.records}
    assert set(records) == {spec.name for spec in DEFAULT_PACKAGES}
    python3 = records["python3"]
    deb = apt_repo.debs["python3"].read_bytes()
    assert (python3.version, python3.architecture, python3.multi_arch) == ("3.11.2-1+b1", "amd64", "allowed")
    assert (python3.sha256, python3.size) == (hashlib.sha256(deb).hexdigest(), len(deb))
    assert python3.filename == "pool/main/p/python3-defaults/python3_3.11.2-1+b1_amd64.deb"
    assert python3.depends == "python3.11 (>= 3.11.2), libpython3-abi (= 3.11)"
    assert python3.provides == "python3-profiler"
    assert (python3.source_package, python3.source_version) == ("python3-defaults", "3.11.2-1")
    assert (python3.source, python3.suite, python3.component, python3.mirror_url) == (
        "fixture", "fixture", "main", apt_repo.url)
    assert records["bash"].essential and records["bash"].pre_depends == "libc6 (>= 2.36)"
    assert records["bash"].priority == "required" and records["bash"].installed_size == 1
    assert records["python3.11"].recommends == "ca-certificates"
    assert records["media-types"].architecture == "all"
    assert loaded.indexes[0].packages == len(DEFAULT_PACKAGES)


def test_file_urls_and_by_hash(apt_repo_factory):
    repo = apt_repo_factory(acquire_by_hash=True)
    # Only the by-hash copy exists: the client must have used it.
    repo.index_path().unlink()
    loaded = load_packages(source_for(repo, url=repo.root.as_uri()), "amd64", log=QUIET)
    assert len(loaded.records) == len(DEFAULT_PACKAGES)


def test_bad_signature_is_refused(apt_repo):
    apt_repo.tamper_signed_text()
    with pytest.raises(BadSignature, match=r"InRelease has a BAD signature"):
        load_packages(source_for(apt_repo), "amd64", log=QUIET)


def test_unknown_key_is_refused(apt_repo, apt_keys):
    apt_repo.sign_with(apt_keys.other)
    with pytest.raises(UnknownSigningKey, match=apt_keys.other.fingerprint[-16:]) as caught:
        load_packages(source_for(apt_repo), "amd64", log=QUIET)
    assert apt_repo.key.keyring in str(caught.value)


def test_armored_keyring_is_accepted(apt_repo, tmp_path):
    armored = subprocess.run(["gpg", "--batch", "--armor", "--export", apt_repo.key.fingerprint], check=True,
                             capture_output=True, env={**os.environ, "GNUPGHOME": apt_repo.key.gnupghome}).stdout
    assert armored.startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
    (tmp_path / "key.asc").write_bytes(b"Comment: some text before the block\n" + armored)
    verified = debian_repo.fetch_release(source_for(apt_repo, keyring=str(tmp_path / "key.asc")), "fixture", log=QUIET)
    assert verified.signers == (apt_repo.key.fingerprint,)


def test_one_good_signature_among_unknown_ones_is_enough(apt_repo, apt_keys):
    apt_repo.sign_with(apt_keys.other, apt_keys.trusted)
    verified = debian_repo.fetch_release(source_for(apt_repo), "fixture", log=QUIET)
    assert verified.signers == (apt_keys.trusted.fingerprint,)


def test_missing_signature_is_refused(apt_repo):
    apt_repo.strip_signature()
    with pytest.raises(MissingSignature, match="no OpenPGP signature"):
        load_packages(source_for(apt_repo), "amd64", log=QUIET)


def test_two_messages_in_one_inrelease_are_refused(apt_repo):
    apt_repo.double_message()
    with pytest.raises(BadSignature, match="could not process"):
        load_packages(source_for(apt_repo), "amd64", log=QUIET)


def test_text_outside_the_signature_is_never_read(apt_repo):
    inrelease = apt_repo.dists / "InRelease"
    forged = "Suite: forged\nSHA256:\n " + "0" * 64 + " 1 main/binary-amd64/Packages.xz\n\n"
    inrelease.write_text(forged + inrelease.read_text() + "\n" + forged)
    verified = debian_repo.fetch_release(source_for(apt_repo), "fixture", log=QUIET)
    assert verified.release.suite == "fixture"
    assert verified.release.files["main/binary-amd64/Packages.xz"].size > 1


def test_index_hash_mismatch_is_refused(apt_repo):
    apt_repo.corrupt_index(keep_size=True)
    with pytest.raises(HashMismatch, match=r"Packages.xz has sha256 \w+ but the signed Release says"):
        load_packages(source_for(apt_repo), "amd64", log=QUIET)


def test_index_size_mismatch_is_refused(apt_repo):
    apt_repo.corrupt_index(keep_size=False)
    with pytest.raises(SizeMismatch, match="bytes but the signed Release says"):
        load_packages(source_for(apt_repo), "amd64", log=QUIET)


def test_suite_must_match_the_signed_release(apt_repo):
    shutil.copytree(apt_repo.dists, apt_repo.root / "dists" / "other")
    with pytest.raises(SuiteMismatch, match="signed for suite 'fixture'"):
        load_packages(source_for(apt_repo, suites=["other"]), "amd64", log=QUIET)


def test_expired_release_is_refused(apt_repo_factory):
    repo = apt_repo_factory(valid_until="Sun, 02 Jan 2000 00:00:00 UTC")
    with pytest.raises(ReleaseExpired, match="expired at Sun, 02 Jan 2000"):
        load_packages(source_for(repo), "amd64", log=QUIET)
    now = datetime.datetime(2000, 1, 1, 12, tzinfo=datetime.timezone.utc)
    assert load_packages(source_for(repo), "amd64", now=now, log=QUIET).records


def test_unlisted_component_names_what_exists(apt_repo):
    with pytest.raises(IndexNotListed, match="does not list contrib/binary-amd64/Packages.xz.*components main"):
        load_packages(source_for(apt_repo, components=["contrib"]), "amd64", log=QUIET)


def test_missing_keyring_and_missing_suite(apt_repo, tmp_path):
    with pytest.raises(KeyringNotFound, match="does not exist"):
        load_packages(source_for(apt_repo, keyring=str(tmp_path / "nope.gpg")), "amd64", log=QUIET)
    with pytest.raises(FetchFailed, match=r"dists/nosuch/InRelease: HTTP 404"):
        load_packages(source_for(apt_repo, suites=["nosuch"]), "amd64", log=QUIET)


def test_malformed_index_is_reported(apt_repo):
    apt_repo.replace_index("Package: a\nVersion: 1.0\nbroken line\n")
    with pytest.raises(deb822.MalformedIndex, match=r"Packages.xz, line 3: expected 'Field: value'"):
        load_packages(source_for(apt_repo), "amd64", log=QUIET)
    apt_repo.replace_index("Package: a\nVersion: 1.0\nArchitecture: all\n")
    with pytest.raises(deb822.MalformedIndex, match="package a lacks Filename, SHA256, Size"):
        load_packages(source_for(apt_repo), "amd64", log=QUIET)


def test_field_names_in_other_case_are_understood(apt_repo):
    text = apt_repo.packages_text("amd64").replace("Pre-Depends:", "pre-depends:").replace("Package:", "PACKAGE:")
    apt_repo.replace_index(text)
    records = {r.name: r for r in load_packages(source_for(apt_repo), "amd64", log=QUIET).records}
    assert records["bash"].pre_depends == "libc6 (>= 2.36)"


def test_cache_keeps_verified_indexes_by_hash(apt_repo, tmp_path):
    cache = tmp_path / "cache"
    first = load_packages(source_for(apt_repo), "amd64", cache_dir=str(cache), log=QUIET)
    [cached] = cache.iterdir()
    assert cached.name == hashlib.sha256(apt_repo.index_path().read_bytes()).hexdigest() + ".xz"
    apt_repo.index_path().unlink()  # the mirror loses it; the cache still has it
    again = load_packages(source_for(apt_repo), "amd64", cache_dir=str(cache), log=QUIET)
    assert again.records == first.records
    cached.write_bytes(b"damaged")  # a damaged entry is a miss, not an error
    with pytest.raises(FetchFailed):
        load_packages(source_for(apt_repo), "amd64", cache_dir=str(cache), log=QUIET)


def test_architecture_all_goes_into_every_architecture(apt_repo_factory):
    repo = apt_repo_factory(architectures=("amd64", "arm64"))
    arm64 = {r.name: r for r in load_packages(source_for(repo), "arm64", log=QUIET).records}
    assert arm64["media-types"].architecture == "all"
    assert "libc6" not in arm64  # the fixture builds libc6 for amd64 only


def test_newest_version_across_suites(apt_repo_factory):
    repo = apt_repo_factory()
    apt_repo_factory([DebSpec("python3", "3.11.4-1"), DebSpec("libc6", "2.30-1")], suite="fixture-updates")
    source = source_for(repo, suites=["fixture", "fixture-updates"])
    newest = newest_by_name(load_packages(source, "amd64", log=QUIET).records)
    assert (newest["python3"].version, newest["python3"].suite) == ("3.11.4-1", "fixture-updates")
    assert (newest["libc6"].version, newest["libc6"].suite) == ("2.36-9", "fixture")
