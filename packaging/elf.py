"""Remove the build machine's library search paths from ELF files (what ``chrpath -d`` does).

A Python built by pyenv (or any Python in a non-system prefix) links its extension modules with
``RUNPATH=/root/.pyenv/versions/3.11.7/lib``; PyInstaller copies them as they are, so the shipped
app would search that folder of the build machine on the user's machine (lintian:
``custom-library-search-path``). The frozen app never needs it: its loader has already loaded
``libpython`` from the bundle. Paths relative to the file (``$ORIGIN...``) are kept.

Only 64-bit little-endian ELF files (x86-64 and arm64 Linux) are read or edited; anything else
is left as it is.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

PT_LOAD, PT_DYNAMIC = 1, 2
DT_NULL, DT_STRTAB, DT_RPATH, DT_RUNPATH = 0, 5, 15, 29
_DYN = struct.Struct("<qQ")  # Elf64_Dyn: d_tag, d_val
_PHDR = struct.Struct("<IIQQQQQQ")  # Elf64_Phdr: type, flags, offset, vaddr, paddr, filesz, memsz, align


@dataclass
class Dynamic:
    """The dynamic section of an ELF64 file: where it is, its entries, where its strings are."""

    offset: int  # file offset of the first Elf64_Dyn
    entries: list[tuple[int, int]]  # (d_tag, d_val) up to and including DT_NULL
    strings: int  # file offset of the dynamic string table

    def string(self, data: bytes | bytearray, index: int) -> tuple[int, bytes]:
        """(file offset, bytes) of the string at ``index`` of the string table."""
        start = self.strings + index
        return start, bytes(data[start : data.index(b"\0", start)])


def dynamic_section(data: bytes | bytearray) -> Dynamic | None:
    """The dynamic section of an ELF64 little-endian file; None for anything else."""
    if len(data) < 64 or data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    loads, dynamic = [], None
    for i in range(phnum):
        p_type, _flags, offset, vaddr, _paddr, filesz, _memsz, _align = _PHDR.unpack_from(
            data, phoff + i * phentsize
        )
        if p_type == PT_LOAD:
            loads.append((offset, vaddr, filesz))
        elif p_type == PT_DYNAMIC:
            dynamic = (offset, filesz)
    if dynamic is None:
        return None  # statically linked
    entries = []
    for i in range(dynamic[1] // _DYN.size):
        entries.append(_DYN.unpack_from(data, dynamic[0] + i * _DYN.size))
        if entries[-1][0] == DT_NULL:
            break
    strtab = next((value for tag, value in entries if tag == DT_STRTAB), None)
    for offset, start, size in loads if strtab is not None else ():
        if start <= strtab < start + size:
            return Dynamic(dynamic[0], entries, offset + strtab - start)
    return None


def search_paths(path: Path) -> list[str]:
    """The ``RPATH`` and ``RUNPATH`` folders of an ELF file (empty for none or a non-ELF file)."""
    data = Path(path).read_bytes()
    dyn = dynamic_section(data)
    if dyn is None:
        return []
    out = []
    for tag, value in dyn.entries:
        if tag in (DT_RPATH, DT_RUNPATH):
            out += [p for p in dyn.string(data, value)[1].decode(errors="replace").split(":") if p]
    return out


def _relative(folder: str) -> bool:
    return folder.startswith(("$ORIGIN", "${ORIGIN}"))


def drop_foreign_search_paths(path: Path) -> list[str]:
    """Remove the ``RPATH``/``RUNPATH`` folders of ``path`` that are not relative to ``$ORIGIN``.

    An entry left with no folder is deleted from the dynamic section (the entries after it move
    up and a ``DT_NULL`` fills the end, as ``chrpath -d`` does); one that mixes ``$ORIGIN``
    folders and absolute ones keeps the ``$ORIGIN`` ones (its string is shortened in place).
    The file is rewritten atomically, with its permissions.

    Returns:
        The folders removed (empty when nothing changed).
    """
    path = Path(path)
    data = bytearray(path.read_bytes())
    dyn = dynamic_section(data)
    if dyn is None:
        return []
    removed: list[str] = []
    entries = []
    for tag, value in dyn.entries:
        if tag in (DT_RPATH, DT_RUNPATH):
            start, raw = dyn.string(data, value)
            folders = [p for p in raw.decode(errors="replace").split(":") if p]
            keep = [p for p in folders if _relative(p)]
            if keep != folders:
                removed += [p for p in folders if not _relative(p)]
                if not keep:
                    continue  # the entry goes
                new = ":".join(keep).encode()
                data[start : start + len(raw)] = new + b"\0" * (len(raw) - len(new))
        entries.append((tag, value))
    if not removed:
        return []
    entries += [(DT_NULL, 0)] * (len(dyn.entries) - len(entries))
    for i, (tag, value) in enumerate(entries):
        _DYN.pack_into(data, dyn.offset + i * _DYN.size, tag, value)
    from engine.files.atomic import write_bytes  # the project's atomic writer (keeps the mode)

    write_bytes(path, bytes(data))
    return removed
