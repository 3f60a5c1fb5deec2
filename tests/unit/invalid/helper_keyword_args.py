# expect: 7:28 keyword arguments are not supported
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    emit_cqe(ctx, 0, 1, 2, cflags=0)
    return OK
