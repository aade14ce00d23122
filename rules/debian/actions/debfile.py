"""Read a Debian binary package (.deb) without dpkg.

A .deb is an `ar` archive holding `debian-binary` ("2.0\\n"), `control.tar[.xz|.gz]`
and `data.tar[.xz|.gz|.bz2]`; members whose name starts with "_" (signatures)
may follow and are skipped, as dpkg does.  The ar framing is parsed by hand so
that every malformation gets an error naming the .deb.  control.tar is read with
tarfile in stream mode, straight from the .deb.  data.tar is either streamed the
same way (`data_members`), or decompressed whole into a spool file and read from
there (`unpack_data`): a package layer reads every byte of it, and from the spool a
file's contents are a slice, never copied member by member through tarfile.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import shutil
import tarfile
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO, Dict, Iterator, Mapping, Optional, Tuple

from .deb822 import MalformedIndex, parse_paragraphs

AR_MAGIC = b"!<arch>\n"
AR_HEADER_SIZE = 60
AR_HEADER_END = b"`\n"
FORMAT_VERSION = b"2.0\n"
# tarfile stream modes by member suffix; zstd (used by Ubuntu) is not in Python's stdlib before 3.14.
TAR_STREAM_MODES = {"": "r|", ".gz": "r|gz", ".xz": "r|xz", ".bz2": "r|bz2"}
CONTROL_COMPRESSIONS = ("", ".gz", ".xz")
DATA_COMPRESSIONS = ("", ".gz", ".xz", ".bz2")
MAINTAINER_SCRIPTS = ("preinst", "postinst", "prerm", "postrm", "config")
# control.tar is small (md5sums of the biggest packages are a few MB); the cap stops a decompression bomb.
CONTROL_SIZE_LIMIT = 64 * 1024 * 1024
# What a corrupt compressed stream or tar can raise while being read.
CORRUPT_DATA_ERRORS = (tarfile.TarError, lzma.LZMAError, zlib.error, EOFError, OSError, ValueError)
DECOMPRESSING_READERS = {".gz": lambda f: gzip.GzipFile(fileobj=f, mode="rb"), ".xz": lzma.LZMAFile,
                         ".bz2": bz2.BZ2File}
UNPACK_CHUNK = 1024 * 1024


class DebError(ValueError):
    """A .deb that cannot be used; the message names the .deb and the problem."""

    def __init__(self, deb: str, problem: str):
        super().__init__(f"{deb}: {problem}")
        self.deb = deb
        self.problem = problem


class ArchiveFormatError(DebError):
    """The ar framing is wrong: not an ar archive, truncated, a bad or unexpected member."""


class CompressedDataError(DebError):
    """control.tar or data.tar is corrupt: bad compressed stream or bad tar inside it."""


class UnsupportedCompression(DebError):
    """A member compressed with something the standard library cannot read."""


class ControlError(DebError):
    """The control file, md5sums or conffiles do not parse."""


@dataclass(frozen=True)
class ArMember:
    name: str
    offset: int  # of the member's data in the .deb
    size: int


@dataclass(frozen=True)
class Md5sum:
    md5: str
    path: str  # as in the md5sums file: relative, no leading "./" or "/"


@dataclass(frozen=True)
class ControlInfo:
    """control.tar's contents: the control paragraph (field order kept) and the admin files."""

    fields: Mapping[str, str] = field(hash=False)
    md5sums: Tuple[Md5sum, ...] = ()
    conffiles: Tuple[str, ...] = ()
    scripts: Mapping[str, str] = field(default_factory=dict, hash=False)  # preinst, postinst, ... -> text
    triggers: str = ""

    @property
    def package(self) -> str:
        return self.fields["Package"]

    @property
    def version(self) -> str:
        return self.fields["Version"]

    @property
    def architecture(self) -> str:
        return self.fields["Architecture"]

    @property
    def multi_arch(self) -> str:
        return self.fields.get("Multi-Arch", "no")


