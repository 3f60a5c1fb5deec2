# expect: 7:20 copy_from_user() reads or writes memory through this argument
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    copy_from_user(5, ctx.user_data)
    return OK
