# expect: 7:5 classes cannot be declared inside a program
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    class Local:
        pass
    return OK
