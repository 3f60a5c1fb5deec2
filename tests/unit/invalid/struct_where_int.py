# expect: 8:9 expected an integer here, got a Sqe
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    sqe = Sqe()
    x = sqe + 1
    return OK
