# expect: 8:8 `in` tests membership of a map key only (key in m)
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    x = ctx.wait_nr
    if 1 in x:
        return WAIT
    return OK
