# expect: 7:9 the walrus operator is not supported
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    if (n := ctx.wait_nr) > 1:
        return WAIT
    return OK
