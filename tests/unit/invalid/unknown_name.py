# expect: 7:12 unknown name 'missing_thing'
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    return missing_thing
