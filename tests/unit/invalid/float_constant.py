# expect: 10:12 RATIO is a float; floating point is not supported
from pybpfuring.lang import *


RATIO = 0.5


@iouring_program
def prog(ctx: Ctx) -> int:
    return RATIO
