# expect: 7:5 generators and await are not supported
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    yield 1
    return OK
