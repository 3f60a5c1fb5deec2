# expect: 7:8 'list' is not a type of the language
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    x: list = 0
    return OK
