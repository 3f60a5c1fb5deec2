# expect: 7:12 strings are not supported
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    name = "ring"
    return OK
