# expect: 7:5 a program yields wait_cqe(ctx, cq) or wait(ctx, cq, nr)
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    yield 1
    return OK
