# expect: 8:12 expected an integer here, got a Cqe
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    cqe = Cqe()
    return cqe
