"""Upper bounds of integer locals, for `ranges.py`: the one piece of data flow the compiler does.

A local's bound is the largest value any assignment can give it, when every assignment is bounded:
a bounded expression (ranges.ubound, other locals' bounds included), or a counter step `x = x + c`
where a loop's condition `x < K` still holds (the step is at the top of that loop's body before any
other write of x, or in a `for` loop's increment): x <= K - 1 + c. By induction over the writes, x
never exceeds the largest of them; a value that could wrap, a parameter, or a local written any
other way has no bound.

Used so that `f.hist[bucket]` after `while bucket < 7: bucket += 1 ...` needs no bounds check (and
no barrier, which kept LLVM from strength-reducing the address as clang does).
"""
from __future__ import annotations

from pybpfuring.lang.types import IntType
from pybpfuring.compiler import typed_ir as ir
from pybpfuring.compiler.lower.walk import walk
from pybpfuring.compiler.ranges import ubound


def local_bounds(fn: ir.TypedFunction) -> dict[int, int]:
    """{id(local): B} with 0 <= local <= B (as unsigned of its width) at every point of `fn`, from
    operations the verifier follows too (ranges.ubound's `verifier` mode)."""
    if any(isinstance(n, (ir.Yield, ir.Resume)) for n in walk(fn.body)):
        return {}      # locals are also restored across a yield: not only written by Assign
    writes: dict[int, list[object]] = {}
    excluded = {id(p) for p in fn.params}
    _collect(fn.body, [], writes, excluded)
    _exclude_other_uses(fn.body, excluded)
    bounds: dict[int, int] = {}
    changed = True
    while changed:
        changed = False
        for lid, contributions in writes.items():
            if lid in bounds or lid in excluded:
                continue
            values = [_value(c, bounds) for c in contributions]
            if values and all(v is not None for v in values):
                bounds[lid] = max(values)  # type: ignore[type-var]
                changed = True
    return bounds


def _collect(stmts: list, loops: list[tuple[ir.Loop, bool]], writes: dict, excluded: set) -> None:
    """Every write of each integer local, as an expression or a ("step", bound-of-cond, c, width)."""
    for pos, s in enumerate(stmts):
        if isinstance(s, ir.Assign) and isinstance(s.place, ir.VarPlace):
            local = s.place.local
            if not isinstance(local.type, IntType) or s.value is None or isinstance(s.value, ir.Place):
                excluded.add(id(local))
                continue
            step = _counter_step(s, stmts[:pos], loops)
            writes.setdefault(id(local), []).append(step if step is not None else s.value)
        elif isinstance(s, ir.If):
            _collect(s.then, [(lp, False) for lp, _ in loops], writes, excluded)
            _collect(s.orelse, [(lp, False) for lp, _ in loops], writes, excluded)
        elif isinstance(s, ir.Loop):
            outer = [(lp, False) for lp, _ in loops]
            _collect(s.body, outer + [(s, True)], writes, excluded)
            body_writes = {id(n.place.local) for n in walk(s.body)
                           if isinstance(n, ir.Assign) and isinstance(n.place, ir.VarPlace)}
            _collect_step(s, body_writes, writes, excluded)


def _collect_step(loop: ir.Loop, body_writes: set[int], writes: dict, excluded: set) -> None:
    """A `for` loop's increment runs where its condition held, if the body did not write the counter."""
    for s in loop.step:
        if not (isinstance(s, ir.Assign) and isinstance(s.place, ir.VarPlace)):
            continue
        local = s.place.local
        step = None if id(local) in body_writes else _step_of(s, loop)
        writes.setdefault(id(local), []).append(step if step is not None else s.value)


def _counter_step(s: ir.Assign, before: list, loops: list[tuple[ir.Loop, bool]]) -> tuple | None:
    """`x = x + c` at the top of the innermost loop's body, x not written before it in the body."""
    if not loops or not loops[-1][1]:
        return None
    local = s.place.local  # type: ignore[union-attr]
    if any(isinstance(n, ir.Assign) and isinstance(n.place, ir.VarPlace) and n.place.local is local
           for n in walk(before)):
        return None
    return _step_of(s, loops[-1][0])


def _step_of(s: ir.Assign, loop: ir.Loop) -> tuple | None:
    local = s.place.local  # type: ignore[union-attr]
    v = s.value
    if not (isinstance(v, ir.Binary) and v.op == "+" and _is_local(v.left, local)
            and isinstance(v.right, ir.Const) and int(v.right.value) >= 0):
        return None
    c = loop.cond
    if not (isinstance(c, ir.Compare) and c.op in ("<", "<=") and _is_local(c.left, local)):
        return None
    return ("step", c.right, 1 if c.op == "<" else 0, int(v.right.value), local.type)


def _is_local(e: object, local: ir.Local) -> bool:
    return isinstance(e, ir.Load) and isinstance(e.place, ir.VarPlace) and e.place.local is local


def _value(c: object, bounds: dict[int, int]) -> int | None:
    if isinstance(c, tuple):
        _, limit, strict, step, t = c
        k = ubound(limit, bounds, verifier=True)
        if k is None or (strict and k == 0):
            return None
        top = k - strict + step
        signed_max = (1 << (t.bits - 1)) - 1 if t.signed else (1 << t.bits) - 1
        return top if top <= signed_max else None
    b = ubound(c, bounds, verifier=True)
    t = getattr(c, "type", None)
    if b is None or (isinstance(t, IntType) and t.signed and b > (1 << (t.bits - 1)) - 1):
        return None       # a signed value that may be negative
    return b


def _exclude_other_uses(body: list, excluded: set) -> None:
    """A local named anywhere but as an assignment's target or inside a load (passed by address,
    referenced) may be written some other way."""
    allowed: set[int] = set()
    for n in walk(body):
        if isinstance(n, ir.Assign) and isinstance(n.place, ir.VarPlace):
            allowed.add(id(n.place))
        elif isinstance(n, ir.Load) and isinstance(n.place, ir.VarPlace):
            allowed.add(id(n.place))
    for n in walk(body):
        if isinstance(n, ir.VarPlace) and id(n) not in allowed:
            excluded.add(id(n.local))
