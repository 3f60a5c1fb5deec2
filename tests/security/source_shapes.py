"""Seeded random program shapes for the compiler's frontend (tests/security/test_bad_sources.py).

Mostly well-typed statements over ints, maps and a struct, with a fraction `wild` of shapes outside
the language (floats, comprehensions, lambdas, bad targets, calls with wrong arity, odd decorators
and signatures). The compiler must compile each or reject it with a located CompileError; any other
exception, or an "internal compiler error", is a bug.
"""
from __future__ import annotations

import random

HEADER = '''from pybpfuring import *
from pybpfuring.lang import *
arr = ArrayMap(u64, 16)
h = HashMap(u32, u64, 16)


@struct
class P:
    a: u32
    b: u64
    c: Array[u8, 4]


K = 3


def helper_py(x):
    return x

'''
SAFE = ["x", "y", "z", "K", "p.a", "p.b", "p.c[1]", "arr[0]", "arr[x & 7]", "h.get(1, 0)", "0",
        "1", "7", "255", "ctx.user_data", "u32(5)", "i32(-1)", "u64(1)", "p.c[x & 3]"]
WILD = ["ctx", "arr", "h", "P", "u8", "None", "True", "-1", "2**64", "2**63", "-2**63", "1.5", "'s'",
        "b'x'", "[1]", "(1, 2)", "{}", "helper_py", "len", "print", "OK", "WAIT", "Sqe()", "Cqe()",
        "P()", "u8(300)", "ctx.wait_nr", "p", "p.c"]
BINOPS = ["+", "-", "*", "//", "%", "<<", ">>", "&", "|", "^", "==", "!=", "<", "<=", ">", ">="]
WILD_BINOPS = ["/", "**", "@", "and", "or", "is", "in"]
CALLS = ["u32", "u64", "i8", "helper_py", "arr.get", "emit_cqe", "reap_cqe", "submit",
         "copy_to_user", "copy_from_user", "prep_nop", "len", "min", "max", "range", "printk", "P"]
TARGETS = ["x", "y", "z", "arr[1]", "p.a", "p.b", "p.c[0]", "h[2]"]
WILD_TARGETS = ["ctx.wait_idx", "ctx.user_data", "x, y", "K", "arr", "p", "p.c"]
WILD_STATEMENTS = ["break", "continue", "pass", "del x", "del h[1]", "global K", "assert x",
                   "raise ValueError", "with x: pass", "import os", "yield 1", "x: P = P()",
                   "for i in [1, 2]: pass", "while True: pass", "print(x)", "def inner(): pass"]


class ShapeGen:
    def __init__(self, seed: int, wild: float = 0.1):
        self.rng = random.Random(seed)
        self.wild = wild

    def _is_wild(self) -> bool:
        return self.rng.random() < self.wild

    def expr(self, depth: int = 0) -> str:
        r = self.rng
        k = r.random()
        if depth > 3 or k < 0.3:
            return r.choice(WILD if self._is_wild() else SAFE)
        if k < 0.6:
            op = r.choice(WILD_BINOPS if self._is_wild() else BINOPS)
            return f"({self.expr(depth + 1)} {op} {self.expr(depth + 1)})"
        if k < 0.67:
            return f"{r.choice(['-', '~', 'not ', '+'])}{self.expr(depth + 1)}"
        if k < 0.77:
            args = ", ".join(self.expr(depth + 1) for _ in range(r.randint(0, 5)))
            return f"{r.choice(CALLS)}({args})"
        if k < 0.85:
            return f"({self.expr(depth + 1)} if {self.expr(depth + 1)} else {self.expr(depth + 1)})"
        if k < 0.92:
            return f"{self.expr(depth + 1)}[{self.expr(depth + 1)}]"
        if self._is_wild():
            return r.choice([f"[{self.expr(depth + 1)} for i in range(3)]",
                             f"(lambda: {self.expr(depth + 1)})", f"{self.expr(depth + 1)}.res"])
        return r.choice(SAFE)

    def stmt(self, indent: int, depth: int = 0) -> str:
        r, pad = self.rng, "    " * indent
        k = r.random()
        if depth > 2 or k < 0.4:
            target = r.choice(WILD_TARGETS if self._is_wild() else TARGETS)
            op = r.choice(["=", "+=", "-=", "|=", "<<=", "//="])
            return f"{pad}{target} {op} {self.expr()}\n"
        if k < 0.55:
            out = f"{pad}if {self.expr()}:\n" + self.block(indent + 1, depth + 1)
            if r.random() < 0.5:
                out += f"{pad}else:\n" + self.block(indent + 1, depth + 1)
            return out
        if k < 0.65:
            return f"{pad}for i in range({r.choice(['4', 'K', self.expr()])}):\n" + \
                self.block(indent + 1, depth + 1)
        if k < 0.7:
            return f"{pad}while {self.expr()}:\n" + self.block(indent + 1, depth + 1)
        if k < 0.78:
            return f"{pad}return {r.choice(['OK', 'WAIT', self.expr()])}\n"
        if k < 0.85 and self._is_wild():
            return pad + r.choice(WILD_STATEMENTS) + "\n"
        return f"{pad}{r.choice(CALLS[4:9])}(ctx, {self.expr()}, {self.expr()})\n"

    def block(self, indent: int, depth: int) -> str:
        return "".join(self.stmt(indent, depth) for _ in range(self.rng.randint(1, 3)))

    def module(self) -> str:
        r = self.rng
        deco = r.choice(["@bpf_function", "@loop_step"]) if self._is_wild() else "@iouring_program"
        params = r.choice(["ctx", "ctx: Ctx, y: u32", "", "ctx: u32"]) if self._is_wild() else "ctx: Ctx"
        ret = r.choice(["", " -> u32", " -> P"]) if self._is_wild() else " -> int"
        body = "    x = 0\n    y = 1\n    z = 2\n    p = P()\n" + self.block(1, 0) + "    return OK\n"
        return HEADER + f"\n{deco}\ndef prog({params}){ret}:\n{body}"
