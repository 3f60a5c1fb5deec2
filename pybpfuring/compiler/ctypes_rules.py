"""C's integer rules, as the language defines them: promotions, usual arithmetic conversions, literal
types, and constant folding with wrap-around (the compiler and the reference evaluator share these)."""
from __future__ import annotations

from ..lang.types import BOOL, BoolType, IntType, i32, i64, u64, INT_TYPES

Scalar = IntType | BoolType

_RANK = {8: 1, 16: 2, 32: 3, 64: 4}


def promote(t: Scalar) -> IntType:
    """Integer promotion: bool, 8- and 16-bit types become i32."""
    if isinstance(t, BoolType) or t.bits < 32:
        return i32
    return t


def common_type(a: Scalar, b: Scalar) -> IntType:
    """C's usual arithmetic conversions on two integer operand types."""
    a, b = promote(a), promote(b)
    if a is b:
        return a
    if a.signed == b.signed:
        return a if a.bits >= b.bits else b
    unsigned, signed = (a, b) if not a.signed else (b, a)
    if unsigned.bits >= signed.bits:
        return unsigned
    return signed  # a wider signed type holds every value of the narrower unsigned one


def literal_type(value: int) -> IntType | None:
    """The type of an integer literal: int (i32) if it fits, else i64, else u64 (as C's `long`/`ulong`)."""
    for t in (i32, i64, u64):
        if t.min <= value <= t.max:
            return t
    return None


def unsigned_of(t: IntType) -> IntType:
    return INT_TYPES["u" + t.name[1:]] if t.signed else t


def fold_binary(op: str, a: int, b: int, t: IntType) -> int:
    """Evaluate `a op b` in type `t` with the language's semantics (operands already converted)."""
    mask = (1 << t.bits) - 1
    ua, ub = a & mask, b & mask
    if op == "+":
        r = a + b
    elif op == "-":
        r = a - b
    elif op == "*":
        r = a * b
    elif op == "/":
        if b == 0:
            return 0
        q = abs(a) // abs(b)  # C truncates toward zero
        r = -q if (a < 0) != (b < 0) else q
    elif op == "%":
        if b == 0:
            return a
        rem = abs(a) % abs(b)
        r = -rem if a < 0 else rem
    elif op == "&":
        r = ua & ub
    elif op == "|":
        r = ua | ub
    elif op == "^":
        r = ua ^ ub
    elif op == "<<":
        r = ua << (ub & (t.bits - 1))
    elif op == ">>":
        r = (a if t.signed else ua) >> (ub & (t.bits - 1))
    else:
        raise ValueError(op)
    return t.wrap(r)


def fold_compare(op: str, a: int, b: int) -> bool:
    return {"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def convert(value: int, t: Scalar) -> int:
    """Convert a value to type `t` as a C cast does (bool: nonzero -> 1)."""
    if isinstance(t, BoolType):
        return int(value != 0)
    return t.wrap(value)


__all__ = ["promote", "common_type", "literal_type", "unsigned_of", "fold_binary", "fold_compare",
           "convert", "BOOL"]
