# expect: 8:5 'x' is already declared
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    x: u32 = 1
    x: u64 = 2
    return OK
