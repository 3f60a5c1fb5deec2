# expect: 7:5 raise is not supported
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    raise ValueError("no")
