# expect: 13:10 parameter 'sqe' of fill takes a Sqe, got a Cqe
from pybpfuring.lang import *


@bpf_function
def fill(sqe: Sqe) -> None:
    sqe.len = 1


@iouring_program
def prog(ctx: Ctx) -> int:
    cqe = Cqe()
    fill(cqe)
    return OK
