# expect: 8:5 while loop without a bound the compiler can prove: a `continue` can skip the step of 'i'
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    i: u32 = 0
    while i < 10:
        if ctx.wait_nr:
            continue
        i += 1
    return OK
