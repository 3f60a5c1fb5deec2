"""Typing of what the Linux >= 7.1 loop target adds: `@loop_step` parameters, module-level
`ReadOnly`/`Global` variables, the kfuncs `get_region`/`submit_sqes`, and region methods."""
from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from pybpfuring.lang.globals import GlobalDecl
from pybpfuring.lang.loop_model import MODEL_HELPERS, model_put_user
from pybpfuring.lang.loop import REGION_SCALARS, IoRingCtx, LoopParams, Region, RegionType
from pybpfuring.lang.types import BOOL, INT_TYPES, StructType, i32, resolve_type, u32, u64
from pybpfuring.compiler import typed_ir as ir

if TYPE_CHECKING:
    from pybpfuring.compiler.frontend.builder import FunctionBuilder

LOOP_TARGET = "bpf_ops"
_CTX = ir.RefType(IoRingCtx.__bpf_struct__)  # type: ignore[attr-defined]
_LP = ir.RefType(LoopParams.__bpf_struct__)  # type: ignore[attr-defined]


def check_loop_params(b: "FunctionBuilder", node: ast.FunctionDef, params: list[ir.Local]) -> None:
    """A loop_step program is `def step(ctx: IoRingCtx, lp: LoopParams) -> int`."""
    if [p.type for p in params] != [_CTX, _LP]:
        raise b.error(node, "a @loop_step program takes (ctx: IoRingCtx, lp: LoopParams)",
                      "write `def step(ctx: IoRingCtx, lp: LoopParams) -> int:`")
    if b.target.name != LOOP_TARGET:
        raise b.error(node, f"@loop_step programs run in the Linux >= 7.1 io_uring loop: compile "
                      f"them for target '{LOOP_TARGET}', not '{b.target.name}'")


# ---- globals ----------------------------------------------------------------------------------------
def global_place(b: "FunctionBuilder", node: ast.expr, decl: GlobalDecl, name: str) -> ir.DerefPlace:
    loc = b.loc(node)
    info = b.module.global_info(decl, name, loc)
    return ir.DerefPlace(ir.GlobalRef(info, ir.RefType(decl.type), loc), loc)


def name_of_decl(b: "FunctionBuilder", decl: GlobalDecl, fallback: str) -> str:
    """The ELF name of a global is the module variable holding it (as for maps)."""
    for gname, gval in b.globals.items():
        if gval is decl:
            return gname
    return fallback


def global_statement(b: "FunctionBuilder", node: ast.Global) -> None:
    """`global x` makes `x = ...` in this function write the module's `Global` x."""
    for name in node.names:
        obj = b.globals.get(name)
        if isinstance(obj, GlobalDecl) and obj.read_only:
            raise b.error(node, f"{name!r} is a ReadOnly global: programs cannot write it",
                          "set it from user space before load (obj.rodata[name] = v), or "
                          "declare it with Global(...)")
        if not isinstance(obj, GlobalDecl):
            raise b.error(node, f"'global {name}' needs a module-level `{name} = Global(type)`",
                          "state that outlives a run lives in a Global or a map")
        if name in b.scope:
            raise b.error(node, f"{name!r} is already a local variable here",
                          "put the global statement at the top of the function")
        b.global_names.add(name)


def global_target(b: "FunctionBuilder", name: str, node: ast.AST) -> ir.DerefPlace | None:
    """The place a plain-name assignment writes, if the name was declared `global`."""
    if name not in b.global_names:
        return None
    return global_place(b, node, b.globals[name], name)  # type: ignore[arg-type]


# ---- kfuncs -----------------------------------------------------------------------------------------
def loop_call(b: "FunctionBuilder", node: ast.Call, name: str) -> ir.Expr:
    loc = b.loc(node)
    if b.target.name != LOOP_TARGET:
        raise b.error(node.func, f"{name}() is a kfunc of the Linux >= 7.1 io_uring loop; it is "
                      f"available on target '{LOOP_TARGET}' only, not '{b.target.name}'")
    want = 3 if name == "get_region" else 2
    if len(node.args) != want or node.keywords:
        sig = "get_region(ctx, region_id, size)" if want == 3 else "submit_sqes(ctx, nr)"
        raise b.error(node, f"{name}() takes {want} positional arguments: {sig}")
    ctx = b.value(node.args[0])
    if ctx.type != _CTX:
        raise b.error(node.args[0], f"the first argument of {name}() is the loop's ctx "
                      "(the IoRingCtx parameter)")
    if name == "submit_sqes":
        nr = b.coerce(b.scalar(node.args[1]), u32, node.args[1])
        return ir.KfuncCall("bpf_io_uring_submit_sqes", [ctx, nr], i32, loc)
    region_id = b.coerce(b.scalar(node.args[1]), u32, node.args[1])
    size = b.coerce(b.scalar(node.args[2]), u64, node.args[2])
    if isinstance(size, ir.Const) and size.value == 0:
        raise b.error(node.args[2], "a region of size 0 gives nothing to read or write",
                      "pass the bytes the program uses, e.g. sq_entries * SQE_SIZE")
    return ir.KfuncCall("bpf_io_uring_get_region", [ctx, region_id, size], Region, loc)


