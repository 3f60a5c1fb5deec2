# expect: 7:9 floating point is not supported
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    x = 1.5
    return OK
