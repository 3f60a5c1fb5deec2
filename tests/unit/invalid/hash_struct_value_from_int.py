# expect: 16:12 cannot assign an integer (i32) to a Pair
from pybpfuring.lang import *


@struct
class Pair:
    a: u32
    b: u32


m = HashMap(u32, Pair, 16)


@iouring_program
def prog(ctx: Ctx) -> int:
    m[1] = 5
    return OK
