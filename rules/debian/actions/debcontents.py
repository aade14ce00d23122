"""A .deb's files: its data.tar members read, checked and placed as dpkg --unpack would place them.

Decisions, so that a layer is safe to stack and the same on every host:
- merged /usr: members under bin, sbin, lib, lib32, lib64 and libx32 move under usr/; the
  root-level links themselves (bin -> usr/bin, ...) come from `merged_usr_root_links()`, which
  the caller puts in the base layer.  Otherwise a package layer would write through those links.
  A relative symlink that moved is rewritten only when it no longer reaches its old target;
  absolute targets stay as they are, since the root links make /bin/x and /usr/bin/x the same.
- owners: the numeric uid/gid and the user/group names recorded in the .deb are kept
  (Debian ships root:root, or the static ids of base-passwd).  Container runtimes apply the
  numeric ids; dpkg would look the names up, which is the same for the static ids.
- modes keep setuid/setgid/sticky; symlinks are 0777; mtimes come from the caller (write_layer).
- refused, naming the .deb and the member: absolute names, `..`, names over PATH_MAX, device
  nodes and FIFOs (the runtime provides /dev; no runtime package needs them in a layer),
  hardlinks to a missing or escaping target.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import tarfile
from dataclasses import dataclass, field
from typing import BinaryIO, Dict, Iterator, List, Mapping, Optional, Tuple

from oci.actions.tarlayer import DIR, FILE, HARDLINK, SYMLINK, Entry

from .debfile import ControlInfo, DebArchive, DebError, strip_dot_slash
from .ldcache import shared_object_records
from .maintscripts import ScriptFindings, scan_maintainer_scripts


MERGED_USR_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


PATH_MAX = 4096  # Linux's limit on a path, in bytes; a symlink target must leave room for the NUL


COPY_CHUNK = 1024 * 1024


DEVICE_TYPES = {tarfile.CHRTYPE: "a character device", tarfile.BLKTYPE: "a block device", tarfile.FIFOTYPE: "a FIFO"}


class HostileMember(DebError):
    """A data.tar member that must not go into a layer."""

    def __init__(self, deb: str, member: str, problem: str):
        super().__init__(deb, f"member {member!r} {problem}")
        self.member = member


@dataclass(frozen=True)
class DebInput:
    """A .deb to install; `name` is the package the lock says it is (checked, and used in errors).

    `sha256` is only recorded (build_package_layer verifies it before reading).
    """

    path: str
    name: str = ""
    sha256: str = ""

    @property
    def label(self) -> str:
        return f"{self.name} ({self.path})" if self.name else self.path


@dataclass(frozen=True)
class SpoolSlice:
    """Bytes [offset, offset + size) of a spool file: a member's content, read back when the layer is written."""

    spool: str
    offset: int
    size: int

    def __call__(self) -> Tuple[BinaryIO, int]:
        stream = open(self.spool, "rb")
        stream.seek(self.offset)
        return stream, self.size


@dataclass(frozen=True)
class PackageFile:
    """One filesystem object a package installs, at its merged-/usr path."""

    entry: Entry
    member: str  # the data.tar name, for messages
    sha256: str = ""  # of the content, for files and hardlinks
    md5: str = ""  # only where dpkg's database needs it (`md5_paths`)
    size: int = 0

    @property
    def path(self) -> str:
        return self.entry.path

    @property
    def identity(self) -> tuple:
        """What must agree for two packages to share this path (a hardlink is a file of the same content)."""
        entry = self.entry
        kind = FILE if entry.kind == HARDLINK else entry.kind
        return kind, entry.mode, entry.uid, entry.gid, self.sha256, entry.target if kind == SYMLINK else ""

    def describe(self) -> str:
        entry = self.entry
        owner = f"{entry.uid}:{entry.gid}"
        if entry.kind == SYMLINK:
            return f"a symlink to {entry.target}"
        if entry.kind == DIR:
            return f"a directory, mode {entry.mode:04o}, owner {owner}"
        return f"a file, sha256 {self.sha256[:12]}, mode {entry.mode:04o}, owner {owner}"

    def to_json(self) -> dict:
        entry = self.entry
        value = {"path": entry.path, "kind": entry.kind, "mode": entry.mode, "uid": entry.uid, "gid": entry.gid}
        if entry.kind in (FILE, HARDLINK):
            value.update(sha256=self.sha256, size=self.size)
        if entry.kind in (SYMLINK, HARDLINK):
            value["target"] = entry.target
        return value