class MemberReader(io.RawIOBase):
    """Reads one ar member's bytes from the open .deb, and nothing past them."""

    def __init__(self, stream: BinaryIO, member: ArMember):
        self.stream = stream
        self.position = member.offset
        self.end = member.offset + member.size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        wanted = min(len(buffer), self.end - self.position)
        if wanted <= 0:
            return 0
        self.stream.seek(self.position)
        data = self.stream.read(wanted)
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)


class DebArchive:
    """An open .deb: `control()` reads control.tar, `data_members()` streams data.tar.

    `label` names the .deb in errors (the package name and path, say).
    """

    def __init__(self, path: str, label: Optional[str] = None):
        self.path = path
        self.label = label or path
        self.stream: BinaryIO = open(path, "rb")
        try:
            self.members = read_ar_members(self.stream, self.label)
            self.control_member, self.data_member = payload_members(self.members, self.label)
            check_format_version(self.stream, self.members[0], self.label)
        except BaseException:
            self.stream.close()
            raise

    def __enter__(self) -> "DebArchive":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.stream.close()

    def control(self) -> ControlInfo:
        files = dict(self._control_files())
        return parse_control_files(files, self.label)

    def _control_files(self) -> Iterator[Tuple[str, bytes]]:
        total = 0
        for info, content in self._members(self.control_member):
            name = info.name[2:] if info.name.startswith("./") else info.name
            if content is None or "/" in name:
                continue
            total += info.size
            if total > CONTROL_SIZE_LIMIT:
                raise ControlError(self.label, f"{self.control_member.name} holds more than "
                                               f"{CONTROL_SIZE_LIMIT} bytes; refusing to read it")
            yield name, content.read()

    def data_members(self) -> Iterator[Tuple[tarfile.TarInfo, Optional[GuardedReader]]]:
        """Each data.tar member in archive order, with a stream of its bytes for regular files.

        A member's stream is only valid until the next member is requested.
        """
        return self._members(self.data_member)

    def unpack_data(self, spool: BinaryIO) -> Iterator[tarfile.TarInfo]:
        """data.tar decompressed into `spool` (open for writing and reading), then its members in order.

        A regular file's bytes are `spool[info.offset_data:][:info.size]`, checked to be there.
        """
        member = self.data_member
        try:
            decompress_into(MemberReader(self.stream, member), compression_suffix(member.name), spool)
        except CORRUPT_DATA_ERRORS as error:
            raise CompressedDataError(self.label, f"{member.name} is corrupt: {describe(error)}") from error
        spool.flush()
        return self._spooled_members(spool, member)

    def _spooled_members(self, spool: BinaryIO, member: ArMember) -> Iterator[tarfile.TarInfo]:
        size = os.fstat(spool.fileno()).st_size
        spool.seek(0)
        try:
            with tarfile.open(fileobj=spool, mode="r:", encoding="utf-8", errors="surrogateescape") as tar:
                for info in tar:
                    if info.isreg() and info.offset_data + info.size > size:
                        raise CompressedDataError(self.label, f"{member.name} is cut short: member {info.name!r} "
                                                              f"needs {info.size} bytes")
                    yield info
                if 0 < size - tar.offset < tarfile.BLOCKSIZE:  # tarfile takes a cut header for the end
                    raise CompressedDataError(self.label, f"{member.name} is cut short inside a member header")
        except DebError:
            raise
        except CORRUPT_DATA_ERRORS as error:
            raise CompressedDataError(self.label, f"{member.name} is corrupt: {describe(error)}") from error

    def _members(self, member: ArMember) -> Iterator[Tuple[tarfile.TarInfo, Optional[GuardedReader]]]:
        mode = TAR_STREAM_MODES[compression_suffix(member.name)]
        try:
            with tarfile.open(fileobj=MemberReader(self.stream, member), mode=mode, encoding="utf-8",
                              errors="surrogateescape") as tar:
                for info in tar:
                    content = tar.extractfile(info) if info.isreg() else None
                    yield info, (GuardedReader(content, self.label, member.name) if content else None)
        except DebError:
            raise
        except CORRUPT_DATA_ERRORS as error:
            raise CompressedDataError(self.label, f"{member.name} is corrupt: {describe(error)}") from error


