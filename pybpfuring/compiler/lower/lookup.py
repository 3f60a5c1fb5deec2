"""Map lookups as the lowering emits them: the helper call, the NULL test the verifier demands, and
the lookups hoisted to a function's start (see lower/function.py for the rules)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import llvmlite.ir as ll

from pybpfuring.lang.maps import BPF_MAP_TYPE_ARRAY
from pybpfuring.compiler import typed_ir as ir
from pybpfuring.compiler.lower.walk import walk
from pybpfuring.compiler.lower.types import I1, I32, I64, PTR
from pybpfuring.compiler.ranges import always_below, constant
from pybpfuring.abi.bpf2021 import BPF_FUNC_map_lookup_elem

if TYPE_CHECKING:
    from pybpfuring.compiler.lower.function import FunctionLowering


def call_helper(fl: "FunctionLowering", helper_id: int, ret: ll.Type, args: list[ll.Value]) -> ll.Value:
    """A helper is called through a constant address, as clang's `(void *)ID` declarations are."""
    callee = ll.Constant(I64, helper_id).inttoptr(PTR)
    callee.function_type = ll.FunctionType(ret, [a.type for a in args])  # read by llvmlite's call
    return fl.b.call(callee, args)


def key_ptr(fl: "FunctionLowering", key: ir.Expr | ir.Place, info: ir.MapInfo) -> ll.Value:
    if isinstance(key, (ir.VarPlace, ir.DerefPlace, ir.FieldPlace, ir.IndexPlace)):
        return fl.addr(key)
    tmp = fl.temp("key", 8)
    v = fl.expr(key)
    fl.b.store(fl.to_mem(v, key.type), tmp)
    return tmp


def lookup(fl: "FunctionLowering", info: ir.MapInfo, key: ir.Expr | ir.Place) -> ll.Value:
    hoisted = fl.const_lookups.get((id(info), constant(key)))
    if hoisted is not None:
        return hoisted
    k = key_ptr(fl, key, info)
    return call_helper(fl, BPF_FUNC_map_lookup_elem, PTR, [fl.ml.maps[id(info)], k])


def is_found(fl: "FunctionLowering", p: ll.Value) -> ll.Value:
    """`p != NULL` for a looked-up map value, hidden from LLVM's folding (llvm.bpf.passthrough, as
    the BPF backend's own passes do): InstCombine would otherwise merge it with other tests into
    `(ptr | x) == 0`, and the verifier refuses arithmetic on a map_value_or_null pointer (found by
    the differential tier)."""
    m = fl.ml.m
    name = "llvm.bpf.passthrough.i1.i1"
    fn = m.globals.get(name) or ll.Function(m, ll.FunctionType(I1, [I32, I1]), name)
    seq = getattr(fl.ml, "_passthrough_seq", 0) + 1  # distinct, so calls are never merged
    fl.ml._passthrough_seq = seq  # type: ignore[attr-defined]
    return fl.b.call(fn, [ll.Constant(I32, seq), fl.b.icmp_unsigned("!=", p, ll.Constant(PTR, None))])


def cannot_miss(info: ir.MapInfo, key: ir.Expr | ir.Place) -> bool:
    """An array map's key that is below max_entries on every run (ranges.py): the kernel's lookup
    returns the element then, never NULL."""
    return info.defn.map_type == BPF_MAP_TYPE_ARRAY and always_below(key, info.defn.max_entries)


def found_or_exit(fl: "FunctionLowering", info: ir.MapInfo, key: ir.Expr | ir.Place, p: ll.Value) -> ll.Value:
    """The condition to branch on after looking `key` up. Where the lookup cannot miss, the NULL
    test the verifier demands leaves the function (a path no run takes) and the condition is a
    constant true, so LLVM drops the miss path: otherwise every later instruction is verified twice,
    once with the element and once with the zeroed scratch object or the 0 a miss gives."""
    if p in fl.const_lookups.values():   # looked up and checked at the function's start
        return ll.Constant(I1, 1)
    if not cannot_miss(info, key):
        return is_found(fl, p)
    b = fl.b
    ok, dead = fl.f.append_basic_block("lookup.ok"), fl.f.append_basic_block("lookup.never")
    b.cbranch(is_found(fl, p), ok, dead)
    b.position_at_end(dead)
    ret_t = fl.f.function_type.return_type
    if isinstance(ret_t, ll.VoidType):
        b.ret_void()
    else:
        b.ret(fl.returned(ll.Constant(ret_t, 0)))
    b.position_at_end(ok)
    return ll.Constant(I1, 1)


# Hoisted element pointers stay live for the whole function: beyond a few, LLVM spills them and the
# stack (512 bytes, shared by BPF-to-BPF frames) and the code grow (the bpf_ops scheduler, whose
# every loop names a dozen elements, went from 176 to 232 bytes a frame hoisting all of them).
MAX_HOISTED = 4


def hoist_const_lookups(fl: "FunctionLowering", body: list[ir.Stmt]) -> None:
    """Look up, once at the function's start, the array-map elements a loop of the body names by a
    constant key (`budget[0]`; at most MAX_HOISTED): an array element's address never changes, so every later `budget[0]` reads
    and writes through that one pointer, as a C programmer keeps `__u64 *limit = lookup(...)`.
    Each lookup inside a loop would otherwise cost a helper call, a NULL test and its branch on
    every trip, and the verifier walks each of them once per trip and path."""
    if fl.ml.target.name == "bpf_ops":
        # Not for the kernel loop's programs: the scheduler and the programs it calls share one
        # 512-byte stack and are near it; a hoisted pointer that LLVM spills costs a slot a frame.
        return
    seen: dict[tuple[int, int], ir.MapInfo] = {}
    loops = [node for node in walk(body) if isinstance(node, ir.Loop)]
    for node in walk(loops):      # only where it repeats: each hoisted pointer holds a register
        if isinstance(node, (ir.MapRef, ir.MapGet)) and cannot_miss(node.map, node.key):
            value = constant(node.key)
            if value is not None and len(seen) < MAX_HOISTED:
                seen.setdefault((id(node.map), value), node.map)
    for (_, value), info in seen.items():
        key = ir.Const(value, info.defn.key_type, fl.fn.loc)  # type: ignore[arg-type]
        p = lookup(fl, info, key)
        found_or_exit(fl, info, key, p)
        fl.const_lookups[(id(info), value)] = p
