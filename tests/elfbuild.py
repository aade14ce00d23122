"""Minimal ELF shared objects for tests: just the headers ldconfig reads (no code, no sections)."""

from __future__ import annotations

import struct
from typing import Optional, Sequence

EM_386, EM_ARM, EM_X86_64, EM_AARCH64 = 3, 40, 62, 183
LOAD_BIAS = 0x10000  # p_vaddr - p_offset of the first PT_LOAD, so DT_STRTAB must be translated


def shared_object(soname: Optional[str], machine: int = EM_X86_64, elf_class: int = 64,
                  needed: Sequence[str] = ("libc.so.6",), e_flags: int = 0, e_type: int = 3,
                  big_endian: bool = False) -> bytes:
    """An ET_DYN with one PT_LOAD over the whole file and a PT_DYNAMIC with DT_STRTAB, DT_NEEDED, DT_SONAME."""
    end = ">" if big_endian else "<"
    word = "Q" if elf_class == 64 else "I"
    ehsize, phentsize, dynsize = (64, 56, 16) if elf_class == 64 else (52, 32, 8)
    strings = b"\0"
    indices = {}
    for name in [*needed] + ([soname] if soname else []):
        indices[name] = len(strings)
        strings += name.encode() + b"\0"
    strtab_off = ehsize + 2 * phentsize
    dyn_off = (strtab_off + len(strings) + 7) // 8 * 8
    dynamic = [(5, LOAD_BIAS + strtab_off), (10, len(strings))]
    dynamic += [(1, indices[n]) for n in needed]
    if soname:
        dynamic.append((14, indices[soname]))
    dynamic.append((0, 0))
    total = dyn_off + len(dynamic) * dynsize
    header = b"\x7fELF" + bytes([1 if elf_class == 32 else 2, 2 if big_endian else 1, 1]) + bytes(9)
    header += struct.pack(f"{end}HHI{word}{word}{word}IHHHHHH", e_type, machine, 1, 0, ehsize, 0, e_flags,
                          ehsize, phentsize, 2, 0, 0, 0)
    if elf_class == 64:
        load = struct.pack(f"{end}IIQQQQQQ", 1, 5, 0, LOAD_BIAS, LOAD_BIAS, total, total, 0x1000)
        dyn = struct.pack(f"{end}IIQQQQQQ", 2, 6, dyn_off, LOAD_BIAS + dyn_off, LOAD_BIAS + dyn_off,
                          len(dynamic) * dynsize, len(dynamic) * dynsize, 8)
    else:
        load = struct.pack(f"{end}IIIIIIII", 1, 0, LOAD_BIAS, LOAD_BIAS, total, total, 5, 0x1000)
        dyn = struct.pack(f"{end}IIIIIIII", 2, dyn_off, LOAD_BIAS + dyn_off, LOAD_BIAS + dyn_off,
                          len(dynamic) * dynsize, len(dynamic) * dynsize, 6, 4)
    body = header + load + dyn + strings
    body += bytes(dyn_off - len(body))
    body += b"".join(struct.pack(f"{end}q{word}" if elf_class == 64 else f"{end}iI", t, v) for t, v in dynamic)
    assert len(body) == total
    return body
