"""Generator programs and per-request state (docs/language.md, "Generator programs").

An `@iouring_program` whose body contains `yield` is a generator: `cqe = yield wait_cqe(ctx, cq)`
suspends the request until CQ `cq` holds a CQE and resumes right after the yield with it reaped;
`yield wait(ctx, cq, nr)` until the CQ holds `nr` CQEs; `return res` completes the request with
`res`. The frontend types the body as usual, with each yield as an `ir.Yield` (the wait set and
WAIT returned) followed by the resume code (the reap). `finish` then runs the liveness pass: the
locals live after some yield get a field in the request's *frame*, a struct in an array map slot
(`ctx.req` keys it) that the prologue zeroes on the request's first run; each yield stores its live
locals there and records its index, and `ir.Resume` at the top of the body dispatches on it.

The prologue and the resume code are written as Python source and typed by the same builder (names
prefixed `__pbu_` are ours), so they go through each target's own helper lowering.
"""
from __future__ import annotations

import ast
import collections
import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pybpfuring.errors import CompileError
from pybpfuring.lang import helpers as H
from pybpfuring.lang.constants import REQUEST_SLOTS
from pybpfuring.lang.maps import ArrayMap, map_limits_problem
from pybpfuring.lang.structs import Cqe, Ctx
from pybpfuring.lang.types import BoolType, IntType, StructType, i32, layout, u32
from pybpfuring.compiler import typed_ir as ir
from pybpfuring.compiler.frontend.type_names import a_type
from pybpfuring.compiler.liveness import live_after_yields

if TYPE_CHECKING:
    from pybpfuring.compiler.frontend.builder import FunctionBuilder

# A frame bigger than this is almost surely a mistake (an array kept live across a wait); the map
# would take REQUEST_SLOTS times it.
FRAME_MAX = 2048
EBUSY = 16
EFAULT = 14


@dataclass
class Generator:
    """What the builder knows about the generator it is typing."""

    frame_type: StructType
    frame: ir.Local
    args: ir.Local | None
    map_name: str
    yields: list[ir.Yield] = field(default_factory=list)
    resume: ir.Resume | None = None
    cqe_slots: dict[str, int] = field(default_factory=dict)   # yield target name -> stack slot
    # Every yield is a top-level statement: objects made again after one share slots (object_slot).
    shares_objects: bool = False


def no_scratch(stmts: list[ir.Stmt]) -> list[ir.Stmt]:
    """Mark the map lookups of `x = MAP[ctx.req]` (checked against REQUEST_SLOTS just before) so
    that a miss, which cannot happen, returns instead of taking a scratch copy of the value on the
    stack: frames and states can be hundreds of bytes."""
    for s in stmts:
        if isinstance(s, ir.Assign) and s.value is not None:
            node: Any = s.value
            while isinstance(node, (ir.RefOf, ir.DerefPlace)):
                node = node.place if isinstance(node, ir.RefOf) else node.ref
            if isinstance(node, ir.MapRef):
                node.miss_returns = -EFAULT
    return stmts


def is_generator(b: "FunctionBuilder") -> bool:
    return inspect.isgeneratorfunction(b.bfn.py_func)


def hidden_globals(b: "FunctionBuilder") -> dict[str, Any]:
    """Our names for the code we synthesise, beside the module's own (never shadowing them)."""
    return {"__pbu_u32": u32, "__pbu_i32": i32, "__pbu_Cqe": Cqe, "__pbu_reap_cqe": H.reap_cqe,
            "__pbu_copy_from_user": H.copy_from_user, "__pbu_SLOTS": REQUEST_SLOTS}


def with_hidden_globals(b: "FunctionBuilder") -> collections.ChainMap:
    return collections.ChainMap(hidden_globals(b), b.globals)


