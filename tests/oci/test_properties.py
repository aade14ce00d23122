"""Property-based tests: the layer writer round trip, tar headers and control files."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile

from hypothesis import given, settings
from hypothesis import strategies as st

from debian.actions.debfile import ControlError, parse_control
from oci.actions.tarlayer import DIR, FILE, SYMLINK, Entry, LayerError, write_layer

NAME = st.text(st.characters(min_codepoint=33, max_codepoint=0x2FFF, blacklist_characters="/\\x00"),
               min_size=1, max_size=40).filter(lambda n: n not in (".", ".."))
PATH = st.lists(NAME, min_size=1, max_size=8).map("/".join)
MODE = st.integers(min_value=0, max_value=0o7777)
ID = st.integers(min_value=0, max_value=2**21 - 1)


@st.composite
def entries(draw):
    """A set of files and symlinks whose paths never make a file the parent of another entry."""
    paths = draw(st.lists(PATH, min_size=1, max_size=12, unique=True))
    leaves = [p for p in paths if not any(o.startswith(p + "/") for o in paths)]
    result = []
    for path in leaves:
        if draw(st.booleans()):
            result.append(Entry(path, FILE, draw(MODE), draw(ID), draw(ID), data=draw(st.binary(max_size=600))))
        else:
            result.append(Entry(path, SYMLINK, 0o777, draw(ID), draw(ID), target=draw(PATH)))
    return result


def read_back(blob: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
        return {m.name.rstrip("/"): (m, tar.extractfile(m).read() if m.isfile() else b"") for m in tar}


@settings(max_examples=60, deadline=None)
@given(entries(), st.integers(min_value=0, max_value=2**33 - 1), st.integers(min_value=1, max_value=9))
def test_layer_round_trips_every_entry(declared, mtime, level):
    out = io.BytesIO()
    descriptor = write_layer(declared, out, mtime=mtime, level=level)
    blob = out.getvalue()
    assert descriptor.digest == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert descriptor.diff_id == "sha256:" + hashlib.sha256(gzip.decompress(blob)).hexdigest()
    members = read_back(blob)
    for entry in declared:
        info, content = members[entry.path]
        assert (info.mode, info.uid, info.gid, info.mtime) == (entry.mode, entry.uid, entry.gid, mtime)
        if entry.kind == FILE:
            assert info.isfile() and content == entry.data
        else:
            assert info.issym() and info.linkname == entry.target
    for name, (info, _) in members.items():
        if name not in {e.path for e in declared}:
            assert info.isdir() and info.mode == 0o755  # implied parents only


@settings(max_examples=40, deadline=None)
@given(entries(), st.randoms())
def test_entry_order_never_changes_the_bytes(declared, random):
    shuffled = list(declared)
    random.shuffle(shuffled)
    first, second = io.BytesIO(), io.BytesIO()
    write_layer(declared, first)
    write_layer(shuffled, second)
    assert first.getvalue() == second.getvalue()


@given(st.text(max_size=300))
def test_entry_paths_are_normalized_or_refused(raw):
    try:
        entry = Entry(raw, DIR, 0o755)
    except LayerError:
        return
    assert not entry.path.startswith("/") and ".." not in entry.path.split("/") and "//" not in entry.path


FIELD = st.from_regex(r"[A-Z][A-Za-z0-9-]{0,15}", fullmatch=True)
VALUE = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=30)


@given(st.dictionaries(FIELD, VALUE, max_size=8), st.booleans())
def test_control_files_parse_or_fail_with_the_package_named(extra, complete):
    fields = dict(extra)
    if complete:
        fields.update({"Package": "pkg", "Version": "1.0-1", "Architecture": "amd64"})
    text = "".join(f"{k}: {v}\n" for k, v in fields.items())
    try:
        parsed = parse_control(text, "pkg_1.0-1_amd64.deb")
    except ControlError as error:
        assert str(error).startswith("pkg_1.0-1_amd64.deb")
        assert not complete or len({k.lower() for k in fields}) < len(fields)
        return
    assert {k: v for k, v in parsed.items()} == fields


@given(st.binary(max_size=400))
def test_arbitrary_bytes_as_control_text_never_crash(data):
    try:
        parse_control(data.decode("utf-8", "replace"), "x.deb")
    except ControlError as error:
        assert str(error).startswith("x.deb")
