# expect: 7:9 Sqe is a type, which is not a value programs can use
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    x = Sqe
    return OK
