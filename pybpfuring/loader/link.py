"""Static linking of one BPF program, as libbpf does before BPF_PROG_LOAD.

A program is a function in an executable section other than `.text`. Every function it calls
(in `.text` or in its own section), directly or through a function pointer (`bpf_loop` callbacks),
is appended after it once, and the call's pc-relative `imm` is recomputed for the new layout.
References to maps, global data and kernel symbols are recorded by instruction index; their fds and
BTF ids are only known at load time, so `object.py` patches them then.
func_info, line_info and CO-RE relocations (byte offsets within the ELF section in `.BTF.ext`) are
rebased to instruction indices of the linked program.
"""
from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass, field

from .btf import BtfExt, CoreReloRec, FuncInfoRec, LineInfoRec
from .elf import R_BPF_64_32, R_BPF_64_64, ElfImage, ElfObjectError, Relocation, Section

INSN_SIZE = 8
OP_LD_IMM64 = 0x18
OP_CALL = 0x85
PSEUDO_MAP_FD = 1
PSEUDO_MAP_VALUE = 2
PSEUDO_BTF_ID = 3
PSEUDO_CALL = 1
PSEUDO_KFUNC_CALL = 2
PSEUDO_FUNC = 4

_INSN = struct.Struct("<BBhi")


def _check_index(buf: bytes | bytearray, idx: int) -> None:
    if not 0 <= idx < len(buf) // INSN_SIZE:
        raise ElfObjectError(f"instruction {idx} is past the end of the program "
                             f"({len(buf) // INSN_SIZE} instructions)")


def decode_insn(buf: bytes | bytearray, idx: int) -> tuple[int, int, int, int, int]:
    """(code, dst_reg, src_reg, off, imm) of instruction `idx`."""
    _check_index(buf, idx)
    code, regs, off, imm = _INSN.unpack_from(buf, idx * INSN_SIZE)
    return code, regs & 0xF, regs >> 4, off, imm


def set_src_imm(buf: bytearray, idx: int, src_reg: int | None = None, imm: int | None = None) -> None:
    _check_index(buf, idx)
    code, regs, off, old_imm = _INSN.unpack_from(buf, idx * INSN_SIZE)
    if src_reg is not None:
        regs = (regs & 0xF) | (src_reg << 4)
    _INSN.pack_into(buf, idx * INSN_SIZE, code, regs, off, old_imm if imm is None else imm)


@dataclass(frozen=True)
class Function:
    """A function symbol in an executable section; `start`/`count` in instructions."""

    name: str
    section: Section
    start: int
    count: int
    is_global: bool

    @property
    def key(self) -> tuple[int, int]:
        return self.section.index, self.start


@dataclass(frozen=True)
class MapRef:
    """An ld_imm64 that must point at a map: a `.maps` map (`offset` None) or global data."""

    insn: int
    map_name: str
    offset: int | None = None


@dataclass(frozen=True)
class ExternRef:
    """A reference to a kernel symbol: a kfunc call or an ld_imm64 of a `__ksym` variable."""

    insn: int
    name: str
    is_call: bool


@dataclass
class LinkedProgram:
    insns: bytearray
    layout: list[tuple[Function, int]]           # each appended function and its first insn
    map_refs: list[MapRef] = field(default_factory=list)
    extern_refs: list[ExternRef] = field(default_factory=list)
    func_info: list[tuple[int, int]] = field(default_factory=list)      # (insn, FUNC type id)
    line_info: list[tuple[int, LineInfoRec]] = field(default_factory=list)
    core_relos: list[tuple[int, CoreReloRec]] = field(default_factory=list)   # (insn, record)


