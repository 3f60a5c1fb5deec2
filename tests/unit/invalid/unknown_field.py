# expect: 8:5 Sqe has no field 'lenght'
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    sqe = Sqe()
    sqe.lenght = 4
    return OK
