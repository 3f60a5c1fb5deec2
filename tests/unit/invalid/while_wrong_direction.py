# expect: 8:5 while loop without a bound the compiler can prove: 'i' does not move toward its limit 10
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    i: u32 = 0
    while i < 10:
        i -= 1
    return OK
