"""Proving that a `while` loop terminates, so the program stays within what the verifier accepts.

The rule (deliberately simple, so a user can predict it): some `and`-conjunct of the condition compares
an integer local `v` with a constant (`v < C`, `v <= C`, `v > C`, `v >= C`), and in the body `v` changes
only through top-level `v += c` / `v -= c` with constant c moving toward the limit, with no `continue`
before the first such step, and without wrapping past the type's range.
"""
from __future__ import annotations

import ast
from typing import Any, Protocol


class _Resolver(Protocol):
    scope: dict[str, Any]

    def const_value(self, node: ast.expr | None) -> int | None: ...


def _conjuncts(test: ast.expr) -> list[ast.expr]:
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        return [c for v in test.values for c in _conjuncts(v)]
    return [test]


def _limit(cmp: ast.expr, res: _Resolver) -> tuple[str, str, int] | None:
    """(variable, direction 'up'|'down', limit) for `v < C`-like comparisons."""
    if not (isinstance(cmp, ast.Compare) and len(cmp.ops) == 1):
        return None
    left, op, right = cmp.left, cmp.ops[0], cmp.comparators[0]
    flip = {ast.Lt: ast.Gt, ast.LtE: ast.GtE, ast.Gt: ast.Lt, ast.GtE: ast.LtE}
    if not isinstance(left, ast.Name) and isinstance(right, ast.Name) and type(op) in flip:
        left, right, op = right, left, flip[type(op)]()
    if not isinstance(left, ast.Name):
        return None
    c = res.const_value(right)
    if c is None:
        return None
    if isinstance(op, (ast.Lt, ast.LtE)):
        return left.id, "up", c + (1 if isinstance(op, ast.LtE) else 0)
    if isinstance(op, (ast.Gt, ast.GtE)):
        return left.id, "down", c - (1 if isinstance(op, ast.GtE) else 0)
    return None


def _assigns_to(node: ast.AST, name: str) -> list[ast.AST]:
    found = []
    for n in ast.walk(node):
        targets: list[ast.expr] = []
        if isinstance(n, ast.Assign):
            targets = n.targets
        elif isinstance(n, (ast.AugAssign, ast.AnnAssign)):
            targets = [n.target]
        elif isinstance(n, ast.For):
            targets = [n.target]
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            found.append(n)
    return found


def _step(stmt: ast.AST, name: str, res: _Resolver) -> int | None:
    if isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name) and stmt.target.id == name:
        c = res.const_value(stmt.value)
        if c is not None and isinstance(stmt.op, ast.Add):
            return c
        if c is not None and isinstance(stmt.op, ast.Sub):
            return -c
    return None


def _continue_before(body: list[ast.stmt], first_step: ast.stmt) -> bool:
    for stmt in body:
        if stmt is first_step:
            return False
        if any(isinstance(n, ast.Continue) for n in ast.walk(stmt)):
            return True
    return False


def prove_while_bound(node: ast.While, res: _Resolver) -> tuple[int | None, str]:
    """(the largest number of iterations, "") or (None, why the rule above does not prove termination).

    The reason given is that of the first comparison of the condition that names a local integer:
    it is the one the user most likely meant as the loop's bound."""
    reason = "its condition compares no local integer variable with a constant (write `i < N`)"
    first = True
    for cmp in _conjuncts(node.test):
        lim = _limit(cmp, res)
        if lim is None:
            continue
        name, direction, limit = lim
        var = res.scope.get(name)
        vtype = getattr(var, "type", None)
        if var is None or not hasattr(vtype, "bits"):
            continue
        bound, why = _bound_for(node, res, name, direction, limit, vtype)
        if bound is not None:
            return bound, ""
        if first:
            reason, first = why, False
    return None, reason


