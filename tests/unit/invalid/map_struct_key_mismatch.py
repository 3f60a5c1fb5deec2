# expect: 17:7 this map's key is a Key, got a Cqe
from pybpfuring.lang import *


@struct
class Key:
    a: u32
    b: u32


m = HashMap(Key, u64, 16)


@iouring_program
def prog(ctx: Ctx) -> int:
    k = Cqe()
    m[k] = 1
    return OK
