"""/etc/ld.so.cache as the image's own `ldconfig` (glibc 2.36, Debian bookworm) would write it.

Input is a view of the image's filesystem (every path with its kind and link
target) and the ELF facts the package layers recorded for files that look like
shared objects.  The steps follow glibc's elf/ldconfig.c and elf/cache.c:

- directories: those of /etc/ld.so.conf (and the files it includes, in name
  order), then Debian's built-in /lib/<triplet>, /usr/lib/<triplet>, /lib and
  /usr/lib.  A directory that does not exist, or that is one already listed
  (the same directory through the merged-/usr links: /usr/lib/x86_64-linux-gnu
  after /lib/x86_64-linux-gnu), is skipped; the cache names a library by the
  first path listed;
- in each directory, files and symlinks whose names start with "lib" or "ld-"
  and contain ".so", that resolve to an ELF shared object of the image's
  architecture.  A symlink named after its target's SONAME, or a `.so`
  development link whose name starts that SONAME, is indexed under its own name;
  other names are indexed under the SONAME (or the file name when there is none).
  Per name, a file wins over a link, then the "newest" name by _dl_cache_libcmp;
- soname links that ldconfig would create (a library whose SONAME has no link
  next to it, or a link pointing at another file) are returned as entries;
- the cache: "glibc-ld.so.cache1.1" header, entries sorted as cache.c's
  compare() sorts them (libcmp descending, then flags descending, then the order
  in which directories were scanned), the string table with glibc's tail
  merging, and the extension directory with one "generator" section.

Not covered (Debian's packages do not use them): glibc-hwcaps and legacy hwcap
subdirectories, `hwcap` lines in ld.so.conf, and `dir=libc5`-style flags beyond
libc5/libc6.
"""

from __future__ import annotations

import fnmatch
import functools
import posixpath
import struct
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from oci.actions.tarlayer import DIR, FILE, HARDLINK, SYMLINK, Entry

from .elf import FLAG_ELF, FLAG_ELF_LIBC5, FLAG_ELF_LIBC6, ElfError, SharedObject, read_shared_object

LD_SO_CONF = "etc/ld.so.conf"
LD_SO_CACHE = "etc/ld.so.cache"
CACHE_MAGIC = b"glibc-ld.so.cache" + b"1.1"
HEADER_SIZE = 48  # magic, nlibs, len_strings, flags, 3 padding bytes, extension_offset, 3 unused words
ENTRY_FORMAT = "<iIIIQ"  # flags, key, value, osversion_unused, hwcap
FLAGS_ENDIAN_LITTLE = 2  # cache_file_new_flags_endian_little
EXTENSION_MAGIC = 0xEAA42174  # (uint32_t) -358342284
EXTENSION_TAG_GENERATOR = 0
MAX_SYMLINKS = 40  # as the kernel's ELOOP limit
# The extension section naming the writer; ldconfig puts its own version there.
GENERATOR = "oci build_system_layer, in the format of ldconfig (GLIBC 2.36)"

