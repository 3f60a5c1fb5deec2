# expect: 7:5 try/except is not supported
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    try:
        submit(ctx, Sqe())
    except Exception:
        pass
    return OK
