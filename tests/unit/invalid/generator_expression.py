# expect: 7:9 generator expressions are not supported
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    g = (i for i in range(4))
    return OK
