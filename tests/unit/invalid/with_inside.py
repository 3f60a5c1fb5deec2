# expect: 7:5 with statements are not supported
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    with ctx:
        pass
    return OK
