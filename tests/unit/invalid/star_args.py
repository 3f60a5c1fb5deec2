# expect: 6:1 only plain positional parameters are supported
from pybpfuring.lang import *


@bpf_function
def f(*xs: u32) -> u32:
    return 0


@iouring_program
def prog(ctx: Ctx) -> int:
    return f(1)
