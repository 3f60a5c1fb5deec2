# expect: 7:26 range() step must be a non-zero constant
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    for i in range(0, 8, 0):
        pass
    return OK
