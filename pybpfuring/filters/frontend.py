"""Front end: the Python AST of a filter function -> filter IR (ir.py), with located errors.

The language: reads of context fields (`ctx.opcode`, `ctx.open.flags`), integer constants (literals,
module-level or closure ints, `os.O_CREAT`, `errno.X`, `socket.AF_UNIX`; constant arithmetic is folded),
`&`, `|`, `^` and `>>` by a constant, comparisons (chained too), `in`/`not in` a tuple, `and`/`or`/`not`,
`if`/`elif`/`else`, `return`, and assignment of such expressions to local names. Nothing else: classic BPF
has no loops, calls, maps or memory, so any other construct is a CompileError naming the line.
"""
from __future__ import annotations

import ast
import builtins
import inspect
import operator
import textwrap
from types import FunctionType, ModuleType
from typing import Any, Callable

from ..errors import CompileError, SourceLocation
from . import ir
from .ctx import FIELDS, UNIONS

_CMP = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_PYCMP: dict[str, Callable[[int, int], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
    ">=": operator.ge}
_CONST_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
              ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.LShift: operator.lshift,
              ast.RShift: operator.rshift, ast.BitAnd: operator.and_, ast.BitOr: operator.or_,
              ast.BitXor: operator.xor, ast.Pow: operator.pow}
_NOT_IN_LANGUAGE = {
    ast.For: "loops", ast.While: "loops", ast.AsyncFor: "loops", ast.With: "with blocks",
    ast.Try: "try blocks", ast.Raise: "raise", ast.FunctionDef: "nested functions",
    ast.ClassDef: "classes", ast.Global: "global", ast.Nonlocal: "nonlocal", ast.Import: "import",
    ast.ImportFrom: "import", ast.Delete: "del", ast.AugAssign: "augmented assignment",
    ast.Match: "match", ast.Assert: "assert", ast.ListComp: "comprehensions",
    ast.GeneratorExp: "comprehensions", ast.DictComp: "comprehensions", ast.SetComp: "comprehensions",
    ast.Call: "calls", ast.Subscript: "subscripts (there are no maps or arrays)",
    ast.Lambda: "lambdas", ast.IfExp: "conditional expressions", ast.Dict: "dicts",
    ast.JoinedStr: "strings", ast.Await: "await", ast.Yield: "yield", ast.NamedExpr: ":=",
}
_WHY = "classic BPF filters can only read the context, compare, branch forward and return"
_CTX = object()               # marker: the context parameter
Item = Any                    # int | ir.Value | ir.Cond | _Part name


class _Union:
    def __init__(self, name: str):
        self.name = name


