# expect: 7:5 ctx.user_data is read-only (Ctx.user_data)
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    ctx.user_data += 1
    return OK
