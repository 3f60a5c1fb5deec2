# expect: 7:37 emit_cqe's res is an i32; ctx.user_data is a u64
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    emit_cqe(ctx, 1, ctx.user_data, ctx.user_data, 0)
    return OK
