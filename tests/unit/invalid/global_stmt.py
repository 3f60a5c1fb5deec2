# expect: 10:5 'global COUNTER' needs a module-level
from pybpfuring.lang import *


COUNTER = 0


@iouring_program
def prog(ctx: Ctx) -> int:
    global COUNTER
    COUNTER = 1
    return OK
