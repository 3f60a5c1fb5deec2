"""Our own classic-BPF evaluator for io_uring filters: runs a program on a 40-byte context the way the
kernel does (32-bit unsigned A and X, 16 scratch words, little-endian context loads, division by X=0
ends the program with 0). Only programs `cbpf.check` accepts are run; it is the host's oracle for the
compiled program, as the Python function is the oracle for what the program should decide."""
from __future__ import annotations

from . import cbpf as C
from .ctx import CTX_SIZE

M32 = 0xFFFFFFFF


class EvalError(Exception):
    """The program is not one the kernel would run (the checker should have said so)."""


def run(prog: list[C.Insn], ctx: bytes, max_steps: int = 100_000) -> int:
    """The program's return value on `ctx` (non-zero allows, 0 denies)."""
    bad = C.check(prog)
    if bad is not None:
        raise EvalError(f"instruction {bad[0]}: {bad[1]}")
    if len(ctx) != CTX_SIZE:
        raise EvalError(f"context must be {CTX_SIZE} bytes")
    a = x = 0
    mem = [0] * C.MEMWORDS
    pc = 0
    for _ in range(max_steps):
        i = prog[pc]
        pc += 1
        code, k = i.code, i.k
        cls = code & 0x07
        if cls == C.RET:
            return a if code & C.A_SRC else k
        if cls == C.JMP:
            op = code & 0xF0
            if op == C.JA:
                pc += k
                continue
            rhs = x if code & C.X else k
            if op == C.JEQ:
                taken = a == rhs
            elif op == C.JGT:
                taken = a > rhs
            elif op == C.JGE:
                taken = a >= rhs
            else:
                taken = (a & rhs) != 0
            pc += i.jt if taken else i.jf
            continue
        if cls == C.ALU:
            op = code & 0xF0
            rhs = x if code & C.X else k
            if op == C.NEG:
                a = (-a) & M32
            elif op == C.DIV:
                if rhs == 0:
                    return 0
                a = a // rhs
            else:
                a = _alu(op, a, rhs)
            continue
        a, x = _load_store(code, k, a, x, mem, ctx)
    raise EvalError("too many steps (a backward jump?)")


def _alu(op: int, a: int, rhs: int) -> int:
    if op == C.ADD:
        return (a + rhs) & M32
    if op == C.SUB:
        return (a - rhs) & M32
    if op == C.MUL:
        return (a * rhs) & M32
    if op == C.AND:
        return a & rhs
    if op == C.OR:
        return a | rhs
    if op == C.XOR:
        return a ^ rhs
    if op == C.LSH:
        return (a << (rhs & 31)) & M32 if rhs < 32 else 0
    if op == C.RSH:
        return a >> rhs if rhs < 32 else 0
    raise EvalError(f"ALU op {op:#x}")


def _load_store(code: int, k: int, a: int, x: int, mem: list[int], ctx: bytes) -> tuple[int, int]:
    if code == C.LD | C.W | C.ABS:
        return int.from_bytes(ctx[k:k + 4], "little"), x
    if code == C.LD | C.W | C.LEN:
        return CTX_SIZE, x
    if code == C.LDX | C.W | C.LEN:
        return a, CTX_SIZE
    if code == C.LD | C.IMM:
        return k, x
    if code == C.LDX | C.IMM:
        return a, k
    if code == C.LD | C.MEM:
        return mem[k], x
    if code == C.LDX | C.MEM:
        return a, mem[k]
    if code == C.ST:
        mem[k] = a
        return a, x
    if code == C.STX:
        mem[k] = x
        return a, x
    if code == C.MISC | C.TAX:
        return a, a
    if code == C.MISC | C.TXA:
        return x, x
    raise EvalError(f"opcode {code:#06x}")
