# expect: 7:9 integer literal 100000000000000000000000 does not fit in 64 bits
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    x = 100000000000000000000000
    return OK
