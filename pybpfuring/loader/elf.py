"""Reading a BPF ELF object (pyelftools) into plain data: sections, symbols, relocations.

Nothing here knows about maps or programs; `link.py` and `object.py` give the data its BPF meaning.
"""
from __future__ import annotations

import io
import os
import stat
import struct
from dataclasses import dataclass, field

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection
from elftools.elf.sections import SymbolTableSection

from pybpfuring.errors import PyBpfUringError

EM_BPF = 247
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 0x1, 0x2, 0x4

# BPF relocation types (llvm/BinaryFormat/ELFRelocs/BPF.def)
R_BPF_NONE = 0
R_BPF_64_64 = 1        # ld_imm64: address of a map, global variable or function
R_BPF_64_ABS64 = 2
R_BPF_64_ABS32 = 3
R_BPF_64_NODYLD32 = 4  # .BTF/.BTF.ext: offsets the loader never needs to patch
R_BPF_64_32 = 10       # call: a BPF-to-BPF call or a kfunc call

# The largest object file we read. Real BPF objects are kilobytes to a few MiB (vmlinux-sized BTF
# is ~6 MiB); the cap keeps `/dev/zero` or a huge file from being read into memory.
MAX_OBJECT_SIZE = 256 << 20

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")   # Elf64_Ehdr
_SHDR = struct.Struct("<IIQQQQIIQQ")         # Elf64_Shdr
SHT_NOBITS, SHT_SYMTAB, SHT_REL, SHT_RELA = 8, 2, 9, 4
_MACHINES = {3: "x86", 62: "x86-64", 40: "ARM", 183: "AArch64", 243: "RISC-V", 21: "PowerPC64",
             22: "s390"}
_ENTSIZE = {SHT_SYMTAB: 24, SHT_REL: 16, SHT_RELA: 24}   # Elf64_Sym, Elf64_Rel, Elf64_Rela


class ElfObjectError(PyBpfUringError):
    """The file is not a BPF ELF object we can load (the message says what is wrong)."""


@dataclass(frozen=True)
class Section:
    index: int
    name: str
    sh_type: str
    flags: int
    data: bytes      # empty for NOBITS (.bss); `size` is the real size
    size: int

    @property
    def executable(self) -> bool:
        return bool(self.flags & SHF_EXECINSTR)

    @property
    def allocated(self) -> bool:
        return bool(self.flags & SHF_ALLOC)


@dataclass(frozen=True)
class Symbol:
    index: int
    name: str
    value: int
    size: int
    type: str        # STT_FUNC, STT_OBJECT, STT_SECTION, STT_NOTYPE, ...
    bind: str        # STB_GLOBAL, STB_LOCAL, STB_WEAK
    shndx: int       # 0 for undefined (extern) symbols

    @property
    def undefined(self) -> bool:
        return self.shndx == 0


@dataclass(frozen=True)
class Relocation:
    offset: int      # byte offset in the section it applies to
    type: int
    symbol: Symbol


@dataclass
class ElfImage:
    """An ELF object's sections (by index and by name), symbols and relocations per section."""

    sections: dict[int, Section]
    symbols: list[Symbol]
    relocations: dict[int, list[Relocation]] = field(default_factory=dict)

    def section(self, name: str) -> Section | None:
        for sec in self.sections.values():
            if sec.name == name:
                return sec
        return None

    def symbols_in(self, shndx: int, sym_type: str | None = None) -> list[Symbol]:
        return [s for s in self.symbols
                if s.shndx == shndx and (sym_type is None or s.type == sym_type)]