def _bound_for(node: ast.While, res: _Resolver, name: str, direction: str, limit: int,
               vtype: Any) -> tuple[int | None, str]:
    steps = [_step(s, name, res) for s in node.body]
    top_level = [s for s, st in zip(node.body, steps) if st is not None]
    all_assigns = _assigns_to(ast.Module(body=node.body, type_ignores=[]), name)
    if not top_level:
        return None, (f"{name!r} is not stepped by a constant (`{name} += c` or `{name} -= c`) "
                      "at the top level of the body")
    if len(all_assigns) != len(top_level):
        return None, f"{name!r} is also assigned elsewhere in the body"
    values = [st for st in steps if st is not None]
    if direction == "up" and not all(v > 0 for v in values) or \
            direction == "down" and not all(v < 0 for v in values):
        return None, f"{name!r} does not move toward its limit {limit}"
    if _continue_before(node.body, top_level[0]):
        return None, f"a `continue` can skip the step of {name!r}"
    # The variable must reach the limit before it could wrap around its type's range.
    biggest = max(abs(v) for v in values)
    lo, hi = vtype.min, vtype.max
    if direction == "up" and limit + biggest - 1 > hi or direction == "down" and limit - biggest + 1 < lo:
        return None, f"{name!r} ({vtype.name}) could wrap around before reaching its limit"
    smallest = min(abs(v) for v in values)
    return (hi - lo) // smallest + 1, ""


# ---- bounds from the program's own checks --------------------------------------------------------
_EXITS = (ast.Return, ast.Break, ast.Continue, ast.Raise)


def exit_bound(stmt: ast.stmt, res: _Resolver) -> tuple[str, int] | None:
    """`if n > K: return` (or break/continue; `n >= K`, `K < n`, `K <= n`), without else: the
    statements after it in the same block run only with n <= K (or K - 1). (name, bound) or None."""
    if not (isinstance(stmt, ast.If) and not stmt.orelse and stmt.body and isinstance(stmt.body[-1], _EXITS)):
        return None
    lim = _limit(stmt.test, res)
    if lim is None or lim[1] != "down":
        return None
    name, _, first_out = lim       # the loop-style limit: n > first_out exits, so n <= first_out
    return name, first_out


def assigned_names(stmt: ast.stmt) -> set[str]:
    """Names a statement (or anything nested in it) may assign: a bound known before it is void."""
    names: set[str] = set()
    for n in ast.walk(stmt):
        targets: list[ast.expr] = []
        if isinstance(n, ast.Assign):
            targets = n.targets
        elif isinstance(n, (ast.AugAssign, ast.AnnAssign, ast.For)):
            targets = [n.target]
        elif isinstance(n, ast.NamedExpr):
            targets = [n.target]
        elif isinstance(n, ast.Global):
            names.update(n.names)
        for t in targets:
            names.update(x.id for x in ast.walk(t) if isinstance(x, ast.Name))
    return names


def bounded_stop(node: ast.expr, facts: dict[str, int]) -> ast.expr | None:
    """`n` known to be <= K from an earlier `if n > K: return`: the same loop as `min(n, K)`, which
    gives the verifier the bound at the loop itself (the earlier check may be in another register)."""
    if not (isinstance(node, ast.Name) and node.id in facts):
        return None
    call = ast.Call(func=ast.Name("min", ast.Load()), args=[node, ast.Constant(facts[node.id])], keywords=[])
    return ast.copy_location(call, node)


def unbounded_stop_hint(node: ast.expr) -> str:
    """How to give a runtime range() endpoint a bound, naming the value."""
    text = ast.unparse(node)
    return (f"`{text}` has no bound the compiler knows: write range(min({text}, N)) with a constant N, "
            f"or check it first (`if {text} > N: return ...`) and do not assign it before the loop")


def break_bound(node: ast.While, res: _Resolver) -> tuple[int | None, str]:
    """`while True:` whose body checks a counter at the top level (`if k >= C: break`) and steps it
    by a constant toward C: bounded like `while k < C:` with the same body."""
    if not (isinstance(node.test, ast.Constant) and node.test.value is True):
        return None, "its condition is not a comparison"
    for stmt in node.body:
        if not (isinstance(stmt, ast.If) and not stmt.orelse and len(stmt.body) == 1
                and isinstance(stmt.body[0], ast.Break)):
            if any(isinstance(n, ast.Continue) for n in ast.walk(stmt)):
                return None, "a `continue` can skip the check that ends it"
            continue
        lim = _limit(stmt.test, res)
        if lim is None:
            continue
        name, direction, limit = lim
        # break when k >= C  <=>  loop while k < C: the opposite direction, the limit one step over
        direction, limit = ("up", limit + 1) if direction == "down" else ("down", limit - 1)
        var = res.scope.get(name)
        if var is None or not hasattr(getattr(var, "type", None), "bits"):
            continue
        return _bound_for(node, res, name, direction, limit, var.type)
    return None, "no top-level `if k >= C: break` checks a counter"
