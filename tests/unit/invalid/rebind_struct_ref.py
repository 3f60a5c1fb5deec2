# expect: 8:9 's' refers to a Sqe; cannot rebind it to a Cqe
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    s = Sqe()
    s = Cqe()
    return OK
