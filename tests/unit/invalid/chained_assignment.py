# expect: 7:5 chained assignment (a = b = c) is not supported
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    a = b = 1
    return OK
