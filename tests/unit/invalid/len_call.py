# expect: 8:16 len() takes a fixed-size array
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    a = Array[u8, 8]()
    return len(ctx.wait_nr) + len(a)
