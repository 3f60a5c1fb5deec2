# expect: 12:12 recursion is not allowed (ping -> pong -> ping)
from pybpfuring.lang import *


@bpf_function
def ping(n: u32) -> u32:
    return pong(n)


@bpf_function
def pong(n: u32) -> u32:
    return ping(n)


@iouring_program
def prog(ctx: Ctx) -> int:
    return ping(3)
