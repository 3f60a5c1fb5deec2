"""Zeroing and copying objects of any size without `memset`/`memcpy` calls.

LLVM's BPF backend expands `llvm.memset`/`llvm.memcpy` into stores only up to 128 of them
(`getCommonMaxStoresPerMemFunc`); past that it emits a call to the C library function, which BPF
does not have, and reports "A call to built-in function 'memset' is not supported" as a fatal
error that ends the process. A 4 KiB map value (`pages[k] = Page()`, `pages[1] = pages[0]`) is 512
8-byte stores. Such objects are zeroed or copied by a counted loop of words instead: the verifier
walks one trip per word (a few instructions each, far below its 1,000,000 limit), and an empty
volatile asm on the counter keeps LLVM's loop idiom pass from turning the loop back into the call.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import llvmlite.ir as ll

from pybpfuring.compiler.lower.types import I1, I8, I64, PTR

if TYPE_CHECKING:
    from pybpfuring.compiler.lower.function import FunctionLowering

# Expanded inline up to this many stores (LLVM's limit is 128; tail stores of an odd size count too).
INLINE_STORES = 96


def _unit(size: int, align: int) -> int:
    """The widest access both the alignment and the size allow (1, 2, 4 or 8 bytes)."""
    u = 8
    while u > 1 and (align % u or size < u):
        u //= 2
    return u


def inline_ok(size: int, align: int) -> bool:
    return size // _unit(size, align) <= INLINE_STORES


def zero(fl: "FunctionLowering", dst: ll.Value, size: int, align: int) -> None:
    """Zero `size` bytes at `dst` (an object aligned to `align`)."""
    if not inline_ok(size, align):
        _word_loop(fl, dst, None, size, align)
        return
    fl.b.store(ll.Constant(ll.ArrayType(I8, size), None), dst).align = align  # type: ignore[attr-defined]


def copy(fl: "FunctionLowering", dst: ll.Value, src: ll.Value, size: int, align: int) -> None:
    """Copy `size` bytes from `src` to `dst` (objects aligned to `align`, not overlapping)."""
    if inline_ok(size, align):
        fn = fl.ml.m.declare_intrinsic("llvm.memcpy", [PTR, PTR, I64])
        call = fl.b.call(fn, [dst, src, ll.Constant(I64, size), ll.Constant(I1, 0)],
                         arg_attrs={0: (), 1: ()})
        call.arg_attributes[0].align = align
        call.arg_attributes[1].align = align
        return
    _word_loop(fl, dst, src, size, align)


def _word_loop(fl: "FunctionLowering", dst: ll.Value, src: ll.Value | None, size: int, align: int) -> None:
    """for i in range(size // unit): dst[i] = src[i] (or 0). A C type's size is a multiple of its
    alignment, so the words cover it exactly."""
    b = fl.b
    unit = _unit(size, align)
    assert size % unit == 0, (size, align)
    word = ll.IntType(unit * 8)
    count = size // unit
    pre = b.block
    body = fl.f.append_basic_block("bulk.loop")
    done = fl.f.append_basic_block("bulk.done")
    b.branch(body)
    b.position_at_end(body)
    i = b.phi(I64)
    i.add_incoming(ll.Constant(I64, 0), pre)
    off = b.mul(fl.barrier(i), ll.Constant(I64, unit))
    value = ll.Constant(word, 0)
    if src is not None:
        value = b.load(b.gep(src, [off], source_etype=I8), typ=word)
        value.align = unit
    b.store(value, b.gep(dst, [off], source_etype=I8)).align = unit  # type: ignore[attr-defined]
    nxt = b.add(i, ll.Constant(I64, 1))
    i.add_incoming(nxt, b.block)
    b.cbranch(b.icmp_unsigned("<", nxt, ll.Constant(I64, count)), body, done)
    b.position_at_end(done)
