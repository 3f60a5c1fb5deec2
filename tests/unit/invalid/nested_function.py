# expect: 7:5 nested functions are not supported
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    def inner() -> int:
        return 1
    return OK
