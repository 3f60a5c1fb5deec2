# expect: 10:9 for/else is not supported
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    for i in range(3):
        pass
    else:
        return WAIT
    return OK
