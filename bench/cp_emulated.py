"""Per-block cost of examples/cp.py (one IORING_OP_BPF request, QD1, 4 KiB) on the emulated backend,
against a plain os.pread/os.write loop, copying a page-cached file to /dev/zero (the LPC 2021 talk's
benchmark shape) and to a regular file. Prints numbers measured in this run; asserts nothing.

    python3 bench/cp_emulated.py [--mib 32] [--repeat 3]

The emulated cost per block is two program runs (one per CQE) in the Python engine plus the event
loop's routing; it is the baseline a native engine should beat.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))

import cp  # noqa: E402
from pybpfuring.runtime import Ring  # noqa: E402

BLOCK = cp.BLOCK


def plain_loop(src: int, dst: int, size: int) -> None:
    pread, pwrite = os.pread, os.pwrite
    off = 0
    while True:
        data = pread(src, BLOCK, off)
        if not data:
            return
        pwrite(dst, data, off)
        off += len(data)


def emulated(src: int, dst: int, size: int, engine: str = "interp") -> dict[str, float]:
    import ctypes
    buf = ctypes.create_string_buffer(BLOCK)
    with Ring(8, cqs=[8], engine=engine) as ring:
        ring.register_programs([cp.cp])
        cp.state[cp.BUF], cp.state[cp.IN_FD], cp.state[cp.OUT_FD] = ctypes.addressof(buf), src, dst
        ring.prep_bpf(cp.cp)
        ring.submit()
        cqe = ring.wait_cqe()
        assert cqe.res == 0 and cp.state[cp.OFFSET] == size, (cqe, cp.state[cp.OFFSET])
        stats = ring.stats()
        return {"runs": stats.program_runs, "insns": stats.instructions}


def best(fn, src: str, dst: str, size: int, repeat: int) -> tuple[float, object]:
    times, extra = [], None
    for _ in range(repeat):
        s = os.open(src, os.O_RDONLY)
        d = os.open(dst, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            start = time.perf_counter()
            extra = fn(s, d, size)
            times.append(time.perf_counter() - start)
        finally:
            os.close(s)
            os.close(d)
    return min(times), extra


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    size = args.mib << 20
    blocks = size // BLOCK
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "src")
        with open(src, "wb") as f:
            f.write(os.urandom(size))
        with open(src, "rb") as f:  # page-cache it
            while f.read(1 << 20):
                pass
        for target in ("/dev/zero", os.path.join(tmp, "dst")):
            t_plain, _ = best(plain_loop, src, target, size, args.repeat)
            print(f"{args.mib} MiB -> {target if target == '/dev/zero' else 'a file'} "
                  f"({blocks} blocks of {BLOCK} B, best of {args.repeat}):")
            print(f"  os.pread/os.pwrite loop      : {t_plain:7.3f} s = {t_plain / blocks * 1e6:7.2f} us/block")
            for engine in ("interp", "jit"):
                t_emu, extra = best(lambda s, d, n: emulated(s, d, n, engine), src, target, size,
                                    args.repeat)
                assert isinstance(extra, dict)
                print(f"  IORING_OP_BPF, {engine:>6} engine: {t_emu:7.3f} s = "
                      f"{t_emu / blocks * 1e6:7.2f} us/block = {t_emu / t_plain:5.1f}x plain "
                      f"({extra['runs'] / blocks:.2f} runs, {extra['insns'] / blocks:.0f} BPF insns "
                      f"per block; {t_emu / extra['runs'] * 1e6:.1f} us per run)")


if __name__ == "__main__":
    main()
