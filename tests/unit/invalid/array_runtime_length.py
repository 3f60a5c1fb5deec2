# expect: 8:19 Array[u8, n]: sizes of types must be known at compile time
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    n = 3
    a = Array[u8, n]()
    return OK
