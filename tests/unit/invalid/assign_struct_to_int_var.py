# expect: 8:9 expected an integer here, got a Cqe
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    x: u32 = 0
    x = Cqe()
    return OK
