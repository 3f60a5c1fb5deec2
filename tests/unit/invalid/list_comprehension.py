# expect: 7:10 comprehensions are not supported
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    xs = [i for i in range(4)]
    return OK
