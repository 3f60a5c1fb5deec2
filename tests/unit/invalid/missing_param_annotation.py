# expect: 6:7 parameter 'x' needs a type annotation
from pybpfuring.lang import *


@bpf_function
def f(x) -> u32:
    return 0


@iouring_program
def prog(ctx: Ctx) -> int:
    return f(1)
