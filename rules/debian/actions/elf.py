"""Read what ldconfig reads from an ELF shared object: class, machine, SONAME and its libc kind.

Only the headers are read (ELF header, program headers, the dynamic segment and
one string), by seeking in the content, so a 100 MB library costs a few reads.
The rules are glibc's elf/readelflib.c (2.36), facts only:
- only ET_DYN objects count; no PT_DYNAMIC or no DT_STRTAB means "not a library";
- DT_STRTAB is a virtual address, turned into a file offset with the first
  PT_LOAD's (p_vaddr - p_offset);
- the generic libc kind comes from PT_INTERP or a DT_NEEDED of a known libc
  (the architecture-specific flags are added by ldcache, which knows the image's
  ldconfig).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO, Optional

ELF_MAGIC = b"\x7fELF"
ELFCLASS32, ELFCLASS64 = 1, 2
ELFDATA2LSB, ELFDATA2MSB = 1, 2
ET_DYN = 3
PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
DT_NULL, DT_NEEDED, DT_STRTAB, DT_SONAME = 0, 1, 5, 14
MAX_STRING = 4096  # SONAMEs and interpreter paths are short; longer means a damaged file

# ldconfig's FLAG_* (sysdeps/generic/ldconfig.h): the low byte is the libc kind.
FLAG_ELF = 0x0001
FLAG_ELF_LIBC5 = 0x0002
FLAG_ELF_LIBC6 = 0x0003
# interpreters and DT_NEEDED names that classify an object (elf/ldconfig.c and the sysdeps ldconfig.h files
# of x86 and aarch64, the architectures images are built for)
KNOWN_INTERPRETERS = {
    "/lib/ld-linux.so.1": FLAG_ELF_LIBC5,
    "/lib64/ld-linux-x86-64.so.2": FLAG_ELF_LIBC6,
    "/libx32/ld-linux-x32.so.2": FLAG_ELF_LIBC6,
    "/lib/ld-linux.so.2": FLAG_ELF_LIBC6,
    "/lib/ld-linux-aarch64.so.1": FLAG_ELF_LIBC6,
    "/lib/ld-linux-aarch64_be.so.1": FLAG_ELF_LIBC6,
    "/lib/ld-linux-aarch64_ilp32.so.1": FLAG_ELF_LIBC6,
    "/lib/ld-linux-aarch64_be_ilp32.so.1": FLAG_ELF_LIBC6,
    "/lib/ld-linux.so.3": FLAG_ELF_LIBC6,
    "/lib/ld-linux-armhf.so.3": FLAG_ELF_LIBC6,
}
KNOWN_LIBRARIES = {"libc.so.5": FLAG_ELF_LIBC5, "libm.so.5": FLAG_ELF_LIBC5,
                   "libc.so.6": FLAG_ELF_LIBC6, "libm.so.6": FLAG_ELF_LIBC6}


class ElfError(ValueError):
    """An ELF file whose headers point outside it or make no sense."""


@dataclass(frozen=True)
class SharedObject:
    """What ldconfig needs to know about one ELF shared object."""

    elf_class: int  # 32 or 64
    machine: int  # e_machine
    e_flags: int  # for ARM's float ABI
    soname: Optional[str]  # DT_SONAME, None when there is none (ldconfig then uses the file name)
    libc_flag: int  # FLAG_ELF, FLAG_ELF_LIBC5 or FLAG_ELF_LIBC6

    def to_json(self) -> dict:
        return {"class": self.elf_class, "machine": self.machine, "e_flags": self.e_flags, "soname": self.soname,
                "libc_flag": self.libc_flag}

    @classmethod
    def from_json(cls, value: dict) -> "SharedObject":
        return cls(int(value["class"]), int(value["machine"]), int(value["e_flags"]), value.get("soname"),
                   int(value["libc_flag"]))


class Window:
    """Random access to `size` bytes of `stream`, starting where the stream is now."""

    def __init__(self, stream: BinaryIO, size: int):
        self.stream = stream
        self.base = stream.tell()
        self.size = size

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ElfError(f"a header points at bytes {offset}..{offset + length}, past the end ({self.size} bytes)")
        self.stream.seek(self.base + offset)
        data = self.stream.read(length)
        if len(data) != length:
            raise ElfError("the file is shorter than its size")
        return data

    def string(self, offset: int) -> str:
        data = self.read(offset, min(MAX_STRING, self.size - offset)) if 0 <= offset < self.size else b""
        end = data.find(b"\0")
        if end < 0:
            raise ElfError(f"the string at offset {offset} is not terminated")
        return data[:end].decode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class Layout:
    """The struct formats of one ELF class and byte order."""

    endian: str
    elf_class: int

    @property
    def word(self) -> str:
        return "Q" if self.elf_class == ELFCLASS64 else "I"

    def header(self) -> str:  # e_type, e_machine, e_version, e_entry, e_phoff, e_shoff, e_flags, e_ehsize, e_phentsize, e_phnum
        return f"{self.endian}HHI{self.word}{self.word}{self.word}IHHH"

    def program_header(self) -> str:  # as (p_type, p_offset, p_vaddr, p_filesz) after reordering
        return f"{self.endian}IIQQQQQQ" if self.elf_class == ELFCLASS64 else f"{self.endian}IIIIIIII"

    def dyn(self) -> str:
        return f"{self.endian}q{self.word}" if self.elf_class == ELFCLASS64 else f"{self.endian}iI"


def read_shared_object(stream: BinaryIO, size: int) -> Optional[SharedObject]:
    """The object's ldconfig facts; None if it is not an ELF shared object (a linker script, an executable).

    Raises ElfError if it is ELF but damaged.
    """
    window = Window(stream, size)
    if size < 16 or window.read(0, 4) != ELF_MAGIC:
        return None
    elf_class, data = window.read(4, 2)
    if elf_class not in (ELFCLASS32, ELFCLASS64) or data not in (ELFDATA2LSB, ELFDATA2MSB):
        raise ElfError(f"unknown ELF class {elf_class} or byte order {data}")
    layout = Layout("<" if data == ELFDATA2LSB else ">", elf_class)
    header_format = layout.header()
    fields = struct.unpack(header_format, window.read(16, struct.calcsize(header_format)))
    e_type, machine, _, _, phoff, _, e_flags, _, phentsize, phnum = fields
    if e_type != ET_DYN:
        return None
    segments = program_headers(window, layout, phoff, phentsize, phnum)
    loads = [s for s in segments if s[0] == PT_LOAD]
    load_bias = loads[0][2] - loads[0][1] if loads else 0
    libc_flag = FLAG_ELF
    for p_type, p_offset, _, _ in segments:
        if p_type == PT_INTERP:
            libc_flag = KNOWN_INTERPRETERS.get(window.string(p_offset), libc_flag)
    dynamic = [s for s in segments if s[0] == PT_DYNAMIC]
    if not dynamic or dynamic[0][3] == 0:
        return None
    entries = dynamic_entries(window, layout, dynamic[0][1], dynamic[0][3])
    strtab = next((value for tag, value in entries if tag == DT_STRTAB), None)
    if strtab is None:
        return None
    strings = strtab - load_bias
    soname = None
    for tag, value in entries:
        if tag == DT_NEEDED and libc_flag == FLAG_ELF:
            libc_flag = KNOWN_LIBRARIES.get(window.string(strings + value), libc_flag)
        elif tag == DT_SONAME and soname is None:
            soname = window.string(strings + value)
    return SharedObject(32 if elf_class == ELFCLASS32 else 64, machine, e_flags, soname, libc_flag)


def program_headers(window: Window, layout: Layout, phoff: int, phentsize: int, phnum: int) -> list:
    """(p_type, p_offset, p_vaddr, p_filesz) of each program header."""
    size = struct.calcsize(layout.program_header())
    if phnum and phentsize < size:
        raise ElfError(f"program headers of {phentsize} bytes are too small")
    headers = []
    for index in range(phnum):
        raw = struct.unpack(layout.program_header(), window.read(phoff + index * phentsize, size))
        if layout.elf_class == ELFCLASS64:  # p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, ...
            headers.append((raw[0], raw[2], raw[3], raw[5]))
        else:  # p_type, p_offset, p_vaddr, p_paddr, p_filesz, ...
            headers.append((raw[0], raw[1], raw[2], raw[4]))
    return headers


def dynamic_entries(window: Window, layout: Layout, offset: int, size: int) -> list:
    """(d_tag, d_val) up to DT_NULL; the segment must hold the DT_NULL."""
    entry = struct.calcsize(layout.dyn())
    data = window.read(offset, min(size, window.size - offset) if 0 <= offset < window.size else size)
    entries = []
    for start in range(0, len(data) - entry + 1, entry):
        tag, value = struct.unpack_from(layout.dyn(), data, start)
        if tag == DT_NULL:
            return entries
        entries.append((tag, value))
    raise ElfError("the dynamic segment has no DT_NULL")
