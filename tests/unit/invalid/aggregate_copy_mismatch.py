# expect: 10:12 cannot assign a Cqe to a Sqe
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    s = Sqe()
    c = Cqe()
    v = Array[Sqe, 2]()
    v[0] = c
    return OK
