"""The reference evaluator: runs the typed IR in pure Python with the language's semantics.

It is the oracle the differential tests compare compiled code against: the same typed IR the
lowering consumes, executed with the C rules of `ctypes_rules` (one definition of the semantics),
structs and arrays as byte buffers laid out as in C, maps with the language's rules (a missing key
reads 0 and drops writes), user memory as explicit regions, and io_uring helpers supplied by the
caller (so one evaluator can model any backend).

    typed = compile_full(fns, "generic").typed
    r = evaluate(typed, "prog", ctx_bytes, maps={"arr": {0: 5}}, user_memory={addr: b"..."})
    r.retval, r.ctx_out, r.maps["arr"][0]

Evaluation order follows the lowering's (which is C's where C defines one): operands left to right;
a scalar assignment evaluates the value before the place, an aggregate copy the destination first.
"""
from __future__ import annotations

import re
import time
import random
from dataclasses import dataclass
from typing import Any, Callable

from ..lang.types import ArrayType, BoolType, IntType, StructType, ValueType
from . import typed_ir as ir
from .ctypes_rules import convert, fold_binary, fold_compare
from .evaluator_memory import (EFAULT, EvalMap, EvaluationError, Ref, UserMemory, decode_scalar,
                               encode_scalar)

__all__ = ["evaluate", "EvalResult", "EvaluationError", "Ref", "Evaluator"]

# A runaway program (a loop bound the frontend proved wrongly) stops here instead of hanging.
DEFAULT_STEP_BUDGET = 2_000_000
PLACES = (ir.VarPlace, ir.DerefPlace, ir.FieldPlace, ir.IndexPlace)
HelperModel = Callable[..., int]


@dataclass
class EvalResult:
    retval: int
    ctx_out: bytes
    maps: dict[str, dict[int | bytes, int | bytes]]
    user_memory: dict[int, bytes]


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _Return(Exception):
    def __init__(self, value: Any):
        self.value = value


class LocalCell:
    """A scalar local seen as memory (helpers such as copy_from_user write into locals)."""

    def __init__(self, frame: "Frame", local: ir.Local):
        self.frame, self.local = frame, local

    def read(self, size: int) -> bytes:
        return encode_scalar(self.frame.vars[id(self.local)], self.local.type)  # type: ignore[arg-type]

    def write(self, data: bytes) -> None:
        self.frame.vars[id(self.local)] = decode_scalar(data, self.local.type)  # type: ignore[arg-type]

    def load(self, t: ValueType) -> int:
        return self.frame.vars[id(self.local)]

    def store(self, t: ValueType, value: int) -> None:
        self.frame.vars[id(self.local)] = value


def _holds_yield(s: object, index: int) -> bool:
    if isinstance(s, ir.Yield):
        return s.index == index
    if isinstance(s, ir.If):
        return _holds_yield_list(s.then, index) or _holds_yield_list(s.orelse, index)
    if isinstance(s, ir.Loop):
        return _holds_yield_list(s.body, index)
    return False


def _holds_yield_list(stmts: list[ir.Stmt], index: int) -> bool:
    return any(_holds_yield(s, index) for s in stmts)


class Frame:
    """One activation of a function (an inlined call gets its own, as its allocas are its own)."""

    def __init__(self, fn: ir.TypedFunction):
        self.fn = fn
        self.seek = 0     # resuming a generator: the Yield to go on after (0: running normally)
        # Locals start zeroed: the lowering zero-fills every local before the body runs.
        self.vars: dict[int, Any] = {id(l): (None if isinstance(l.type, ir.RefType) else 0)
                                     for l in fn.locals}
        self.slots: dict[int, bytearray] = {}
        self.scratch: bytearray | None = None

    def zeroed_scratch(self, size: int) -> Ref:
        """The stand-in object of a missing map key or an out-of-range index: one buffer per frame,
        zeroed before each use, as the lowering's shared stack temporary."""
        if self.scratch is None or len(self.scratch) < size:
            self.scratch = bytearray(max(size, 8))
        self.scratch[:size] = bytes(size)
        return Ref(self.scratch)