class Linker:
    """Knows every function and relocation of an object; `link(entry)` builds one program."""

    def __init__(self, image: ElfImage, ext: BtfExt | None, maps_shndx: int | None,
                 data_sections: dict[int, str]):
        self.image = image
        self.ext = ext
        self.maps_shndx = maps_shndx
        self.data_sections = data_sections
        self.functions: dict[int, list[Function]] = {}
        self.relocs: dict[tuple[int, int], Relocation] = {}
        for sec in image.sections.values():
            if sec.executable and sec.size:
                self.functions[sec.index] = _functions_of(image, sec)
                for rel in image.relocations.get(sec.index, []):
                    self.relocs[(sec.index, rel.offset // INSN_SIZE)] = rel

    def entry_points(self) -> list[Function]:
        return [f for funcs in self.functions.values() for f in funcs if f.section.name != ".text"]

    def function_at(self, shndx: int, idx: int, what: str) -> Function:
        funcs = self.functions.get(shndx)
        if funcs:
            pos = bisect.bisect_right([f.start for f in funcs], idx) - 1
            if pos >= 0 and funcs[pos].start <= idx < funcs[pos].start + funcs[pos].count:
                return funcs[pos]
        name = self.image.sections[shndx].name if shndx in self.image.sections else f"#{shndx}"
        raise ElfObjectError(f"{what}: no function at instruction {idx} of section {name!r}")

    def link(self, entry: Function) -> LinkedProgram:
        prog = LinkedProgram(bytearray(), [])
        placed: dict[tuple[int, int], int] = {}
        queue = [entry]

        def place(func: Function) -> int:
            if func.key not in placed:
                placed[func.key] = len(prog.insns) // INSN_SIZE
                sec = func.section
                prog.insns += sec.data[func.start * INSN_SIZE:(func.start + func.count) * INSN_SIZE]
                prog.layout.append((func, placed[func.key]))
                queue.append(func)
            return placed[func.key]

        queue.pop()
        place(entry)
        while queue:
            func = queue.pop(0)
            self._relocate(prog, func, placed[func.key], place)
        self._rebase_ext(prog)
        return prog

    def _relocate(self, prog: LinkedProgram, func: Function, base: int, place) -> None:
        sec = func.section
        for i in range(func.count):
            code, _dst, src, _off, imm = decode_insn(prog.insns, base + i)
            rel = self.relocs.get((sec.index, func.start + i))
            where = f"{func.name}+{i}"
            if code == OP_CALL and (src == PSEUDO_CALL or (rel and rel.type == R_BPF_64_32)):
                self._relocate_call(prog, func, base + i, func.start + i, imm, rel, place, where)
            elif code == OP_LD_IMM64 and rel is not None:
                self._relocate_ld64(prog, base + i, imm, rel, place, where)
            elif rel is not None and rel.type not in (0,):
                raise ElfObjectError(f"{where}: relocation type {rel.type} against "
                                     f"{rel.symbol.name!r} on an instruction that is neither a call "
                                     "nor a 64-bit load")

    def _relocate_call(self, prog, func, at, sec_idx, imm, rel, place, where) -> None:
        if rel is not None and rel.symbol.undefined:
            # A call to an extern function: a kfunc, resolved against the kernel's BTF at load.
            prog.extern_refs.append(ExternRef(at, rel.symbol.name, is_call=True))
            set_src_imm(prog.insns, at, src_reg=PSEUDO_KFUNC_CALL, imm=0)
            return
        if rel is not None:
            shndx, target = rel.symbol.shndx, rel.symbol.value // INSN_SIZE + imm + 1
        else:   # a call within the section needs no relocation: imm is already pc-relative
            shndx, target = func.section.index, sec_idx + imm + 1
        callee = self.function_at(shndx, target, where)
        new_base = place(callee)
        set_src_imm(prog.insns, at, src_reg=PSEUDO_CALL,
                    imm=new_base + (target - callee.start) - at - 1)

    def _relocate_ld64(self, prog, at, imm, rel, place, where) -> None:
        sym = rel.symbol
        if rel.type != R_BPF_64_64:
            raise ElfObjectError(f"{where}: unexpected relocation type {rel.type} on ld_imm64")
        if sym.undefined:
            prog.extern_refs.append(ExternRef(at, sym.name, is_call=False))
            return
        if sym.shndx == self.maps_shndx:
            prog.map_refs.append(MapRef(at, self._map_symbol(sym, imm, where)))
        elif sym.shndx in self.data_sections:
            prog.map_refs.append(MapRef(at, self.data_sections[sym.shndx], sym.value + imm))
        elif sym.shndx in self.functions:
            # Address of a function (a callback): BPF_PSEUDO_FUNC with a pc-relative imm.
            target = (sym.value + imm) // INSN_SIZE
            callee = self.function_at(sym.shndx, target, where)
            new_base = place(callee)
            set_src_imm(prog.insns, at, src_reg=PSEUDO_FUNC,
                        imm=new_base + (target - callee.start) - at - 1)
        else:
            sec = self.image.sections.get(sym.shndx)
            raise ElfObjectError(f"{where}: reference to {sym.name or '?'!r} in section "
                                 f"{sec.name if sec else sym.shndx!r}, which is neither a map, "
                                 "global data nor code")

    def _map_symbol(self, sym, imm: int, where: str) -> str:
        if sym.type != "STT_SECTION":
            return sym.name
        offset = sym.value + imm
        for s in self.image.symbols_in(self.maps_shndx):
            if s.value == offset and s.type == "STT_OBJECT":
                return s.name
        raise ElfObjectError(f"{where}: no map at offset {offset} of .maps")

    def _rebase_ext(self, prog: LinkedProgram) -> None:
        if self.ext is None:
            return
        for func, base in prog.layout:
            lo, hi = func.start * INSN_SIZE, (func.start + func.count) * INSN_SIZE
            name = func.section.name
            for rec in self.ext.func_info.get(name, []):
                if lo <= rec.insn_off < hi:
                    prog.func_info.append((base + rec.insn_off // INSN_SIZE - func.start, rec.type_id))
            for rec in self.ext.line_info.get(name, []):
                if lo <= rec.insn_off < hi:
                    prog.line_info.append((base + rec.insn_off // INSN_SIZE - func.start, rec))
            for rec in self.ext.core_relos.get(name, []):
                if lo <= rec.insn_off < hi:
                    prog.core_relos.append((base + rec.insn_off // INSN_SIZE - func.start, rec))
        prog.func_info.sort(key=lambda p: p[0])
        prog.line_info.sort(key=lambda p: p[0])
        prog.core_relos.sort(key=lambda p: p[0])


def _functions_of(image: ElfImage, sec: Section) -> list[Function]:
    """Functions of a section by their symbols; sizes from the next start when st_size is 0."""
    n = sec.size // INSN_SIZE
    syms = sorted((s for s in image.symbols_in(sec.index, "STT_FUNC")), key=lambda s: s.value)
    if not syms:
        return [Function(sec.name, sec, 0, n, True)]
    out = []
    for i, s in enumerate(syms):
        start = s.value // INSN_SIZE
        end = syms[i + 1].value // INSN_SIZE if i + 1 < len(syms) else n
        count = s.size // INSN_SIZE if s.size else end - start
        if s.value % INSN_SIZE or s.size % INSN_SIZE or count <= 0 or start + count > n:
            raise ElfObjectError(f"function {s.name!r} (offset {s.value}, {s.size} bytes) does not "
                                 f"lie on whole instructions inside section {sec.name!r} "
                                 f"({sec.size} bytes)")
        out.append(Function(s.name, sec, start, count, s.bind != "STB_LOCAL"))
    return out


def func_info_bytes(recs: list[tuple[int, int]]) -> bytes:
    return b"".join(struct.pack("<II", insn, tid) for insn, tid in recs)


def core_relo_bytes(recs: list[tuple[int, CoreReloRec]]) -> bytes:
    """`struct bpf_core_relo` records for BPF_PROG_LOAD: the kernel applies CO-RE relocations
    itself against its own BTF (insn_off in bytes within the linked program)."""
    return b"".join(struct.pack("<IIII", insn * INSN_SIZE, r.type_id, r.access_str_off, r.kind)
                    for insn, r in recs)


def line_info_bytes(recs: list[tuple[int, LineInfoRec]]) -> bytes:
    return b"".join(struct.pack("<IIII", insn, r.file_name_off, r.line_off, (r.line << 10) | r.col)
                    for insn, r in recs)


__all__ = ["Linker", "LinkedProgram", "Function", "MapRef", "ExternRef", "FuncInfoRec",
           "decode_insn", "set_src_imm", "func_info_bytes", "line_info_bytes", "core_relo_bytes"]
