"""Liveness of locals over the typed IR: which locals a generator program must keep in its frame.

A local is live at a point when some path from there reads it before writing it. The pass runs
backward over the structured statements (loops to a fixed point) and records, for every `Yield`,
the locals live right after it: those are the values a resumed run needs, so the generator pass
saves them before the yield and restores them at the resume point. Everything else stays in
registers and never touches the frame.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass

from . import typed_ir as ir

Live = frozenset[ir.Local]


def reads(node: object) -> set[ir.Local]:
    """The locals an expression or place reads (a place passed by address counts as read)."""
    out: set[ir.Local] = set()
    _collect(node, out)
    return out


def _collect(node: object, out: set[ir.Local]) -> None:
    if isinstance(node, ir.VarPlace):
        out.add(node.local)
        return
    if isinstance(node, (ir.Local, ir.MapInfo, ir.GlobalInfo, ir.TypedFunction)) or node is None:
        return
    if isinstance(node, list):
        for item in node:
            _collect(item, out)
        return
    if is_dataclass(node) and not isinstance(node, type):
        for f in fields(node):
            if f.name in ("loc", "type"):
                continue
            _collect(getattr(node, f.name), out)


@dataclass
class _Targets:
    """Where `break` and `continue` go, as the live sets there."""

    brk: Live
    cont: Live


class Liveness:
    """`after_yield[id(y)]` is the set of locals live right after Yield y."""

    def __init__(self) -> None:
        self.after_yield: dict[int, Live] = {}

    def block(self, stmts: list[ir.Stmt], live: Live, loop: _Targets | None) -> Live:
        for s in reversed(stmts):
            live = self.stmt(s, live, loop)
        return live

    def stmt(self, s: ir.Stmt, live: Live, loop: _Targets | None) -> Live:
        if isinstance(s, ir.Assign):
            if isinstance(s.place, ir.VarPlace):
                return (live - {s.place.local}) | reads(s.value)
            return live | reads(s.place) | reads(s.value)
        if isinstance(s, ir.ExprStmt):
            return live | reads(s.expr)
        if isinstance(s, ir.If):
            return reads(s.cond) | self.block(s.then, live, loop) | self.block(s.orelse, live, loop)
        if isinstance(s, ir.Loop):
            return self.loop(s, live)
        if isinstance(s, ir.Break):
            assert loop is not None
            return loop.brk
        if isinstance(s, ir.Continue):
            assert loop is not None
            return loop.cont
        if isinstance(s, ir.Return):
            return frozenset(reads(s.value))
        if isinstance(s, ir.Yield):
            prev = self.after_yield.get(id(s), frozenset())
            self.after_yield[id(s)] = prev | live   # loops visit a yield more than once
            return frozenset(self.after_yield[id(s)] | reads(s.suspend))
        if isinstance(s, ir.Resume):
            return live
        raise TypeError(f"liveness: unknown statement {s!r}")

    def loop(self, s: ir.Loop, out: Live) -> Live:
        # head: cond, then body (continue -> step -> head) or exit to `out`
        head: Live = frozenset()
        while True:
            step_in = self.block(s.step, head, None)
            body_in = self.block(s.body, step_in, _Targets(out, step_in))
            new_head = frozenset(reads(s.cond)) | body_in | out
            if new_head == head:
                return head
            head = new_head


def live_after_yields(body: list[ir.Stmt]) -> dict[int, Live]:
    """For each Yield in `body` (by id), the locals live right after it."""
    lv = Liveness()
    lv.block(body, frozenset(), None)
    return lv.after_yield
