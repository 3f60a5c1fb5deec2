# expect: 6:1 an @iouring_program takes exactly one parameter, its context
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx, extra: u32) -> int:
    return OK
