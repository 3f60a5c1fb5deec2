# expect: 7:9 invalid type Array[u32, 0]: array length must be positive, got 0
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    a = Array[u32, 0]()
    return OK
