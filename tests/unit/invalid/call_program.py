# expect: 12:12 other is an @iouring_program; programs cannot be called
from pybpfuring.lang import *


@iouring_program
def other(ctx: Ctx) -> int:
    return OK


@iouring_program
def prog(ctx: Ctx) -> int:
    return other(ctx)