# ---- regions ----------------------------------------------------------------------------------------
def is_region_local(b: "FunctionBuilder", node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id in b.scope \
        and isinstance(b.scope[node.id].type, RegionType)


def region_truth(e: ir.Expr) -> ir.Expr:
    return ir.RegionValid(e, e.loc, BOOL)


def region_method(b: "FunctionBuilder", node: ast.Call, func: ast.Attribute) -> ir.Expr:
    """`r.load_u32(off)`, `r.store_u64(off, v)`, `r.view(Sqe, off)`."""
    loc = b.loc(node)
    region = b.value(func.value)
    method = func.attr
    if node.keywords:
        raise b.error(node.keywords[0].value, "keyword arguments are not supported")
    if method == "view":
        if len(node.args) != 2:
            raise b.error(node, "view() takes a struct type and a byte offset: r.view(Sqe, off)")
        t = resolve_type(b.resolve_annotation_object(node.args[0]))
        if not isinstance(t, StructType) or t.size == 0:
            raise b.error(node.args[0], "view() takes a struct type (Sqe, Cqe, or a @struct class)")
        off = b.coerce(b.scalar(node.args[1]), u64, node.args[1])
        return ir.RegionView(region, off, ir.RefType(t), loc)
    kind, _, tname = method.partition("_")
    if kind not in ("load", "store") or tname not in REGION_SCALARS:
        raise b.error(func, f"a Region has no method {method!r}",
                      "use load_<t>(off), store_<t>(off, v) with t in "
                      f"{', '.join(REGION_SCALARS)}, or view(StructType, off)")
    t = INT_TYPES[tname]
    want = 1 if kind == "load" else 2
    if len(node.args) != want:
        raise b.error(node, f"{method}() takes {want} argument{'s' if want > 1 else ''}")
    off = b.coerce(b.scalar(node.args[0]), u64, node.args[0])
    place = ir.DerefPlace(ir.RegionView(region, off, ir.RefType(t), loc), loc)
    if kind == "load":
        return ir.Load(place, t, loc)
    value = b.coerce(b.scalar(node.args[1]), t, node.args[1])
    return ir.StoreExpr(place, value, loc)


def region_annotation(obj: object) -> RegionType | None:
    return Region if obj is Region or obj is RegionType else None


def model_helper(name: str):
    """The language-level implementation of a model helper on target bpf_ops, or None."""
    return MODEL_HELPERS.get(name)


def model_copy_to_user(b: "FunctionBuilder", node: ast.Call) -> ir.Expr:
    """`copy_to_user(uptr, x)` on bpf_ops: x's bytes staged in words for the scheduler to write
    into the MEM region (docs/kernel.md); nonzero if any word could not be staged."""
    loc = b.loc(node)
    if len(node.args) != 2 or node.keywords:
        raise b.error(node, "copy_to_user() takes 2 arguments: copy_to_user(uptr, x)")
    uptr = b.coerce(b.scalar(node.args[0]), u64, node.args[0])
    place = b.place(node.args[1])
    size = place.type.size  # type: ignore[union-attr]
    callee = b.module.function(model_put_user, loc)
    if callee not in b.callees:
        b.callees.append(callee)
    b.inline_calls.append((callee, loc))
    result: ir.Expr | None = None
    off = 0
    while off < size:
        width = next(w for w in (8, 4, 2, 1) if size - off >= w)
        t = INT_TYPES[f"u{width * 8}"]
        word = ir.Load(ir.DerefPlace(ir.ByteRef(place, off, ir.RefType(t), loc), loc), t, loc)
        addr = ir.Binary("+", uptr, ir.Const(off, u64, loc), u64, loc)
        args: list[ir.Expr] = [addr, b.coerce(word, u64, node), ir.Const(width, u32, loc)]
        call = ir.Call(callee, args, callee.return_type, loc)
        result = call if result is None else ir.Binary("|", result, call, callee.return_type, loc)  # type: ignore[arg-type]
        off += width
    assert result is not None
    return result
