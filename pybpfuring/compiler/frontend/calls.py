"""Typing of calls: casts, struct constructors, @bpf_function calls, helpers, min/max, map.get."""
from __future__ import annotations

import ast
import builtins
from typing import TYPE_CHECKING

from pybpfuring.lang.decorators import BpfFunction
from pybpfuring.lang import helpers as H
from pybpfuring.lang.helpers import Intrinsic
from pybpfuring.lang.loop import LOOP_INTRINSICS, RegionType
from pybpfuring.lang.structs import Ctx, Cqe, Sqe
from pybpfuring.lang.types import BOOL, ArrayType, BoolType, IntType, StructType, i64, resolve_type, u32, u64, i32
from pybpfuring.compiler.frontend import loop as frontend_loop
from pybpfuring.compiler.frontend.arrays import array_len
from pybpfuring.compiler import typed_ir as ir
from pybpfuring.compiler.ctypes_rules import convert
from pybpfuring.compiler.frontend.type_names import a_type, tname

if TYPE_CHECKING:
    from pybpfuring.compiler.frontend.builder import FunctionBuilder

_SIGNATURES: dict[str, tuple[str, ...]] = {
    # What each helper takes in the language: the ctx, scalars, or objects passed by address.
    "submit": ("ctx", "sqe"), "emit_cqe": ("ctx", "u32", "u64", "i32", "u32"),
    "reap_cqe": ("ctx", "u32", "cqe"), "copy_from_user": ("place", "u64"),
    "copy_to_user": ("u64", "place"), "ktime_get_ns": (), "get_prandom_u32": (),
}
_RESULT: dict[str, IntType] = {"ktime_get_ns": u64, "get_prandom_u32": u32}
_SCALARS = {"u32": u32, "u64": u64, "i32": i32}
_STRUCT_ARGS = {"ctx": Ctx, "sqe": Sqe, "cqe": Cqe}
MAX_PRINTK_ARGS = 3
# Intrinsics that are whole statements (compiler/frontend/generators.py), with how to write them.
_STATEMENT_FORMS = {
    "wait_cqe": "`cqe = yield wait_cqe(ctx, cq)`, on a line of its own in an @iouring_program",
    "wait": "`yield wait(ctx, cq, nr)`, on a line of its own in an @iouring_program",
    "complete": "`return complete(ctx, res)` or a statement `complete(ctx, res)`",
    "request_state": "`st = request_state(ctx, State)`, assigned to a local name",
}


def type_call(b: "FunctionBuilder", node: ast.Call, statement: bool) -> ir.Expr:
    loc = b.loc(node)
    func = node.func
    if isinstance(func, ast.Attribute) and b.is_map_node(func.value):
        return map_method(b, node, func)
    if isinstance(func, ast.Attribute) and frontend_loop.is_region_local(b, func.value):
        return frontend_loop.region_method(b, node, func)
    if isinstance(func, ast.Name) and func.id in b.scope:
        raise b.error(func, f"{func.id!r} is a local variable, not a function")
    if isinstance(func, ast.Attribute) and not b._is_module_chain(func):
        raise b.error(func, "methods are not supported", "call a module-level @bpf_function")
    obj = b.resolve_object(func)
    if node.keywords:
        raise b.error(node.keywords[0], "keyword arguments are not supported", "pass the arguments by position")
    if isinstance(obj, IntType) or obj is int:
        t = i64 if obj is int else obj
        return cast(b, node, t)
    if obj is bool:
        if len(node.args) != 1:
            raise b.error(node, "bool() takes one argument")
        return b.condition(node.args[0])
    agg = resolve_type(obj)
    if isinstance(agg, (StructType, ArrayType)):
        if node.args:
            raise b.error(node, f"{tname(agg)}() takes no arguments; it makes a zeroed object",
                          "assign the fields afterwards")
        return ir.NewAggregate(b.object_slot(agg, node), ir.RefType(agg), loc)
    if isinstance(obj, BpfFunction):
        return call_function(b, node, obj)
    if isinstance(obj, Intrinsic) and obj.name in _STATEMENT_FORMS:
        raise b.error(node, f"{obj.name}() is used as {_STATEMENT_FORMS[obj.name]}",
                      "see docs/language.md, \"Generator programs and per-request state\"")
    if obj is H.emit_cqe and len(node.args) == 5:
        check_res_narrowing(b, node.args[3])
    if isinstance(obj, Intrinsic) and obj.name in LOOP_INTRINSICS:
        return frontend_loop.loop_call(b, node, obj.name)
    if isinstance(obj, Intrinsic) and b.target.name == frontend_loop.LOOP_TARGET:
        if obj.name == "copy_to_user":
            return frontend_loop.model_copy_to_user(b, node)
        model = frontend_loop.model_helper(obj.name)
        if model is not None:   # submit/emit_cqe/reap_cqe: the model's functions on this target
            return call_function(b, node, model)
    if isinstance(obj, Intrinsic):
        return helper(b, node, obj.name)
    if obj is min or obj is max:
        return min_max(b, node, obj is min)
    if obj is range:
        raise b.error(node, "range() can only be used in a for statement")
    if obj is print:
        raise b.error(node, "print() is not available in BPF", "use printk(\"fmt %d\", x)")
    if obj is getattr(builtins, "len"):
        return array_len(b, node)
    raise b.error(func, f"{ast.unparse(func)} is not something a program can call",
                  "programs call @bpf_function functions, helpers, casts and struct constructors")


