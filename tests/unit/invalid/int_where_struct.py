# expect: 7:17 submit() takes a Sqe here, got an integer (i32)
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    submit(ctx, 5)
    return OK
