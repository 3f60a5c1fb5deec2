"""What the lowering emits for the shapes that decide the verifier's cost (docs/compiler.md): each
test reads the BPF assembly or LLVM IR of a small program and fails if the costly shape comes back."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from pybpfuring.compiler import typed_ir as ir
from pybpfuring.compiler.driver import emit_text, load_module
from pybpfuring.compiler.ranges import always_below, constant, ubound
from pybpfuring.errors import SourceLocation
from pybpfuring.lang.types import i32, u8, u32, u64

SOURCE = '''
from pybpfuring import Array, ArrayMap, Ctx, HashMap, Sqe, iouring_program, struct, u32, u64, OK


@struct
class Rec:
    n: u64
    hist: Array[u32, 8]


queue = ArrayMap(Sqe, 8)
recs = HashMap(u32, Rec, 16)
limits = ArrayMap(u64, 4)
slots = ArrayMap(u64, 8)


@iouring_program
def copy_sqe(ctx: Ctx) -> int:
    sqe = Sqe()
    sqe.user_data = ctx.user_data
    queue[ctx.wait_idx & 7] = sqe
    return OK


@iouring_program
def in_then_get(ctx: Ctx) -> int:
    key: u32 = ctx.wait_nr
    r = Rec()
    if key in recs:
        r = recs[key]
    r.n += 1
    return OK


@iouring_program
def const_key_in_loop(ctx: Ctx) -> int:
    done: u64 = 0
    for i in range(8):
        if limits[0] and done >= limits[0]:
            break
        done += 1
    limits[1] = done
    return OK


@iouring_program
def masked_key(ctx: Ctx) -> int:
    slots[ctx.wait_nr & 7] += 1
    return OK


@iouring_program
def aug_element(ctx: Ctx) -> int:
    r = Rec()
    r.hist[ctx.wait_nr] += 1
    slots[0] = r.hist[3]
    return OK
'''


@pytest.fixture(scope="module")
def module(tmp_path_factory):
    path = tmp_path_factory.mktemp("shapes") / "shapes.py"
    path.write_text(SOURCE)
    return load_module(path)


def asm(module, name: str) -> str:
    return emit_text([getattr(module, name)], "generic", "asm")


def ir_text(module, name: str) -> str:
    return emit_text([getattr(module, name)], "generic", "ir")


def lookups(text: str) -> int:
    return len(re.findall(r"call 1\b", text))


def test_struct_copies_use_wide_stores(module):
    text = asm(module, "copy_sqe")
    assert not re.search(r"\*\(u8 \*\)", text), "an SQE copied byte by byte"


def test_in_then_get_is_one_lookup(module):
    assert lookups(asm(module, "in_then_get")) == 1


def test_constant_key_element_is_looked_up_once(module):
    # limits[0] twice per trip and limits[1] after the loop: two lookups in all, at the start.
    assert lookups(asm(module, "const_key_in_loop")) == 2


def test_masked_array_key_has_no_miss_path(module):
    text = ir_text(module, "masked_key")
    assert "lookup.never" in text                  # the NULL test leaves the function
    assert "map.bad" not in text and "scratch" not in text


def test_augmented_element_update_checks_the_index_once(module):
    text = ir_text(module, "aug_element")
    assert text.count("idx.ok:") == 1


LOC = SourceLocation("x.py", 1, 1)


def load(t):
    return ir.Load(ir.VarPlace(ir.Local("v", t, LOC), LOC), t, LOC)


def test_ubound_reads_masks_remainders_shifts_and_widths():
    assert ubound(ir.Binary("&", load(u32), ir.Const(7, u32, LOC), u32, LOC)) == 7
    assert ubound(ir.Binary("%", load(u32), ir.Const(10, u32, LOC), u32, LOC)) == 9
    assert ubound(ir.Binary(">>", load(u32), ir.Const(28, u32, LOC), u32, LOC)) == 15
    assert ubound(ir.Cast(load(u8), u32, LOC)) == 255
    assert ubound(load(u64)) == (1 << 64) - 1
    # signed: a remainder or a sign-extended value may be negative (huge as unsigned)
    assert ubound(ir.Binary("%", load(i32), ir.Const(10, i32, LOC), i32, LOC)) == (1 << 32) - 1
    assert ubound(ir.Cast(load(i32), u64, LOC)) == (1 << 64) - 1
    assert always_below(ir.Binary("&", load(i32), ir.Const(7, i32, LOC), i32, LOC), 8)
    assert not always_below(ir.Binary("&", load(u32), ir.Const(8, u32, LOC), u32, LOC), 8)


def test_constant_sees_through_conversions():
    assert constant(ir.Cast(ir.Const(-1, i32, LOC), u32, LOC)) == (1 << 32) - 1
    assert constant(load(u32)) is None
