"""Frontend: Python AST -> typed IR, with every check the language makes, each error located.

`ModuleBuilder` compiles a set of decorated functions and everything they call into one
`TypedModule`; `FunctionBuilder` types one function. Expressions are typed in `frontend/expr.py`
(a mixin), statements here.
"""
from __future__ import annotations

import ast
import inspect
import textwrap
from typing import Any

from pybpfuring.errors import CompileError, InternalCompilerError, SourceLocation
from pybpfuring.lang import helpers as H
from pybpfuring.lang.decorators import BpfFunction
from pybpfuring.lang.globals import GlobalDecl
from pybpfuring.lang.maps import MapDef
from pybpfuring.lang.structs import Ctx
from pybpfuring.lang.types import ArrayType, BoolType, IntType, StructType, ValueType, i32, i64, resolve_type
from pybpfuring.compiler import typed_ir as ir
from pybpfuring.compiler.ctypes_rules import convert
from pybpfuring.compiler.frontend import arrays as frontend_arrays
from pybpfuring.compiler.frontend import generators as frontend_gen
from pybpfuring.compiler.frontend import loop as frontend_loop
from pybpfuring.compiler.frontend.expr import ExprTyper
from pybpfuring.compiler.frontend.type_names import a_type, tname
from pybpfuring.compiler import loops
from pybpfuring.compiler.loops import prove_while_bound
from pybpfuring.compiler.targets import Target
from pybpfuring.abi.bpf2021 import STACK_SIZE

# AST statement kinds outside the language, with what to say.
_UNSUPPORTED_STMTS: dict[type, tuple[str, str | None]] = {
    ast.Try: ("try/except is not supported", "BPF has no exceptions: check return codes instead"),
    ast.With: ("with statements are not supported", None),
    ast.AsyncWith: ("async with is not supported", None),
    ast.AsyncFor: ("async for is not supported", None),
    ast.AsyncFunctionDef: ("nested functions are not supported", "declare it at module level with @bpf_function"),
    ast.FunctionDef: ("nested functions are not supported", "declare it at module level with @bpf_function"),
    ast.ClassDef: ("classes cannot be declared inside a program", "declare structs at module level with @struct"),
    ast.Raise: ("raise is not supported", "BPF has no exceptions: return an error code"),
    ast.Import: ("import inside a program is not supported", "import at module level"),
    ast.ImportFrom: ("import inside a program is not supported", "import at module level"),
    ast.Global: ("global statements are not supported", "state that outlives a run lives in a map"),
    ast.Nonlocal: ("nonlocal statements are not supported", None),
    ast.Assert: ("assert is not supported", "use if/return with an error code"),
}


class ModuleBuilder:
    """Types a group of functions for one target, sharing maps and callees between them."""

    def __init__(self, target: Target):
        self.target = target
        self.functions: dict[int, ir.TypedFunction] = {}
        self.order: list[ir.TypedFunction] = []
        self.maps: dict[int, ir.MapInfo] = {}
        self.globals: dict[int, ir.GlobalInfo] = {}
        self._in_progress: list[BpfFunction] = []

    def function(self, bfn: BpfFunction, call_loc: SourceLocation | None = None) -> ir.TypedFunction:
        key = id(bfn)
        if key in self.functions:
            return self.functions[key]
        if bfn in self._in_progress:
            chain = " -> ".join(f.name for f in self._in_progress[self._in_progress.index(bfn):])
            raise CompileError(f"recursion is not allowed ({chain} -> {bfn.name})", call_loc,
                               "BPF programs cannot recurse: rewrite it as a bounded loop")
        self._in_progress.append(bfn)
        try:
            tf = FunctionBuilder(bfn, self).build()
        finally:
            self._in_progress.pop()
        self.functions[key] = tf
        self.order.append(tf)
        return tf

    def map_info(self, defn: MapDef, name: str, loc: SourceLocation) -> ir.MapInfo:
        info = self.maps.get(id(defn))
        if info is None:
            info = ir.MapInfo(name, defn, loc)
            if any(m.name == name for m in self.maps.values()):
                raise CompileError(f"two different maps are both named {name!r}", loc,
                                   "give each module-level map a distinct name")
            self.maps[id(defn)] = info
        return info

    def global_info(self, decl: object, name: str, loc: SourceLocation) -> ir.GlobalInfo:
        """One GlobalInfo per ReadOnly/Global declaration, named after its module variable."""
        info = self.globals.get(id(decl))
        if info is None:
            if any(g.name == name for g in self.globals.values()) or \
                    any(m.name == name for m in self.maps.values()):
                raise CompileError(f"two different globals or maps are both named {name!r}", loc,
                                   "give each module-level variable a distinct name")
            info = ir.GlobalInfo(name, decl, loc)
            self.globals[id(decl)] = info
        return info

    def module(self, license: str = "GPL") -> ir.TypedModule:
        programs = [f for f in self.order if f.kind != "function"]
        callees = [f for f in self.order if f.kind == "function"]
        return ir.TypedModule(programs + callees, list(self.maps.values()), self.target.name, license,
                              list(self.globals.values()))