def _n_args(n: int) -> str:
    return f"{n} argument{'' if n == 1 else 's'}"


def cast(b: "FunctionBuilder", node: ast.Call, t: IntType) -> ir.Expr:
    if len(node.args) != 1:
        raise b.error(node, f"{t.name}() takes exactly one argument")
    v = b.scalar(node.args[0])
    if isinstance(v, ir.Const):
        return ir.Const(convert(v.value, t), t, b.loc(node))
    if v.type == t:
        return v
    return ir.Cast(v, t, b.loc(node))


def min_max(b: "FunctionBuilder", node: ast.Call, is_min: bool) -> ir.Expr:
    if len(node.args) != 2:
        raise b.error(node, f"{'min' if is_min else 'max'}() takes exactly two integers")
    x, y = b.scalar(node.args[0]), b.scalar(node.args[1])
    t = b.common(x.type, y.type)
    x, y = b.coerce(x, t, node), b.coerce(y, t, node)
    loc = b.loc(node)
    sel = ir.Select(ir.Compare("<" if is_min else ">", x, y, loc, BOOL), x, y, t, loc)
    if is_min:  # min(n, CONSTANT) is how a runtime count gets a compile-time bound
        for c in (x, y):
            if isinstance(c, ir.Const):
                sel.bounded_by = c.value  # type: ignore[attr-defined]
    return sel


def call_function(b: "FunctionBuilder", node: ast.Call, fn: BpfFunction) -> ir.Expr:
    loc = b.loc(node)
    if fn.kind != "function":
        deco = {"iouring": "@iouring_program", "loop_step": "@loop_step"}.get(fn.kind, fn.kind)
        raise b.error(node.func, f"{fn.name} is an {deco}; programs cannot be called",
                      "move the shared code into a @bpf_function")
    callee = b.module.function(fn, loc)
    if len(node.args) != len(callee.params):
        raise b.error(node, f"{fn.name}() takes {_n_args(len(callee.params))}, {len(node.args)} given")
    args: list[ir.Expr] = []
    for a, p in zip(node.args, callee.params):
        if isinstance(p.type, (ir.RefType, RegionType)):   # references and regions
            v = b.value(a)
            if v.type != p.type:
                raise b.error(a, f"parameter {p.name!r} of {fn.name} takes a {tname(p.type)}, "
                              f"got {a_type(v.type)}")
            args.append(v)
        else:
            args.append(b.coerce(b.scalar(a), p.type, a))
    if callee not in b.callees:
        b.callees.append(callee)
    if callee.inline:
        b.inline_calls.append((callee, loc))
    return ir.Call(callee, args, callee.return_type, loc)


