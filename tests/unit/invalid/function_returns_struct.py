# expect: 6:15 functions cannot return structs or arrays
from pybpfuring.lang import *


@bpf_function
def make() -> Sqe:
    return Sqe()


@iouring_program
def prog(ctx: Ctx) -> int:
    s = make()
    return OK