def _source_of(bfn: BpfFunction) -> tuple[ast.FunctionDef, str, int, int]:
    """The function's AST with the file, line offset and column offset to map locations back."""
    fn = bfn.py_func
    try:
        file = inspect.getsourcefile(fn) or fn.__code__.co_filename
        lines, first = inspect.getsourcelines(fn)
    except (OSError, TypeError) as e:
        raise CompileError(f"cannot read the source of {bfn.name}: {e}", None,
                           "programs must be defined in a .py file, not typed at an interactive prompt")
    raw = "".join(lines)
    dedented = textwrap.dedent(raw)
    col_offset = len(lines[0]) - len(lines[0].lstrip()) if dedented != raw else 0
    tree = ast.parse(dedented)
    node = tree.body[0]
    if not isinstance(node, ast.FunctionDef):
        raise CompileError(f"{bfn.name} is not a plain function", SourceLocation(file, first))
    return node, file, first - 1, col_offset


class FunctionBuilder(ExprTyper):
    def __init__(self, bfn: BpfFunction, module: ModuleBuilder):
        self.bfn = bfn
        self.module = module
        self.target = module.target
        self.node, self.file, self.line_offset, self.col_offset = _source_of(bfn)
        self.globals: Any = bfn.globals
        # An @iouring_program, or its body compiled as a function for the kernel backend.
        self.is_program = bfn.kind == "iouring" or getattr(bfn, "program_body", False)
        if self.is_program:   # room for the names of the code frontend_gen synthesises
            self.globals = frontend_gen.with_hidden_globals(self)
        self.generator: frontend_gen.Generator | None = None
        self.raw_returns = False   # `return x` in synthesised code: x is the BPF return value
        self.ctx_ext = False       # uses the ctx fields past the 2021 struct (res, req, runs)
        self.scope: dict[str, ir.Local] = {}
        self.locals: list[ir.Local] = []
        self.slots: list[ValueType] = []
        self.slot_locs: list[SourceLocation] = []
        self.segment = 0   # top-level yields passed so far (a generator's runs: object_slot)
        self.object_pool: list[list[Any]] = []  # [type, slot, segment of its last use]
        self.callees: list[ir.TypedFunction] = []
        self.inline_calls: list[tuple[ir.TypedFunction, SourceLocation]] = []
        self.maps_used: list[ir.MapInfo] = []
        self.global_names: set[str] = set()  # names of `global x` statements (Global variables)
        self.loop_depth = 0
        self.range_facts: dict[str, int] = {}  # name -> upper bound, from `if n > K: return` (loops.py)
        self.return_type: ir.IRType = None
        self.current: ast.AST = self.node

    # ---- locations and errors -------------------------------------------------------------------
    def loc(self, node: ast.AST | None = None) -> SourceLocation:
        node = node or self.current
        line = getattr(node, "lineno", self.node.lineno)
        col = getattr(node, "col_offset", 0)
        return SourceLocation(self.file, line + self.line_offset, col + self.col_offset)

    def error(self, node: ast.AST, message: str, hint: str | None = None) -> CompileError:
        return CompileError(message, self.loc(node), hint)

    # ---- the function ---------------------------------------------------------------------------
    def build(self) -> ir.TypedFunction:
        node = self.node
        is_gen = frontend_gen.is_generator(self)
        if is_gen:
            frontend_gen.generator_params(self, node)
        params = self._params(node)
        self.return_type = self._return_type(node)
        try:
            prologue: list[ir.Stmt] = []
            if is_gen:
                params, args = frontend_gen.split_args_param(self, params)
                self.generator, prologue = frontend_gen.prologue(self, args)
            body = self.block(node.body)
            if self.generator is not None:
                frontend_gen.finish(self, self.generator, body)
                body = prologue + body
        except CompileError:
            raise
        except RecursionError:
            raise self.error(self.current, "expression nested too deeply") from None
        except Exception as e:  # a bug of ours: report it as such, at the line being compiled
            raise InternalCompilerError(f"{type(e).__name__}: {e}", self.loc(self.current)) from e
        stack_size = self._check_stack()
        return ir.TypedFunction(
            name=self.bfn.name, kind=self.bfn.kind, params=params, return_type=self.return_type,
            body=body, loc=self.loc(node), source_file=self.file, inline=self.bfn.inline,
            verified_alone=getattr(self.bfn, "verified_alone", False), ctx_ext=self.ctx_ext,
            program_body=self.is_program,
            locals=self.locals, slots=self.slots, callees=self.callees, maps=self.maps_used,
            end_line=(node.end_lineno or node.lineno) + self.line_offset, stack_size=stack_size)

    def _params(self, node: ast.FunctionDef) -> list[ir.Local]:
        args = node.args
        if args.vararg or args.kwarg or args.kwonlyargs or args.posonlyargs or args.defaults:
            raise self.error(node, "only plain positional parameters are supported",
                             "remove *args, **kwargs, keyword-only parameters and defaults")
        if self.bfn.kind == "iouring" and len(args.args) != 1 and not frontend_gen.is_generator(self):
            raise self.error(node, "an @iouring_program takes exactly one parameter, its context",
                             "write `def prog(ctx: Ctx) -> int:`")
        if not self.bfn.inline and len(args.args) > 5:
            raise self.error(node, f"too many parameters ({len(args.args)}); a BPF-to-BPF call passes at most 5",
                             "pass a struct by reference instead, or make the function inline")
        params = []
        for a in args.args:
            if a.annotation is None:
                if self.bfn.kind == "iouring":
                    ptype: ir.IRType = ir.RefType(Ctx.__bpf_struct__)
                else:
                    raise self.error(a, f"parameter {a.arg!r} needs a type annotation",
                                     "e.g. `x: u32` or `sqe: Sqe`")
            else:
                ptype = self.annotation(a.annotation)
                if isinstance(ptype, (StructType, ArrayType)):
                    ptype = ir.RefType(ptype)  # aggregates are passed by reference
            local = ir.Local(a.arg, ptype, self.loc(a), is_param=True)
            self.scope[a.arg] = local
            self.locals.append(local)
            params.append(local)
        if self.bfn.kind == "iouring":
            if params[0].type != ir.RefType(Ctx.__bpf_struct__):
                raise self.error(args.args[0], "the parameter of an @iouring_program must be `ctx: Ctx`")
        if self.bfn.kind == "loop_step":
            frontend_loop.check_loop_params(self, node, params)
        return params

    def _return_type(self, node: ast.FunctionDef) -> ir.IRType:
        if self.bfn.kind in ("iouring", "loop_step"):
            return i32  # the ABI's int
        if getattr(self.bfn, "verified_alone", False):
            t = i64 if node.returns is None else self.annotation(node.returns)
            if isinstance(t, (StructType, ArrayType, BoolType)):
                raise self.error(node.returns or node, "a function verified alone returns an integer",
                                 "annotate it `-> i64` (the verifier needs a scalar result)")
            return t
        if node.returns is None or (isinstance(node.returns, ast.Constant) and node.returns.value is None):
            return None
        t = self.annotation(node.returns)
        if isinstance(t, (StructType, ArrayType)):
            raise self.error(node.returns, "functions cannot return structs or arrays",
                             "take the struct as a parameter and fill it in")
        return t

    def annotation(self, node: ast.expr) -> ir.IRType:
        obj = self.resolve_annotation_object(node)
        if obj is int:
            return i64
        region = frontend_loop.region_annotation(obj)
        if region is not None:
            if not self.bfn.inline:
                raise self.error(node, "a Region can be passed to inline @bpf_functions only",
                                 "drop inline=False from this function")
            return region  # type: ignore[return-value]
        t = resolve_type(obj)
        if t is None:
            if obj is float:
                raise self.error(node, "floating point is not supported", "BPF has integers only")
            raise self.error(node, f"{ast.unparse(node)!r} is not a type of the language",
                             "use u8..u64, i8..i64, bool, a @struct class or Array[T, N]")
        return t

    def _check_stack(self) -> int:
        total = 0
        for size_loc in self._stack_items():
            total += size_loc[0]
            if total > STACK_SIZE:
                raise CompileError(f"stack usage exceeds the {STACK_SIZE}-byte BPF limit ({total} bytes "
                                   "so far)", size_loc[1], "keep large buffers in a map (ArrayMap) or in "
                                   "user memory instead of on the stack")
        return total

    def _stack_items(self) -> list[tuple[int, SourceLocation]]:
        items = [(t.size, l) for t, l in zip(self.slots, self.slot_locs)]
        for callee, loc in self.inline_calls:
            items.append((callee.stack_size, loc))
        return items

    def object_slot(self, t: ValueType, node: ast.AST) -> int:
        """The stack slot of a new `T()` object. In a generator whose yields are all top-level
        statements, each run executes exactly the code between two of them, and no reference
        crosses a yield (frontend_gen refuses to save one): an object made before the last yield
        is dead, so its slot is reused for the same type (the kernel backend's programs share
        512 bytes of stack with the scheduler; a phase-per-yield program made a Sqe per phase)."""
        if self.generator is not None and self.generator.shares_objects:
            for entry in self.object_pool:
                if entry[0] == t and entry[2] < self.segment:
                    entry[2] = self.segment
                    return entry[1]
            slot = self.new_slot(t, node)
            self.object_pool.append([t, slot, self.segment])
            return slot
        return self.new_slot(t, node)

    def new_slot(self, t: ValueType, node: ast.AST) -> int:
        self.slots.append(t)
        self.slot_locs.append(self.loc(node))
        return len(self.slots) - 1

    # ---- statements -----------------------------------------------------------------------------
    def block(self, stmts: list[ast.stmt]) -> list[ir.Stmt]:
        out: list[ir.Stmt] = []
        saved = dict(self.range_facts)  # bounds from `if n > K: return` hold to the end of the block
        try:
            for s in stmts:
                for name in loops.assigned_names(s):
                    self.range_facts.pop(name, None)
                out.extend(self.stmt(s))
                fact = loops.exit_bound(s, self)
                if fact is not None:
                    self.range_facts[fact[0]] = fact[1]
        finally:
            self.range_facts = saved
        return out

    def stmt(self, node: ast.stmt) -> list[ir.Stmt]:
        self.current = node
        loc = self.loc(node)
        if isinstance(node, ast.Global):
            frontend_loop.global_statement(self, node)
            return []
        if type(node) in _UNSUPPORTED_STMTS:
            msg, hint = _UNSUPPORTED_STMTS[type(node)]
            raise self.error(node, msg, hint)
        if isinstance(node, ast.Pass):
            return []
        if isinstance(node, ast.Expr):
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                return []  # a docstring
            if isinstance(node.value, ast.Yield):
                return frontend_gen.yield_stmt(self, node.value, None, node)
            if isinstance(node.value, (ast.YieldFrom, ast.Await)):
                raise self.error(node.value, "yield from and await are not supported",
                                 "wait with `cqe = yield wait_cqe(ctx, cq)`")
            if not isinstance(node.value, ast.Call):
                raise self.error(node, "this expression has no effect", "remove it")
            done = frontend_gen.intrinsic_call(self, node.value, H.complete)
            if done is not None:
                return frontend_gen.complete_stmts(self, done, returning=False)
            return [ir.ExprStmt(self.call(node.value, statement=True), loc)]
        if isinstance(node, ast.Assign):
            if isinstance(node.value, ast.Yield) and len(node.targets) == 1:
                return frontend_gen.yield_stmt(self, node.value, node.targets[0], node)
            state = frontend_gen.intrinsic_call(self, node.value, H.request_state)
            if state is not None and len(node.targets) == 1:
                return frontend_gen.request_state_stmts(self, node.targets[0], state, node)
            return self.assign(node)
        if isinstance(node, ast.AnnAssign):
            return self.ann_assign(node)
        if isinstance(node, ast.AugAssign):
            return self.aug_assign(node)
        if isinstance(node, ast.If):
            cond = self.condition(node.test)
            return [ir.If(cond, self.block(node.body), self.block(node.orelse), loc)]
        if isinstance(node, ast.For):
            return self.for_range(node)
        if isinstance(node, ast.While):
            return self.while_loop(node)
        if isinstance(node, (ast.Break, ast.Continue)):
            if self.loop_depth == 0:
                raise self.error(node, f"'{'break' if isinstance(node, ast.Break) else 'continue'}' outside a loop")
            return [ir.Break(loc) if isinstance(node, ast.Break) else ir.Continue(loc)]
        if isinstance(node, ast.Return):
            done = frontend_gen.intrinsic_call(self, node.value, H.complete)
            if done is not None:
                return frontend_gen.complete_stmts(self, done, returning=True)
            if self.generator is not None and not self.raw_returns:
                return frontend_gen.result_return(self, node)
            return [self.return_stmt(node)]
        if isinstance(node, ast.Delete):
            return [ir.ExprStmt(self.delete(t), loc) for t in node.targets]
        raise self.error(node, f"{type(node).__name__} statements are not supported")

    def return_stmt(self, node: ast.Return) -> ir.Return:
        loc = self.loc(node)
        if node.value is None:
            if self.return_type is not None:
                raise self.error(node, f"{self.bfn.name} must return a value",
                                 "an @iouring_program returns OK or WAIT" if self.bfn.kind == "iouring" else None)
            return ir.Return(None, loc)
        if self.return_type is None:
            raise self.error(node.value, f"{self.bfn.name} is declared to return nothing",
                             "annotate the return type, e.g. `-> u64`")
        value = self.scalar(node.value)
        if self.is_program and not self.raw_returns:
            known = self.const_value(node.value)
            if known is not None and known not in (0, 1):
                raise self.error(node.value, f"an @iouring_program returns OK or WAIT; {known} is "
                                 "neither (the request would fail with -EINVAL)",
                                 f"to complete the request with a result, write `return complete("
                                 f"{self.node.args.args[0].arg}, {ast.unparse(node.value)})`")
        return ir.Return(self.coerce(value, self.return_type, node.value), loc)  # type: ignore[arg-type]

    # assignments -----------------------------------------------------------------------------------
    def assign(self, node: ast.Assign) -> list[ir.Stmt]:
        if len(node.targets) != 1:
            raise self.error(node, "chained assignment (a = b = c) is not supported", "assign one at a time")
        target = node.targets[0]
        if isinstance(target, (ast.Tuple, ast.List)):
            raise self.error(target, "tuple unpacking is not supported", "assign each variable separately")
        return self.store(target, node.value, None, node)

    def ann_assign(self, node: ast.AnnAssign) -> list[ir.Stmt]:
        if not isinstance(node.target, ast.Name):
            raise self.error(node.target, "annotations are only allowed on plain local names")
        t = self.annotation(node.annotation)
        name = node.target.id
        if name in self.scope:
            raise self.error(node.target, f"{name!r} is already declared", "annotate a variable only once, "
                             "where it is first assigned")
        if node.value is None:
            if isinstance(t, (StructType, ArrayType)):
                return self.bind_new_aggregate(name, t, node)
            self.declare(name, t, node)
            return [ir.Assign(ir.VarPlace(self.scope[name], self.loc(node)),
                              ir.Const(0, t, self.loc(node)), self.loc(node))]  # type: ignore[arg-type]
        return self.store(node.target, node.value, t, node)

    def declare(self, name: str, t: ir.IRType, node: ast.AST) -> ir.Local:
        if name in self.globals and isinstance(self.globals[name], (MapDef, BpfFunction)):
            raise self.error(node, f"{name!r} names a module-level {type(self.globals[name]).__name__}; "
                             "a local of that name would hide it", "choose another name")
        if name in self.globals and isinstance(self.globals[name], GlobalDecl):
            raise self.error(node, f"{name!r} is a module-level {type(self.globals[name]).__name__}; "
                             "assigning it here would make a local of that name, as in Python",
                             f"write `global {name}` first to change the global")
        local = ir.Local(name, t, self.loc(node))
        self.scope[name] = local
        self.locals.append(local)
        return local

    def bind_new_aggregate(self, name: str, t: ValueType, node: ast.AST) -> list[ir.Stmt]:
        loc = self.loc(node)
        ref = ir.NewAggregate(self.object_slot(t, node), ir.RefType(t), loc)
        local = self.declare(name, ir.RefType(t), node)
        return [ir.Assign(ir.VarPlace(local, loc), ref, loc)]

    def store(self, target: ast.expr, value_node: ast.expr, declared: ir.IRType | None,
              node: ast.stmt) -> list[ir.Stmt]:
        loc = self.loc(node)
        if isinstance(target, ast.Name):
            return self.store_name(target, value_node, declared, node)
        if isinstance(target, ast.Subscript) and self.is_map_node(target.value):
            return [self.map_store(target, value_node, node)]
        place = self.place(target)
        self.check_writable(place, target)
        if isinstance(place.type, (StructType, ArrayType)):
            return [ir.Assign(place, self.aggregate_source(value_node, place.type), loc)]
        if isinstance(place.type, ir.RefType):
            raise self.error(target, "references cannot be stored in fields")
        value = self.scalar(value_node)
        return [ir.Assign(place, self.coerce(value, place.type, value_node), loc)]  # type: ignore[arg-type]

    def store_name(self, target: ast.Name, value_node: ast.expr, declared: ir.IRType | None,
                   node: ast.stmt) -> list[ir.Stmt]:
        loc = self.loc(node)
        name = target.id
        gplace = frontend_loop.global_target(self, name, target)
        if gplace is not None:
            value = self.scalar(value_node)
            return [ir.Assign(gplace, self.coerce(value, gplace.type, value_node), loc)]  # type: ignore[arg-type]
        local = self.scope.get(name)
        if local is not None and getattr(local, "loop_var", False):
            raise self.error(target, f"assigning to the loop variable {name!r} inside its loop",
                             "it would not change the iteration in Python; use another variable")
        if local is None:
            value = self.value(value_node)
            if isinstance(value, ir.NewAggregate) and declared is not None and value.type.pointee != declared:
                raise self.error(value_node, f"{tname(value.type)}() assigned to a variable declared {tname(declared)}")
            vtype = value.type
            if isinstance(vtype, ir.RefType):
                local = self.declare(name, vtype, node)
                return [ir.Assign(ir.VarPlace(local, loc), value, loc)]
            t = declared if declared is not None else vtype
            if isinstance(t, (StructType, ArrayType)):
                raise self.error(value_node, f"cannot assign {a_type(vtype)} to a {tname(t)} variable",
                                 f"make the object with {tname(t)}() and set its fields")
            local = self.declare(name, t, node)
            return [ir.Assign(ir.VarPlace(local, loc), self.coerce(value, t, value_node), loc)]  # type: ignore[arg-type]
        if isinstance(local.type, ir.RefType):
            value = self.value(value_node)
            if value.type != local.type:
                raise self.error(value_node, f"{name!r} refers to {a_type(local.type)}; "
                                 f"cannot rebind it to {a_type(value.type)}",
                                 "use a new variable name")
            return [ir.Assign(ir.VarPlace(local, loc), value, loc)]
        value = self.scalar(value_node)
        return [ir.Assign(ir.VarPlace(local, loc), self.coerce(value, local.type, value_node), loc)]  # type: ignore[arg-type]

    def aug_assign(self, node: ast.AugAssign) -> list[ir.Stmt]:
        loc = self.loc(node)
        op = self.binop_symbol(node.op, node)
        if isinstance(node.target, ast.Subscript) and self.is_map_node(node.target.value):
            info = self.map_of(node.target.value)
            if info.defn.map_type == 1:  # hash: read-modify-write through the helpers
                key = self.map_key(info, node.target.slice)
                old = ir.MapGet(info, key, ir.Const(0, info.defn.value_type, loc), info.defn.value_type, loc)  # type: ignore[arg-type]
                new = self.binary(op, old, self.scalar(node.value), node)
                return [ir.ExprStmt(ir.MapUpdate(info, key, self.coerce(new, info.defn.value_type, node), loc), loc)]  # type: ignore[arg-type]
        gplace = frontend_loop.global_target(self, node.target.id, node.target) \
            if isinstance(node.target, ast.Name) else None
        if gplace is not None:
            place: ir.Place = gplace
        elif isinstance(node.target, ast.Name):
            local = self.scope.get(node.target.id)
            if local is None:
                raise self.error(node.target, f"{node.target.id!r} is used before it is assigned")
            if getattr(local, "loop_var", False):
                raise self.error(node.target, f"assigning to the loop variable {local.name!r} inside its loop")
            place = ir.VarPlace(local, loc)
        else:
            place = self.stable_place(node.target)
        self.check_writable(place, node.target)
        if not isinstance(place.type, (IntType, BoolType)):
            raise self.error(node.target, f"augmented assignment needs an integer, not {a_type(place.type)}")
        new = self.binary(op, ir.Load(place, place.type, loc), self.scalar(node.value), node)
        return [ir.Assign(place, self.coerce(new, place.type, node), loc)]

    def check_writable(self, place: ir.Place, node: ast.AST) -> None:
        if isinstance(place, ir.FieldPlace):
            base_t = place.base.type
            # The bpf_ops model scheduler (a loop_step) builds the contexts programs then read.
            if isinstance(base_t, StructType) and base_t.fields[place.name].readonly \
                    and self.bfn.kind != "loop_step" \
                    and not self.bfn.globals.get("__pybpfuring_scheduler__"):
                raise self.error(node, f"{ast.unparse(node)} is read-only ({tname(base_t)}.{place.name})",
                                 "a program may set ctx.wait_idx and ctx.wait_nr only")

    # loops -----------------------------------------------------------------------------------------
    def loop_body(self, body: list[ast.stmt]) -> list[ir.Stmt]:
        self.loop_depth += 1
        try:
            return self.block(body)
        finally:
            self.loop_depth -= 1

    def for_range(self, node: ast.For) -> list[ir.Stmt]:
        loc = self.loc(node)
        if node.orelse:
            raise self.error(node.orelse[0], "for/else is not supported")
        it = node.iter
        if not (isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "range"
                and self.globals.get("range", range) is range):
            return frontend_arrays.for_array(self, node)   # `for x in a:` over an Array[T, N]
        if not isinstance(node.target, ast.Name):
            raise self.error(node.target, "the loop variable must be a plain name")
        if not 1 <= len(it.args) <= 3 or it.keywords:
            raise self.error(it, "range() takes 1 to 3 positional arguments")
        args = [self.scalar(loops.bounded_stop(a, self.range_facts) or a) for a in it.args]
        start = args[0] if len(args) > 1 else ir.Const(0, i32, loc)
        stop = args[1] if len(args) > 1 else args[0]
        step_node = it.args[2] if len(args) == 3 else None
        step = self.const_value(step_node) if step_node is not None else 1
        if step is None or step == 0:
            raise self.error(step_node or it, "range() step must be a non-zero constant")
        for a, n in ((start, it.args[0] if len(args) > 1 else it), (stop, it.args[-1] if len(args) < 3 else it.args[1])):
            if not self.is_bounded_endpoint(a):
                raise self.error(n, "range() bounds must be known at compile time",
                                 loops.unbounded_stop_hint(n if n is not it else it.args[0]))
        t = self.common(start.type, stop.type)  # type: ignore[arg-type]
        name = node.target.id
        counter = ir.Local(f"{name}.iter", t, loc)
        self.locals.append(counter)
        var = self.scope.get(name)
        if var is None:
            var = self.declare(name, t, node.target)
        elif not isinstance(var.type, IntType):
            raise self.error(node.target, f"{name!r} is not an integer variable")
        var.loop_var = True  # type: ignore[attr-defined]
        try:
            body = self.loop_body(node.body)
        finally:
            var.loop_var = False  # type: ignore[attr-defined]
        cplace = ir.VarPlace(counter, loc)
        setup: list[ir.Stmt] = [ir.Assign(cplace, self.coerce(start, t, it), loc)]
        limit = self.coerce(stop, t, it)
        if not isinstance(limit, ir.Const):
            # range() computes its bounds once, before the first trip, as in Python: the body may
            # change what `stop` reads (`for i in range(min(n, 8)): n -= 1`).
            held = ir.Local(f"{name}.stop", t, loc)
            self.locals.append(held)
            setup.append(ir.Assign(ir.VarPlace(held, loc), limit, loc))
            limit = ir.Load(ir.VarPlace(held, loc), t, loc)
        cond = ir.Compare("<" if step > 0 else ">", ir.Load(cplace, t, loc), limit, loc)
        bump = ir.Assign(cplace, ir.Binary("+", ir.Load(cplace, t, loc), ir.Const(convert(step, t), t, loc), t, loc), loc)
        bind = ir.Assign(ir.VarPlace(var, loc), self.coerce(ir.Load(cplace, t, loc), var.type, node), loc)  # type: ignore[arg-type]
        bound = self.trip_bound(start, stop, step)
        return setup + [ir.Loop(cond, [bind] + body, [bump], bound, loc)]

    def is_bounded_endpoint(self, e: ir.Expr) -> bool:
        if isinstance(e, ir.Cast):
            return self.is_bounded_endpoint(e.value)
        return isinstance(e, ir.Const) or getattr(e, "bounded_by", None) is not None

    def trip_bound(self, start: ir.Expr, stop: ir.Expr, step: int) -> int:
        def hi(e: ir.Expr) -> int:
            while isinstance(e, ir.Cast):
                e = e.value
            return e.value if isinstance(e, ir.Const) else e.bounded_by  # type: ignore[union-attr]
        lo_v, hi_v = hi(start), hi(stop)
        if isinstance(start, ir.Const) or isinstance(getattr(start, "value", None), ir.Const):
            return max(0, -(-(hi_v - lo_v) // step))
        return max(0, hi_v)

    def while_loop(self, node: ast.While) -> list[ir.Stmt]:
        if node.orelse:
            raise self.error(node.orelse[0], "while/else is not supported")
        bound, reason = prove_while_bound(node, self)
        if bound is None and isinstance(node.test, ast.Constant) and node.test.value is True:
            bound, reason = loops.break_bound(node, self)
        if bound is None:
            raise self.error(node, f"while loop without a bound the compiler can prove: {reason}",
                             "use `for i in range(N)`, or `while i < N:` where i only grows by a "
                             "constant step at the top level of the body")
        cond = self.condition(node.test)
        return [ir.Loop(cond, self.loop_body(node.body), [], bound, self.loc(node))]
