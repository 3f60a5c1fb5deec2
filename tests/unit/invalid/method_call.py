# expect: 8:5 methods are not supported
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    sqe = Sqe()
    sqe.clear()
    return OK
