# expect: 7:9 dicts are not supported
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    d = {}
    return OK