class FilterFrontend:
    """Lowers one function; `lower()` gives (name, the IR statements, def-line location)."""

    def __init__(self, fn: FunctionType):
        self.fn = fn
        try:
            source = inspect.getsource(fn)
            self.file = inspect.getsourcefile(fn) or fn.__code__.co_filename
        except (OSError, TypeError) as e:
            raise CompileError(f"cannot read the source of filter {fn.__name__!r}: {e}",
                               hint="define filters in a .py file") from None
        dedented = textwrap.dedent(source)
        self.col_shift = len(source.split("\n", 1)[0]) - len(dedented.split("\n", 1)[0])
        self.line_shift = fn.__code__.co_firstlineno - 1
        tree = ast.parse(dedented)
        self.node = next(n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
        closure = inspect.getclosurevars(fn)
        self.names: dict[str, Any] = {**vars(builtins), **fn.__globals__, **closure.nonlocals}

    def loc(self, node: ast.AST) -> SourceLocation:
        return SourceLocation(self.file, getattr(node, "lineno", 1) + self.line_shift,
                              getattr(node, "col_offset", 0) + self.col_shift)

    def error(self, node: ast.AST, message: str, hint: str | None = None) -> CompileError:
        return CompileError(message, self.loc(node), hint)

    # --- the function and its statements
    def lower(self) -> tuple[str, list[ir.Stmt], SourceLocation]:
        fn = self.node
        if isinstance(fn, ast.AsyncFunctionDef):
            raise self.error(fn, "a filter cannot be async")
        a = fn.args
        if len(a.args) != 1 or a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs or a.defaults:
            raise self.error(fn, "a filter takes exactly one parameter, the context",
                             "def my_filter(ctx: FilterCtx) -> bool:")
        env: dict[str, Item] = {a.args[0].arg: _CTX}
        body, falls = self.block(fn.body, env)
        if falls:      # Python returns None: a deny
            body.append(ir.Return(ir.BoolConst(False, self.loc(fn)), self.loc(fn)))
        return fn.name, body, self.loc(fn)

    def block(self, stmts: list[ast.stmt], env: dict[str, Item]) -> tuple[list[ir.Stmt], bool]:
        """IR of a statement list, and whether control can fall off its end."""
        out: list[ir.Stmt] = []
        for i, s in enumerate(stmts):
            if i == 0 and isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) \
                    and isinstance(s.value.value, str):
                continue                                  # docstring
            if isinstance(s, ast.Pass):
                continue
            if isinstance(s, ast.Return):
                cond = ir.BoolConst(False, self.loc(s)) if s.value is None else self.cond(s.value, env)
                out.append(ir.Return(cond, self.loc(s)))
                return out, False                         # the rest is unreachable
            if isinstance(s, ast.If):
                stmt, falls = self.if_stmt(s, env)
                out.append(stmt)
                if not falls:
                    return out, False
                continue
            if isinstance(s, (ast.Assign, ast.AnnAssign)):
                self.assign(s, env)
                continue
            raise self.unsupported(s)
        return out, True

    def if_stmt(self, s: ast.If, env: dict[str, Item]) -> tuple[ir.If, bool]:
        cond = self.cond(s.test, env)
        env_t, env_f = dict(env), dict(env)
        then, t_falls = self.block(s.body, env_t)
        orelse, f_falls = self.block(s.orelse, env_f)
        live = [e for e, falls in ((env_t, t_falls), (env_f, f_falls)) if falls]
        env.clear()
        if len(live) == 1:
            env.update(live[0])
        elif len(live) == 2:     # names that differ after the branches cannot be used later
            for k in env_t.keys() | env_f.keys():
                a, b = env_t.get(k), env_f.get(k)
                env[k] = a if a is b else ("poisoned", s)
        return ir.If(cond, then, orelse, self.loc(s)), bool(live)

    def assign(self, s: ast.Assign | ast.AnnAssign, env: dict[str, Item]) -> None:
        targets = s.targets if isinstance(s, ast.Assign) else [s.target]
        if len(targets) != 1 or not isinstance(targets[0], ast.Name) or s.value is None:
            raise self.error(s, "only `name = expression` assignments are in the filter language")
        name = targets[0].id
        if env.get(name) is _CTX:
            raise self.error(s, f"cannot assign to the context parameter {name!r}")
        env[name] = self.item(s.value, env)

    def unsupported(self, node: ast.AST) -> CompileError:
        what = _NOT_IN_LANGUAGE.get(type(node), type(node).__name__)
        return self.error(node, f"{what} are not in the filter language", _WHY)

    # --- expressions
    def item(self, node: ast.expr, env: dict[str, Item]) -> Item:
        """A value, a constant int, or a condition (for boolean expressions)."""
        if isinstance(node, ast.Name) and _is_cond(env.get(node.id)):
            return env[node.id]
        if isinstance(node, (ast.Compare, ast.BoolOp)) or (
                isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)):
            return self.cond(node, env)
        return self.value(node, env)

    def cond(self, node: ast.expr, env: dict[str, Item]) -> ir.Cond:
        loc = self.loc(node)
        if isinstance(node, ast.BoolOp):
            op = "and" if isinstance(node.op, ast.And) else "or"
            return ir.Logic(op, tuple(self.cond(v, env) for v in node.values), loc)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return ir.Not(self.cond(node.operand, env), loc)
        if isinstance(node, ast.Compare):
            return self.compare(node, env)
        return self.as_cond(self.item(node, env), node)

    def as_cond(self, v: Item, node: ast.AST) -> ir.Cond:
        loc = self.loc(node)
        if isinstance(v, bool | int):
            return ir.BoolConst(bool(v), loc)
        if isinstance(v, (ir.Compare, ir.Truth, ir.BoolConst, ir.Not, ir.Logic)):
            return v
        return ir.Truth(v, loc)

    def compare(self, node: ast.Compare, env: dict[str, Item]) -> ir.Cond:
        parts: list[ir.Cond] = []
        left = node.left
        for op, right in zip(node.ops, node.comparators):
            if isinstance(op, (ast.In, ast.NotIn)):
                parts.append(self.membership(left, right, isinstance(op, ast.NotIn), env, node))
            elif type(op) in _CMP:
                parts.append(self.compare2(_CMP[type(op)], self.value(left, env),
                                           self.value(right, env), node))
            else:
                raise self.error(node, "`is` compares identity, which filters do not have",
                                 "use == or !=")
            left = right
        if len(parts) == 1:
            return parts[0]
        return ir.Logic("and", tuple(parts), self.loc(node))

    def membership(self, left: ast.expr, right: ast.expr, negate: bool, env, node) -> ir.Cond:
        if not isinstance(right, (ast.Tuple, ast.List, ast.Set)):
            raise self.error(right, "`in` needs a literal tuple of values here",
                             "write `x in (A, B, C)`")
        lv = self.value(left, env)
        eqs = tuple(self.compare2("!=" if negate else "==", lv, self.value(e, env), e) for e in right.elts)
        if not eqs:
            return ir.BoolConst(negate, self.loc(node))
        return ir.Logic("and" if negate else "or", eqs, self.loc(node))

    def compare2(self, op: str, a: Item, b: Item, node: ast.AST) -> ir.Cond:
        loc = self.loc(node)
        if isinstance(a, int) and isinstance(b, int):
            return ir.BoolConst(_PYCMP[op](a, b), loc)
        if isinstance(a, int):
            a, b, op = b, a, _FLIP[op]
        if isinstance(b, int):
            hi = ir.vmax(a)
            if not 0 <= b <= hi:      # the comparison's answer does not depend on the field
                return ir.BoolConst(_PYCMP[op](0, b) if b < 0 else _PYCMP[op](hi, b), loc)
            return ir.Compare(op, a, ir.Const(b, loc), loc)
        return ir.Compare(op, a, b, loc)

    def value(self, node: ast.expr, env: dict[str, Item]) -> int | ir.Value:
        loc = self.loc(node)
        if isinstance(node, ast.Constant):
            if isinstance(node.value, int):        # bool is an int: True == 1
                return int(node.value)
            if node.value is None:
                return 0
            raise self.error(node, f"{type(node.value).__name__} constants are not in the filter "
                             "language (only integers)")
        if isinstance(node, ast.Name):
            return self.name(node, env)
        if isinstance(node, ast.Attribute):
            return self.attribute(node, env)
        if isinstance(node, ast.BinOp):
            return self.binop(node, env)
        if isinstance(node, ast.UnaryOp):
            v = self.value(node.operand, env)
            if isinstance(v, int):
                if isinstance(node.op, ast.Invert):
                    return ~v
                if isinstance(node.op, ast.USub):
                    return -v
                if isinstance(node.op, ast.UAdd):
                    return v
            raise self.error(node, "unary operators apply only to constants in a filter",
                             "mask instead: `x & ~FLAG` with FLAG a constant")
        if isinstance(node, (ast.Compare, ast.BoolOp)):
            raise self.error(node, "a comparison cannot be used as a number here")
        raise self.unsupported(node)

    def name(self, node: ast.Name, env: dict[str, Item]) -> int | ir.Value:
        if node.id in env:
            v = env[node.id]
            if v is _CTX:
                raise self.error(node, "the context itself is not a value; read a field",
                                 "e.g. ctx.opcode, ctx.open.flags")
            if isinstance(v, tuple) and v and v[0] == "poisoned":
                raise self.error(node, f"{node.id!r} is assigned differently on the branches of "
                                 f"the `if` at line {self.loc(v[1]).line}",
                                 "assign it before the `if`, or use it only inside the branches")
            if _is_cond(v):
                raise self.error(node, f"{node.id!r} holds a condition, not a number")
            return v
        if node.id in self.names:
            return self.constant(self.names[node.id], node)
        raise self.error(node, f"name {node.id!r} is not defined")

    def constant(self, obj: Any, node: ast.AST) -> int:
        if isinstance(obj, int):
            return int(obj)
        raise self.error(node, f"{ast.unparse(node)!r} is a {type(obj).__name__}, not an integer "
                         "constant", "filters can use integer constants only")

    def attribute(self, node: ast.Attribute, env: dict[str, Item]) -> int | ir.Value:
        base = node.value
        if isinstance(base, ast.Name) and env.get(base.id) is _CTX:
            if node.attr in UNIONS:
                raise self.error(node, f"ctx.{node.attr} is a group of fields; read one of them",
                                 f"e.g. ctx.{node.attr}." + next(k.split('.')[1] for k in FIELDS
                                                                 if k.startswith(node.attr + ".")))
            return self.field(node.attr, node)
        if isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name) \
                and env.get(base.value.id) is _CTX:
            if base.attr not in UNIONS:
                raise self.error(base, f"ctx has no group {base.attr!r}",
                                 f"groups: {', '.join(sorted(UNIONS))}")
            return self.field(f"{base.attr}.{node.attr}", node)
        obj = self.static_object(node)
        return self.constant(obj, node)

    def static_object(self, node: ast.expr) -> Any:
        """`os.O_CREAT`, `socket.AddressFamily.AF_UNIX`: attributes of modules and classes only."""
        if isinstance(node, ast.Name):
            if node.id not in self.names:
                raise self.error(node, f"name {node.id!r} is not defined")
            return self.names[node.id]
        if isinstance(node, ast.Attribute):
            base = self.static_object(node.value)
            if not isinstance(base, (ModuleType, type)):
                raise self.error(node, f"cannot read attributes of a {type(base).__name__} in a "
                                 "filter (modules and classes only)")
            if not hasattr(base, node.attr):
                raise self.error(node, f"{ast.unparse(node.value)} has no attribute {node.attr!r}")
            return getattr(base, node.attr)
        raise self.unsupported(node)

    def field(self, name: str, node: ast.AST) -> ir.FieldRead:
        f = FIELDS.get(name)
        if f is None:
            raise self.error(node, f"the filter context has no field {name!r}",
                             "fields: " + ", ".join(FIELDS))
        return ir.FieldRead(f, self.loc(node))

    def binop(self, node: ast.BinOp, env: dict[str, Item]) -> int | ir.Value:
        a, b = self.value(node.left, env), self.value(node.right, env)
        loc = self.loc(node)
        if isinstance(a, int) and isinstance(b, int):
            fn = _CONST_BIN.get(type(node.op))
            if fn is None:
                raise self.unsupported(node)
            try:
                return fn(a, b)
            except (ZeroDivisionError, ValueError, OverflowError) as e:
                raise self.error(node, f"constant expression fails: {e}") from None
        if isinstance(node.op, ast.RShift):
            if not isinstance(b, int) or b < 0:
                raise self.error(node, "a right shift needs a non-negative constant amount")
            if isinstance(a, int):
                raise self.error(node, "a constant shifted by a field is not in the filter language")
            return 0 if b >= a.width else (a if b == 0 else ir.Shift(a, b, loc))
        op = {ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^"}.get(type(node.op))
        if op is None:
            raise self.error(node, f"`{ast.unparse(node)}`: arithmetic on context fields is not in "
                             "the filter language", "use bit tests (&), comparisons and `in`; "
                             "constant arithmetic is fine")
        if isinstance(a, int):
            a, b = b, a
        if isinstance(b, int):
            if op == "&":
                b &= ir.vmax(a)       # a >= 0 and <= vmax(a), so masking the constant is exact
                if b == 0:
                    return 0
            elif not 0 <= b <= ir.U64:
                raise self.error(node, f"{op} with {b} would make a value outside 0..2**64-1")
            elif b == 0:
                return a
            return ir.BinOp(op, a, ir.Const(b, loc), loc)
        return ir.BinOp(op, a, b, loc)


def _is_cond(v: object) -> bool:
    return isinstance(v, (ir.Compare, ir.Truth, ir.BoolConst, ir.Not, ir.Logic))


def lower_function(fn: FunctionType) -> tuple[str, list[ir.Stmt], SourceLocation]:
    return FilterFrontend(fn).lower()