@dataclass(frozen=True)
class InstalledPackage:
    deb: DebInput
    control: ControlInfo
    files: Tuple[PackageFile, ...]  # data.tar order
    findings: ScriptFindings
    # ELF facts of the files ldconfig would look at, for the system layer's ld.so.cache
    shared_objects: Tuple[dict, ...] = field(default=(), compare=False)

    @property
    def name(self) -> str:
        return self.control.package

    @property
    def dpkg_name(self) -> str:
        """The name dpkg gives the package's database files."""
        if self.control.multi_arch == "same":
            return f"{self.name}:{self.control.architecture}"
        return self.name

    @property
    def label(self) -> str:
        return f"{self.name} {self.control.version} ({self.deb.path})"

    def to_json(self) -> dict:
        paths = {f.path for f in self.files}  # files a path filter dropped keep no record
        return {
            "name": self.name,
            "version": self.control.version,
            "architecture": self.control.architecture,
            "multi_arch": self.control.multi_arch,
            "source": self.control.fields.get("Source", self.name),
            "dpkg_name": self.dpkg_name,
            "deb": {"path": self.deb.path, "sha256": self.deb.sha256},
            "conffiles": list(self.control.conffiles),
            "files": [f.to_json() for f in sorted(self.files, key=lambda f: f.path)],
            "maintainer_scripts": self.findings.to_json(),
            "shared_objects": [s for s in self.shared_objects if s["path"] in paths],
        }


def merged_usr_path(path: str) -> str:
    """`bin/sh` -> `usr/bin/sh`: where a path is once /bin, /lib, ... are links into /usr."""
    top = path.split("/", 1)[0]
    return f"usr/{path}" if top in MERGED_USR_DIRS else path


def merged_usr_root_links() -> List[Entry]:
    """The root-level links of a merged-/usr system and the directories they point at (for the base layer)."""
    entries = []
    for name in MERGED_USR_DIRS:
        entries.append(Entry(name, SYMLINK, 0o777, target=f"usr/{name}"))
        entries.append(Entry(f"usr/{name}", DIR, 0o755))
    return entries


def member_path(name: str, label: str) -> Optional[str]:
    """The image-relative path of a data.tar member, before the merged-/usr move; None for the root."""
    if len(name.encode("utf-8", "surrogateescape")) > PATH_MAX:
        raise HostileMember(label, name[:80] + "...", f"has a name longer than {PATH_MAX} bytes")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise HostileMember(label, name, "has a name that is not UTF-8") from None
    if name.startswith("/"):
        raise HostileMember(label, name, "has an absolute name; .deb members are relative to the root")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise HostileMember(label, name, "has a '..' component, which would leave the image root")
    return "/".join(parts) or None


def resolve_lexically(directory: str, target: str) -> str:
    """Where a relative symlink in `directory` points, without following links; '..' stops at the root."""
    parts = directory.split("/") if directory else []
    for part in target.split("/"):
        if part == "..":
            parts = parts[:-1]
        elif part not in ("", "."):
            parts.append(part)
    return "/".join(parts)


def relative_path(target: str, start: str) -> str:
    target_parts = target.split("/") if target else []
    start_parts = start.split("/") if start else []
    common = 0
    while common < min(len(target_parts), len(start_parts)) and target_parts[common] == start_parts[common]:
        common += 1
    return "/".join([".."] * (len(start_parts) - common) + target_parts[common:]) or "."


def relocated_symlink_target(original: str, moved: str, target: str) -> str:
    """The target of a symlink moved from `original` to `moved`, rewritten only if it stops reaching its place."""
    if original == moved or target.startswith("/"):
        return target
    intended = merged_usr_path(resolve_lexically(posixpath.dirname(original), target))
    if resolve_lexically(posixpath.dirname(moved), target) == intended:
        return target
    return relative_path(intended, posixpath.dirname(moved))


def read_package(deb: DebInput, spool: str) -> InstalledPackage:
    """Read a .deb: control data, script findings, and its files, whose contents stay in the file `spool`.

    The layer is written later, in path order across all packages, so contents
    are kept on disk rather than in memory and read back by `SpoolSlice`.
    """
    with DebArchive(deb.path, deb.label) as archive:
        control = archive.control()
        if deb.name and control.package != deb.name:
            raise DebError(deb.label, f"the control file says this is package {control.package!r}")
        with open(spool, "w+b") as out:
            contents = SpooledContents(spool, out, md5_paths(control))
            files = read_files(archive.unpack_data(out), deb.label, contents)
    findings = scan_maintainer_scripts(control.scripts, control.triggers)
    return InstalledPackage(deb, control, tuple(files), findings, shared_object_records(files))


def md5_paths(control: ControlInfo) -> Optional[frozenset]:
    """Paths whose md5 dpkg's database needs: the conffiles, or every file (None) if the .deb has no md5sums."""
    if not control.md5sums:
        return None
    return frozenset(merged_usr_path(strip_dot_slash(c)) for c in control.conffiles)


