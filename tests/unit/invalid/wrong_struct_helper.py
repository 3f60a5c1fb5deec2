# expect: 8:17 submit() takes a Sqe here, got a Cqe
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    cqe = Cqe()
    submit(ctx, cqe)
    return OK
