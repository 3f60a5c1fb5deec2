# expect: 7:5 assert is not supported
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    assert ctx.wait_nr == 0
    return OK
