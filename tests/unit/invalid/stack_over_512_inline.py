# expect: 15:5 stack usage exceeds the 512-byte BPF limit (560 bytes so far)
from pybpfuring.lang import *


@bpf_function
def big() -> None:
    b = Array[u64, 30]()
    b[1] = 3


@iouring_program
def prog(ctx: Ctx) -> int:
    a = Array[u64, 40]()
    a[0] = 1
    big()
    return OK
