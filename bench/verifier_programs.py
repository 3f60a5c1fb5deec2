"""`histogram`, a larger generic-target program for bench/verifier.py, next to the four 2021
reference programs' logic, which live in examples/reference_generic.py (io_uring helper calls replaced
by map writes). `histogram` reads the same `reapable` map, so it is taken from that module as loaded
by `load_module` (one module object, so both sides name the same map). Its C twin is `histogram` in
bench/verifier_c/programs.c."""
from pathlib import Path

from pybpfuring import Array, ArrayMap, Ctx, HashMap, u32, u64, iouring_program, struct, OK
from pybpfuring.compiler.driver import load_module

REFERENCE_GENERIC = Path(__file__).resolve().parents[1] / "examples" / "reference_generic.py"
reapable = load_module(REFERENCE_GENERIC).reapable


@struct
class Flow:
    bytes: u64
    packets: u32
    errors: u32
    hist: Array[u32, 8]


flows = HashMap(u32, Flow, 64)
budget = ArrayMap(u64, 4)


@iouring_program
def histogram(ctx: Ctx) -> int:
    """Fold a batch of 16 CQEs (from `reapable`) into per-flow counters and a size histogram."""
    done: u32 = 0
    for i in range(16):
        c = reapable[i & 7]
        key: u32 = u32(c.user_data >> 32)
        f = Flow()
        if key in flows:
            f = flows[key]
        if c.res < 0:
            f.errors += 1
        else:
            f.bytes += u64(c.res)
            f.packets += 1
            bucket: u32 = 0
            size: u32 = u32(c.res)
            while bucket < 7:
                bucket += 1
                size >>= 2
                if size == 0:
                    break
            f.hist[bucket] += 1
        flows[key] = f
        done += 1
        if budget[0] and done >= budget[0]:
            break
    budget[1] += done
    ctx.wait_nr = done
    return OK
