# expect: 10:5 maps have no method 'pop'
from pybpfuring.lang import *


arr = ArrayMap(u64, 4)


@iouring_program
def prog(ctx: Ctx) -> int:
    arr.pop(1)
    return OK
