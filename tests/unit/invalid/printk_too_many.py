# expect: 7:5 printk() takes at most 3 values after the format
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    printk("%d %d %d %d", 1, 2, 3, 4)
    return OK
