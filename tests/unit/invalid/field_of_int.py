# expect: 8:12 x is an integer (u32), which has no fields
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    x = ctx.wait_nr
    return x.bits
