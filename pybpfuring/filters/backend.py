"""Back end: filter IR -> classic BPF.

Conditions are compiled as jumping code (each condition jumps to a true and a false label), values are
computed 32 bits at a time into A (a 64-bit value is its low and high halves, loaded from the context
words at offset and offset+4), X and the scratch words M[0..15] hold the other operand. Jumps only go
forward, as classic BPF demands; conditional jumps reach at most 255 instructions, so a farther target
gets a `ja` trampoline. `peephole.py` then shortens the code.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import CompileError, SourceLocation
from . import cbpf as C
from . import ir

M32 = 0xFFFFFFFF


@dataclass
class Label:
    n: int


@dataclass
class Op:
    """One pseudo-instruction: a real one, a jump to labels, or a label's place."""

    kind: str                      # "insn", "jcond", "ja", "label"
    loc: SourceLocation | None
    insn: C.Insn | None = None     # insn: the instruction; jcond: code and k
    true: Label | None = None      # jcond true target; ja target; label: the label itself
    false: Label | None = None


class Codegen:
    def __init__(self, func_loc: SourceLocation):
        self.ops: list[Op] = []
        self.nlabels = 0
        self.scratch = 0
        self.func_loc = func_loc
        self.allow, self.deny = self.label(), self.label()

    def label(self) -> Label:
        self.nlabels += 1
        return Label(self.nlabels)

    def place(self, lab: Label) -> None:
        self.ops.append(Op("label", None, true=lab))

    def emit(self, insn: C.Insn, loc) -> None:
        self.ops.append(Op("insn", loc, insn))

    def jcond(self, code: int, k: int, t: Label, f: Label, loc) -> None:
        self.ops.append(Op("jcond", loc, C.Insn(code, 0, 0, k & M32), t, f))

    def ja(self, lab: Label, loc) -> None:
        self.ops.append(Op("ja", loc, true=lab))

    def alloc(self, loc: SourceLocation) -> int:
        if self.scratch >= C.MEMWORDS:
            raise CompileError("expression too deeply nested for classic BPF's 16 scratch words",
                               loc, "split it into simpler comparisons")
        self.scratch += 1
        return self.scratch - 1

    # --- statements
    def program(self, body: list[ir.Stmt]) -> None:
        self.block(body)
        self.place(self.allow)
        self.emit(C.Insn(C.RET | C.K, k=1), self.func_loc)
        self.place(self.deny)
        self.emit(C.Insn(C.RET | C.K, k=0), self.func_loc)

    def block(self, body: list[ir.Stmt]) -> None:
        for s in body:
            if isinstance(s, ir.Return):
                if isinstance(s.cond, ir.BoolConst):
                    self.emit(C.Insn(C.RET | C.K, k=int(s.cond.value)), s.loc)
                else:
                    self.cjump(s.cond, self.allow, self.deny)
            else:
                lt, lf, lend = self.label(), self.label(), self.label()
                self.cjump(s.cond, lt, lf)
                self.place(lt)
                self.block(s.then)
                if falls(s.then):
                    self.ja(lend, s.loc)
                self.place(lf)
                self.block(s.orelse)
                self.place(lend)

    # --- conditions
    def cjump(self, c: ir.Cond, t: Label, f: Label) -> None:
        if isinstance(c, ir.BoolConst):
            self.ja(t if c.value else f, c.loc)
        elif isinstance(c, ir.Not):
            self.cjump(c.cond, f, t)
        elif isinstance(c, ir.Logic):
            for sub in c.conds[:-1]:
                nxt = self.label()
                if c.op == "and":
                    self.cjump(sub, nxt, f)
                else:
                    self.cjump(sub, t, nxt)
                self.place(nxt)
            self.cjump(c.conds[-1], t, f)
        elif isinstance(c, ir.Truth):
            self.truth(c.value, t, f, c.loc)
        else:
            self.compare(c, t, f)

    def truth(self, v: ir.Value, t: Label, f: Label, loc) -> None:
        if isinstance(v, ir.BinOp) and v.op == "&" and isinstance(v.right, ir.Const):
            mask = v.right.value       # a bit test: jset on each half the mask touches
            halves = [h for h in (0, 1) if (mask >> (32 * h)) & M32 and (h == 0 or v.left.width == 64)]
            if not halves:
                self.ja(f, loc)
            for i, h in enumerate(halves):
                other = f if i == len(halves) - 1 else self.label()
                self.half(v.left, h, loc)
                self.jcond(C.JMP | C.JSET | C.K, (mask >> (32 * h)) & M32, t, other, loc)
                if other is not f:
                    self.place(other)
            return
        if v.width == 64:
            nxt = self.label()
            self.half(v, 0, loc)
            self.jcond(C.JMP | C.JEQ | C.K, 0, nxt, t, loc)
            self.place(nxt)
            self.half(v, 1, loc)
        else:
            self.half(v, 0, loc)
        self.jcond(C.JMP | C.JEQ | C.K, 0, f, t, loc)

    def compare(self, c: ir.Compare, t: Label, f: Label) -> None:
        op, a, b, loc = c.op, c.left, c.right, c.loc
        if op in ("==", "!=") and isinstance(b, ir.Const) and b.value == 0:
            self.truth(a, *((f, t) if op == "==" else (t, f)), loc)
            return
        if op == "!=":
            op, t, f = "==", f, t
        elif op == "<":
            op, t, f = ">=", f, t
        elif op == "<=":
            op, t, f = ">", f, t
        jop = {"==": C.JEQ, ">": C.JGT, ">=": C.JGE}[op]
        if max(a.width, b.width) == 64:
            nxt = self.label()
            if op == "==":
                self.cmp_half(a, b, 1, C.JEQ, nxt, f, loc)
            else:
                above = self.label()
                self.cmp_half(a, b, 1, C.JGT, t, above, loc)
                self.place(above)   # A still holds a's high half
                self.jcond(C.JMP | C.JEQ | (C.K if isinstance(b, ir.Const) else C.X),
                           self.const_half(b, 1), nxt, f, loc)
            self.place(nxt)
        self.cmp_half(a, b, 0, jop, t, f, loc)

    def cmp_half(self, a, b, h: int, jop: int, t: Label, f: Label, loc) -> None:
        if isinstance(b, ir.Const):
            self.half(a, h, loc)
            self.jcond(C.JMP | jop | C.K, self.const_half(b, h), t, f, loc)
            return
        m = self.alloc(loc)
        self.half(b, h, loc)
        self.emit(C.Insn(C.ST, k=m), loc)
        self.half(a, h, loc)
        self.emit(C.Insn(C.LDX | C.MEM, k=m), loc)
        self.scratch -= 1
        self.jcond(C.JMP | jop | C.X, 0, t, f, loc)

    @staticmethod
    def const_half(b, h: int) -> int:
        return (b.value >> (32 * h)) & M32 if isinstance(b, ir.Const) else 0

    # --- values: leave half h (0 low, 1 high) of v in A
    def half(self, v: ir.Value, h: int, loc) -> None:
        if h == 1 and v.width == 32:
            self.emit(C.Insn(C.LD | C.IMM, k=0), v.loc)
        elif isinstance(v, ir.Const):
            self.emit(C.Insn(C.LD | C.IMM, k=(v.value >> (32 * h)) & M32), v.loc)
        elif isinstance(v, ir.FieldRead):
            self.field(v, h)
        elif isinstance(v, ir.Shift):
            self.shift(v, h)
        else:
            self.binop(v, h)

    def field(self, v: ir.FieldRead, h: int) -> None:
        f, loc = v.field, v.loc
        word = f.offset & ~3
        ld = C.Insn(C.LD | C.W | C.ABS, k=word + 4 * h)
        if f.size in (4, 8) and f.order == "<":
            self.emit(ld, loc)
        elif f.order == "<":            # a byte inside an aligned word (little-endian)
            self.emit(ld, loc)
            shift = (f.offset & 3) * 8
            if shift:
                self.emit(C.Insn(C.ALU | C.RSH | C.K, k=shift), loc)
            if shift + 8 < 32:
                self.emit(C.Insn(C.ALU | C.AND | C.K, k=0xFF), loc)
        else:                           # network byte order: reassemble the bytes
            self.byteswapped(word, (f.offset & 3), f.size, loc)

    def byteswapped(self, word: int, first: int, size: int, loc) -> None:
        m = self.alloc(loc)
        for i in range(size):           # byte i (in memory order) goes to bit 8*(size-1-i)
            self.emit(C.Insn(C.LD | C.W | C.ABS, k=word), loc)
            src = 8 * (first + i)
            if src:
                self.emit(C.Insn(C.ALU | C.RSH | C.K, k=src), loc)
            if src + 8 < 32:
                self.emit(C.Insn(C.ALU | C.AND | C.K, k=0xFF), loc)
            dst = 8 * (size - 1 - i)
            if dst:
                self.emit(C.Insn(C.ALU | C.LSH | C.K, k=dst), loc)
            if i:
                self.emit(C.Insn(C.LDX | C.MEM, k=m), loc)
                self.emit(C.Insn(C.ALU | C.OR | C.X), loc)
            if i < size - 1:
                self.emit(C.Insn(C.ST, k=m), loc)
        self.scratch -= 1

    def shift(self, v: ir.Shift, h: int) -> None:
        n, src, loc = v.amount, v.value, v.loc
        if n >= 32:
            self.half(src, 1, loc)
            if n > 32:
                self.emit(C.Insn(C.ALU | C.RSH | C.K, k=n - 32), loc)
            return
        if h == 1 or src.width == 32:
            self.half(src, h, loc)
            self.emit(C.Insn(C.ALU | C.RSH | C.K, k=n), loc)
            return
        m = self.alloc(loc)             # low = (lo >> n) | (hi << (32 - n))
        self.half(src, 1, loc)
        self.emit(C.Insn(C.ALU | C.LSH | C.K, k=32 - n), loc)
        self.emit(C.Insn(C.ST, k=m), loc)
        self.half(src, 0, loc)
        self.emit(C.Insn(C.ALU | C.RSH | C.K, k=n), loc)
        self.emit(C.Insn(C.LDX | C.MEM, k=m), loc)
        self.emit(C.Insn(C.ALU | C.OR | C.X), loc)
        self.scratch -= 1

    def binop(self, v: ir.BinOp, h: int) -> None:
        alu = {"&": C.AND, "|": C.OR, "^": C.XOR}[v.op]
        if isinstance(v.right, ir.Const):
            k = (v.right.value >> (32 * h)) & M32
            if v.op == "&" and k == 0:
                self.emit(C.Insn(C.LD | C.IMM, k=0), v.loc)
                return
            self.half(v.left, h, v.loc)
            if not (v.op == "&" and k == M32) and not (v.op != "&" and k == 0):
                self.emit(C.Insn(C.ALU | alu | C.K, k=k), v.loc)
            return
        m = self.alloc(v.loc)
        self.half(v.right, h, v.loc)
        self.emit(C.Insn(C.ST, k=m), v.loc)
        self.half(v.left, h, v.loc)
        self.emit(C.Insn(C.LDX | C.MEM, k=m), v.loc)
        self.emit(C.Insn(C.ALU | alu | C.X), v.loc)
        self.scratch -= 1


def falls(body: list[ir.Stmt]) -> bool:
    """Whether control can reach the end of `body`."""
    if not body:
        return True
    last = body[-1]
    if isinstance(last, ir.Return):
        return False
    return falls(last.then) or falls(last.orelse)


def generate(body: list[ir.Stmt], func_loc: SourceLocation) -> list[Op]:
    g = Codegen(func_loc)
    g.program(body)
    return g.ops
