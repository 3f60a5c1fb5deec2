# expect: 7:5 'x' is used before it is assigned
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    x += 1
    return OK
