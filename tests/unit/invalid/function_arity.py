# expect: 12:12 twice() takes 1 argument, 2 given
from pybpfuring.lang import *


@bpf_function
def twice(x: u32) -> u32:
    return x * 2


@iouring_program
def prog(ctx: Ctx) -> int:
    return twice(1, 2)