def synth(b: "FunctionBuilder", source: str, at: ast.AST, raw_returns: bool = False,
          **holes: ast.expr) -> list[ir.Stmt]:
    """Type `source` as statements of the function, located at `at`; each `HOLE_x` name in it is
    replaced by the user's expression `holes["x"]` (which keeps its own location)."""
    tree = ast.parse(source)

    class Fill(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.AST:
            if node.id.startswith("HOLE_"):
                return holes[node.id[5:]]
            return node

    tree = Fill().visit(tree)
    for node in ast.walk(tree):
        if isinstance(node, (ast.stmt, ast.expr)) and not any(node is h for h in holes.values()) \
                and not getattr(node, "_pbu_user", False):
            node.lineno, node.col_offset = getattr(at, "lineno", 1), getattr(at, "col_offset", 0)
            node.end_lineno, node.end_col_offset = node.lineno, node.col_offset
    for h in holes.values():
        for node in ast.walk(h):
            node._pbu_user = True  # type: ignore[attr-defined]
    saved, b.raw_returns = b.raw_returns, raw_returns
    try:
        return b.block(tree.body)
    finally:
        b.raw_returns = saved


# ---- the start of a generator: parameters and prologue -----------------------------------------
def generator_params(b: "FunctionBuilder", node: ast.FunctionDef) -> None:
    """A generator takes `(ctx: Ctx)` or `(ctx: Ctx, args: T)`: `args` is a T the prologue copies
    from user memory at ctx.user_data on the first run and keeps in the frame."""
    if not b.is_program:
        raise b.error(node, "only an @iouring_program can wait with yield",
                      "a @bpf_function runs inside one run of its caller; move the yield there")
    n = len(node.args.args)
    if n not in (1, 2):
        raise b.error(node, "a generator program takes (ctx: Ctx) or (ctx: Ctx, args: T)",
                      "T is a @struct the request's user_data points at")


def split_args_param(b: "FunctionBuilder", params: list[ir.Local]) -> tuple[list[ir.Local], ir.Local | None]:
    if len(params) == 1:
        return params, None
    args = params[1]
    if not (isinstance(args.type, ir.RefType) and isinstance(args.type.pointee, StructType)):
        raise CompileError(f"the second parameter of a generator program is a @struct it reads "
                           f"from ctx.user_data, not {a_type(args.type)}", args.loc,
                           "declare it `args: Args` with `@struct class Args: ...`")
    args.is_param = False   # not an argument of the BPF function: the prologue binds it
    return params[:1], args


def prologue(b: "FunctionBuilder", args: ir.Local | None) -> tuple[Generator, list[ir.Stmt]]:
    node = b.node
    ctx = node.args.args[0].arg
    members: list[tuple[str, Any]] = [("state", u32)]
    if args is not None:
        members.append(("args", args.type.pointee))  # type: ignore[union-attr]
    frame_type = layout(f"{b.bfn.name}__frame", members, module=b.bfn.py_func.__module__)
    map_name = f"{b.bfn.name}__frames"
    b.globals[map_name] = ArrayMap(frame_type, REQUEST_SLOTS)   # into the ChainMap's own layer
    frame = b.declare("__pbu_frame", ir.RefType(frame_type), node)
    gen = Generator(frame_type, frame, args, map_name, shares_objects=yields_are_top_level(node))
    b.generator = gen      # from here on, `return x` completes the request with x
    # A slot past the table (more requests in flight than REQUEST_SLOTS) fails the request.
    stmts = no_scratch(synth(b, f"if {ctx}.req >= __pbu_SLOTS:\n    return -{EBUSY}\n"
                                f"__pbu_frame = {map_name}[{ctx}.req]\n", node))
    first = synth(b, f"if {ctx}.runs == 0:\n    pass\n", node)
    assert isinstance(first[0], ir.If)
    loc = b.loc(node)
    frame_place = ir.DerefPlace(ir.Load(ir.VarPlace(frame, loc), frame.type, loc), loc)
    first[0].then.append(ir.Assign(frame_place, None, loc))   # a fresh request: a zeroed frame
    if args is not None:
        first[0].then.extend(synth(b, f"__pbu_r = __pbu_copy_from_user(__pbu_frame.args, {ctx}.user_data)\n"
                                      "if __pbu_r != 0:\n    return __pbu_r\n", node))
    stmts += first
    if args is not None:
        b.scope[args.name] = args
        stmts += synth(b, f"{args.name} = __pbu_frame.args\n", node)
    state = synth(b, "__pbu_state = __pbu_frame.state\n", node)
    stmts += state
    gen.resume = ir.Resume(ir.Load(state[0].place, u32, loc), {}, loc)  # type: ignore[union-attr]
    stmts.append(gen.resume)
    return gen, stmts


# ---- yield and return ----------------------------------------------------------------------------
def yields_are_top_level(node: ast.FunctionDef) -> bool:
    """Every yield of the function is a statement of its body's top level (not inside an if, a
    loop or a with): then each run is the straight code between two yields (object_slot)."""
    top = {id(s.value) for s in node.body if isinstance(s, (ast.Expr, ast.Assign)) and isinstance(s.value, ast.Yield)}
    return all(id(n) in top for n in ast.walk(node) if isinstance(n, ast.Yield))


def yield_stmt(b: "FunctionBuilder", value: ast.Yield, target: ast.expr | None,
               stmt: ast.stmt) -> list[ir.Stmt]:
    gen: Generator | None = b.generator
    call = value.value
    obj = b.resolve_object(call.func) if isinstance(call, ast.Call) and \
        isinstance(call.func, (ast.Name, ast.Attribute)) and not b.is_local(call.func) else None
    if gen is None or not isinstance(call, ast.Call) or obj not in (H.wait_cqe, H.wait):
        raise b.error(value, "a program yields wait_cqe(ctx, cq) or wait(ctx, cq, nr)",
                      "write `cqe = yield wait_cqe(ctx, 1)` or `yield wait(ctx, 1, n)`")
    is_cqe = obj is H.wait_cqe
    want = 2 if is_cqe else 3
    if len(call.args) != want or call.keywords:
        raise b.error(call, f"{obj.name}() takes {want} arguments, {len(call.args)} given",
                      "wait_cqe(ctx, cq) or wait(ctx, cq, nr)")
    ctx = b.node.args.args[0].arg
    if b.value(call.args[0]).type != ir.RefType(Ctx.__bpf_struct__):  # type: ignore[attr-defined]
        raise b.error(call.args[0], f"the first argument of {obj.name}() is the program's ctx")
    if not is_cqe and target is not None:
        raise b.error(value, "wait() gives no value: the program reaps the CQEs itself",
                      "write `yield wait(ctx, cq, nr)` as a statement, or `cqe = yield wait_cqe(ctx, cq)`")
    if target is not None and not isinstance(target, ast.Name):
        raise b.error(target, "the value of a yield goes to a plain local name", "`cqe = yield wait_cqe(ctx, 1)`")
    loc = b.loc(stmt)
    out = synth(b, "__pbu_cq = __pbu_u32(HOLE_cq)\n", value, cq=call.args[1])
    nr = "1"
    if not is_cqe:
        out += synth(b, "__pbu_nr = __pbu_u32(HOLE_nr)\n", value, nr=call.args[2])
        nr = "__pbu_nr"
    suspend = synth(b, f"{ctx}.wait_idx = __pbu_cq\n{ctx}.wait_nr = {nr}\n", value)
    suspend.append(_ret(b, 1, loc))   # WAIT
    y = ir.Yield(len(gen.yields) + 1, [], suspend, loc)
    gen.yields.append(y)
    out.append(y)
    b.segment += 1
    if is_cqe:
        name = target.id if target is not None else "__pbu_cqe"   # type: ignore[union-attr]
        local = b.scope.get(name)
        if local is not None and local.type != ir.RefType(Cqe.__bpf_struct__):  # type: ignore[attr-defined]
            raise b.error(target or value, f"{name!r} is {a_type(local.type)}; a yield of wait_cqe gives a Cqe",
                          "use a new name for the CQE")
        # One stack Cqe per name for all yields (the kernel backend's programs have ~220 bytes).
        cqe_t = Cqe.__bpf_struct__  # type: ignore[attr-defined]
        if local is None:
            local = b.declare(name, ir.RefType(cqe_t), target or value)
        if name not in gen.cqe_slots:
            gen.cqe_slots[name] = b.new_slot(cqe_t, target or value)
        out.append(ir.Assign(ir.VarPlace(local, loc), ir.NewAggregate(gen.cqe_slots[name], ir.RefType(cqe_t), loc), loc))
        # Reaped on resume; if another request took the CQE first, wait again (the frame is intact).
        out += synth(b, f"if __pbu_reap_cqe({ctx}, __pbu_cq, {name}) != 0:\n"
                        f"    {ctx}.wait_idx = __pbu_cq\n    {ctx}.wait_nr = 1\n    return 1\n",
                     target or value, raw_returns=True)
    return out


def _ret(b: "FunctionBuilder", value: int, loc: Any) -> ir.Return:
    """`return OK` / `return WAIT` in the function's own return type (i32 for a program, the
    annotation when its body is compiled as a function for the kernel backend)."""
    t = b.return_type if isinstance(b.return_type, IntType) else i32
    return ir.Return(ir.Const(value, t, loc), loc)


def result_return(b: "FunctionBuilder", node: ast.Return) -> list[ir.Stmt]:
    """`return res` in a generator: the request completes with res (ctx.res = res; return OK)."""
    ctx = b.node.args.args[0].arg
    if node.value is None:
        return synth(b, "return 0\n", node)
    return synth(b, f"{ctx}.res = __pbu_i32(HOLE_v)\n", node, v=node.value) + \
        [_ret(b, 0, b.loc(node))]


# ---- after the body: the frame -------------------------------------------------------------------
def finish(b: "FunctionBuilder", gen: Generator, body: list[ir.Stmt]) -> None:
    """Decide the frame's fields from liveness, fill each yield's save and the resume dispatch."""
    live = live_after_yields(body)
    keep_out = {gen.frame, gen.args} | {p for p in b.locals if p.is_param}
    slots: dict[int, str] = {}
    members: list[tuple[str, Any]] = [(n, f.type) for n, f in gen.frame_type.fields.items()]
    names = {n for n, _ in members}
    order = {id(l): i for i, l in enumerate(b.locals)}
    for y in gen.yields:
        for local in sorted(live.get(id(y), frozenset()) - keep_out, key=lambda l: order.get(id(l), 0)):
            if not isinstance(local.type, (IntType, BoolType)):
                raise CompileError(
                    f"{local.name!r} ({a_type(local.type)}) is used after the yield at line "
                    f"{y.loc.line}, but a reference cannot be kept across a wait: the object it "
                    "points at (on the stack, or a map value) is gone when the request resumes",
                    local.loc, "copy the fields you need into scalar locals before the yield, or "
                    "make the object again after it (keep state in request_state(ctx, T) or args)")
            if id(local) not in slots:
                fname = _field_name(local.name, names)
                names.add(fname)
                slots[id(local)] = fname
                members.append((fname, local.type))
    final = layout(gen.frame_type.name, members, module=gen.frame_type.module)
    gen.frame_type.fields, gen.frame_type.size, gen.frame_type.align = final.fields, final.size, final.align
    if final.size > FRAME_MAX:
        kept = ", ".join(n for n, _ in members[1:])
        raise CompileError(f"the frame of {b.bfn.name} needs {final.size} bytes (> {FRAME_MAX}): "
                           f"it keeps {kept}", b.loc(b.node),
                           "keep fewer values live across yields, or keep big ones in a map")
    problem = map_limits_problem(2, 4, final.size, REQUEST_SLOTS)
    if problem:
        raise CompileError(f"the frames of {b.bfn.name}: {problem}", b.loc(b.node))
    assert gen.resume is not None
    for y in gen.yields:
        loc = y.loc
        fp = lambda name: _frame_field(gen, name, loc)  # noqa: E731
        saved = [l for l in b.locals if id(l) in slots and l in live.get(id(y), frozenset())]
        y.save = [ir.Assign(fp(slots[id(l)]), ir.Load(ir.VarPlace(l, loc), l.type, loc), loc) for l in saved]
        y.save.append(ir.Assign(fp("state"), ir.Const(y.index, u32, loc), loc))
        gen.resume.restore[y.index] = [
            ir.Assign(ir.VarPlace(l, loc), ir.Load(fp(slots[id(l)]), l.type, loc), loc) for l in saved]


def _frame_field(gen: Generator, name: str, loc: Any) -> ir.FieldPlace:
    f = gen.frame_type.fields[name]
    base = ir.DerefPlace(ir.Load(ir.VarPlace(gen.frame, loc), gen.frame.type, loc), loc)
    return ir.FieldPlace(base, name, f.offset, f.type, loc)


def _field_name(local_name: str, taken: set[str]) -> str:
    base = "v_" + "".join(c if c.isalnum() or c == "_" else "_" for c in local_name)
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    return name


# ---- classic-style per-request state and results ---------------------------------------------
def intrinsic_call(b: "FunctionBuilder", node: ast.expr | None, which: Any) -> ast.Call | None:
    """`node` if it is a call of the intrinsic `which` (complete, request_state), else None."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute))
            and not b.is_local(node.func)):
        return None
    try:
        return node if b.resolve_object(node.func) is which else None
    except CompileError:
        return None


def _ctx_arg(b: "FunctionBuilder", call: ast.Call, name: str, nargs: int) -> str:
    if not b.is_program:
        raise b.error(call, f"{name}() belongs to the program itself, not to a @bpf_function",
                      "call it in the @iouring_program")
    if len(call.args) != nargs or call.keywords:
        raise b.error(call, f"{name}() takes {nargs} arguments, {len(call.args)} given")
    if b.value(call.args[0]).type != ir.RefType(Ctx.__bpf_struct__):  # type: ignore[attr-defined]
        raise b.error(call.args[0], f"the first argument of {name}() is the program's ctx")
    return b.node.args.args[0].arg


def complete_stmts(b: "FunctionBuilder", call: ast.Call, returning: bool) -> list[ir.Stmt]:
    """`complete(ctx, res)`: the request's result; with `return`, the request completes now."""
    ctx = _ctx_arg(b, call, "complete", 2)
    out = synth(b, f"{ctx}.res = __pbu_i32(HOLE_v)\n", call, v=call.args[1])
    if returning:
        out.append(_ret(b, 0, b.loc(call)))   # OK
    return out


def request_state_stmts(b: "FunctionBuilder", target: ast.expr, call: ast.Call,
                        node: ast.stmt) -> list[ir.Stmt]:
    """`st = request_state(ctx, T)`: a T in an array map slot keyed by ctx.req, zeroed on the
    request's first run; a request past REQUEST_SLOTS in flight completes with -EBUSY."""
    ctx = _ctx_arg(b, call, "request_state", 2)
    if not isinstance(target, ast.Name):
        raise b.error(target, "request_state() is bound to a plain local name", "`st = request_state(ctx, State)`")
    t = b.resolve_object(call.args[1]) if isinstance(call.args[1], (ast.Name, ast.Attribute)) else None
    st = getattr(t, "__bpf_struct__", None)
    if not isinstance(st, StructType):
        raise b.error(call.args[1], "request_state() takes a @struct class", "`request_state(ctx, State)`")
    map_name = f"{b.bfn.name}__{st.name}"
    existing = b.globals.get(map_name)
    if existing is None or existing.value_type is not st:
        b.globals[map_name] = ArrayMap(st, REQUEST_SLOTS)
    loc = b.loc(node)
    out = no_scratch(synth(b, f"if {ctx}.req >= __pbu_SLOTS:\n    {ctx}.res = -{EBUSY}\n    return 0\n"
                              f"{target.id} = {map_name}[{ctx}.req]\nif {ctx}.runs == 0:\n    pass\n",
                           node, raw_returns=True))
    local = b.scope[target.id]
    first = out[-1]
    assert isinstance(first, ir.If)
    first.then.append(ir.Assign(ir.DerefPlace(ir.Load(ir.VarPlace(local, loc), local.type, loc), loc), None, loc))
    return out
