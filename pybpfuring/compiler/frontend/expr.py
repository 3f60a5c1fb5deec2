"""Typing of expressions: names, constants, operators with C's conversions, fields, indexing, maps,
calls to functions, casts, struct constructors and helpers."""
from __future__ import annotations

import ast
import builtins
import difflib
import types
from typing import TYPE_CHECKING, Any

from pybpfuring.errors import CompileError
from pybpfuring.lang.globals import GlobalDecl
from pybpfuring.lang.maps import MapDef
from pybpfuring.lang.types import BOOL, ArrayType, BoolType, IntType, StructType, ValueType, i64, u64
from pybpfuring.compiler import typed_ir as ir
from pybpfuring.lang.structs import CTX_2021_SIZE, Ctx
from pybpfuring.compiler.frontend.calls import type_call
from pybpfuring.compiler.frontend.loop import global_place, is_region_local, name_of_decl, region_truth
from pybpfuring.compiler.frontend.type_names import a_type, tname
from pybpfuring.compiler.ctypes_rules import common_type, convert, fold_binary, fold_compare, literal_type, promote

CTX_STRUCT = Ctx.__bpf_struct__  # type: ignore[attr-defined]

if TYPE_CHECKING:
    from pybpfuring.compiler.frontend.builder import FunctionBuilder

_BINOPS: dict[type, str] = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.FloorDiv: "/", ast.Mod: "%", ast.BitAnd: "&",
    ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>",
}
_CMPOPS: dict[type, str] = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">",
                            ast.GtE: ">="}
_UNSUPPORTED_EXPRS: dict[type, tuple[str, str | None]] = {
    ast.Lambda: ("lambda is not supported", "declare a @bpf_function"),
    ast.ListComp: ("comprehensions are not supported", "use a for loop over range(N)"),
    ast.SetComp: ("comprehensions are not supported", "use a for loop over range(N)"),
    ast.DictComp: ("comprehensions are not supported", "use a for loop over range(N)"),
    ast.GeneratorExp: ("generator expressions are not supported", "use a for loop over range(N)"),
    ast.Yield: ("yield is a statement of its own here", "write `cqe = yield wait_cqe(ctx, cq)` or "
                "`yield wait(ctx, cq, nr)` on a line of its own"),
    ast.YieldFrom: ("yield from is not supported", "wait with `cqe = yield wait_cqe(ctx, cq)`"),
    ast.Await: ("await is not supported", None),
    ast.List: ("lists are not supported", "use Array[T, N] for fixed-size arrays"),
    ast.Tuple: ("tuples are not supported", None),
    ast.Dict: ("dicts are not supported", "use a HashMap declared at module level"),
    ast.Set: ("sets are not supported", None),
    ast.JoinedStr: ("strings are not supported", "only printk() takes a string literal"),
    ast.NamedExpr: ("the walrus operator is not supported", "assign on its own line"),
    ast.Starred: ("*args are not supported", None),
    ast.Slice: ("slices are not supported", None),
}


