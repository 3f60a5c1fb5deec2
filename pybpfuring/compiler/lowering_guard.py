"""The one mechanism behind "the address of an element, or a zeroed scratch object when it is not
there": an array element at a runtime index (`index_addr`), a map value that may be missing
(`map_ref`), a view into a loop_step region (`target_bpf_ops.region_view`).

The language promises that such a place reads as zeros and drops writes when it does not exist, so
every access has an address: the element's when the checks pass, else the function's scratch slot,
zeroed just before. Two rules keep the verifier able to follow it:

- the address is computed *below* the checks, in the block where they all passed (the caller's
  `address` callback runs there, and should put a barrier on the registers it tested, so LLVM does
  not hoist the arithmetic above the test where the verifier has no bound yet);
- the scratch object is zeroed on the miss path itself, so a write through an earlier miss can never
  be read back through a later one.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import llvmlite.ir as ll

from .lower_types import PTR

if TYPE_CHECKING:
    from .lowering import FunctionLowering


def guarded_address(fl: "FunctionLowering", checks: list[ll.Value], address: Callable[[], ll.Value],
                    size: int, name: str) -> ll.Value:
    """`address()` where every i1 of `checks` holds (tested in order), else a zeroed `size`-byte
    scratch object; the result is a phi of the two. `name` labels the blocks in the IR."""
    b = fl.b
    bad = fl.f.append_basic_block(f"{name}.bad")
    for i, check in enumerate(checks):
        passed = fl.f.append_basic_block(f"{name}.ok" if i == len(checks) - 1 else f"{name}.check")
        b.cbranch(check, passed, bad)
        b.position_at_end(passed)
    elem = address()
    ok_end = b.block
    done = fl.f.append_basic_block(f"{name}.done")
    b.branch(done)
    b.position_at_end(bad)
    scratch = fl.zeroed_scratch(size)
    bad_end = b.block
    b.branch(done)
    b.position_at_end(done)
    phi = b.phi(PTR)
    phi.add_incoming(elem, ok_end)
    phi.add_incoming(scratch, bad_end)
    return phi
