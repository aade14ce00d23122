"""Normalized tar layers: the same entries give the same bytes on any host.

Everything that could leak from the host is fixed here: entry order, mtimes,
owners, permission bits, header format and the gzip framing.  Layers are
written once, streamed through sha256 twice: the uncompressed stream gives
the diff_id, the compressed one the blob digest.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import struct
import tarfile
import zlib
from dataclasses import dataclass, field, replace
from typing import BinaryIO, Callable, Iterable, Tuple

from .specs import LayerDescriptor

FILE = "file"
DIR = "dir"
SYMLINK = "symlink"
HARDLINK = "hardlink"
KINDS = (FILE, DIR, SYMLINK, HARDLINK)

TAR_TYPES = {FILE: tarfile.REGTYPE, DIR: tarfile.DIRTYPE, SYMLINK: tarfile.SYMTYPE, HARDLINK: tarfile.LNKTYPE}
GZIP_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
IMPLIED_DIR_MODE = 0o755
COPY_BUFFER = 1024 * 1024  # a file's bytes go into the tar (and gzip) this much at a time


class LayerError(ValueError):
    """An entry that cannot be written into a layer."""


@dataclass(frozen=True)
class Entry:
    """One filesystem object in a layer.

    `path` is relative to the image root ("etc/passwd").  A file takes its bytes
    from `data`, from the host file `source`, or from `opener`, a callable giving
    (stream, size) for content that is neither in memory nor a whole file (a
    slice of a spool file, say); links point at `target`.
    """

    path: str
    kind: str = FILE
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    uname: str = ""
    gname: str = ""
    data: bytes | None = field(default=None, repr=False)
    source: str | None = None
    target: str = ""
    opener: Callable[[], Tuple[BinaryIO, int]] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", normalize_path(self.path))
        if self.kind not in KINDS:
            raise LayerError(f"{self.path}: unknown entry kind {self.kind!r}")
        if self.kind in (SYMLINK, HARDLINK) and not self.target:
            raise LayerError(f"{self.path}: a {self.kind} needs a target")
        if self.kind == HARDLINK:
            object.__setattr__(self, "target", normalize_path(self.target))
        if not 0 <= self.mode <= 0o7777:
            raise LayerError(f"{self.path}: mode {oct(self.mode)} is not a permission mode")


def normalize_path(path: str) -> str:
    """Image-relative path without leading '/', refusing anything that climbs out of the root."""
    parts = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise LayerError(f"{path}: '..' would leave the image root")
        parts.append(part)
    if not parts:
        raise LayerError(f"{path!r}: the image root itself is not an entry")
    return "/".join(parts)


def with_parent_dirs(entries: Iterable[Entry]) -> list[Entry]:
    """Sorted entries, with any missing parent directory added as root-owned 0755.

    Sorting by path components keeps a directory right before its contents, which
    is what extractors expect and makes the order independent of the caller.
    """
    by_path: dict[str, Entry] = {}
    for entry in entries:
        if entry.path in by_path and by_path[entry.path] != entry:
            raise LayerError(f"{entry.path}: declared twice with different contents")
        by_path[entry.path] = entry
    for path in list(by_path):
        parent = posixpath.dirname(path)
        while parent and parent not in by_path:
            by_path[parent] = Entry(parent, DIR, IMPLIED_DIR_MODE)
            parent = posixpath.dirname(parent)
    for path, entry in by_path.items():
        parent = posixpath.dirname(path)
        if parent and by_path[parent].kind != DIR:
            raise LayerError(f"{path}: its parent {parent} is a {by_path[parent].kind}, not a directory")
    ordered = [by_path[p] for p in sorted(by_path, key=path_key)]
    return hardlinks_after_targets(ordered)


def path_key(path: str) -> list[str]:
    return path.split("/")


def hardlinks_after_targets(ordered: list[Entry]) -> list[Entry]:
    """Make the first path of each hardlink group hold the content.

    Extractors create a hardlink from an already extracted file, so whichever
    name of the group sorts first carries the bytes and the others link to it.
    """
    by_path = {e.path: e for e in ordered}
    groups: dict[str, list[str]] = {}
    for entry in ordered:
        if entry.kind == HARDLINK:
            target = by_path.get(entry.target)
            if target is None or target.kind != FILE:
                raise LayerError(f"{entry.path}: hardlink target {entry.target} is not a file in this layer")
            groups.setdefault(entry.target, [entry.target]).append(entry.path)
    for target, names in groups.items():
        first = min(names, key=path_key)
        if first == target:
            continue
        content = by_path[target]
        by_path[first] = replace(content, path=first)
        for name in names:
            if name != first:
                by_path[name] = Entry(name, HARDLINK, content.mode, content.uid, content.gid,
                                      content.uname, content.gname, target=first)
    return [by_path[e.path] for e in ordered]


def tar_info(entry: Entry, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(entry.path + ("/" if entry.kind == DIR else ""))
    info.type = TAR_TYPES[entry.kind]
    info.mode = entry.mode
    info.uid, info.gid = entry.uid, entry.gid
    info.uname, info.gname = entry.uname, entry.gname
    info.mtime = int(mtime)  # a float would add a PAX mtime record
    info.size = size if entry.kind == FILE else 0
    info.linkname = entry.target if entry.kind in (SYMLINK, HARDLINK) else ""
    return info


def open_content(entry: Entry) -> tuple[BinaryIO, int]:
    if entry.data is not None:
        return io.BytesIO(entry.data), len(entry.data)
    if entry.opener is not None:
        return entry.opener()
    if entry.source is None:
        raise LayerError(f"{entry.path}: a file needs data or a source")
    stream = open(entry.source, "rb")
    return stream, os.fstat(stream.fileno()).st_size


def write_tar(entries: Iterable[Entry], out: BinaryIO, mtime: int = 0) -> None:
    """Write a PAX-format tar of `entries` (already complete and sorted) to `out`, which must tell().

    Not tarfile's stream mode: that re-buffers every write into 10 KiB records. The bytes
    are the same; contents go to `out` in large chunks instead.
    """
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8",
                      copybufsize=COPY_BUFFER) as tar:
        for entry in entries:
            if entry.kind != FILE:
                tar.addfile(tar_info(entry, 0, mtime))
                continue
            stream, size = open_content(entry)
            with stream:
                tar.addfile(tar_info(entry, size, mtime), stream)


class HashingWriter(io.RawIOBase):
    """A write-only stream that hashes and counts what passes through to `sink`."""

    def __init__(self, sink: BinaryIO | None = None) -> None:
        self.sink = sink
        self.sha256 = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.size

    def write(self, data) -> int:  # type: ignore[override]
        data = bytes(data)
        self.sha256.update(data)
        self.size += len(data)
        if self.sink is not None:
            self.sink.write(data)
        return len(data)

    @property
    def digest(self) -> str:
        return "sha256:" + self.sha256.hexdigest()


class GzipWriter(io.RawIOBase):
    """A single gzip member with a fixed header: no name, mtime 0, OS 'unknown'.

    Written by hand rather than with the gzip module so that the header bytes
    cannot change between Python versions.
    """

    HEADER = b"\x1f\x8b\x08\x00" + struct.pack("<I", 0) + b"\x00\xff"

    def __init__(self, sink: BinaryIO, level: int) -> None:
        self.sink = sink
        self.deflate = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, 9)
        self.crc = 0
        self.length = 0
        sink.write(self.HEADER)

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        data = bytes(data)
        self.crc = zlib.crc32(data, self.crc)
        self.length += len(data)
        self.sink.write(self.deflate.compress(data))
        return len(data)

    def finish(self) -> None:
        self.sink.write(self.deflate.flush())
        self.sink.write(struct.pack("<II", self.crc & 0xFFFFFFFF, self.length & 0xFFFFFFFF))


def write_layer(entries: Iterable[Entry], out: BinaryIO, mtime: int = 0, level: int = 6) -> LayerDescriptor:
    """Write a gzip-compressed layer to `out` and describe it."""
    compressed = HashingWriter(out)
    gzip_stream = GzipWriter(compressed, level)
    uncompressed = HashingWriter(gzip_stream)
    write_tar(with_parent_dirs(entries), uncompressed, mtime)
    gzip_stream.finish()
    # The history line is the caller's to give (`write_layer_files`).
    return LayerDescriptor(GZIP_MEDIA_TYPE, compressed.digest, compressed.size, uncompressed.digest, created_by="")
