"""Loops over arrays whose size the type gives: `len(a)` of an `Array[T, N]` (a local, a struct
field, a map value) is the constant N, and `for x in a:` is `for i in range(N): x = a[i]`. The
bound comes from the type, so the verifier sees a constant trip count, as for `range(N)`."""
from __future__ import annotations

import ast
import itertools
from typing import TYPE_CHECKING

from pybpfuring.lang.types import ArrayType, i32
from pybpfuring.compiler import typed_ir as ir
from pybpfuring.compiler.frontend.type_names import a_type

if TYPE_CHECKING:
    from pybpfuring.compiler.frontend.builder import FunctionBuilder

# Names of the hidden locals: not Python identifiers, so no user variable can clash with them.
_hidden = itertools.count()


def _array_type(t: object) -> ArrayType | None:
    if isinstance(t, ir.RefType):
        t = t.pointee
    return t if isinstance(t, ArrayType) else None


def array_len(b: "FunctionBuilder", node: ast.Call) -> ir.Expr:
    """`len(a)`: the length of a fixed-size array, a constant (a is not evaluated further: looking
    it up has no effect a program could see)."""
    if len(node.args) != 1 or node.keywords:
        raise b.error(node, "len() takes one argument, an array")
    t = _array_type(b.value(node.args[0]).type)
    if t is None:
        raise b.error(node.args[0], "len() takes a fixed-size array (Array[T, N])",
                      "a map's size is its max_entries; other lengths are not known to the compiler")
    return ir.Const(t.length, i32, b.loc(node))


def for_array(b: "FunctionBuilder", node: ast.For) -> list[ir.Stmt]:
    """`for x in a:` over an array, as `seq = a` (evaluated once, as Python evaluates the iterable
    once; `seq` refers to the array) then `for i in range(N): x = seq[i]`."""
    it = node.iter
    hint = ("write `for i in range(N)` with a bound the compiler knows, or iterate over an "
            "Array[T, N] (`for x in v.items:`)")
    if isinstance(it, (ast.List, ast.Tuple, ast.Set, ast.Dict, ast.Constant)):
        raise b.error(it, "for loops iterate over range(...) or a fixed-size array only", hint)
    value = b.value(it)
    t = _array_type(value.type)
    if t is None:
        raise b.error(it, f"for loops iterate over range(...) or a fixed-size array only, not "
                      f"{a_type(value.type)}", hint)
    n = next(_hidden)
    seq, idx = f"for.seq{n}", f"for.i{n}"
    local = b.declare(seq, value.type, it)
    loc = b.loc(it)
    setup: list[ir.Stmt] = [ir.Assign(ir.VarPlace(local, loc), value, loc)]
    bind = ast.Assign(targets=[node.target],
                      value=ast.Subscript(value=ast.Name(id=seq, ctx=ast.Load()),
                                          slice=ast.Name(id=idx, ctx=ast.Load()), ctx=ast.Load()))
    loop = ast.For(target=ast.Name(id=idx, ctx=ast.Store()),
                   iter=ast.Call(func=ast.Name(id="range", ctx=ast.Load()),
                                 args=[ast.Constant(value=t.length)], keywords=[]),
                   body=[bind] + node.body, orelse=[])
    for new in (bind, loop):
        ast.copy_location(new, node)
        ast.fix_missing_locations(new)
    for sub in ast.walk(bind):       # errors in `x = seq[i]` point at the loop's target and iterable
        if hasattr(sub, "lineno") and sub is not bind:
            ast.copy_location(sub, it)
    ast.copy_location(bind.targets[0], node.target)
    return setup + b.for_range(loop)
