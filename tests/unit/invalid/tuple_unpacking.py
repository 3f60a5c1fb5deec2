# expect: 7:5 tuple unpacking is not supported
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    a, b = 1, 2
    return OK
