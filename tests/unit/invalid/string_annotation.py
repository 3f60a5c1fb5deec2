# expect: 7:8 string annotations are not supported
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    x: "u32" = 1
    return OK
