# expect: 8:7 index 4 is out of range for Array[u32, 4] (valid: 0..3)
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    a = Array[u32, 4]()
    a[4] = 1
    return OK
