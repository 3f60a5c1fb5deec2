# expect: 7:14 for loops iterate over range(...) or a fixed-size array only
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    for i in [1, 2, 3]:
        pass
    return OK
