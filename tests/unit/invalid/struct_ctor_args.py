# expect: 7:11 Sqe() takes no arguments; it makes a zeroed object
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    sqe = Sqe(1)
    return OK
