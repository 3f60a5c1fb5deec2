# expect: 6:10 the parameter of an @iouring_program must be `ctx: Ctx`
from pybpfuring.lang import *


@iouring_program
def prog(ctx: u64) -> int:
    return OK
