# expect: 8:9 del works on map entries only (del m[key])
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    x = 1
    del x
    return OK
