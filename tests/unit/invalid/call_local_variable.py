# expect: 8:5 'f' is a local variable, not a function
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    f = 1
    f()
    return OK
