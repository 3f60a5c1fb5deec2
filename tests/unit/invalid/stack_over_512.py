# expect: 8:9 stack usage exceeds the 512-byte BPF limit (560 bytes so far)
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    a = Array[u64, 40]()
    b = Array[u64, 30]()
    a[0] = 1
    b[0] = 2
    return OK
