"""The filter IR: pure values (64-bit unsigned), conditions, and a tree of returns and ifs.

Every node keeps the SourceLocation it came from, so each cBPF instruction can name its Python line.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import SourceLocation
from .ctx import Field

U64 = (1 << 64) - 1


@dataclass(frozen=True)
class FieldRead:
    field: Field
    loc: SourceLocation

    @property
    def width(self) -> int:       # 32 or 64: how many bits the value can have
        return 64 if self.field.size == 8 else 32


@dataclass(frozen=True)
class Const:
    value: int                     # 0 .. 2**64-1
    loc: SourceLocation

    @property
    def width(self) -> int:
        return 32 if self.value <= 0xFFFFFFFF else 64


@dataclass(frozen=True)
class BinOp:
    op: str                        # "&", "|", "^"
    left: "Value"
    right: "Value"
    loc: SourceLocation

    @property
    def width(self) -> int:
        if self.op == "&":
            return min(self.left.width, self.right.width)
        return max(self.left.width, self.right.width)


@dataclass(frozen=True)
class Shift:
    value: "Value"
    amount: int                    # right shift by a constant 0..63
    loc: SourceLocation

    @property
    def width(self) -> int:
        return 32 if self.amount >= 32 or self.value.width == 32 else 64


Value = FieldRead | Const | BinOp | Shift


@dataclass(frozen=True)
class Compare:
    op: str                        # "==", "!=", "<", "<=", ">", ">="
    left: Value
    right: Value
    loc: SourceLocation


@dataclass(frozen=True)
class Truth:
    value: Value                   # value != 0
    loc: SourceLocation


@dataclass(frozen=True)
class BoolConst:
    value: bool
    loc: SourceLocation


@dataclass(frozen=True)
class Not:
    cond: "Cond"
    loc: SourceLocation


@dataclass(frozen=True)
class Logic:
    op: str                        # "and", "or"
    conds: tuple["Cond", ...]
    loc: SourceLocation


Cond = Compare | Truth | BoolConst | Not | Logic


@dataclass
class Return:
    cond: Cond
    loc: SourceLocation


@dataclass
class If:
    cond: Cond
    then: list["Stmt"] = field(default_factory=list)
    orelse: list["Stmt"] = field(default_factory=list)
    loc: SourceLocation | None = None


Stmt = Return | If


def evaluate_value(v: Value, ctx_read) -> int:
    """Reference semantics of a value (used by tests of the front end)."""
    if isinstance(v, FieldRead):
        return ctx_read(v.field)
    if isinstance(v, Const):
        return v.value
    if isinstance(v, Shift):
        return evaluate_value(v.value, ctx_read) >> v.amount
    a, b = evaluate_value(v.left, ctx_read), evaluate_value(v.right, ctx_read)
    return {"&": a & b, "|": a | b, "^": a ^ b}[v.op]


def vmax(v: Value) -> int:
    """An upper bound of the value (all values are >= 0): lets the front end fold tests that cannot
    depend on the context, e.g. `ctx.sqe_flags & 0x100` or `ctx.opcode == 300`."""
    if isinstance(v, FieldRead):
        return (1 << v.field.bits) - 1
    if isinstance(v, Const):
        return v.value
    if isinstance(v, Shift):
        return vmax(v.value) >> v.amount
    a, b = vmax(v.left), vmax(v.right)
    if v.op == "&":
        return min(a, b)
    return (1 << max(a, b).bit_length()) - 1
