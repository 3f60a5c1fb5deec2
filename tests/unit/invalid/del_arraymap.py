# expect: 10:9 entries of an ArrayMap cannot be deleted
from pybpfuring.lang import *


arr = ArrayMap(u64, 4)


@iouring_program
def prog(ctx: Ctx) -> int:
    del arr[1]
    return OK