class GuardedReader:
    """A member's stream whose read errors (corrupt compressed data) name the .deb.

    The consumer reads it outside the generator that opened the tar, so the
    generator's own error handling does not see those errors.
    """

    def __init__(self, stream: BinaryIO, label: str, member_name: str):
        self.stream = stream
        self.label = label
        self.member_name = member_name

    def read(self, size: int = -1) -> bytes:
        try:
            return self.stream.read(size)
        except CORRUPT_DATA_ERRORS as error:
            raise CompressedDataError(self.label, f"{self.member_name} is corrupt: {describe(error)}") from error


def decompress_into(source: BinaryIO, suffix: str, out: BinaryIO) -> None:
    """All of `source`, decompressed per `suffix` (one of DATA_COMPRESSIONS), written to `out`.

    The stdlib file readers bound each read's output, so a small member that expands hugely
    goes to `out` a chunk at a time, never into memory at once.
    """
    reader = DECOMPRESSING_READERS[suffix](source) if suffix else source
    shutil.copyfileobj(reader, out, UNPACK_CHUNK)


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def read_ar_members(stream: BinaryIO, label: str) -> Tuple[ArMember, ...]:
    file_size = os.fstat(stream.fileno()).st_size
    if stream.read(len(AR_MAGIC)) != AR_MAGIC:
        raise ArchiveFormatError(label, "not a .deb: it does not start with the ar magic '!<arch>\\n'")
    members = []
    offset = len(AR_MAGIC)
    while offset < file_size:
        member = parse_ar_header(stream.read(AR_HEADER_SIZE), offset, file_size, label)
        members.append(member)
        offset = member.offset + member.size + member.size % 2  # data is padded to an even offset
        stream.seek(offset)
    if not members:
        raise ArchiveFormatError(label, "the ar archive is empty")
    return tuple(members)


def parse_ar_header(header: bytes, offset: int, file_size: int, label: str) -> ArMember:
    if len(header) < AR_HEADER_SIZE:
        raise ArchiveFormatError(label, f"truncated: the ar member header at byte {offset} is cut short")
    if header[58:60] != AR_HEADER_END:
        raise ArchiveFormatError(label, f"bad ar member header at byte {offset}: it does not end with '`\\n'")
    try:
        name = header[0:16].decode("ascii").rstrip(" ").rstrip("/")  # GNU ar ends names with "/"
        size_field = header[48:58].decode("ascii").strip()
    except UnicodeDecodeError:
        raise ArchiveFormatError(label, f"bad ar member header at byte {offset}: not ASCII") from None
    if not name or not size_field.isdigit():
        raise ArchiveFormatError(label, f"bad ar member header at byte {offset}: name {name!r}, "
                                        f"size {size_field!r}")
    member = ArMember(name, offset + AR_HEADER_SIZE, int(size_field))
    if member.offset + member.size > file_size:
        raise ArchiveFormatError(label, f"truncated: member {name} needs {member.size} bytes, the file ends "
                                        f"{file_size - member.offset} bytes into it")
    return member


def payload_members(members: Tuple[ArMember, ...], label: str) -> Tuple[ArMember, ArMember]:
    """control.tar and data.tar, checking the member order dpkg requires."""
    names = [m.name for m in members]
    if names[0] != "debian-binary":
        raise ArchiveFormatError(label, f"the first ar member is {names[0]!r}, not 'debian-binary'")
    payload = [m for m in members[1:] if not m.name.startswith("_")]
    if len(payload) != 2:
        raise ArchiveFormatError(label, "expected a control.tar and a data.tar member after debian-binary, "
                                        f"found {[m.name for m in payload]}")
    control, data = payload
    check_payload_name(control, "control.tar", CONTROL_COMPRESSIONS, label)
    check_payload_name(data, "data.tar", DATA_COMPRESSIONS, label)
    return control, data


