"""The CVEs of a package update, read from the new .deb's changelog (debian/actions/deb_changelog.py)."""

from __future__ import annotations

import gzip
import json

import pytest

from debbuild import DebTree
from debian.actions.deb_changelog import PackageUpdate, cve_ids, entries_between, main, parse_changelog, report_updates

CHANGELOG = """openssl (3.0.22-1~deb12u2) bookworm-security; urgency=medium

  * Fix CVE-2026-9999 (X.509 name constraints).

 -- Debian Security <team@security.debian.org>  Mon, 02 Mar 2026 10:00:00 +0000

openssl (3.0.22-1~deb12u1) bookworm-security; urgency=medium

  * New upstream release, fixing CVE-2025-9230, CVE-2025-9231 and CVE-2025-9232.
  * Also closes CVE-2025-9230 again in the text.

 -- Debian Security <team@security.debian.org>  Mon, 02 Feb 2026 10:00:00 +0000

openssl (3.0.20-1~deb12u2) bookworm; urgency=medium

  * CVE-2024-0001 was fixed here, before the locked version.

 -- Debian <debian@lists.debian.org>  Mon, 01 Jan 2026 10:00:00 +0000
"""


def deb(tmp_path, name: str, version: str, changelog: str | None = None, symlink: str | None = None,
        binnmu: str | None = None):
    tree = DebTree(name, version, extra_fields={"Source": "openssl"})
    tree.file(f"usr/lib/{name}.so", b"lib")
    if changelog is not None:
        tree.file(f"usr/share/doc/{name}/changelog.Debian.gz", gzip.compress(changelog.encode(), mtime=0))
    if binnmu is not None:
        tree.file(f"usr/share/doc/{name}/changelog.Debian.amd64.gz", gzip.compress(binnmu.encode(), mtime=0))
    if symlink is not None:
        tree.symlinks[f"usr/share/doc/{name}"] = symlink
    return str(tree.build(tmp_path))


def test_only_the_entries_after_the_old_version_count():
    entries = parse_changelog(CHANGELOG)
    assert [e.version for e in entries] == ["3.0.22-1~deb12u2", "3.0.22-1~deb12u1", "3.0.20-1~deb12u2"]
    chosen = entries_between(entries, "3.0.20-1~deb12u2", "3.0.22-1~deb12u2")
    assert cve_ids(chosen) == ("CVE-2025-9230", "CVE-2025-9231", "CVE-2025-9232", "CVE-2026-9999")
    assert cve_ids(entries_between(entries, "3.0.22-1~deb12u1", "3.0.22-1~deb12u1")) == ()
    assert entries_between(entries, None, "3.0.22-1~deb12u2") == []  # a package new to the image fixes nothing


@pytest.mark.parametrize("old, new, expected", [
    ("3.0.20-1~deb12u2", "3.0.22-1~deb12u1", ["CVE-2025-9230", "CVE-2025-9231", "CVE-2025-9232"]),
    ("3.0.19-1", "3.0.20-1~deb12u2", ["CVE-2024-0001"]),
])
def test_the_new_version_bounds_the_range(old, new, expected):
    assert list(cve_ids(entries_between(parse_changelog(CHANGELOG), old, new))) == expected


def test_a_doc_symlink_borrows_the_changelog_of_the_same_source(tmp_path):
    updates = [
        PackageUpdate("libssl3", "openssl", "3.0.20-1~deb12u2", "3.0.22-1~deb12u2",
                      deb(tmp_path, "libssl3", "3.0.22-1~deb12u2", symlink="openssl")),
        PackageUpdate("openssl", "openssl", "3.0.20-1~deb12u2", "3.0.22-1~deb12u2",
                      deb(tmp_path, "openssl", "3.0.22-1~deb12u2", CHANGELOG)),
        PackageUpdate("libother1", "other", "1", "2", deb(tmp_path, "libother1", "2", symlink="nothing-here")),
    ]
    reports = report_updates(updates)
    assert reports["libssl3"].from_package == "openssl"
    assert reports["libssl3"].cves == reports["openssl"].cves == (
        "CVE-2025-9230", "CVE-2025-9231", "CVE-2025-9232", "CVE-2026-9999")
    assert reports["openssl"].changelog == "usr/share/doc/openssl/changelog.Debian.gz"
    assert reports["libother1"].cves == ()
    assert "usr/share/doc/libother1 is a symlink to nothing-here" in reports["libother1"].note


def test_binnmu_changelog_entries_are_read_too(tmp_path):
    binnmu = ("openssl (3.0.22-1~deb12u2+b1) bookworm-security; urgency=low, binary-only=yes\n\n"
              "  * Rebuild for CVE-2026-1234 in a dependency.\n\n -- Buildd <b@d>  Tue, 03 Mar 2026 10:00:00 +0000\n")
    path = deb(tmp_path, "openssl", "3.0.22-1~deb12u2+b1", CHANGELOG, binnmu=binnmu)
    (report,) = report_updates([PackageUpdate("openssl", "openssl", "3.0.22-1~deb12u1", "3.0.22-1~deb12u2+b1",
                                              path)]).values()
    assert report.entries == ("3.0.22-1~deb12u2+b1", "3.0.22-1~deb12u2")
    assert report.cves == ("CVE-2026-1234", "CVE-2026-9999")


def test_a_damaged_deb_is_an_error_naming_it(tmp_path, capsys):
    bad = tmp_path / "bad.deb"
    bad.write_bytes(b"!<arch>\nnot a deb")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"packages": [{"name": "libssl3", "source": "openssl", "old_version": "1",
                                              "new_version": "2", "deb": str(bad)}]}))
    assert main([str(spec)]) == 1
    assert "libssl3 2" in capsys.readouterr().err
