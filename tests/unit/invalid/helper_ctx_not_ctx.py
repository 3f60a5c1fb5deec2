# expect: 8:14 the first argument of reap_cqe() is the program's ctx
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    cqe = Cqe()
    reap_cqe(cqe, 1, cqe)
    return OK
