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

if TYPE_CHECKING:
    from pybpfuring.compiler.lower.function import FunctionLowering


def guarded_address(fl: "FunctionLowering", checks: list[ll.Value], address: Callable[[], ll.Value],
                    size: int, name: str) -> ll.Value:
    """`address()` where every i1 of `checks` holds (tested in order), else a zeroed `size`-byte
    scratch object; the result is a phi of the two. `name` labels the blocks in the IR."""
    return fl.merge(checks, address, lambda: fl.zeroed_scratch(size), (f"{name}.ok", f"{name}.bad", f"{name}.done"))
