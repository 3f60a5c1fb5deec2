# expect: 7:5 print() is not available in BPF
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    print(ctx.wait_nr)
    return OK
