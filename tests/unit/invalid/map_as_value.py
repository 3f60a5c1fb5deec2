# expect: 10:9 the map arr can only be indexed, tested with `in` or read with .get()
from pybpfuring.lang import *


arr = ArrayMap(u64, 4)


@iouring_program
def prog(ctx: Ctx) -> int:
    x = arr
    return OK
