# expect: 10:5 submit() is not available on target 'generic'
# target: generic
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    sqe = Sqe()
    prep_nop(sqe)
    submit(ctx, sqe)
    return OK
