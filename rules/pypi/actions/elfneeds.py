"""The shared libraries an ELF object of a wheel asks the dynamic loader for (DT_NEEDED).

A C-extension wheel links libraries it does not carry (manylinux wheels bundle most of theirs
under `<name>.libs/`, and leave glibc and a few more to the system). The venv layer names each
DT_NEEDED entry that neither the image's Debian packages nor the venv itself provide, at build
time, instead of an ImportError in a running service. Reads the dynamic segment the way the
loader does (program headers, not section headers), from bytes in memory: extension modules are
small.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Optional, Tuple

ELF_MAGIC = b"\x7fELF"
PT_LOAD, PT_DYNAMIC = 1, 2
DT_NULL, DT_NEEDED, DT_STRTAB = 0, 1, 5


class ElfNeedsError(ValueError):
    """An ELF object too damaged to read its dynamic section."""


@dataclass(frozen=True)
class ElfNeeds:
    needed: Tuple[str, ...]  # in DT_NEEDED order


def is_elf(data: bytes) -> bool:
    return data[:4] == ELF_MAGIC


def elf_needs(data: bytes) -> Optional[ElfNeeds]:
    """DT_NEEDED of an ELF object; None if it is not ELF or has no dynamic segment (static)."""
    if not is_elf(data) or len(data) < 64:
        return None
    is64, endian = data[4] == 2, "<" if data[5] == 1 else ">"
    if data[4] not in (1, 2) or data[5] not in (1, 2):
        raise ElfNeedsError(f"unknown ELF class {data[4]} or byte order {data[5]}")
    if is64:
        phoff, = struct.unpack_from(endian + "Q", data, 32)
        phentsize, phnum = struct.unpack_from(endian + "HH", data, 54)
        ph_format, dyn_format = endian + "IIQQQQQQ", endian + "qQ"
    else:
        phoff, = struct.unpack_from(endian + "I", data, 28)
        phentsize, phnum = struct.unpack_from(endian + "HH", data, 42)
        ph_format, dyn_format = endian + "IIIIIIII", endian + "iI"
    segments = [program_header(data, ph_format, phoff + i * phentsize, is64) for i in range(phnum)]
    dynamic = next((s for s in segments if s[0] == PT_DYNAMIC), None)
    if dynamic is None:
        return None
    entries = dynamic_entries(data, dyn_format, dynamic[1], dynamic[3])
    strtab = next((value for tag, value in entries if tag == DT_STRTAB), None)
    if strtab is None:
        return ElfNeeds(())
    offset = file_offset(segments, strtab)
    return ElfNeeds(tuple(c_string(data, offset + value) for tag, value in entries if tag == DT_NEEDED))


def program_header(data: bytes, ph_format: str, offset: int, is64: bool) -> Tuple[int, int, int, int]:
    """(p_type, p_offset, p_vaddr, p_filesz)."""
    try:
        raw = struct.unpack_from(ph_format, data, offset)
    except struct.error as error:
        raise ElfNeedsError(f"program header at {offset} is outside the file") from error
    return (raw[0], raw[2], raw[3], raw[5]) if is64 else (raw[0], raw[1], raw[2], raw[4])


def dynamic_entries(data: bytes, dyn_format: str, offset: int, size: int) -> list:
    step, entries = struct.calcsize(dyn_format), []
    for start in range(offset, min(offset + size, len(data)) - step + 1, step):
        tag, value = struct.unpack_from(dyn_format, data, start)
        if tag == DT_NULL:
            return entries
        entries.append((tag, value))
    raise ElfNeedsError("the dynamic segment has no DT_NULL")


def file_offset(segments: list, address: int) -> int:
    """The file offset of a virtual address, through the PT_LOAD segment that maps it."""
    for p_type, p_offset, p_vaddr, p_filesz in segments:
        if p_type == PT_LOAD and p_vaddr <= address < p_vaddr + p_filesz:
            return address - p_vaddr + p_offset
    return address  # unmapped: objects linked at 0 use file offsets


def c_string(data: bytes, offset: int) -> str:
    end = data.find(b"\0", offset)
    if offset >= len(data) or end < 0:
        raise ElfNeedsError(f"string at {offset} is outside the file")
    return data[offset:end].decode("utf-8", "replace")
