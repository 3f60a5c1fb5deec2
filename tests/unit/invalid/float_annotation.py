# expect: 7:8 floating point is not supported
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    x: float = 1
    return OK
