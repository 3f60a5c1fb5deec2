# expect: 8:9 prog must return a value
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    if ctx.wait_nr:
        return
    return OK
