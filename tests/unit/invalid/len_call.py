# expect: 8:12 len() is not supported
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    a = Array[u8, 8]()
    return len(a)
