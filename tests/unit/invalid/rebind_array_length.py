# expect: 8:9 'a' refers to an Array[u8, 4]; cannot rebind it to an Array[u8, 8]
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    a = Array[u8, 4]()
    a = Array[u8, 8]()
    return OK
