# expect: 7:5 emit_cqe() takes 5 arguments, 3 given
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    emit_cqe(ctx, 0, 1)
    return OK
