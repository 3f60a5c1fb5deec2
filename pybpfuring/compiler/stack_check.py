"""After code generation: does any function need more BPF stack than the kernel gives (512 bytes)?

The frontend counts the stack its locals take; LLVM may still spill temporaries of a long expression
(a sum of a hundred map lookups) past 512 bytes. LLVM's own check for that reports a fatal error and
exits the whole process, so `emit.py` raises LLVM's limit out of the way and this pass finds the
spill instead: a load or store through the frame pointer (r10) below -512, reported at the Python
line of that instruction (from the object's BTF line_info).
"""
from __future__ import annotations

import bisect

from ..errors import CompileError, SourceLocation
# The loader (below the compiler: it imports only abi, lang and errors) already links programs and
# maps BTF line_info to instructions: reuse it rather than parse .BTF.ext a second time here.
from pybpfuring.loader.object import BpfObject
from pybpfuring.abi import isa
from pybpfuring.abi.bpf2021 import STACK_SIZE

_MEMORY_CLASSES = {isa.BPF_LDX: "src", isa.BPF_ST: "dst", isa.BPF_STX: "dst"}


def check_stack_depth(elf: bytes, fallback: SourceLocation | None) -> None:
    """Raise a located CompileError if a program touches its stack below -STACK_SIZE."""
    with BpfObject.open(elf) as obj:
        for prog in obj.programs.values():
            insns = isa.decode(prog.insns)
            for slot, insn in enumerate(insns):
                base = _MEMORY_CLASSES.get(insn.cls)
                if base is None or getattr(insn, base) != isa.REG_FP or insn.off >= -STACK_SIZE:
                    continue
                raise CompileError(
                    f"{prog.name} needs more than the {STACK_SIZE}-byte BPF stack here (LLVM keeps "
                    f"this expression's temporaries at {-insn.off} bytes below the frame)",
                    _line_of(prog.line_info, slot) or fallback,
                    "split the expression into several statements, or keep fewer values live at once")


def _line_of(lines: dict, slot: int) -> SourceLocation | None:
    slots = sorted(lines)
    pos = bisect.bisect_right(slots, slot) - 1
    if pos < 0:
        return None
    line = lines[slots[pos]]
    return SourceLocation(line.file, line.line, max(line.col - 1, 0))
