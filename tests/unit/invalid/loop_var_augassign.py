# expect: 8:9 assigning to the loop variable 'i' inside its loop
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    for i in range(4):
        i += 1
    return OK
