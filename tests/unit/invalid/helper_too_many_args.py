# expect: 8:5 submit() takes 2 arguments, 3 given
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    sqe = Sqe()
    submit(ctx, sqe, 64)
    return OK
