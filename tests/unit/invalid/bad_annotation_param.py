# expect: 6:10 'str' is not a type of the language
from pybpfuring.lang import *


@bpf_function
def f(x: str) -> u32:
    return 0


@iouring_program
def prog(ctx: Ctx) -> int:
    return f(1)