class Evaluator:
    """Runs programs of one TypedModule against a set of maps and user memory."""

    def __init__(self, module: ir.TypedModule, maps: dict[str, dict] | None = None,
                 user_memory: dict[int, bytes | bytearray] | None = None,
                 helpers: dict[str, HelperModel] | None = None,
                 step_budget: int = DEFAULT_STEP_BUDGET):
        self.module = module
        self.maps: dict[int, EvalMap] = {}
        self.maps_by_name: dict[str, EvalMap] = {}
        for info in module.maps:
            d = info.defn
            m = EvalMap(info.name, d.map_type, d.key_type, d.value_type, d.max_entries)
            self.maps[id(info)] = m
            self.maps_by_name[info.name] = m
        for name, contents in (maps or {}).items():
            if name not in self.maps_by_name:
                raise EvaluationError(f"the module has no map {name!r} (it has: "
                                      f"{', '.join(self.maps_by_name) or 'none'})")
            self.maps_by_name[name].fill(contents)
        self.user = UserMemory(user_memory)
        self.helpers = helpers or {}
        self.budget = step_budget

    # ---- entry point ----
    def run(self, program_name: str, ctx: bytes) -> EvalResult:
        fn = next((f for f in self.module.programs if f.name == program_name), None)
        if fn is None:
            known = ", ".join(f.name for f in self.module.programs)
            raise EvaluationError(f"no program {program_name!r} in the module (it has: {known})")
        ctx_buf = bytearray(ctx)
        args = [Ref(ctx_buf)] if fn.params else []
        retval = self.call(fn, args)
        ret_t = fn.return_type
        retval = convert(retval or 0, ret_t) if isinstance(ret_t, (IntType, BoolType)) else 0
        return EvalResult(retval, bytes(ctx_buf),
                          {n: m.snapshot() for n, m in self.maps_by_name.items()},
                          self.user.snapshot())

    def call(self, fn: ir.TypedFunction, args: list[Any]) -> Any:
        frame = Frame(fn)
        for p, a in zip(fn.params, args):
            frame.vars[id(p)] = a
        try:
            self.block(frame, fn.body)
        except _Return as r:
            return r.value
        return None if fn.return_type is None else 0  # falling off the end returns 0

    # ---- statements ----
    def block(self, f: Frame, stmts: list[ir.Stmt]) -> None:
        for s in stmts:
            self.budget -= 1
            if self.budget < 0:
                raise EvaluationError(f"step budget exhausted at {s.loc}: a loop that does not end?")
            if f.seek:
                self.seek(f, s)
            else:
                self.stmt(f, s)

    # ---- generator programs: resuming after a yield (compiler/frontend/generators.py) ----
    def seek(self, f: Frame, s: ir.Stmt) -> None:
        """Resuming at Yield f.seek: skip what comes before it, enter the if or loop holding it,
        and run normally from right after it (as the lowering's jump into the resume block)."""
        if not _holds_yield(s, f.seek):
            return
        if isinstance(s, ir.Yield):
            f.seek = 0
        elif isinstance(s, ir.If):
            self.block(f, s.then if _holds_yield_list(s.then, f.seek) else s.orelse)
        elif isinstance(s, ir.Loop):
            self.loop(f, s, resume=True)

    def stmt(self, f: Frame, s: ir.Stmt) -> None:
        t = type(s)
        if t is ir.Assign:
            self.assign(f, s)  # type: ignore[arg-type]
        elif t is ir.ExprStmt:
            self.expr(f, s.expr)  # type: ignore[union-attr]
        elif t is ir.If:
            self.block(f, s.then if self.expr(f, s.cond) else s.orelse)  # type: ignore[union-attr]
        elif t is ir.Loop:
            self.loop(f, s)  # type: ignore[arg-type]
        elif t is ir.Break:
            raise _Break()
        elif t is ir.Continue:
            raise _Continue()
        elif t is ir.Return:
            raise _Return(None if s.value is None else self.expr(f, s.value))  # type: ignore[union-attr]
        elif t is ir.Yield:
            self.block(f, s.save)      # type: ignore[union-attr]
            self.block(f, s.suspend)   # type: ignore[union-attr]  (ends in a Return of WAIT)
        elif t is ir.Resume:
            state = self.expr(f, s.state)  # type: ignore[union-attr]
            if state:
                self.block(f, s.restore.get(state, []))  # type: ignore[union-attr]
                f.seek = state
        else:
            raise EvaluationError(f"unknown statement {type(s).__name__} at {s.loc}")

    def assign(self, f: Frame, s: ir.Assign) -> None:
        t = s.place.type
        if isinstance(t, (StructType, ArrayType)):
            dst = self.addr(f, s.place)
            if s.value is None:
                dst.write(bytes(t.size))
            else:
                dst.write(self.addr(f, s.value).read(t.size))  # type: ignore[arg-type]
            return
        if isinstance(s.place, ir.VarPlace):
            f.vars[id(s.place.local)] = self.expr(f, s.value)  # type: ignore[arg-type]
            return
        value = self.expr(f, s.value)  # type: ignore[arg-type]
        self.addr(f, s.place).store(t, value)  # type: ignore[arg-type]

    def loop(self, f: Frame, s: ir.Loop, resume: bool = False) -> None:
        trips = 0
        while resume or self.expr(f, s.cond):
            resume = False             # resuming: into the body without testing the condition
            trips += 1
            if trips > s.bound:
                raise EvaluationError(f"the loop at {s.loc} ran more than the {s.bound} iterations "
                                      "the compiler proved as its bound")
            try:
                self.block(f, s.body)
            except _Break:
                break
            except _Continue:
                pass
            self.block(f, s.step)

    # ---- places ----
    def addr(self, f: Frame, p: ir.Place) -> Ref | LocalCell:
        t = type(p)
        if t is ir.VarPlace:
            return LocalCell(f, p.local)  # type: ignore[union-attr]
        if t is ir.DerefPlace:
            ref = self.expr(f, p.ref)  # type: ignore[union-attr]
            if not isinstance(ref, Ref):
                raise EvaluationError(f"use of an unset reference at {p.loc}")
            return ref
        if t is ir.FieldPlace:
            base = self.addr(f, p.base)  # type: ignore[union-attr]
            return base.at(p.offset)  # type: ignore[union-attr]
        if t is ir.IndexPlace:
            return self.index_addr(f, p)  # type: ignore[arg-type]
        raise EvaluationError(f"cannot address {type(p).__name__} at {p.loc}")

    def index_addr(self, f: Frame, p: ir.IndexPlace) -> Ref:
        base = self.addr(f, p.base)
        arr = p.base.type
        assert isinstance(arr, ArrayType) and isinstance(base, Ref)
        idx = self.expr(f, p.index)
        if not 0 <= idx < arr.length:  # (the index is a u64: negative ones are huge)
            return f.zeroed_scratch(p.type.size)
        return base.at(idx * p.type.size)

    def place_bytes(self, f: Frame, p: ir.Place) -> bytes:
        return self.addr(f, p).read(p.type.size)  # type: ignore[union-attr]

    # ---- expressions ----
    def expr(self, f: Frame, e: ir.Expr) -> Any:
        return _DISPATCH[type(e)](self, f, e)

    def _const(self, f: Frame, e: ir.Const) -> int:
        return e.value

    def _load(self, f: Frame, e: ir.Load) -> Any:
        p = e.place
        if type(p) is ir.VarPlace:
            return f.vars[id(p.local)]  # type: ignore[union-attr]
        return self.addr(f, p).load(e.type)  # type: ignore[arg-type]

    def _cast(self, f: Frame, e: ir.Cast) -> int:
        return convert(self.expr(f, e.value), e.type)

    def _binary(self, f: Frame, e: ir.Binary) -> int:
        a = self.expr(f, e.left)
        b = self.expr(f, e.right)
        return fold_binary(e.op, a, b, e.type)

    def _unary(self, f: Frame, e: ir.Unary) -> int:
        v = self.expr(f, e.operand)
        return e.type.wrap(-v if e.op == "neg" else ~v)

    def _compare(self, f: Frame, e: ir.Compare) -> int:
        a = self.expr(f, e.left)
        b = self.expr(f, e.right)
        return int(fold_compare(e.op, a, b))

    def _logical(self, f: Frame, e: ir.Logical) -> int:
        left = self.expr(f, e.left)
        if e.op == "and":
            return int(bool(left) and bool(self.expr(f, e.right)))
        return int(bool(left) or bool(self.expr(f, e.right)))

    def _not(self, f: Frame, e: ir.Not) -> int:
        return 1 - self.expr(f, e.operand)

    def _truth(self, f: Frame, e: ir.Truth) -> int:
        return int(self.expr(f, e.operand) != 0)

    def _select(self, f: Frame, e: ir.Select) -> Any:
        c = e.cond
        if type(c) is ir.Compare and {id(c.left), id(c.right)} == {id(e.then), id(e.orelse)}:
            # min(x, y) / max(x, y) share their operands with the test: each is evaluated once.
            values = {id(c.left): self.expr(f, c.left), id(c.right): self.expr(f, c.right)}
            test = fold_compare(c.op, values[id(c.left)], values[id(c.right)])
            return values[id(e.then)] if test else values[id(e.orelse)]
        return self.expr(f, e.then) if self.expr(f, e.cond) else self.expr(f, e.orelse)

    def _ref_of(self, f: Frame, e: ir.RefOf) -> Ref:
        r = self.addr(f, e.place)
        if not isinstance(r, Ref):
            raise EvaluationError(f"reference to a scalar local at {e.loc}")
        return r

    def _new_aggregate(self, f: Frame, e: ir.NewAggregate) -> Ref:
        size = e.type.pointee.size
        buf = f.slots.get(e.slot)
        if buf is None:
            buf = f.slots[e.slot] = bytearray(size)
        else:
            buf[:] = bytes(size)  # each `S()` zeroes its stack slot again
        return Ref(buf)

    def _key(self, f: Frame, info: ir.MapInfo, key: ir.Expr | ir.Place) -> Callable[[], bytes]:
        """Evaluate a map key; the bytes are read when the helper runs (a place is passed by address)."""
        kt = info.defn.key_type
        if isinstance(key, PLACES):
            where = self.addr(f, key)  # type: ignore[arg-type]
            return lambda: where.read(kt.size)
        raw = encode_scalar(self.expr(f, key), kt)  # type: ignore[arg-type]
        return lambda: raw

    def _map_ref(self, f: Frame, e: ir.MapRef) -> Ref:
        key = self._key(f, e.map, e.key)
        found = self.maps[id(e.map)].lookup(key())
        return found if found is not None else f.zeroed_scratch(e.type.pointee.size)

    def _map_get(self, f: Frame, e: ir.MapGet) -> int:
        key = self._key(f, e.map, e.key)
        found = self.maps[id(e.map)].lookup(key())
        if e.default is None:
            return int(found is not None)
        default = self.expr(f, e.default)
        return found.load(e.type) if found is not None else default

    def _map_update(self, f: Frame, e: ir.MapUpdate) -> int:
        m = self.maps[id(e.map)]
        key = self._key(f, e.map, e.key)
        if e.value is None:
            return m.delete(key())
        vt = e.map.defn.value_type
        if isinstance(e.value, PLACES):
            where = self.addr(f, e.value)  # type: ignore[arg-type]
            value = where.read(vt.size)
        else:
            value = encode_scalar(self.expr(f, e.value), vt)  # type: ignore[arg-type]
        return m.update(key(), value)

    def _call(self, f: Frame, e: ir.Call) -> Any:
        args = [self.expr(f, a) for a in e.args]
        return self.call(e.func, args)

    def _helper(self, f: Frame, e: ir.HelperCall) -> int:
        args = [self.addr(f, a) if isinstance(a, PLACES) else self.expr(f, a) for a in e.args]
        model = self.helpers.get(e.name)
        if model is not None:
            result = model(*args)
        elif e.name == "copy_from_user":
            result = self.copy_from_user(args[0], args[1], e.args[0].type.size)  # type: ignore[union-attr]
        elif e.name == "copy_to_user":
            result = self.copy_to_user(args[0], args[1], e.args[1].type.size)  # type: ignore[union-attr]
        elif e.name == "ktime_get_ns":
            result = time.monotonic_ns()
        elif e.name == "get_prandom_u32":
            result = random.getrandbits(32)
        elif e.name == "printk":
            result = len(format_printk(e.data or b"", args))
        else:
            raise EvaluationError(f"{e.name}() at {e.loc} needs a model: pass "
                                  f"helpers={{{e.name!r}: callable}} to evaluate()")
        return convert(int(result), e.type)

    def copy_from_user(self, dst: Ref | LocalCell, uptr: int, size: int) -> int:
        data = self.user.read(uptr, size)
        if data is None:
            dst.write(bytes(size))  # bpf_copy_from_user zeroes the destination on a fault
            return -EFAULT
        dst.write(data)
        return 0

    def copy_to_user(self, uptr: int, src: Ref | LocalCell, size: int) -> int:
        return 0 if self.user.write(uptr, src.read(size)) else -EFAULT


