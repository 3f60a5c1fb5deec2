"""Value ranges the compiler can read off an expression without data flow: an upper bound on an
integer expression's value, taken as unsigned in its own width.

Used where a bound makes a run-time check dead and the verifier's walk shorter: an array-map key
that is always below `max_entries` (the kernel's array lookup cannot miss then), an index that is
always inside its array (no scratch slot). The rules are the ones a reader applies at a glance:
`x & 7` <= 7, `x % 8` < 8 (unsigned), `x >> 28` of a u32 <= 15, a u8 <= 255, a constant is itself.
"""
from __future__ import annotations

from ..lang.types import BoolType, IntType
from . import typed_ir as ir


def _mask(t: object) -> int | None:
    if isinstance(t, BoolType):
        return 1
    if isinstance(t, IntType):
        return (1 << t.bits) - 1
    return None


Bounds = "dict[int, int] | None"   # {id(local): bound} from lower/local_bounds.py, for loads of locals


def ubound(e: object, bounds: Bounds = None, verifier: bool = False) -> int | None:
    """B with 0 <= (e as unsigned of its width) <= B, or None when e's type is not an integer.
    With `verifier`, only through operations the kernel's verifier also bounds (not `/`, nor `%`
    by other than a power of two, which it leaves unknown): the bound then holds for it too."""
    full = _mask(getattr(e, "type", None))
    if full is None:
        return None
    b = _bound(e, full, bounds, verifier)
    return full if b is None else min(b, full)


def _bound(e: object, full: int, bounds: Bounds, verifier: bool) -> int | None:
    if isinstance(e, ir.Const):
        return int(e.value) & full
    if isinstance(e, ir.Load) and isinstance(e.place, ir.VarPlace) and bounds:
        return bounds.get(id(e.place.local))
    if isinstance(e, (ir.Compare, ir.Logical, ir.Not, ir.Truth)):
        return 1
    if isinstance(e, ir.Select):
        a, b = ubound(e.then, bounds, verifier), ubound(e.orelse, bounds, verifier)
        return None if a is None or b is None else max(a, b)
    if isinstance(e, ir.Cast):
        return _cast_bound(e, full, bounds, verifier)
    if isinstance(e, ir.Binary):
        return _binary_bound(e, full, bounds, verifier)
    return None


def _cast_bound(e: ir.Cast, full: int, bounds: Bounds, verifier: bool) -> int | None:
    src_t = e.value.type
    src = ubound(e.value, bounds, verifier)
    src_full = _mask(src_t)
    if src is None or src_full is None:
        return None
    if verifier and isinstance(src_t, IntType) and src_t.signed and src_full < full:
        return None   # sign extension (shifts or movsx): not followed as closely by every verifier
    if src_full <= full:
        # Widening: zero extension keeps the value; sign extension keeps it when the sign bit is clear.
        signed = isinstance(src_t, IntType) and src_t.signed
        return src if not signed or src <= src_full >> 1 else None
    return src  # narrowing: at most the source's bound (the caller clips to the width)


def _binary_bound(e: ir.Binary, full: int, bounds: Bounds, verifier: bool) -> int | None:
    signed = isinstance(e.type, IntType) and e.type.signed
    left, right = ubound(e.left, bounds, verifier), ubound(e.right, bounds, verifier)
    if left is None or right is None:
        return None
    if e.op == "&":
        return min(left, right)
    if e.op in ("|", "^"):
        return (1 << max(left, right).bit_length()) - 1
    if signed:
        return None
    if verifier and (e.op == "/" or e.op == "%" and not _power_of_two(e.right)):
        return None
    if e.op == "%" and isinstance(e.right, ir.Const) and e.right.value > 0:
        return min(left, e.right.value - 1)          # x % 0 == x in the language
    if e.op == "/":
        return left
    if e.op == ">>" and isinstance(e.right, ir.Const):
        bits = full.bit_length()
        return left >> (e.right.value % bits)        # shift counts are masked to the width
    if e.op == "+" and left + right <= full:
        return left + right
    if e.op == "*" and left * right <= full:
        return left * right
    return None


def _power_of_two(e: object) -> bool:
    return isinstance(e, ir.Const) and int(e.value) > 0 and int(e.value) & (int(e.value) - 1) == 0


def always_below(e: object, limit: int, bounds: Bounds = None, verifier: bool = False) -> bool:
    """True when e, as unsigned, is < limit on every run (and, with `verifier`, the kernel's
    verifier can tell as much from the code)."""
    b = ubound(e, bounds, verifier)
    t = getattr(e, "type", None)
    if isinstance(t, IntType) and t.signed and b is not None and b > (1 << (t.bits - 1)) - 1:
        return False  # may be negative: an index or key sign-extends it (i8(-1) is not 255)
    return b is not None and b < limit


def constant(e: object) -> int | None:
    """The value of a constant expression (a literal, possibly converted), else None."""
    if isinstance(e, ir.Const):
        return int(e.value)
    if isinstance(e, ir.Cast) and isinstance(e.type, IntType):
        inner = constant(e.value)
        return None if inner is None else e.type.wrap(inner)
    return None
