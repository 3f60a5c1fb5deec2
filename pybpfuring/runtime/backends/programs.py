"""From a compiled op_bpf ELF to engine programs, without the kernel.

The loader (`pybpfuring/loader`) reads the ELF and BTF and links each program (its called functions
appended, calls fixed), recording which ld_imm64 instructions name a map and the BTF line_info of
every instruction. Here we create each map in engine memory and patch those ld_imm64 pairs with the
map's real address (its handle, or the address of a global variable), so the program runs with no
load-time resolver; faults are located through the line_info (slot -> Python file:line:col).
"""
from __future__ import annotations

import bisect
import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pybpfuring.abi import isa
from pybpfuring.abi.bpf2021 import MAX_BPF_PROGS
from pybpfuring.errors import PyBpfUringError, SourceLocation
from pybpfuring.loader.link import INSN_SIZE
from pybpfuring.loader.object import BpfObject, Program as LinkedProgram
from pybpfuring.loader.verifier import SourceLine
from pybpfuring.runtime.engine.compile_cache import CompileCache
from pybpfuring.runtime.engine.interp import HelperFn, Program
from pybpfuring.runtime.engine.memory import Memory

from .engine_maps import EngineMap, create_map

IOURING_SECTIONS = ("iouring", "iouring.s")


class RegistrationError(PyBpfUringError):
    """Programs could not be registered with a ring (the message says why and what to do)."""


@dataclass
class EngineProgram:
    """A registered program: its index in the ring's table, its name and the engine's Program."""

    index: int
    name: str
    program: Program


def _is_iouring_section(section: str) -> bool:
    return section in IOURING_SECTIONS or section.startswith(("iouring/", "iouring.s/"))


# Parsed objects by the SHA-256 of their bytes: every Ring registering the same programs gets the
# same ELF, and parsing it (pyelftools) was most of a warm register_programs. The engines only read
# the object (map specs, images copied with bytes(), linked slots decoded afresh).
_OBJECTS: CompileCache[BpfObject] = CompileCache(16)


def open_object(elf: bytes | str | os.PathLike[str]) -> BpfObject:
    if not isinstance(elf, bytes):
        return BpfObject.open(os.fspath(elf))
    key = hashlib.sha256(elf).digest()
    obj = _OBJECTS.get(key)
    return obj if obj is not None else _OBJECTS.put(key, BpfObject.open(elf))


def select_programs(obj: BpfObject, names: list[str] | None) -> list[LinkedProgram]:
    """The programs to register, in table order: `names` in that order, else all in ELF order."""
    candidates = {n: p for n, p in obj.programs.items() if _is_iouring_section(p.section)}
    if names is None:
        chosen = sorted(candidates.values(), key=lambda p: (p.section, p.linked.layout[0][0].start))
        others = sorted(set(obj.programs) - set(candidates))
        if not chosen:
            raise RegistrationError(
                f"{obj.label} has no io_uring programs (section 'iouring'); its programs "
                f"{others or '(none)'} are for other targets: compile with target='op_bpf'")
    else:
        missing = [n for n in names if n not in candidates]
        if missing:
            raise RegistrationError(f"{obj.label} has no io_uring program named "
                                    f"{', '.join(map(repr, missing))} (it has: "
                                    f"{', '.join(sorted(candidates)) or 'none'})")
        chosen = [candidates[n] for n in names]
    if len(chosen) > MAX_BPF_PROGS:
        raise RegistrationError(f"{len(chosen)} programs given; a ring takes at most {MAX_BPF_PROGS} "
                                "(IORING_MAX_BPF_PROGS of the 2021 patches)")
    return chosen


def create_maps(obj: BpfObject, memory: Memory) -> dict[str, EngineMap]:
    maps: dict[str, EngineMap] = {}
    for name, spec in obj.maps.items():
        gd = obj.global_data.get(name)
        maps[name] = create_map(spec, memory, bytes(gd.image) if gd is not None else None)
    return maps


def _patched_insns(prog: LinkedProgram, maps: Mapping[str, EngineMap]
                   ) -> tuple[list[isa.Insn], dict[int, int]]:
    """The slots, each map reference turned into a pseudo ld_imm64 (src MAP_VALUE, imm = its
    index) whose value, this ring's address of the map, is in the returned {slot: value}. The
    slots are then the same in every ring, so the compiled form is shared (compile_cache.py)
    and only the values are bound per ring."""
    insns = isa.decode(bytes(prog.linked.insns))
    values: dict[int, int] = {}
    for index, ref in enumerate(prog.linked.map_refs):
        target = maps[ref.map_name]
        values[ref.insn] = target.handle if ref.offset is None else target.base + ref.offset
        first, second = insns[ref.insn], insns[ref.insn + 1]
        insns[ref.insn] = isa.Insn(first.opcode, first.dst, isa.BPF_PSEUDO_MAP_VALUE, 0, index)
        insns[ref.insn + 1] = isa.Insn(second.opcode, 0, 0, 0, 0)
    if prog.linked.extern_refs:
        names = ", ".join(sorted({r.name for r in prog.linked.extern_refs}))
        raise RegistrationError(f"program {prog.name!r} uses kernel symbols ({names}) that the "
                                "emulated backend does not provide")
    return insns, values


def _resolver(values: dict[int, int]) -> Callable[[int, int, int, int], int]:
    def resolve(pc: int, src: int, imm: int, next_imm: int) -> int:
        if pc not in values:
            raise LookupError(f"slot {pc} is not a map reference of this program")
        return values[pc]
    return resolve


def line_locator(lines: Mapping[int, SourceLine]) -> Callable[[int], SourceLocation | None]:
    """slot -> the Python location of the last line_info entry at or before it."""
    slots = sorted(lines)

    def locate(pc: int) -> SourceLocation | None:
        pos = bisect.bisect_right(slots, pc) - 1
        if pos < 0:
            return None
        line = lines[slots[pos]]
        return SourceLocation(line.file, line.line, max(line.col - 1, 0))
    return locate


def build_programs(chosen: list[LinkedProgram], maps: Mapping[str, EngineMap],
                   helpers: Mapping[int, HelperFn]) -> list[EngineProgram]:
    out = []
    for index, prog in enumerate(chosen):
        if len(prog.linked.insns) % INSN_SIZE:
            raise RegistrationError(f"program {prog.name!r} has a truncated instruction")
        insns, values = _patched_insns(prog, maps)
        engine_prog = Program(insns, helpers=helpers, name=prog.name, resolve_ld_imm64=_resolver(values),
                              locate=line_locator(prog.line_info))
        out.append(EngineProgram(index, prog.name, engine_prog))
    return out