_DISPATCH: dict[type, Callable[[Evaluator, Frame, Any], Any]] = {
    ir.Const: Evaluator._const, ir.Load: Evaluator._load, ir.Cast: Evaluator._cast,
    ir.Binary: Evaluator._binary, ir.Unary: Evaluator._unary, ir.Compare: Evaluator._compare,
    ir.Logical: Evaluator._logical, ir.Not: Evaluator._not, ir.Truth: Evaluator._truth,
    ir.Select: Evaluator._select, ir.RefOf: Evaluator._ref_of,
    ir.NewAggregate: Evaluator._new_aggregate, ir.MapRef: Evaluator._map_ref,
    ir.MapGet: Evaluator._map_get, ir.MapUpdate: Evaluator._map_update, ir.Call: Evaluator._call,
    ir.HelperCall: Evaluator._helper,
}

_FMT = re.compile(rb"%(?:%|l{0,2}[diuxX])")


def format_printk(fmt: bytes, args: list[int]) -> bytes:
    """What bpf_trace_printk writes for the integer conversions the language allows."""
    it = iter(args)

    def one(m: re.Match[bytes]) -> bytes:
        spec = m.group(0)
        if spec == b"%%":
            return b"%"
        v = next(it, 0)
        conv, wide = spec[-1:], spec.count(b"l") > 0
        bits = 64 if wide else 32
        v &= (1 << bits) - 1
        if conv in (b"d", b"i") and v >> (bits - 1):
            v -= 1 << bits
        return (format(v, "x") if conv == b"x" else format(v, "X") if conv == b"X" else str(v)).encode()

    return _FMT.sub(one, fmt.rstrip(b"\0"))


def evaluate(module: ir.TypedModule, program_name: str, ctx: bytes,
             maps: dict[str, dict] | None = None, user_memory: dict[int, bytes] | None = None,
             helpers: dict[str, HelperModel] | None = None) -> EvalResult:
    """Run one program of `module` on `ctx` (bytes of its context) and report what it did.

    `maps` gives initial contents by map name ({key: value}, ints for integer types, bytes for
    structs and arrays; array maps start zeroed, hash maps empty). `user_memory` maps addresses
    to the bytes there (copy_from_user/copy_to_user reach only these). `helpers` models helpers
    by name (submit, emit_cqe, reap_cqe, ...): each gets the ctx and objects as `Ref`s (with
    read/write/load/store), scalars as ints, and returns the helper's result.
    """
    return Evaluator(module, maps, user_memory, helpers).run(program_name, ctx)