def check_payload_name(member: ArMember, stem: str, allowed: Tuple[str, ...], label: str) -> None:
    if not member.name.startswith(stem):
        raise ArchiveFormatError(label, f"unexpected ar member {member.name!r} where {stem} should be")
    suffix = member.name[len(stem):]
    if suffix == ".zst":
        raise UnsupportedCompression(
            label, f"{member.name} is zstd-compressed, which Python's standard library cannot read "
                   "(Debian's own packages use xz); repack it with `dpkg-deb -R` then `dpkg-deb -Zxz -b`")
    if suffix not in allowed:
        raise UnsupportedCompression(label, f"{member.name}: unsupported compression {suffix!r}; "
                                            f"supported: {', '.join(stem + s for s in allowed)}")


def compression_suffix(name: str) -> str:
    return name[len("control.tar"):] if name.startswith("control.tar") else name[len("data.tar"):]


def check_format_version(stream: BinaryIO, member: ArMember, label: str) -> None:
    stream.seek(member.offset)
    version = stream.read(min(member.size, 64))
    if version != FORMAT_VERSION:
        raise ArchiveFormatError(label, f"debian-binary is {version!r}, only format {FORMAT_VERSION!r} is known")


def parse_control_files(files: Dict[str, bytes], label: str) -> ControlInfo:
    if "control" not in files:
        raise ControlError(label, "control.tar has no control file")
    return ControlInfo(
        fields=parse_control(decode(files["control"], "control", label), label),
        md5sums=parse_md5sums(decode(files.get("md5sums", b""), "md5sums", label), label),
        conffiles=parse_conffiles(decode(files.get("conffiles", b""), "conffiles", label)),
        scripts={name: files[name].decode("utf-8", "replace") for name in MAINTAINER_SCRIPTS if name in files},
        triggers=files.get("triggers", b"").decode("utf-8", "replace"),
    )


def decode(data: bytes, name: str, label: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ControlError(label, f"{name} is not UTF-8: {error}") from None


def parse_control(text: str, label: str) -> Dict[str, str]:
    try:
        paragraphs = list(parse_paragraphs(text, f"{label}: control"))
    except MalformedIndex as error:
        raise ControlError(label, f"control file: {error.reason} (line {error.line})") from None
    if len(paragraphs) != 1:
        raise ControlError(label, f"the control file has {len(paragraphs)} paragraphs, not 1")
    fields = paragraphs[0]
    missing = [name for name in ("Package", "Version", "Architecture") if not fields.get(name)]
    if missing:
        raise ControlError(label, f"the control file lacks {', '.join(missing)}")
    return fields


def parse_md5sums(text: str, label: str) -> Tuple[Md5sum, ...]:
    """Lines of `<md5>  <path>`; the path may contain spaces."""
    sums = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(None, 1)
        if len(parts) != 2 or len(parts[0]) != 32:
            raise ControlError(label, f"md5sums line {number} is not '<md5>  <path>': {line[:80]!r}")
        sums.append(Md5sum(parts[0].lower(), strip_dot_slash(parts[1])))
    return tuple(sums)


def parse_conffiles(text: str) -> Tuple[str, ...]:
    # Newer dpkg allows flags ("remove-on-upgrade") before the absolute path, which may hold spaces.
    return tuple(line[line.index("/"):].rstrip() for line in text.splitlines() if "/" in line)


def strip_dot_slash(path: str) -> str:
    while path.startswith("./"):
        path = path[2:]
    return path.lstrip("/")

