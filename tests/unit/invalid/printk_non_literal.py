# expect: 8:5 printk() needs a string literal format first
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    fmt = 1
    printk(fmt)
    return OK
