"""Classic BPF (`struct sock_filter`) for io_uring filters: encoding, disassembly, and the kernel's
admission rules, so a program the kernel would refuse is caught here with the instruction's index.

Rules from torvalds/linux io_uring/bpf_filter.c (`io_uring_check_cbpf_filter`) and
net/core/filter.c (`bpf_check_classic`): context loads are 32-bit, 4-aligned, inside the 40-byte
context; no byte/half loads, no packet access, no MOD; shifts by K < 32; DIV by K != 0; jumps only
forward and inside the program; the last instruction returns; at most BPF_MAXINSNS (4096).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from .ctx import CTX_SIZE

# instruction classes and fields (include/uapi/linux/filter.h, bpf_common.h)
LD, LDX, ST, STX, ALU, JMP, RET, MISC = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07
W, H, B = 0x00, 0x08, 0x10
IMM, ABS, IND, MEM, LEN, MSH = 0x00, 0x20, 0x40, 0x60, 0x80, 0xA0
ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, NEG, MOD, XOR = (0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70,
                                                        0x80, 0x90, 0xA0)
JA, JEQ, JGT, JGE, JSET = 0x00, 0x10, 0x20, 0x30, 0x40
K, X = 0x00, 0x08
A_SRC = 0x10          # BPF_RET | BPF_A
TAX, TXA = 0x00, 0x80
MEMWORDS = 16
MAXINSNS = 4096

ALLOWED = frozenset({
    LD | W | ABS, LD | W | LEN, LDX | W | LEN, RET | K, RET | A_SRC,
    *(ALU | op | s for op in (ADD, SUB, MUL, DIV, AND, OR, XOR, LSH, RSH) for s in (K, X)),
    ALU | NEG, LD | IMM, LDX | IMM, MISC | TAX, MISC | TXA, LD | MEM, LDX | MEM, ST, STX,
    JMP | JA, *(JMP | op | s for op in (JEQ, JGE, JGT, JSET) for s in (K, X)),
})


@dataclass(frozen=True)
class Insn:
    code: int
    jt: int = 0
    jf: int = 0
    k: int = 0

    def encode(self) -> bytes:
        return struct.pack("<HBBI", self.code, self.jt, self.jf, self.k & 0xFFFFFFFF)


def encode(prog: list[Insn]) -> bytes:
    return b"".join(i.encode() for i in prog)


def decode(data: bytes) -> list[Insn]:
    return [Insn(*struct.unpack_from("<HBBI", data, o)) for o in range(0, len(data), 8)]


def check(prog: list[Insn]) -> tuple[int, str] | None:
    """The first instruction the kernel would refuse, as (index, why); None if it would accept."""
    if not prog:
        return (0, "an empty program")
    if len(prog) > MAXINSNS:
        return (MAXINSNS, f"{len(prog)} instructions, more than the kernel's {MAXINSNS}")
    n = len(prog)
    for pc, i in enumerate(prog):
        if i.code not in ALLOWED:
            return (pc, f"opcode {i.code:#06x} is not allowed in io_uring filters")
        cls, op, src = i.code & 0x07, i.code & 0xF0, i.code & 0x08
        if i.code == LD | W | ABS and (i.k >= CTX_SIZE or i.k & 3):
            return (pc, f"context load at byte {i.k}: must be 4-aligned and below {CTX_SIZE}")
        if cls == ALU and src == K and op in (LSH, RSH) and i.k >= 32:
            return (pc, f"shift by {i.k} (must be < 32)")
        if cls == ALU and src == K and op == DIV and i.k == 0:
            return (pc, "division by constant 0")
        if i.code in (LD | MEM, LDX | MEM, ST, STX) and i.k >= MEMWORDS:
            return (pc, f"scratch slot M[{i.k}] (there are {MEMWORDS})")
        if cls == JMP:
            if op == JA:
                if pc + 1 + i.k >= n:
                    return (pc, "jump past the end")
            elif pc + 1 + max(i.jt, i.jf) >= n:
                return (pc, "jump past the end")
    if prog[-1].code & 0x07 != RET:
        return (n - 1, "the last instruction must return")
    return None


_ALU_NAMES = {ADD: "add", SUB: "sub", MUL: "mul", DIV: "div", OR: "or", AND: "and", LSH: "lsh",
              RSH: "rsh", XOR: "xor", MOD: "mod"}
_JMP_NAMES = {JEQ: "jeq", JGT: "jgt", JGE: "jge", JSET: "jset"}


def disasm_insn(pc: int, i: Insn) -> str:
    cls, op, src = i.code & 0x07, i.code & 0xF0, i.code & 0x08
    if i.code == LD | W | ABS:
        return f"ld [{i.k}]"
    if i.code in (LD | W | LEN, LDX | W | LEN):
        return "ld #len" if cls == LD else "ldx #len"
    if i.code == LD | IMM:
        return f"ld #{i.k:#x}"
    if i.code == LDX | IMM:
        return f"ldx #{i.k:#x}"
    if i.code == LD | MEM:
        return f"ld M[{i.k}]"
    if i.code == LDX | MEM:
        return f"ldx M[{i.k}]"
    if i.code == ST:
        return f"st M[{i.k}]"
    if i.code == STX:
        return f"stx M[{i.k}]"
    if cls == ALU:
        if op == NEG:
            return "neg"
        return f"{_ALU_NAMES.get(op, f'alu{op:#x}')} {'x' if src else f'#{i.k:#x}'}"
    if cls == JMP:
        if op == JA:
            return f"ja {pc + 1 + i.k}"
        arg = "x" if src else f"#{i.k:#x}"
        return f"{_JMP_NAMES.get(op, f'j{op:#x}')} {arg}, {pc + 1 + i.jt}, {pc + 1 + i.jf}"
    if cls == RET:
        return "ret a" if i.code & A_SRC else f"ret #{i.k}"
    if i.code == MISC | TAX:
        return "tax"
    if i.code == MISC | TXA:
        return "txa"
    return f".insn {i.code:#06x}, {i.jt}, {i.jf}, {i.k:#x}"


def disasm(prog: list[Insn], lines: list[str | None] | None = None) -> str:
    """One instruction a line (`pc: text`), with the Python line it came from where known."""
    out = []
    for pc, i in enumerate(prog):
        text = f"{pc:4d}: {disasm_insn(pc, i)}"
        if lines and pc < len(lines) and lines[pc]:
            text = f"{text:<36} ; {lines[pc]}"
        out.append(text)
    return "\n".join(out)
