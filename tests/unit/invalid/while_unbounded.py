# expect: 8:5 while loop without a bound the compiler can prove: its condition compares no local integer variable with a constant (write `i < N`)
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    x: u32 = ctx.wait_nr
    while x != 0:
        x = x // 2
    return OK
