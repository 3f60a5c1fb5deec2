# expect: 7:9 lambda is not supported
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    f = lambda: 1
    return OK
