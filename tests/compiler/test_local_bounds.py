"""Bounds of integer locals (pybpfuring/compiler/lower/local_bounds.py): an index the compiler proves
inside its array gets no bounds check (no `idx.bad` scratch path in the IR), and the program still
verifies; an index with no proof keeps its check; a counter bound by a loop condition is found,
one written anywhere else is not."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kernel"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from diffharness import compile_source, loaded_object, run_both  # noqa: E402
from test_value_range_loops import ctx  # noqa: E402
from pybpfuring.compiler.lower.local_bounds import local_bounds  # noqa: E402

SOURCE = '''
from pybpfuring import Array, ArrayMap, Ctx, iouring_program, u32, u64, OK

out = ArrayMap(u64, 8)


@iouring_program
def counter(ctx: Ctx) -> int:
    hist = Array[u32, 8]()
    b: u32 = 0
    size = ctx.wait_nr
    while b < 7:
        b += 1
        size >>= 2
        if size == 0:
            break
    hist[b] += 1
    out[0] = u64(hist[b]) + b
    return OK


@iouring_program
def unproven(ctx: Ctx) -> int:
    hist = Array[u32, 8]()
    b: u32 = ctx.wait_idx
    while b < 7:
        b += 1
    hist[b] += 1                 # b may start at 100: the check stays
    out[1] = u64(hist[b & 7])
    return OK
'''


def _functions(typed):
    return {f.name: f for f in typed.functions}


def _locals_bound(typed, fn_name):
    fn = _functions(typed)[fn_name]
    bounds = local_bounds(fn)
    return {loc.name: bounds.get(id(loc)) for loc in fn.locals}


def test_a_loop_counter_is_bounded_and_a_parameter_derived_one_is_not(tmp_path):
    res, _ = compile_source(SOURCE, tmp_path, "bounds")
    assert _locals_bound(res.typed, "counter")["b"] == 7
    assert _locals_bound(res.typed, "unproven")["b"] == 0xFFFFFFFF      # only its type's range
    ir_text = res.llvm_ir
    start, other = ir_text.index("@\"counter\"("), ir_text.index("@\"unproven\"(")
    counter_ir = ir_text[start:other] if start < other else ir_text[start:]
    unproven_ir = ir_text[other:start] if other < start else ir_text[other:]
    assert "idx.bad" not in counter_ir and "idx.bad" in unproven_ir


def test_unchecked_index_verifies_and_agrees(tmp_path):
    for obj, typed in loaded_object(SOURCE, tmp_path, "bounds"):
        for prog in ("counter", "unproven"):
            for n, idx in ((0, 0), (1, 3), (17, 6), (1 << 20, 100), (0xFFFFFFFF, 7)):
                mismatches = run_both(obj, typed, prog, ctx(n, idx))
                assert not mismatches, "\n".join(map(str, mismatches))
