# expect: 7:12 an @iouring_program returns OK or WAIT; 5 is neither
from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    return 5
