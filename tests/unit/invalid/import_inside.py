# expect: 7:5 import inside a program is not supported
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    import os
    return OK