def check_res_narrowing(b: "FunctionBuilder", arg: ast.expr) -> None:
    """A CQE's res is an i32: an unsigned value of 32 or 64 bits would turn large values into
    negative "errors" silently, so narrowing it must be written (`i32(x)`)."""
    v = b.scalar(arg)
    t = v.type
    if isinstance(t, IntType) and not t.signed and t.bits >= 32 and b.const_value(arg) is None:
        raise b.error(arg, f"emit_cqe's res is an i32; {ast.unparse(arg)} is a {t.name}, and "
                      "values past 2**31 would read as negative error codes",
                      f"write i32({ast.unparse(arg)}) to narrow it on purpose")


def helper(b: "FunctionBuilder", node: ast.Call, name: str) -> ir.Expr:
    loc = b.loc(node)
    if name not in b.target.helpers:
        raise b.error(node.func, f"{name}() is not available on target '{b.target.name}'",
                      f"this target runs on {b.target.runs_on}; compile for target op_bpf to use it")
    if name == "printk":
        return printk(b, node)
    sig = _SIGNATURES[name]
    if len(node.args) != len(sig):
        raise b.error(node, f"{name}() takes {_n_args(len(sig))}, {len(node.args)} given")
    args: list[ir.Expr | ir.Place] = []
    for a, kind in zip(node.args, sig):
        if kind in _SCALARS:
            args.append(b.coerce(b.scalar(a), _SCALARS[kind], a))
        elif kind == "ctx":
            v = b.value(a)
            if v.type != ir.RefType(Ctx.__bpf_struct__):
                raise b.error(a, f"the first argument of {name}() is the program's ctx")
            args.append(v)
        elif kind in _STRUCT_ARGS:
            want = _STRUCT_ARGS[kind]
            v = b.value(a)
            if v.type != ir.RefType(want.__bpf_struct__):
                raise b.error(a, f"{name}() takes a {want.__name__} here, got {a_type(v.type)}")
            args.append(v.place if isinstance(v, ir.RefOf) else ir.DerefPlace(v, v.loc))
        else:
            if not isinstance(a, (ast.Name, ast.Attribute, ast.Subscript, ast.Call)):
                raise b.error(a, f"{name}() reads or writes memory through this argument: pass a "
                              f"variable, a field or an object, not {ast.unparse(a)}")
            p = b.place(a)
            if isinstance(p.type, ir.RefType):
                raise b.error(a, "expected an object, got a reference")
            args.append(p)
    return ir.HelperCall(name, args, _RESULT.get(name, i64), loc)


def printk(b: "FunctionBuilder", node: ast.Call) -> ir.Expr:
    if not node.args or not (isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
        raise b.error(node, "printk() needs a string literal format first", 'printk("x=%d\\n", x)')
    if len(node.args) - 1 > MAX_PRINTK_ARGS:
        raise b.error(node, f"printk() takes at most {MAX_PRINTK_ARGS} values after the format")
    fmt = node.args[0].value.encode() + b"\0"
    args: list[ir.Expr | ir.Place] = [b.coerce(b.scalar(a), u64, a) for a in node.args[1:]]
    b.new_slot(ArrayType(resolve_type(u32) or u32, (len(fmt) + 3) // 4), node)  # the format on the stack
    return ir.HelperCall("printk", args, i64, b.loc(node), data=fmt)


def map_method(b: "FunctionBuilder", node: ast.Call, func: ast.Attribute) -> ir.Expr:
    info = b.map_of(func.value)
    loc = b.loc(node)
    vt = info.defn.value_type
    if func.attr != "get":
        raise b.error(func, f"maps have no method {func.attr!r}",
                      "use m[k], m[k] = v, m.get(k, default), k in m, del m[k]")
    if len(node.args) not in (1, 2):
        raise b.error(node, "m.get(key, default) takes one or two arguments")
    if not isinstance(vt, (IntType, BoolType)):
        raise b.error(node, "m.get() is for maps of integers; index a struct-valued map with m[k]")
    default = b.coerce(b.scalar(node.args[1]), vt, node.args[1]) if len(node.args) == 2 else ir.Const(0, vt, loc)
    return ir.MapGet(info, b.map_key(info, node.args[0]), default, vt, loc)
