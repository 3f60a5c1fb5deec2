# expect: 10:12 m.get(key, default) takes one or two arguments
from pybpfuring.lang import *


arr = ArrayMap(u64, 4)


@iouring_program
def prog(ctx: Ctx) -> int:
    return arr.get(1, 2, 3)
