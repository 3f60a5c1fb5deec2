# expect: 10:5 'arr' names a module-level ArrayMap; a local of that name would hide it
from pybpfuring.lang import *


arr = ArrayMap(u64, 4)


@iouring_program
def prog(ctx: Ctx) -> int:
    arr = 1
    return OK
