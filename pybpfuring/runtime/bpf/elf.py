"""Reading a BPF ELF object (pyelftools) into plain data: sections, symbols, relocations.

Nothing here knows about maps or programs; `link.py` and `object.py` give the data its BPF meaning.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection
from elftools.elf.sections import SymbolTableSection

from ...errors import PyBpfUringError

EM_BPF = 247
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 0x1, 0x2, 0x4

# BPF relocation types (llvm/BinaryFormat/ELFRelocs/BPF.def)
R_BPF_NONE = 0
R_BPF_64_64 = 1        # ld_imm64: address of a map, global variable or function
R_BPF_64_ABS64 = 2
R_BPF_64_ABS32 = 3
R_BPF_64_NODYLD32 = 4  # .BTF/.BTF.ext: offsets the loader never needs to patch
R_BPF_64_32 = 10       # call: a BPF-to-BPF call or a kfunc call


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


def read_elf(source: str | bytes | bytearray, label: str = "<bytes>") -> ElfImage:
    """Parse an ELF file (path) or image (bytes); errors say which object and why."""
    if isinstance(source, (bytes, bytearray)):
        raw = bytes(source)
    else:
        label = str(source)
        try:
            with open(source, "rb") as f:
                raw = f.read()
        except OSError as exc:
            raise ElfObjectError(f"cannot read BPF object {label}: {exc.strerror}") from None
    try:
        elf = ELFFile(io.BytesIO(raw))
        return _read(elf, label)
    except ELFError as exc:
        raise ElfObjectError(f"{label} is not a valid ELF object: {exc}") from None


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
    symbols = [_symbol(i, s) for i, s in enumerate(symtab.iter_symbols())]
    image = ElfImage(sections, symbols)
    for sec in elf.iter_sections():
        if isinstance(sec, RelocationSection):
            target = sec["sh_info"]
            image.relocations[target] = [
                Relocation(r["r_offset"], r["r_info_type"], symbols[r["r_info_sym"]])
                for r in sec.iter_relocations()]
    return image


def _symbol(index: int, sym) -> Symbol:
    shndx = sym["st_shndx"]
    if not isinstance(shndx, int):  # 'SHN_UNDEF', 'SHN_ABS', 'SHN_COMMON'
        shndx = 0 if shndx == "SHN_UNDEF" else -1
    return Symbol(index, sym.name, sym["st_value"], sym["st_size"], sym["st_info"]["type"],
                  sym["st_info"]["bind"], shndx)
