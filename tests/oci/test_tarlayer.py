"""Unit tests of the normalized layer writer."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile

import pytest

from oci.actions.tarlayer import (
    DIR,
    FILE,
    HARDLINK,
    SYMLINK,
    Entry,
    LayerError,
    normalize_path,
    with_parent_dirs,
    write_layer,
)


def layer_bytes(entries, **kwargs) -> tuple[bytes, object]:
    out = io.BytesIO()
    descriptor = write_layer(entries, out, **kwargs)
    return out.getvalue(), descriptor


def members(blob: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
        return tar.getmembers()


SAMPLE = [
    Entry("usr/bin/tool", FILE, 0o4755, data=b"#!/bin/sh\n"),
    Entry("etc/app/app.conf", FILE, 0o640, 42400, 42400, data=b"[app]\n"),
    Entry("usr/bin/tool-link", SYMLINK, 0o777, target="/usr/bin/tool"),
]


def test_descriptor_matches_bytes():
    blob, descriptor = layer_bytes(SAMPLE)
    assert descriptor.digest == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert descriptor.size == len(blob)
    assert descriptor.diff_id == "sha256:" + hashlib.sha256(gzip.decompress(blob)).hexdigest()


def test_same_entries_in_any_order_give_same_bytes():
    assert layer_bytes(SAMPLE)[0] == layer_bytes(list(reversed(SAMPLE)))[0]


def test_gzip_header_has_no_name_and_zero_mtime():
    blob, _ = layer_bytes(SAMPLE)
    assert blob[:4] == b"\x1f\x8b\x08\x00"  # no FNAME flag
    assert blob[4:8] == b"\x00\x00\x00\x00"
    assert gzip.decompress(blob)  # a valid stream, trailer included


def test_entries_are_sorted_with_parents_and_fixed_metadata():
    blob, _ = layer_bytes(SAMPLE, mtime=1700000000)
    infos = members(blob)
    assert [i.name for i in infos] == [
        "etc", "etc/app", "etc/app/app.conf", "usr", "usr/bin", "usr/bin/tool", "usr/bin/tool-link",
    ]
    assert {i.mtime for i in infos} == {1700000000}
    by_name = {i.name: i for i in infos}
    assert by_name["usr/bin/tool"].mode == 0o4755
    assert (by_name["etc/app/app.conf"].uid, by_name["etc/app/app.conf"].gid) == (42400, 42400)
    assert by_name["etc"].isdir() and by_name["etc"].mode == 0o755 and by_name["etc"].uid == 0
    assert by_name["usr/bin/tool-link"].issym() and by_name["usr/bin/tool-link"].linkname == "/usr/bin/tool"


def test_sort_puts_directory_before_siblings_with_longer_names():
    # "a/b" must come right after "a", before "a-b" and "a.b" which sort between them bytewise.
    entries = [Entry("a.b"), Entry("a-b"), Entry("a/b")]
    assert [e.path for e in with_parent_dirs(entries)] == ["a", "a/b", "a-b", "a.b"]


def test_host_file_metadata_never_leaks(tmp_path):
    source = tmp_path / "payload"
    source.write_bytes(b"bytes")
    os.chmod(source, 0o600)
    os.utime(source, (1234567890, 1234567890))
    entry = Entry("opt/payload", FILE, 0o644, source=str(source))
    blob_a, _ = layer_bytes([entry])
    os.chmod(source, 0o777)
    os.utime(source, (2000000000, 2000000000))
    blob_b, _ = layer_bytes([entry])
    assert blob_a == blob_b
    info = members(blob_a)[-1]
    assert (info.mode, info.mtime, info.uname, info.uid) == (0o644, 0, "", 0)


def test_long_names_use_pax_and_round_trip():
    long_path = "usr/share/" + "/".join(["d" * 60] * 4) + "/file.txt"
    blob, _ = layer_bytes([Entry(long_path, data=b"x")])
    assert members(blob)[-1].name == long_path


def test_hardlink_group_first_name_holds_content():
    entries = [Entry("usr/bin/zz", FILE, 0o755, data=b"binary"), Entry("usr/bin/aa", HARDLINK, target="usr/bin/zz")]
    by_name = {i.name: i for i in members(layer_bytes(entries)[0])}
    assert by_name["usr/bin/aa"].isfile() and by_name["usr/bin/aa"].size == 6
    assert by_name["usr/bin/zz"].islnk() and by_name["usr/bin/zz"].linkname == "usr/bin/aa"


@pytest.mark.parametrize("path", ["../etc/passwd", "a/../../b", "/", ""])
def test_paths_leaving_the_root_are_refused(path):
    with pytest.raises(LayerError):
        normalize_path(path)


def test_conflicting_duplicates_and_file_parents_are_refused():
    with pytest.raises(LayerError, match="declared twice"):
        with_parent_dirs([Entry("etc/a", data=b"1"), Entry("etc/a", data=b"2")])
    with pytest.raises(LayerError, match="not a directory"):
        with_parent_dirs([Entry("etc", data=b"file"), Entry("etc/a", data=b"1")])
    with pytest.raises(LayerError, match="hardlink target"):
        with_parent_dirs([Entry("a", HARDLINK, target="missing")])


def test_directory_entry_keeps_declared_mode():
    blob, _ = layer_bytes([Entry("tmp", DIR, 0o1777)])
    assert members(blob)[0].mode == 0o1777
