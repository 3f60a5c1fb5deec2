# expect: 8:9 '/' is true division, which gives a float
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    x: u32 = ctx.wait_nr
    y = x / 2
    return OK
