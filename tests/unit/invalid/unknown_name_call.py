# expect: 7:5 unknown name 'helper_that_does_not_exist'
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    helper_that_does_not_exist(ctx)
    return OK