class ExprTyper:
    """Mixin of FunctionBuilder: expression typing."""

    # ---- names ----------------------------------------------------------------------------------
    def lookup_global(self: "FunctionBuilder", node: ast.Name) -> Any:
        if node.id in self.globals:
            return self.globals[node.id]
        if hasattr(builtins, node.id):
            return getattr(builtins, node.id)
        raise self.error(node, f"unknown name {node.id!r}", "is it defined or imported at module level?")

    def resolve_object(self: "FunctionBuilder", node: ast.expr) -> Any:
        """The Python object a global name or `module.attr` chain denotes."""
        if isinstance(node, ast.Name):
            return self.lookup_global(node)
        if isinstance(node, ast.Attribute):
            base = self.resolve_object(node.value)
            if isinstance(base, types.ModuleType) or isinstance(base, type):
                if not hasattr(base, node.attr):
                    raise self.error(node, f"{ast.unparse(node.value)} has no attribute {node.attr!r}")
                return getattr(base, node.attr)
            raise self.error(node, f"{ast.unparse(node)} is not a module attribute")
        if isinstance(node, ast.Subscript):
            base = self.resolve_object(node.value)
            items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            for item in items:
                if self.is_local(item):
                    raise self.error(item, f"{ast.unparse(node)}: sizes of types must be known at "
                                     f"compile time, and {item.id!r} is a local variable",  # type: ignore[attr-defined]
                                     "use a constant (a module-level int)")
            args = [self.resolve_annotation_object(i) if not isinstance(i, ast.Constant) else i.value
                    for i in items]
            try:
                return base[tuple(args) if len(args) > 1 else args[0]]
            except Exception as e:
                raise self.error(node, f"invalid type {ast.unparse(node)}: {e}") from None
        raise self.error(node, f"{ast.unparse(node)} is not a name")

    def resolve_annotation_object(self: "FunctionBuilder", node: ast.expr) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            raise self.error(node, "string annotations are not supported", "write the type itself")
        if isinstance(node, ast.Constant) and node.value is None:
            return None
        return self.resolve_object(node)

    def is_local(self: "FunctionBuilder", node: ast.expr) -> bool:
        return isinstance(node, ast.Name) and node.id in self.scope

    def is_map_node(self: "FunctionBuilder", node: ast.expr) -> bool:
        if self.is_local(node) or not isinstance(node, (ast.Name, ast.Attribute)):
            return False
        try:
            return isinstance(self.resolve_object(node), MapDef)
        except CompileError:
            return False

    def map_of(self: "FunctionBuilder", node: ast.expr) -> ir.MapInfo:
        defn = self.resolve_object(node)
        name = node.id if isinstance(node, ast.Name) else node.attr  # type: ignore[union-attr]
        # The map's ELF name is the module variable that holds it.
        for gname, gval in self.globals.items():
            if gval is defn:
                name = gname
                break
        info = self.module.map_info(defn, name, self.loc(node))
        if info not in self.maps_used:
            self.maps_used.append(info)
        return info

    def const_value(self: "FunctionBuilder", node: ast.expr | None) -> int | None:
        """The value of a compile-time constant expression, or None."""
        if node is None:
            return None
        try:
            e = self.scalar(node)
        except CompileError:
            return None
        while isinstance(e, ir.Cast) and isinstance(e.value, ir.Const):
            e = ir.Const(convert(e.value.value, e.type), e.type, e.loc)
        return e.value if isinstance(e, ir.Const) else None

    # ---- entry points ---------------------------------------------------------------------------
    def value(self: "FunctionBuilder", node: ast.expr) -> ir.Expr:
        """Any expression: a scalar, or a reference for structs and arrays."""
        r = self.expr_or_place(node)
        if isinstance(r, (ir.VarPlace, ir.DerefPlace, ir.FieldPlace, ir.IndexPlace)):
            if isinstance(r.type, (StructType, ArrayType)):
                return ir.RefOf(r, ir.RefType(r.type), r.loc)
            return ir.Load(r, r.type, r.loc)
        return r

    def scalar(self: "FunctionBuilder", node: ast.expr) -> ir.Expr:
        v = self.value(node)
        if not isinstance(v.type, (IntType, BoolType)):
            raise self.error(node, f"expected an integer here, got {a_type(v.type)}")
        return v

    def condition(self: "FunctionBuilder", node: ast.expr) -> ir.Expr:
        if is_region_local(self, node):  # `if not sq:` tests that the kernel gave the region
            return region_truth(self.value(node))
        return self.truth(self.scalar(node), node)

    def truth(self, e: ir.Expr, node: ast.AST) -> ir.Expr:
        if isinstance(e.type, BoolType):
            return e
        if isinstance(e, ir.Const):
            return ir.Const(int(e.value != 0), BOOL, e.loc)
        return ir.Truth(e, e.loc, BOOL)

    def place(self: "FunctionBuilder", node: ast.expr) -> ir.Place:
        r = self.expr_or_place(node)
        if isinstance(r, (ir.VarPlace, ir.DerefPlace, ir.FieldPlace, ir.IndexPlace)):
            if isinstance(r.type, ir.RefType):
                return ir.DerefPlace(ir.Load(r, r.type, r.loc), r.loc)
            return r
        if isinstance(r.type, ir.RefType):
            return ir.DerefPlace(r, r.loc)
        raise self.error(node, f"{ast.unparse(node)} cannot be assigned to or passed by reference")

    def stable_place(self: "FunctionBuilder", node: ast.expr) -> ir.Place:
        return self.place(node)

    def aggregate_source(self: "FunctionBuilder", node: ast.expr, t: ValueType) -> ir.Place | None:
        """The right side of an aggregate assignment: another object to copy, or `T()` to zero."""
        v = self.value(node)
        if isinstance(v, ir.NewAggregate):
            if v.type.pointee != t:
                raise self.error(node, f"cannot assign a {tname(v.type)} to a {tname(t)}")
            self.slots.pop()  # zeroing in place needs no new object
            self.slot_locs.pop()
            return None
        if not isinstance(v.type, ir.RefType) or v.type.pointee != t:
            raise self.error(node, f"cannot assign {a_type(v.type)} to a {tname(t)}")
        return ir.DerefPlace(v, v.loc) if not isinstance(v, ir.RefOf) else v.place

    # ---- the big dispatch -----------------------------------------------------------------------
    def expr_or_place(self: "FunctionBuilder", node: ast.expr) -> ir.Expr | ir.Place:
        loc = self.loc(node)
        if type(node) in _UNSUPPORTED_EXPRS:
            msg, hint = _UNSUPPORTED_EXPRS[type(node)]
            raise self.error(node, msg, hint)
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name):
            if node.id in self.scope:
                return ir.VarPlace(self.scope[node.id], loc)
            return self.global_value(node)
        if isinstance(node, ast.Attribute):
            return self.attribute(node)
        if isinstance(node, ast.Subscript):
            return self.subscript(node)
        if isinstance(node, ast.BinOp):
            if isinstance(node.op, ast.Div):
                raise self.error(node, "'/' is true division, which gives a float",
                                 "use '//' for integer division (C semantics: truncates toward zero)")
            return self.binary(self.binop_symbol(node.op, node), self.scalar(node.left), self.scalar(node.right), node)
        if isinstance(node, ast.UnaryOp):
            return self.unary(node)
        if isinstance(node, ast.BoolOp):
            values = [self.condition(v) for v in node.values]
            op = "and" if isinstance(node.op, ast.And) else "or"
            out = values[0]
            for v in values[1:]:
                out = ir.Logical(op, out, v, loc, BOOL)
            return out
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.IfExp):
            cond = self.condition(node.test)
            a, b = self.scalar(node.body), self.scalar(node.orelse)
            t = self.common(a.type, b.type)  # type: ignore[arg-type]
            return ir.Select(cond, self.coerce(a, t, node.body), self.coerce(b, t, node.orelse), t, loc)
        if isinstance(node, ast.Call):
            return self.call(node)
        raise self.error(node, f"{type(node).__name__} expressions are not supported")

    def constant(self: "FunctionBuilder", node: ast.Constant) -> ir.Expr:
        v, loc = node.value, self.loc(node)
        if isinstance(v, bool):
            return ir.Const(int(v), BOOL, loc)
        if isinstance(v, int):
            t = literal_type(v)
            if t is None:
                raise self.error(node, f"integer literal {v} does not fit in 64 bits")
            return ir.Const(v, t, loc)
        if isinstance(v, float):
            raise self.error(node, "floating point is not supported", "BPF has integers only")
        if isinstance(v, (str, bytes)):
            raise self.error(node, "strings are not supported", "only printk() takes a string literal")
        raise self.error(node, f"the constant {v!r} is not supported")

    def global_value(self: "FunctionBuilder", node: ast.expr) -> ir.Expr:
        obj = self.resolve_object(node)
        loc = self.loc(node)
        if isinstance(obj, bool):
            return ir.Const(int(obj), BOOL, loc)
        if isinstance(obj, int):
            t = literal_type(obj)
            if t is None:
                raise self.error(node, f"constant {ast.unparse(node)} = {obj} does not fit in 64 bits")
            return ir.Const(obj, t, loc)
        if isinstance(obj, float):
            raise self.error(node, f"{ast.unparse(node)} is a float; floating point is not supported")
        if isinstance(obj, str):
            raise self.error(node, f"{ast.unparse(node)} is a string; strings are not supported")
        if isinstance(obj, GlobalDecl):
            return global_place(self, node, obj, name_of_decl(self, obj, ast.unparse(node)))  # type: ignore[return-value]
        if isinstance(obj, MapDef):
            raise self.error(node, f"the map {ast.unparse(node)} can only be indexed, tested with `in` "
                             "or read with .get()")
        kind = type(obj).__name__
        raise self.error(node, f"{ast.unparse(node)} is a {kind}, which is not a value programs can use")

    def attribute(self: "FunctionBuilder", node: ast.Attribute) -> ir.Expr | ir.Place:
        if not self.is_local(node.value) and not isinstance(node.value, (ast.Subscript, ast.Attribute)) \
                or isinstance(node.value, ast.Attribute) and self._is_module_chain(node.value):
            return self.global_value(node)
        base = self.place(node.value)
        t = base.type
        if not isinstance(t, StructType):
            raise self.error(node, f"{ast.unparse(node.value)} is {a_type(t)}, which has no fields")
        f = t.fields.get(node.attr)
        if f is None:
            known = [n for n in t.fields if not n.startswith("__")]
            close = difflib.get_close_matches(node.attr, known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"its fields are: {', '.join(known)}"
            raise self.error(node, f"{tname(t)} has no field {node.attr!r}", hint)
        if t is CTX_STRUCT and f.offset >= CTX_2021_SIZE:
            self.ctx_ext = True     # the program reads pybpfuring's ctx fields (lang/structs.py)
        return ir.FieldPlace(base, f.name, f.offset, f.type, self.loc(node))

    def _is_module_chain(self: "FunctionBuilder", node: ast.expr) -> bool:
        while isinstance(node, ast.Attribute):
            node = node.value
        return isinstance(node, ast.Name) and node.id not in self.scope

    def subscript(self: "FunctionBuilder", node: ast.Subscript) -> ir.Expr | ir.Place:
        loc = self.loc(node)
        if self.is_map_node(node.value):
            info = self.map_of(node.value)
            key = self.map_key(info, node.slice)
            vt = info.defn.value_type
            return ir.DerefPlace(ir.MapRef(info, key, ir.RefType(vt), loc), loc)
        base = self.place(node.value)
        t = base.type
        if not isinstance(t, ArrayType):
            raise self.error(node, f"{ast.unparse(node.value)} is {a_type(t)}, which cannot be indexed")
        index = self.scalar(node.slice)
        if isinstance(index, ir.Const) and not 0 <= index.value < t.length:
            raise self.error(node.slice, f"index {index.value} is out of range for {tname(t)} "
                             f"(valid: 0..{t.length - 1})")
        return ir.IndexPlace(base, self.coerce(index, u64, node.slice), t.elem, loc)

    def map_key(self: "FunctionBuilder", info: ir.MapInfo, node: ast.expr) -> ir.Expr | ir.Place:
        kt = info.defn.key_type
        if isinstance(kt, (StructType, ArrayType)):
            p = self.place(node)
            if p.type != kt:
                raise self.error(node, f"this map's key is a {tname(kt)}, got {a_type(p.type)}")
            return p
        return self.coerce(self.scalar(node), kt, node)  # type: ignore[arg-type]

    def map_store(self: "FunctionBuilder", target: ast.Subscript, value_node: ast.expr,
                  node: ast.stmt) -> ir.Stmt:
        info = self.map_of(target.value)
        key = self.map_key(info, target.slice)
        vt = info.defn.value_type
        loc = self.loc(node)
        if isinstance(vt, (StructType, ArrayType)):
            src = self.aggregate_source(value_node, vt)
            if info.defn.map_type == 1:
                if src is None:
                    slot = self.new_slot(vt, node)
                    src = ir.DerefPlace(ir.NewAggregate(slot, ir.RefType(vt), loc), loc)
                return ir.ExprStmt(ir.MapUpdate(info, key, src, loc, i64), loc)
            return ir.Assign(ir.DerefPlace(ir.MapRef(info, key, ir.RefType(vt), loc), loc), src, loc)
        value = self.coerce(self.scalar(value_node), vt, value_node)  # type: ignore[arg-type]
        if info.defn.map_type == 1:
            return ir.ExprStmt(ir.MapUpdate(info, key, value, loc, i64), loc)
        return ir.Assign(ir.DerefPlace(ir.MapRef(info, key, ir.RefType(vt), loc), loc), value, loc)

    def delete(self: "FunctionBuilder", node: ast.expr) -> ir.Expr:
        if not (isinstance(node, ast.Subscript) and self.is_map_node(node.value)):
            raise self.error(node, "del works on map entries only (del m[key])")
        info = self.map_of(node.value)
        if info.defn.map_type != 1:
            raise self.error(node, "entries of an ArrayMap cannot be deleted",
                             "all keys of an array map always exist; store 0 instead")
        return ir.MapUpdate(info, self.map_key(info, node.slice), None, self.loc(node), i64)

    # ---- operators ------------------------------------------------------------------------------
    def binop_symbol(self: "FunctionBuilder", op: ast.operator, node: ast.AST) -> str:
        if isinstance(op, ast.Div):
            raise self.error(node, "'/' is true division, which gives a float",
                             "use '//' for integer division (C semantics: truncates toward zero)")
        sym = _BINOPS.get(type(op))
        if isinstance(op, ast.Pow):
            raise self.error(node, "'**' is not supported", "multiply, or shift (1 << n) for powers of two")
        if sym is None:
            raise self.error(node, f"operator {type(op).__name__} is not supported")
        return sym

    def common(self, a: ir.IRType, b: ir.IRType) -> IntType:
        return common_type(a, b)  # type: ignore[arg-type]

    def coerce(self: "FunctionBuilder", e: ir.Expr, t: ir.IRType, node: ast.AST) -> ir.Expr:
        """Implicit conversion (C assignment rules) of a scalar to `t`."""
        if e.type == t:
            return e
        if not isinstance(t, (IntType, BoolType)) or not isinstance(e.type, (IntType, BoolType)):
            raise self.error(node, f"cannot convert {getattr(e.type, 'name', e.type)} to {getattr(t, 'name', t)}")
        if isinstance(e, ir.Const):
            return ir.Const(convert(e.value, t), t, e.loc)
        if isinstance(t, BoolType):
            return self.truth(e, node)
        bounded = getattr(e, "bounded_by", None)
        c = ir.Cast(e, t, e.loc)
        if bounded is not None:
            c.bounded_by = bounded  # type: ignore[attr-defined]
        return c

    def binary(self: "FunctionBuilder", op: str, a: ir.Expr, b: ir.Expr, node: ast.AST) -> ir.Expr:
        loc = self.loc(node)
        if op in ("<<", ">>"):
            t = promote(a.type)  # type: ignore[arg-type]
            b = self.coerce(b, t, node)
        else:
            t = self.common(a.type, b.type)
            b = self.coerce(b, t, node)
        a = self.coerce(a, t, node)
        if isinstance(a, ir.Const) and isinstance(b, ir.Const):
            return ir.Const(fold_binary(op, a.value, b.value, t), t, loc)
        return ir.Binary(op, a, b, t, loc)

    def unary(self: "FunctionBuilder", node: ast.UnaryOp) -> ir.Expr:
        loc = self.loc(node)
        if isinstance(node.op, ast.Not):
            c = self.condition(node.operand)
            if isinstance(c, ir.Const):
                return ir.Const(1 - c.value, BOOL, loc)
            return ir.Not(c, loc, BOOL)
        v = self.scalar(node.operand)
        t = promote(v.type)  # type: ignore[arg-type]
        v = self.coerce(v, t, node)
        if isinstance(node.op, ast.UAdd):
            return v
        op = "neg" if isinstance(node.op, ast.USub) else "invert"
        if isinstance(v, ir.Const):
            # -2147483648 is a literal 2147483648 (i64) negated: keep the type C gives it.
            return ir.Const(t.wrap(-v.value if op == "neg" else ~v.value), t, loc)
        return ir.Unary(op, v, t, loc)

    def compare(self: "FunctionBuilder", node: ast.Compare) -> ir.Expr:
        loc = self.loc(node)
        left_node = node.left
        result: ir.Expr | None = None
        left = None
        for op, right_node in zip(node.ops, node.comparators):
            if isinstance(op, (ast.In, ast.NotIn)):
                if not self.is_map_node(right_node):
                    raise self.error(node, "`in` tests membership of a map key only (key in m)")
                info = self.map_of(right_node)
                test: ir.Expr = ir.MapGet(info, self.map_key(info, left_node), None, BOOL, loc)
                if isinstance(op, ast.NotIn):
                    test = ir.Not(test, loc, BOOL)
            elif isinstance(op, (ast.Is, ast.IsNot)):
                raise self.error(node, "`is` is not supported", "compare integers with == and !=")
            else:
                left = left if left is not None else self.scalar(left_node)
                right = self.scalar(right_node)
                t = self.common(left.type, right.type)
                a, b = self.coerce(left, t, node), self.coerce(right, t, node)
                sym = _CMPOPS[type(op)]
                if isinstance(a, ir.Const) and isinstance(b, ir.Const):
                    test = ir.Const(int(fold_compare(sym, a.value, b.value)), BOOL, loc)
                else:
                    test = ir.Compare(sym, a, b, loc, BOOL)
                left = right
            result = test if result is None else ir.Logical("and", result, test, loc, BOOL)
            left_node = right_node
        assert result is not None
        return result

    # ---- calls ----------------------------------------------------------------------------------
    def call(self: "FunctionBuilder", node: ast.Call, statement: bool = False) -> ir.Expr:
        return type_call(self, node, statement)
