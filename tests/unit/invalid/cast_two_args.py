# expect: 7:12 u32() takes exactly one argument
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    return u32(1, 2)
