# expect: 8:5 while loop without a bound the compiler can prove: 'i' is not stepped by a constant (`i += c` or `i -= c`) at the top level of the body
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    i: u32 = 0
    while i < 10:
        if ctx.wait_nr:
            i += 1
    return OK
