# expect: 9:16 recursion is not allowed (fact -> fact)
from pybpfuring.lang import *


@bpf_function(inline=False)
def fact(n: u32) -> u32:
    if n == 0:
        return 1
    return n * fact(n - 1)


@iouring_program
def prog(ctx: Ctx) -> int:
    return fact(5)
