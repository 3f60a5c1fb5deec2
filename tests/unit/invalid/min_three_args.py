# expect: 7:12 min() takes exactly two integers
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    return min(1, 2, 3)
