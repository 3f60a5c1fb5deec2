"""What programs import: types, structs, maps, helpers, constants and liburing-style prep_* functions."""
from .constants import *  # noqa: F401,F403  (IORING_OP_*, IOSQE_*, errno values, OK, WAIT)
from .constants import ALL_CONSTANTS, OK, WAIT
from .decorators import BpfFunction, bpf_function, iouring_program, loop_step
from .helpers import (complete, copy_from_user, copy_to_user, emit_cqe, get_prandom_u32, ktime_get_ns,
                      printk, reap_cqe, request_state, submit, wait, wait_cqe)
from .globals import Global, GlobalDecl, ReadOnly
from .loop import (LOOP_CONSTANTS, IoRingCtx, LoopParams, Region, get_region, submit_sqes)
from .loop import *  # noqa: F401,F403  (IOU_LOOP_*, IOU_REGION_*, SQE_SIZE, CQE_SIZE)
from .maps import ArrayMap, HashMap, MapDef
from .structs import Cqe, Ctx, IoVec, Sqe, Timespec
from .types import Array, i8, i16, i32, i64, struct, u8, u16, u32, u64

__all__ = [
    "ALL_CONSTANTS", "OK", "WAIT", "BpfFunction", "bpf_function", "iouring_program", "loop_step",
    "copy_from_user", "copy_to_user", "emit_cqe", "get_prandom_u32", "ktime_get_ns", "printk",
    "reap_cqe", "submit", "complete", "request_state", "wait", "wait_cqe", "ArrayMap", "HashMap", "MapDef", "Cqe", "Ctx", "IoVec", "Sqe", "Timespec",
    "Array", "i8", "i16", "i32", "i64", "struct", "u8", "u16", "u32", "u64",
    "Global", "GlobalDecl", "ReadOnly", "IoRingCtx", "LoopParams", "Region", "get_region",
    "submit_sqes",
] + list(ALL_CONSTANTS) + list(LOOP_CONSTANTS)

try:  # prep_* are written in the language itself
    from .prep import *  # noqa: F401,F403
    from .prep import __all__ as _prep_all
    __all__ += _prep_all
except ImportError:  # pragma: no cover - during bootstrap only
    pass
