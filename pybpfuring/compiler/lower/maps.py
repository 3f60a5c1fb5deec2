"""Scalar reads and writes of map values, lowered the way a C programmer writes them.

`v = m[k]` (or `m[k].field`) is `p = lookup(); v = p ? *p : 0`, and `m[k] = v` / `m[k] += v` is
`p = lookup(); if (p) *p = v` with a single lookup. The general path (a reference that falls back to
a zeroed scratch object) gives the same results but costs a scratch zeroing, a pointer select and a
spilled stack address per access; references that outlive one statement (`s = m[k]`) still use it.
"""
from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import TYPE_CHECKING

import llvmlite.ir as ll

from pybpfuring.lang.types import ArrayType, BoolType, IntType, StructType
from pybpfuring.compiler import typed_ir as ir
from pybpfuring.compiler.lower.types import I8, I64, llty, memty
from pybpfuring.compiler.lower.lookup import found_or_exit, lookup

if TYPE_CHECKING:
    from pybpfuring.compiler.lower.function import FunctionLowering

# Expressions that neither write memory nor call anything: evaluating them only where the map value
# exists changes nothing a program can observe.
_PURE = (ir.Const, ir.Load, ir.Cast, ir.Binary, ir.Unary, ir.Compare, ir.Logical, ir.Not, ir.Truth,
         ir.Select, ir.RefOf, ir.MapRef, ir.MapGet, ir.VarPlace, ir.DerefPlace, ir.FieldPlace, ir.IndexPlace)


def map_root(place: object) -> tuple[ir.MapRef, int] | None:
    """(the map value reference, constant byte offset) if `place` is a field/element of `m[k]`."""
    offset = 0
    p = place
    while True:
        if isinstance(p, ir.FieldPlace):
            offset += p.offset
            p = p.base
        elif isinstance(p, ir.IndexPlace) and isinstance(p.index, ir.Const):
            offset += p.index.value * p.type.size
            p = p.base
        else:
            break
    if isinstance(p, ir.DerefPlace) and isinstance(p.ref, ir.MapRef):
        return p.ref, offset
    return None


def is_pure(e: object) -> bool:
    if not isinstance(e, _PURE):
        return False
    for f in fields(e):  # type: ignore[arg-type]
        v = getattr(e, f.name)
        items = v if isinstance(v, list) else [v]
        for item in items:
            if isinstance(item, _PURE) or (is_dataclass(item) and hasattr(item, "loc")
                                           and not isinstance(item, (ir.Local, ir.MapInfo))):
                if not is_pure(item):
                    return False
    return True


def _cache(fl: "FunctionLowering") -> dict[int, ll.Value]:
    """Addresses of map-value places already looked up in the statement being lowered."""
    cache = getattr(fl, "_map_place_addr", None)
    if cache is None:
        cache = {}
        fl._map_place_addr = cache  # type: ignore[attr-defined]
    return cache


def _lookup_branch(fl: "FunctionLowering", ref: ir.MapRef, offset: int) -> tuple[ll.Value, ll.Block]:
    """Look the key up and branch on the result; leave the builder where it was found. Returns (the
    address `offset` bytes into the value, the block both paths continue in). A write has no value
    to join, so it branches on its own rather than through FunctionLowering.merge."""
    b = fl.b
    p = lookup(fl, ref.map, ref.key)
    found = found_or_exit(fl, ref.map, ref.key, p)
    hit, done = fl.f.append_basic_block("map.hit"), fl.f.append_basic_block("map.done")
    b.cbranch(found, hit, done)
    b.position_at_end(hit)
    return _at(fl, p, offset), done


def _at(fl: "FunctionLowering", p: ll.Value, offset: int) -> ll.Value:
    """The address `offset` bytes into the map value at `p`."""
    return fl.b.gep(p, [ll.Constant(I64, offset)], source_etype=I8) if offset else p


def scalar_load(fl: "FunctionLowering", e: ir.Load) -> ll.Value | None:
    """`m[k]` / `m[k].f` read as a value: 0 where the key is missing. None: not such a load."""
    if not isinstance(e.type, (IntType, BoolType)):
        return None
    b = fl.b
    cached = _cache(fl).get(id(e.place))
    if cached is not None:
        return fl.from_mem(b.load(cached, typ=memty(e.type)), e.type)
    root = map_root(e.place)
    if root is None:
        return None
    ref, offset = root
    p = lookup(fl, ref.map, ref.key)
    found = found_or_exit(fl, ref.map, ref.key, p)
    return fl.merge(found, lambda: fl.from_mem(b.load(_at(fl, p, offset), typ=memty(e.type)), e.type),
                    ll.Constant(llty(e.type), 0), ("map.hit", "map.miss", "map.done"))


def store(fl: "FunctionLowering", s: ir.Assign) -> bool:
    """`m[k] = v`, `m[k] op= v`, `m[k].f = v`, `m[k] = obj` through one lookup; the write is dropped
    where the key is missing. False: the place is not in a map value (nothing emitted)."""
    root = map_root(s.place)
    if root is None:
        return False
    t = s.place.type
    b = fl.b
    aggregate = isinstance(t, (StructType, ArrayType))
    value: ll.Value | None = None
    src: ll.Value | None = None
    if aggregate:
        src = fl.addr(s.value) if s.value is not None else None  # type: ignore[arg-type]
    elif not (is_pure(s.value) and is_pure(root[0].key)):
        # Its effects happen, key or no key; and the value comes before the key when computing
        # the key can change what the value reads (`m[f()] = k in h` where f updates h: Python
        # and the language compute the value first; found by the differential tier).
        value = fl.expr(s.value)  # type: ignore[arg-type]
    addr, done = _lookup_branch(fl, *root)
    if aggregate:
        if src is None:
            fl.zero(addr, t)
        else:
            fl.memcpy(addr, src, t.size, t.align)  # type: ignore[union-attr]
    else:
        if value is None:
            cache = _cache(fl)
            cache[id(s.place)] = addr  # `m[k] += v` reads the value it writes: no second lookup
            try:
                value = fl.expr(s.value)  # type: ignore[arg-type]
            finally:
                cache.pop(id(s.place), None)
        b.store(fl.to_mem(value, t), addr)
    b.branch(done)
    b.position_at_end(done)
    return True


def same_expr(a: object, b: object) -> bool:
    """Structural equality of typed-IR trees, source locations aside; locals and maps by identity."""
    if isinstance(a, (ir.Local, ir.MapInfo)) or isinstance(b, (ir.Local, ir.MapInfo)):
        return a is b
    if type(a) is not type(b):
        return False
    if not is_dataclass(a):
        return a == b
    return all(same_expr(getattr(a, f.name), getattr(b, f.name))
               for f in fields(a) if f.name != "loc")  # type: ignore[arg-type]


def lookup_reused_by(s: ir.If) -> ir.MapRef | None:
    """For `if k in m:` whose first statement is `x = m[k]` (same map, same pure key), the MapRef
    that can take the condition's lookup: nothing runs between the two, so the key is the same
    and the element the condition found is the one the assignment would find."""
    c = s.cond
    if not (isinstance(c, ir.MapGet) and c.default is None and is_pure(c.key) and s.then):
        return None
    first = s.then[0]
    if not (isinstance(first, ir.Assign) and isinstance(first.place, ir.VarPlace)):
        return None
    v: object = first.value
    if isinstance(v, ir.RefOf) and isinstance(v.place, ir.DerefPlace):
        v = v.place.ref
    if isinstance(v, ir.MapRef) and v.map is c.map and v.miss_returns is None and same_expr(v.key, c.key):
        return v
    return None
