# expect: 7:5 this expression has no effect
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    ctx.wait_nr + 1
    return OK
