# expect: 8:8 `is` is not supported
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    x = ctx.wait_nr
    if x is None:
        return WAIT
    return OK