def read_object_file(path: str | os.PathLike[str], what: str = "BPF object") -> bytes:
    """The bytes of an input file, refusing what is not a regular file of a sane size.

    A FIFO would block `read()` for ever and `/dev/zero` would be read until memory runs out, so
    the file is opened without blocking and checked (`fstat`) before a byte is read."""
    label = os.fspath(path)
    try:
        fd = os.open(label, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ElfObjectError(f"cannot read {what} {label}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ElfObjectError(f"{what} {label} is not a regular file ({_file_kind(st.st_mode)})")
        if st.st_size > MAX_OBJECT_SIZE:
            raise ElfObjectError(f"{what} {label} is {st.st_size} bytes; the limit is "
                                 f"{MAX_OBJECT_SIZE >> 20} MiB")
        with os.fdopen(os.dup(fd), "rb") as f:
            raw = f.read(MAX_OBJECT_SIZE + 1)
    except OSError as exc:
        raise ElfObjectError(f"cannot read {what} {label}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(raw) > MAX_OBJECT_SIZE:   # it grew while we read it
        raise ElfObjectError(f"{what} {label} is larger than {MAX_OBJECT_SIZE >> 20} MiB")
    return raw


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a file"


def read_elf(source: str | os.PathLike[str] | bytes | bytearray, label: str = "<bytes>") -> ElfImage:
    """Parse an ELF file (path) or image (bytes); errors say which object and why."""
    if isinstance(source, (bytes, bytearray)):
        raw = bytes(source)
        if len(raw) > MAX_OBJECT_SIZE:
            raise ElfObjectError(f"{label} is {len(raw)} bytes; the limit is "
                                 f"{MAX_OBJECT_SIZE >> 20} MiB")
    else:
        label = os.fspath(source)
        raw = read_object_file(source)
    _check_layout(raw, label)
    try:
        elf = ELFFile(io.BytesIO(raw))
        return _read(elf, label)
    except ELFError as exc:
        raise ElfObjectError(f"{label} is not a valid ELF object: {exc}") from None
    except UnicodeDecodeError:
        raise ElfObjectError(f"{label}: a section or symbol name is not valid UTF-8") from None


def _check_layout(raw: bytes, label: str) -> None:
    """Bounds-check the ELF header and section table before pyelftools walks them: every section's
    bytes, name, link and entry size must lie inside the file (pyelftools trusts these fields)."""
    if len(raw) < _EHDR.size or raw[:4] != b"\x7fELF":
        raise ElfObjectError(f"{label} is not a valid ELF object (no ELF header)")
    if raw[4] != 2:
        raise ElfObjectError(f"{label} is a 32-bit ELF object; BPF objects are 64-bit (ELFCLASS64)")
    if raw[5] != 1:
        raise ElfObjectError(f"{label} is big-endian; only little-endian BPF (bpfel) is supported")
    (_ident, _type, machine, _version, _entry, _phoff, shoff, _flags, _ehsize, _phentsize, _phnum,
     shentsize, shnum, shstrndx) = _EHDR.unpack_from(raw)
    if machine != EM_BPF:
        arch = _MACHINES.get(machine, f"machine {machine}")
        raise ElfObjectError(f"{label} is an ELF object for {arch}, not for BPF "
                             "(compile with -target bpf)")
    if shnum == 0 or shentsize != _SHDR.size:
        raise ElfObjectError(f"{label} has no usable section table (e_shnum={shnum}, "
                             f"e_shentsize={shentsize})")
    if shoff > len(raw) or shoff + shnum * shentsize > len(raw):
        raise ElfObjectError(f"{label}: the section table (offset {shoff}, {shnum} entries) lies "
                             f"outside the file ({len(raw)} bytes)")
    if shstrndx >= shnum:
        raise ElfObjectError(f"{label}: the section-name table index {shstrndx} is not a section "
                             f"(there are {shnum})")
    for i in range(shnum):
        (_name, sh_type, _flags, _addr, offset, size, link, _info, _align,
         entsize) = _SHDR.unpack_from(raw, shoff + i * shentsize)
        if sh_type != SHT_NOBITS and (offset > len(raw) or offset + size > len(raw)):
            raise ElfObjectError(f"{label}: section {i} (offset {offset}, {size} bytes) lies "
                                 f"outside the file ({len(raw)} bytes)")
        if sh_type in _ENTSIZE:
            if entsize != _ENTSIZE[sh_type] or size % entsize:
                raise ElfObjectError(f"{label}: section {i} has entries of {entsize} bytes and "
                                     f"size {size}; expected a multiple of {_ENTSIZE[sh_type]}")
            if link >= shnum:
                raise ElfObjectError(f"{label}: section {i} links to section {link}, which does "
                                     f"not exist (there are {shnum})")
    _, _, _, _, stroff, strsize, _, _, _, _ = _SHDR.unpack_from(raw, shoff + shstrndx * shentsize)
    for i in range(shnum):
        name = _SHDR.unpack_from(raw, shoff + i * shentsize)[0]
        if name >= strsize or raw.find(b"\0", stroff + name, stroff + strsize) < 0:
            raise ElfObjectError(f"{label}: the name of section {i} lies outside the "
                                 "section-name table")


def _read(elf: ELFFile, label: str) -> ElfImage:
    if elf["e_machine"] not in ("EM_BPF", EM_BPF):
        raise ElfObjectError(f"{label} is an ELF object for {elf['e_machine']}, not for BPF "
                             "(compile with -target bpf)")
    if not elf.little_endian:
        raise ElfObjectError(f"{label} is big-endian BPF; only little-endian (bpfel) is supported")
    sections: dict[int, Section] = {}
    for idx, sec in enumerate(elf.iter_sections()):
        nobits = sec["sh_type"] == "SHT_NOBITS"
        sections[idx] = Section(idx, sec.name, sec["sh_type"], sec["sh_flags"],
                                b"" if nobits else sec.data(), sec["sh_size"])
    symtab = next((s for s in elf.iter_sections() if isinstance(s, SymbolTableSection)), None)
    if symtab is None:
        raise ElfObjectError(f"{label} has no symbol table")
    strtab = sections.get(symtab["sh_link"])
    if strtab is None or strtab.sh_type != "SHT_STRTAB":
        raise ElfObjectError(f"{label}: the symbol table's string table (section "
                             f"{symtab['sh_link']}) is not a string table")
    symbols = [_symbol(i, s, strtab.data, label) for i, s in enumerate(symtab.iter_symbols())]
    image = ElfImage(sections, symbols)
    for sec in elf.iter_sections():
        if isinstance(sec, RelocationSection):
            target = sec["sh_info"]
            if target not in sections:
                raise ElfObjectError(f"{label}: relocation section {sec.name!r} applies to "
                                     f"section {target}, which does not exist")
            image.relocations[target] = [_relocation(r, symbols, sec.name, label)
                                         for r in sec.iter_relocations()]
    return image


def _relocation(r, symbols: list[Symbol], section: str, label: str) -> Relocation:
    index = r["r_info_sym"]
    if index >= len(symbols):
        raise ElfObjectError(f"{label}: a relocation in {section!r} names symbol {index}; the "
                             f"symbol table has {len(symbols)}")
    return Relocation(r["r_offset"], r["r_info_type"], symbols[index])


def _symbol(index: int, sym, strtab: bytes, label: str) -> Symbol:
    shndx = sym["st_shndx"]
    if not isinstance(shndx, int):  # 'SHN_UNDEF', 'SHN_ABS', 'SHN_COMMON'
        shndx = 0 if shndx == "SHN_UNDEF" else -1
    name_off = sym["st_name"]
    if name_off and (name_off >= len(strtab) or strtab.find(b"\0", name_off) < 0):
        raise ElfObjectError(f"{label}: the name of symbol {index} lies outside the string table")
    return Symbol(index, sym.name, sym["st_value"], sym["st_size"], sym["st_info"]["type"],
                  sym["st_info"]["bind"], shndx)