# ldconfig's FLAG_* for the architecture-specific part (sysdeps/generic/ldconfig.h)
FLAG_X8664_LIB64 = 0x0300
FLAG_X8664_LIBX32 = 0x0800
FLAG_ARM_LIBHF = 0x0900
FLAG_AARCH64_LIB64 = 0x0A00
FLAG_ARM_LIBSF = 0x0B00
EM_386, EM_ARM, EM_X86_64 = 3, 40, 62
EF_ARM_EABIMASK, EF_ARM_EABI_VER5 = 0xFF000000, 0x05000000
EF_ARM_ABI_FLOAT_SOFT, EF_ARM_ABI_FLOAT_HARD = 0x200, 0x400
TRIPLETS = {"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}
DIR_FLAGS = {"libc5": FLAG_ELF_LIBC5, "libc6": FLAG_ELF_LIBC6, "glibc2": FLAG_ELF_LIBC6}


class LdCacheError(ValueError):
    """A configuration ldconfig itself would stop on."""


def looks_like_dso(name: str) -> bool:
    """The names ldconfig looks at; the dynamic loader (ld-*.so*) counts as a library."""
    return (name.startswith("lib") or name.startswith("ld-")) and ".so" in name


def ldconfig_flag(so: SharedObject, architecture: str) -> Optional[int]:
    """The cache flags the architecture's ldconfig gives an object; None if it would refuse it.

    x86-64's ldconfig knows x86-64 (64-bit, or x32) and i386 objects; aarch64's
    takes every 64-bit object as AArch64 and 32-bit ones by their ARM float ABI.
    """
    if architecture == "amd64":
        if so.machine == EM_X86_64:
            return (FLAG_X8664_LIB64 if so.elf_class == 64 else FLAG_X8664_LIBX32) | FLAG_ELF_LIBC6
        return so.libc_flag if so.machine == EM_386 and so.elf_class == 32 else None
    if architecture == "arm64":
        if so.elf_class == 64:
            return FLAG_AARCH64_LIB64 | FLAG_ELF_LIBC6
        if so.e_flags & EF_ARM_EABIMASK == EF_ARM_EABI_VER5:
            if so.e_flags & EF_ARM_ABI_FLOAT_HARD:
                return FLAG_ARM_LIBHF | FLAG_ELF_LIBC6
            if so.e_flags & EF_ARM_ABI_FLOAT_SOFT:
                return FLAG_ARM_LIBSF | FLAG_ELF_LIBC6
            return FLAG_ELF_LIBC6
        return so.libc_flag
    return None


def libcmp(left: str, right: str, signed_char: bool = False) -> int:
    """glibc's _dl_cache_libcmp: runs of digits compare as numbers, and digits sort after other characters."""
    a, b = left.encode("utf-8", "surrogateescape"), right.encode("utf-8", "surrogateescape")
    i = j = 0
    while i < len(a):
        if 48 <= a[i] <= 57:
            if j < len(b) and 48 <= b[j] <= 57:
                start = i
                while i < len(a) and 48 <= a[i] <= 57:
                    i += 1
                value_a = int(a[start:i])
                start = j
                while j < len(b) and 48 <= b[j] <= 57:
                    j += 1
                value_b = int(b[start:j])
                if value_a != value_b:
                    return value_a - value_b
                continue
            return 1
        if j < len(b) and 48 <= b[j] <= 57:
            return -1
        if j >= len(b) or a[i] != b[j]:
            return char_value(a[i], signed_char) - (char_value(b[j], signed_char) if j < len(b) else 0)
        i += 1
        j += 1
    return -(char_value(b[j], signed_char) if j < len(b) else 0)


def char_value(byte: int, signed_char: bool) -> int:
    """C's `char`: signed on x86, unsigned on ARM; it only matters for non-ASCII names."""
    return byte - 256 if signed_char and byte >= 128 else byte


# ---------------------------------------------------------------- the image's filesystem


@dataclass(frozen=True)
class Node:
    kind: str
    target: str = ""  # symlinks: as written; hardlinks: the path holding the content


class ImageTree:
    """Paths (without a leading "/") to what they are; parents of listed paths are directories."""

    def __init__(self, nodes: Mapping[str, Node]):
        self.nodes = dict(nodes)
        self.children: Dict[str, set] = {}
        for path in self.nodes:
            parent, name = posixpath.split(path)
            while True:
                self.children.setdefault(parent, set()).add(name)
                if not parent or parent in self.nodes:
                    break
                parent, name = posixpath.split(parent)

    def kind(self, path: str) -> Optional[str]:
        node = self.nodes.get(path)
        if node is not None:
            return node.kind
        return DIR if path in self.children or path == "" else None

    def resolve(self, path: str) -> Optional[str]:
        """The real path of `path` with every symlink followed, as inside the image; None if it dangles or loops."""
        parts = [p for p in path.split("/") if p not in ("", ".")]
        resolved: List[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                resolved = resolved[:-1]
                continue
            candidate = "/".join(resolved + [part])
            node = self.nodes.get(candidate)
            if node is not None and node.kind == SYMLINK:
                hops += 1
                if hops > MAX_SYMLINKS:
                    return None
                target = node.target
                resolved = [] if target.startswith("/") else resolved
                parts = [p for p in target.split("/") if p not in ("", ".")] + parts
                continue
            if self.kind(candidate) is None or (parts and self.kind(candidate) != DIR):
                return None
            resolved.append(part)
        return "/".join(resolved)

    def identity(self, path: str) -> Optional[str]:
        """What `stat` would give the same inode for: the resolved path, hardlinks joined to their content."""
        real = self.resolve(path)
        if real is None:
            return None
        node = self.nodes.get(real)
        return node.target if node is not None and node.kind == HARDLINK else real


# ---------------------------------------------------------------- directories


def configured_directories(read: callable, tree: ImageTree, architecture: str) -> List[Tuple[str, int]]:
    """(path as written, directory flag) in ldconfig's order: ld.so.conf first, then the built-in ones."""
    directories: List[Tuple[str, int]] = []
    if tree.kind(LD_SO_CONF) is not None:
        parse_conf("/" + LD_SO_CONF, read, tree, directories, depth=0)
    triplet = TRIPLETS[architecture]
    for builtin in (f"/lib/{triplet}", f"/usr/lib/{triplet}", "/lib", "/usr/lib"):
        directories.append((builtin, -1))
    return directories


def parse_conf(conf: str, read: callable, tree: ImageTree, out: list, depth: int) -> None:
    """One ld.so.conf-style file: `#` comments, `include PATTERN...`, `hwcap` lines (ignored), directories."""
    if depth > 16:
        raise LdCacheError(f"{conf}: `include` nests more than 16 levels; is there a loop?")
    real = tree.resolve(conf.lstrip("/"))
    content = read(real) if real is not None else None
    if content is None:
        return
    for raw in content.decode("utf-8", "surrogateescape").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("include") and line[7:8] in (" ", "\t"):
            for pattern in line[8:].split():
                pattern = pattern if pattern.startswith("/") else posixpath.join(posixpath.dirname(conf), pattern)
                for match in glob_image(tree, pattern):
                    parse_conf(match, read, tree, out, depth + 1)
        elif line.startswith("hwcap") and line[5:6] in (" ", "\t"):
            continue
        else:
            out.append(directory_line(line))


def directory_line(line: str) -> Tuple[str, int]:
    """`/path/=libc6` -> ("/path", FLAG_ELF_LIBC6): trailing slashes go, as in ldconfig's add_dir."""
    path, _, flag = line.partition("=")
    path = path.rstrip()
    while len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    return path, DIR_FLAGS.get(flag.strip(), -1) if flag else -1


def glob_image(tree: ImageTree, pattern: str) -> List[str]:
    """glob(3) over the image, results sorted; wildcards are allowed in the last component only."""
    directory, name_pattern = posixpath.split(pattern)
    real = tree.resolve(directory.lstrip("/"))
    if real is None or tree.kind(real) != DIR:
        return []
    names = sorted(n for n in tree.children.get(real, ()) if fnmatch.fnmatchcase(n, name_pattern)
                   and not (n.startswith(".") and not name_pattern.startswith(".")))
    return [posixpath.join(directory, n) for n in names]


# ---------------------------------------------------------------- scanning


@dataclass(frozen=True)
class Library:
    """One library ldconfig keeps for a directory (its dlib_entry)."""

    name: str  # the directory entry that won
    soname: str  # the cache key
    flag: int
    is_link: bool


@dataclass(frozen=True)
class CacheEntry:
    key: str
    path: str
    flags: int


def scan_directory(tree: ImageTree, objects: Mapping[str, SharedObject], real_dir: str, dir_flag: int,
                   architecture: str) -> List[Library]:
    libraries: Dict[str, Library] = {}
    for name in sorted(tree.children.get(real_dir, ())):
        if not looks_like_dso(name):
            continue
        path = posixpath.join(real_dir, name) if real_dir else name
        kind = tree.kind(path)
        if kind not in (FILE, HARDLINK, SYMLINK):
            continue
        real = tree.resolve(path)
        if real is None or tree.kind(real) not in (FILE, HARDLINK):
            continue
        so = objects.get(real)
        flag = ldconfig_flag(so, architecture) if so is not None else None
        if flag is None:
            continue
        soname = so.soname or name
        is_link = kind == SYMLINK and (name == soname or (name.endswith(".so") and soname.startswith(name)))
        if is_link:
            soname = name
        if flag == FLAG_ELF and dir_flag in (FLAG_ELF_LIBC5, FLAG_ELF_LIBC6):
            flag = dir_flag
        known = libraries.get(soname)
        if known is None:
            libraries[soname] = Library(name, soname, flag, is_link)
        elif (not is_link and known.is_link) or (is_link == known.is_link and libcmp(known.name, name) < 0):
            libc_kinds = (FLAG_ELF_LIBC5, FLAG_ELF_LIBC6)
            merged = flag if {known.flag, flag} & {FLAG_ELF} and {known.flag, flag} & set(libc_kinds) else known.flag
            libraries[soname] = Library(name, soname, merged, is_link)
    return [libraries[s] for s in sorted(libraries)]


def soname_link(tree: ImageTree, real_dir: str, library: Library) -> Optional[Entry]:
    """The link ldconfig's create_links would make for a library found as a file (not for links)."""
    if library.is_link:
        return None
    link = posixpath.join(real_dir, library.soname)
    existing = tree.identity(link)
    if existing is not None:
        if existing == tree.identity(posixpath.join(real_dir, library.name)):
            return None
        if tree.kind(link) != SYMLINK:
            return None  # "is not a symbolic link": ldconfig leaves a file alone
    return Entry(link, SYMLINK, 0o777, target=library.name)


@dataclass(frozen=True)
class LdCache:
    entries: Tuple[CacheEntry, ...]  # in cache order
    links: Tuple[Entry, ...]  # soname links to add


def build_ld_cache(tree: ImageTree, objects: Mapping[str, SharedObject], read: callable,
                   architecture: str) -> LdCache:
    """Scan the image as its ldconfig would; `read(path)` gives a file's bytes (for ld.so.conf)."""
    scanned: Dict[str, str] = {}
    found: List[CacheEntry] = []
    links: List[Entry] = []
    for path, dir_flag in configured_directories(read, tree, architecture):
        real = tree.resolve(path.lstrip("/"))
        if real is None or tree.kind(real) != DIR or real in scanned:
            continue
        scanned[real] = path
        for library in scan_directory(tree, objects, real, dir_flag, architecture):
            prefix = "" if path == "/" else path
            found.append(CacheEntry(library.soname, f"{prefix}/{library.soname}", library.flag))
            link = soname_link(tree, real, library)
            if link is not None:
                links.append(link)
    signed = architecture == "amd64"

    def compare(e1: CacheEntry, e2: CacheEntry) -> int:
        result = libcmp(e2.key, e1.key, signed)
        if result == 0 and e1.flags != e2.flags:
            return 1 if e1.flags < e2.flags else -1
        return result

    return LdCache(tuple(sorted(found, key=functools.cmp_to_key(compare))), tuple(links))


# ---------------------------------------------------------------- the file


def string_table(strings: Iterable[bytes]) -> Tuple[bytes, Dict[bytes, int]]:
    """glibc's stringtable_finalize: reversed-string order, each string sharing the tail of the one before."""
    ordered = sorted(set(strings), key=lambda s: s[::-1], reverse=True)
    offsets: Dict[bytes, int] = {}
    previous, previous_offset, end = b"", 0, 0
    for index, string in enumerate(ordered):
        if index and len(previous) >= len(string) and previous.endswith(string):
            offset = previous_offset + len(previous) - len(string)
        else:
            offset = previous_offset + len(previous) + 1 if index else 0
        offsets[string] = offset
        previous, previous_offset = string, offset
        end = max(end, offset + len(string) + 1)
    table = bytearray(end)
    for string, offset in offsets.items():
        table[offset:offset + len(string)] = string
    return bytes(table), offsets


def cache_bytes(entries: Sequence[CacheEntry], generator: str) -> bytes:
    """The cache file in the "new" format only (ldconfig's default since glibc 2.32)."""
    encoded = [(e.key.encode("utf-8", "surrogateescape"), e.path.encode("utf-8", "surrogateescape"), e.flags)
               for e in entries]
    table, offsets = string_table([s for key, path, _ in encoded for s in (key, path)])
    strings_start = HEADER_SIZE + len(encoded) * struct.calcsize(ENTRY_FORMAT)
    extension_offset = (strings_start + len(table) + 3) // 4 * 4
    header = struct.pack("<20sIIB3xI12x", CACHE_MAGIC, len(encoded), len(table), FLAGS_ENDIAN_LITTLE,
                         extension_offset)
    body = b"".join(struct.pack(ENTRY_FORMAT, flags, strings_start + offsets[key], strings_start + offsets[path], 0, 0)
                    for key, path, flags in encoded)
    padding = b"\0" * (extension_offset - strings_start - len(table))
    generator_bytes = generator.encode()
    directory_size = 8 + 16  # magic, count, one section
    extension = struct.pack("<IIIIII", EXTENSION_MAGIC, 1, EXTENSION_TAG_GENERATOR, 0,
                            extension_offset + directory_size, len(generator_bytes))
    return header + body + table + padding + extension + generator_bytes


def shared_object_records(files: Sequence) -> Tuple[dict, ...]:
    """What ldconfig needs from each of a package's files (`PackageFile`s) named like a library, by path.

    Non-ELF files (linker scripts such as libc.so) and executables are left out;
    a damaged ELF file is recorded with its error, and ldconfig skips it as it would.
    """
    contents = {f.path: f for f in files if f.entry.kind == FILE}
    records = []
    for file in sorted(files, key=lambda f: f.path):
        if file.entry.kind not in (FILE, HARDLINK) or not looks_like_dso(posixpath.basename(file.path)):
            continue
        content = contents[file.entry.target] if file.entry.kind == HARDLINK else file
        stream, size = content.entry.opener()
        with stream:
            try:
                found = read_shared_object(stream, size)
            except ElfError as error:
                records.append({"path": file.path, "error": str(error)})
                continue
        if found is not None:
            records.append({"path": file.path, **found.to_json()})
    return tuple(records)
