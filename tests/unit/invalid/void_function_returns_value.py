# expect: 7:12 bump is declared to return nothing
from pybpfuring.lang import *


@bpf_function
def bump():
    return 1


@iouring_program
def prog(ctx: Ctx) -> int:
    bump()
    return OK
