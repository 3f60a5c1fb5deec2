"""Lowering of typed-IR expressions to LLVM values (see lower/function.py for the rules)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import llvmlite.ir as ll

from pybpfuring.errors import InternalCompilerError
from pybpfuring.lang.types import BoolType, IntType
from pybpfuring.compiler import typed_ir as ir
from pybpfuring.compiler.lower.guard import guarded_address
from pybpfuring.compiler.lower.types import CTX_STRUCT, I1, I8, I64, llty, memty
from pybpfuring.compiler.lower.lookup import call_helper, found_or_exit, is_found, key_ptr, lookup
from pybpfuring.compiler.lower.maps import scalar_load
from pybpfuring.compiler.targets.bpf_ops import LOOP_NODES, lower_loop_expr
from pybpfuring.abi.bpf2021 import BPF_FUNC_map_delete_elem, BPF_FUNC_map_update_elem

if TYPE_CHECKING:
    from pybpfuring.compiler.lower.function import FunctionLowering

_ICMP = {"==": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def lower_expr(fl: "FunctionLowering", e: ir.Expr) -> ll.Value:
    b = fl.b
    if isinstance(e, LOOP_NODES):  # globals, kfuncs and regions (targets/bpf_ops.py)
        return lower_loop_expr(fl, e)  # type: ignore[return-value]
    if isinstance(e, ir.Const):
        t = llty(e.type)
        return ll.Constant(t, e.value & ((1 << t.width) - 1))
    if isinstance(e, ir.Load):
        direct = scalar_load(fl, e)  # m[k] as a value: `p ? *p : 0`, no scratch object
        if direct is not None:
            return direct
        v = b.load(fl.addr(e.place), typ=memty(e.type))
        if isinstance(e.place, ir.FieldPlace) and e.place.offset == 0 and e.place.base.type is CTX_STRUCT:
            # ctx.user_data (offset 0) is out of reach of preserve.static.offset, and LLVM may merge
            # its load with an equal load through another pointer (`x = ctx.user_data if c else
            # m[k]`): one instruction used with two pointer types, which the verifier refuses.
            v = fl.barrier(v)  # (found by the differential tier)
        return fl.from_mem(v, e.type)
    if isinstance(e, ir.Cast):
        return cast(fl, lower_expr(fl, e.value), e.value.type, e.type)
    if isinstance(e, ir.Binary):
        return binary(fl, e.op, lower_expr(fl, e.left), lower_expr(fl, e.right), e.type)
    if isinstance(e, ir.Unary):
        v = lower_expr(fl, e.operand)
        return b.neg(v) if e.op == "neg" else b.not_(v)
    if isinstance(e, ir.Compare):
        return compare(fl, e.op, lower_expr(fl, e.left), lower_expr(fl, e.right), e.left.type)
    if isinstance(e, ir.Logical):
        return short_circuit(fl, e)
    if isinstance(e, ir.Not):
        return b.xor(lower_expr(fl, e.operand), ll.Constant(I1, 1))
    if isinstance(e, ir.Truth):
        v = lower_expr(fl, e.operand)
        return b.icmp_unsigned("!=", v, ll.Constant(v.type, 0))
    if isinstance(e, ir.Select):
        return select(fl, e)
    if isinstance(e, ir.RefOf):
        return fl.addr(e.place)
    if isinstance(e, ir.NewAggregate):
        slot = fl.slots[e.slot]
        if id(e) not in fl.unzeroed:
            fl.zero(slot, e.type.pointee)
        return slot
    if isinstance(e, ir.MapRef):
        return map_ref(fl, e)
    if isinstance(e, ir.MapGet):
        return map_get(fl, e)
    if isinstance(e, ir.MapUpdate):
        return map_update(fl, e)
    if isinstance(e, ir.Call):
        args = [lower_expr(fl, a) for a in e.args]
        return b.call(fl.ml.funcs[id(e.func)], args)
    if isinstance(e, ir.HelperCall):
        return helper_call(fl, e)
    raise InternalCompilerError(f"cannot lower {type(e).__name__}", getattr(e, "loc", None))


def cast(fl: "FunctionLowering", v: ll.Value, src: ir.IRType, dst: ir.IRType) -> ll.Value:
    b = fl.b
    if isinstance(dst, BoolType):
        return b.icmp_unsigned("!=", v, ll.Constant(v.type, 0))
    to = llty(dst)
    if isinstance(src, BoolType):
        return b.zext(v, to)
    assert isinstance(src, IntType) and isinstance(dst, IntType)
    if src.bits == dst.bits:
        return v
    if src.bits > dst.bits:
        return b.trunc(v, to)
    return b.sext(v, to) if src.signed else b.zext(v, to)


def binary(fl: "FunctionLowering", op: str, l: ll.Value, r: ll.Value, t: IntType) -> ll.Value:
    b = fl.b
    lt = llty(t)
    if op == "+":
        return b.add(l, r)
    if op == "-":
        return b.sub(l, r)
    if op == "*":
        return b.mul(l, r)
    if op == "&":
        return b.and_(l, r)
    if op == "|":
        return b.or_(l, r)
    if op == "^":
        return b.xor(l, r)
    if op in ("<<", ">>"):
        amount = b.and_(r, ll.Constant(lt, t.bits - 1))  # BPF masks shift counts; LLVM would not
        if op == "<<":
            return b.shl(l, amount)
        return b.ashr(l, amount) if t.signed else b.lshr(l, amount)
    if op in ("/", "%"):
        return divide(fl, op, l, r, t)
    raise InternalCompilerError(f"unknown operator {op}", None)


def divide(fl: "FunctionLowering", op: str, l: ll.Value, r: ll.Value, t: IntType) -> ll.Value:
    """x/0 == 0 and x%0 == x; signed: C truncation, computed on magnitudes (no BPF sdiv before v4)."""
    b = fl.b
    lt = llty(t)
    zero, one = ll.Constant(lt, 0), ll.Constant(lt, 1)
    is_zero = b.icmp_unsigned("==", r, zero)
    safe_r = b.select(is_zero, one, r)
    if not t.signed:
        q = b.udiv(l, safe_r) if op == "/" else b.urem(l, safe_r)
        return b.select(is_zero, zero if op == "/" else l, q)
    l_neg = b.icmp_signed("<", l, zero)
    r_neg = b.icmp_signed("<", safe_r, zero)
    l_abs = b.select(l_neg, b.neg(l), l)
    r_abs = b.select(r_neg, b.neg(safe_r), safe_r)
    if op == "/":
        q = b.udiv(l_abs, r_abs)
        q = b.select(b.xor(l_neg, r_neg), b.neg(q), q)
        return b.select(is_zero, zero, q)
    rem = b.urem(l_abs, r_abs)
    rem = b.select(l_neg, b.neg(rem), rem)
    return b.select(is_zero, l, rem)


def short_circuit(fl: "FunctionLowering", e: ir.Logical) -> ll.Value:
    """`x and y` is y where x holds, else False; `x or y` is True where x holds, else y: the right
    side runs only where Python evaluates it (it may call a helper)."""
    left = lower_expr(fl, e.left)
    names = (f"{e.op}.rhs", f"{e.op}.rhs", f"{e.op}.end")   # only the right side has a block
    if e.op == "and":
        return fl.merge(left, lambda: lower_expr(fl, e.right), ll.Constant(I1, 0), names)
    return fl.merge(left, ll.Constant(I1, 1), lambda: lower_expr(fl, e.right), names)


def compare(fl: "FunctionLowering", op: str, l: ll.Value, r: ll.Value, t: ir.IRType) -> ll.Value:
    if isinstance(t, IntType) and t.signed:
        return fl.b.icmp_signed(_ICMP[op], l, r)
    return fl.b.icmp_unsigned(_ICMP[op], l, r)


def select(fl: "FunctionLowering", e: ir.Select) -> ll.Value:
    """`a if c else b` evaluates one side only (either may call a helper)."""
    b = fl.b
    c = e.cond
    if isinstance(c, ir.Compare) and {id(c.left), id(c.right)} == {id(e.then), id(e.orelse)}:
        # min(x, y) / max(x, y): each operand once, as Python does. Evaluated twice, a bound
        # (`range(min(n, 4))`) was tested on one copy and used on the other, which the verifier
        # cannot relate (found by the differential tier).
        values = {id(c.left): lower_expr(fl, c.left), id(c.right): lower_expr(fl, c.right)}
        if isinstance(c.left, ir.Const) != isinstance(c.right, ir.Const):
            # min(n, C) is how a loop gets its bound: n is made opaque, else LLVM moves n's
            # arithmetic out (`min(-a, 131) - 127` for `min(-127 - a, 4)`), and the verifier, which
            # does not know a's range, loses the bound ("8193 jumps is too complex"; found by the
            # differential tier).
            n = c.right if isinstance(c.left, ir.Const) else c.left
            values[id(n)] = fl.barrier(values[id(n)])
        test = compare(fl, c.op, values[id(c.left)], values[id(c.right)], c.left.type)
        return b.select(test, values[id(e.then)], values[id(e.orelse)])
    return fl.merge(lower_expr(fl, e.cond), lambda: lower_expr(fl, e.then), lambda: lower_expr(fl, e.orelse),
                    ("sel.then", "sel.else", "sel.end"))


# ---- maps and helpers --------------------------------------------------------------------------------
def map_ref(fl: "FunctionLowering", e: ir.MapRef) -> ll.Value:
    b = fl.b
    hit = fl.hits.pop(id(e), None)
    if hit is not None:  # looked up by the `if k in m:` around it, and found
        return hit
    p = lookup(fl, e.map, e.key)
    found = found_or_exit(fl, e.map, e.key, p)
    if e.miss_returns is not None:
        ok, miss = fl.f.append_basic_block("map.ok"), fl.f.append_basic_block("map.miss")
        b.cbranch(found, ok, miss)
        b.position_at_end(miss)
        b.ret(ll.Constant(fl.f.function_type.return_type, e.miss_returns))
        b.position_at_end(ok)
        return p
    if isinstance(found, ll.Constant) and found.constant == 1:
        return p   # cannot miss: no scratch object (one of a 4 KiB value would not fit the stack)
    # A missing key: a zeroed scratch object (reads 0, writes dropped).
    return guarded_address(fl, [found], lambda: p, e.type.pointee.size, "map")


def map_get(fl: "FunctionLowering", e: ir.MapGet) -> ll.Value:
    b = fl.b
    p = lookup(fl, e.map, e.key)
    if e.default is None:
        found = is_found(fl, p)
        # `k in m` is a value: made opaque, else the code generator merges two of them
        # (`(k in a) | (j in b)`) into `(p | q) != 0`, arithmetic on map_value_or_null pointers
        # that the verifier refuses (found by the differential tier).
        return b.icmp_unsigned("!=", fl.barrier(b.zext(found, I64)), ll.Constant(I64, 0))
    default = lower_expr(fl, e.default)
    found = found_or_exit(fl, e.map, e.key, p)
    return fl.merge(found, lambda: fl.from_mem(b.load(p, typ=memty(e.type)), e.type), default,
                    ("get.hit", "get.miss", "get.done"))


def map_update(fl: "FunctionLowering", e: ir.MapUpdate) -> ll.Value:
    mp = fl.ml.maps[id(e.map)]
    if e.value is None:
        return call_helper(fl, BPF_FUNC_map_delete_elem, I64, [mp, key_ptr(fl, e.key, e.map)])
    # A scalar key goes to the shared key temporary only after the value is computed: the value
    # may look another key up (`h[k] = h.get(j, 0)`), which reuses that temporary (found by the
    # differential tier: the update went to key j).
    place_key = isinstance(e.key, (ir.VarPlace, ir.DerefPlace, ir.FieldPlace, ir.IndexPlace))
    k = fl.addr(e.key) if place_key else lower_expr(fl, e.key)  # type: ignore[arg-type]
    if isinstance(e.value, (ir.VarPlace, ir.DerefPlace, ir.FieldPlace, ir.IndexPlace)):
        v = fl.addr(e.value)
    else:
        v = fl.temp("value", 8)
        fl.b.store(fl.to_mem(lower_expr(fl, e.value), e.value.type), v)
    if not place_key:
        tmp = fl.temp("key", 8)
        fl.b.store(fl.to_mem(k, e.key.type), tmp)  # type: ignore[union-attr]
        k = tmp
    return call_helper(fl, BPF_FUNC_map_update_elem, I64, [mp, k, v, ll.Constant(I64, 0)])


def helper_call(fl: "FunctionLowering", e: ir.HelperCall) -> ll.Value:
    abi = fl.ml.target.helpers[e.name]
    if e.name == "printk":
        return printk(fl, e, abi.id)
    lowered: list[ll.Value | None] = [None] * len(e.args)

    def arg(i: int) -> ll.Value:
        if lowered[i] is None:
            a = e.args[i]
            if isinstance(a, (ir.VarPlace, ir.DerefPlace, ir.FieldPlace, ir.IndexPlace)):
                lowered[i] = fl.addr(a)
            else:
                v = lower_expr(fl, a)
                lowered[i] = fl.b.zext(v, I64) if isinstance(v.type, ll.IntType) and v.type.width < 64 \
                    and not (isinstance(a.type, IntType) and a.type.signed) else \
                    (fl.b.sext(v, I64) if isinstance(v.type, ll.IntType) and v.type.width < 64 else v)
        return lowered[i]  # type: ignore[return-value]

    args: list[ll.Value] = []
    for kind, i in abi.args:
        if kind == "arg":
            args.append(arg(i))
        elif kind == "sizeof":
            t = e.args[i].type
            args.append(ll.Constant(I64, t.size))  # type: ignore[union-attr]
        else:
            args.append(ll.Constant(I64, i))
    r = call_helper(fl, abi.id, I64, args)
    return fl.b.trunc(r, llty(e.type)) if e.type.bits < 64 else r


def printk(fl: "FunctionLowering", e: ir.HelperCall, helper_id: int) -> ll.Value:
    data = e.data or b"\0"
    fmt_t = ll.ArrayType(I8, len(data))
    buf = fl.temp("fmt", len(data))
    fl.b.store(ll.Constant(fmt_t, bytearray(data)), buf)
    args = [buf, ll.Constant(I64, len(data))] + [lower_expr(fl, a) for a in e.args]  # type: ignore[arg-type]
    return call_helper(fl, helper_id, I64, args)
