# expect: 7:20 range() bounds must be known at compile time
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    for i in range(ctx.wait_nr):
        pass
    return OK
