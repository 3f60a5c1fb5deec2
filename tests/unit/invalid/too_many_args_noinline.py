# expect: 6:1 too many parameters (6); a BPF-to-BPF call passes at most 5
from pybpfuring.lang import *


@bpf_function(inline=False)
def add6(a: u64, b: u64, c: u64, d: u64, e: u64, f: u64) -> u64:
    return a + b + c + d + e + f


@iouring_program
def prog(ctx: Ctx) -> int:
    return add6(1, 2, 3, 4, 5, 6)
