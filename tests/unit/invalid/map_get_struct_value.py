# expect: 16:9 m.get() is for maps of integers; index a struct-valued map with m[k]
from pybpfuring.lang import *


@struct
class Pair:
    a: u32
    b: u32


m = HashMap(u32, Pair, 16)


@iouring_program
def prog(ctx: Ctx) -> int:
    v = m.get(1, 0)
    return OK