class SpooledContents:
    """The data.tar in a spool file: a member's contents as a slice of it, hashed in place."""

    def __init__(self, path: str, spool: BinaryIO, md5_paths: Optional[frozenset]):
        self.path = path
        self.fd = spool.fileno()
        self.md5_paths = md5_paths

    def content(self, info: tarfile.TarInfo, path: str) -> Tuple[SpoolSlice, str, str]:
        """The slice of a regular member, its sha256 and, if dpkg needs it, its md5 (else "")."""
        data = SpoolSlice(self.path, info.offset_data, info.size)
        return data, *self.hashes(data, self.md5_paths is None or path in self.md5_paths)

    def hashes(self, data: SpoolSlice, md5: bool) -> Tuple[str, str]:
        sha256, md5sum = hashlib.sha256(), (hashlib.md5() if md5 else None)
        offset, end = data.offset, data.offset + data.size
        while offset < end:
            chunk = os.pread(self.fd, min(COPY_CHUNK, end - offset), offset)
            sha256.update(chunk)
            if md5sum is not None:
                md5sum.update(chunk)
            offset += len(chunk)
        return sha256.hexdigest(), (md5sum.hexdigest() if md5sum else "")


def read_files(members: Iterator[tarfile.TarInfo], label: str, contents: SpooledContents) -> List[PackageFile]:
    by_path: Dict[str, PackageFile] = {}
    files: List[PackageFile] = []
    for info in members:
        original = member_path(info.name, label)
        if original is None:
            continue  # "./", the root directory itself
        file = package_file(info, original, by_path, label, contents)
        if file is None:
            continue
        previous = by_path.get(file.path)
        if previous is not None:
            if previous.entry.kind == DIR and previous.identity == file.identity:
                continue  # ./lib/ and ./usr/lib/ after the merged-/usr move
            raise HostileMember(label, info.name, f"installs {file.path} a second time (after {previous.member!r})")
        by_path[file.path] = file
        files.append(file)
    return files


def package_file(info: tarfile.TarInfo, original: str, by_path: Mapping[str, PackageFile], label: str,
                 contents: SpooledContents) -> Optional[PackageFile]:
    path = merged_usr_path(original)
    owner = dict(uid=info.uid, gid=info.gid, uname=info.uname, gname=info.gname)
    mode = info.mode & 0o7777
    if info.type in DEVICE_TYPES:
        raise HostileMember(label, info.name, f"is {DEVICE_TYPES[info.type]}; device nodes and FIFOs are refused "
                                              "(the container runtime provides /dev)")
    if info.isdir():
        return PackageFile(Entry(path, DIR, mode, **owner), info.name)
    if info.issparse():
        raise HostileMember(label, info.name, "is a sparse file, which no Debian package ships")
    if info.isreg():
        data, sha256, md5 = contents.content(info, path)
        return PackageFile(Entry(path, FILE, mode, **owner, opener=data), info.name, sha256, md5, info.size)
    if info.issym():
        return symlink_file(info, original, path, owner, label)
    if info.islnk():
        return hardlink_file(info, path, by_path, label, contents)
    raise HostileMember(label, info.name, f"has tar type {info.type!r}, which a layer cannot hold")


def symlink_file(info: tarfile.TarInfo, original: str, path: str, owner: dict, label: str) -> Optional[PackageFile]:
    target = info.linkname
    if not target or len(target.encode("utf-8", "surrogateescape")) >= PATH_MAX:
        raise HostileMember(label, info.name, f"is a symlink with an empty or over-long target ({len(target)} chars)")
    if original in MERGED_USR_DIRS:
        if resolve_lexically("", target) == f"usr/{original}":
            return None  # the merged-/usr link itself: the base layer has it
        raise HostileMember(label, info.name, f"replaces the merged-/usr link /{original} -> usr/{original}")
    target = relocated_symlink_target(original, path, target)
    return PackageFile(Entry(path, SYMLINK, 0o777, **owner, target=target), info.name)


def hardlink_file(info: tarfile.TarInfo, path: str, by_path: Mapping[str, PackageFile], label: str,
                  contents: SpooledContents) -> PackageFile:
    try:
        target_original = member_path(info.linkname, label)
    except HostileMember:
        target_original = None
    if target_original is None:
        raise HostileMember(label, info.name, f"is a hardlink to {info.linkname!r}, which escapes the image root")
    target = by_path.get(merged_usr_path(target_original))
    if target is None or target.entry.kind not in (FILE, HARDLINK):
        raise HostileMember(label, info.name, f"is a hardlink to {info.linkname!r}, which is not a file "
                                              "earlier in this package")
    first = by_path[target.entry.target] if target.entry.kind == HARDLINK else target  # link to the content
    content = first.entry
    entry = Entry(path, HARDLINK, content.mode, content.uid, content.gid, content.uname, content.gname,
                  target=content.path)
    md5 = first.md5
    if not md5 and contents.md5_paths is not None and path in contents.md5_paths:  # a conffile linking a file
        md5 = contents.hashes(content.opener, md5=True)[1]
    return PackageFile(entry, info.name, first.sha256, md5, first.size)
