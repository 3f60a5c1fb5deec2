"""The LLVM types the lowering uses, in one place: every lowering module imports them from here, and
this module imports none of them (it is the bottom of the lowering's import graph). Types that only
one target's layout needs (target_bpf_ops.OPS_T, KFUNCS) stay with that target, built from these."""
from __future__ import annotations

import llvmlite.ir as ll

from pybpfuring.lang.loop import RegionType
from pybpfuring.lang.structs import Ctx
from pybpfuring.lang.types import BoolType, IntType
from pybpfuring.compiler import typed_ir as ir

I1, I8, I32, I64 = ll.IntType(1), ll.IntType(8), ll.IntType(32), ll.IntType(64)
PTR = ll.PointerType()
MAP_STRUCT = ll.LiteralStructType([PTR, PTR, PTR, PTR])
REGION_T = ll.LiteralStructType([PTR, I64])        # (address or NULL, checked size)


def llty(t: ir.IRType) -> ll.Type:
    if isinstance(t, BoolType):
        return I1
    if isinstance(t, IntType):
        return ll.IntType(t.bits)
    if isinstance(t, ir.RefType):
        return PTR
    if isinstance(t, RegionType):
        return REGION_T
    if t is None:
        return ll.VoidType()
    raise TypeError(f"no LLVM value type for {t!r}")


# The program context: its fields may only be accessed at constant offsets from the ctx pointer.
CTX_STRUCT = Ctx.__bpf_struct__  # type: ignore[attr-defined]


def memty(t: ir.IRType) -> ll.Type:
    """The in-memory type (bool is a byte in memory)."""
    return I8 if isinstance(t, BoolType) else llty(t)
