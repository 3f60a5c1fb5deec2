"""Per-request costs of the emulated engines, measured in one run (prints, asserts nothing).

Rows (each selectable with --only):
  hop      a pointer chase through page-cached 4 KiB records (examples/chase.py): us per hop, and the
           system calls per hop counted by strace -c when --strace is given (deterministic);
  conc     N concurrent BPF requests on one ring (1 .. 10,000), us per request;
  cqs      1,024 requests spread over K CQs (1 .. 1,024), us per request;
  rings    1,000 rings that each register and run a program: RSS and open-fd growth;
  compile  register_programs per ring (cold, then warm) and the JIT compile time of one program.

    python3 bench/engine_costs.py [--engine native] [--only hop,conc] [--quick]
Numbers depend on the machine and its load: quote them with `uptime`.
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import os
import random
import resource
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))

from pybpfuring.lang import Ctx, complete, iouring_program  # noqa: E402
from pybpfuring.runtime import Ring  # noqa: E402

import chase as chase_example  # noqa: E402  (examples/chase.py)


@iouring_program
def bench_nop(ctx: Ctx) -> int:
    return complete(ctx, 0)


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def hop_row(engine: str, lookups: int) -> None:
    """us per hop of a 64-hop chase, one lookup at a time (QD1 dependent reads)."""
    work = tempfile.mkdtemp(prefix="pybpfuring-bench-")
    path = os.path.join(work, "records")
    hops = chase_example.MAX_HOPS
    expected = chase_example.build_file(path, 1, hops, random.Random(1))
    fd = os.open(path, os.O_RDONLY)
    try:
        with Ring(8, cqs=[4], backend="emulated", engine=engine) as ring:
            ring.register_programs([chase_example.chase])
            buf = ring.user_memory(ctypes.c_uint8 * chase_example.RECORD)
            args = ring.user_memory(chase_example.Args.ctype)
            args.fd, args.start, args.buf, args.cq = fd, expected[0][0], ctypes.addressof(buf), 1
            best = float("inf")
            for _ in range(3):
                started = time.perf_counter()
                for _ in range(lookups):
                    ring.prep_bpf(chase_example.chase, user_data=ctypes.addressof(args))
                    ring.submit()
                    cqe = ring.wait_cqe()
                    assert cqe.res == ctypes.c_int32(expected[0][1]).value, cqe.res
                best = min(best, time.perf_counter() - started)
            print(f"hop      engine={engine}: {best / (lookups * hops) * 1e6:.2f} us per hop "
                  f"({lookups} lookups x {hops} hops, best of 3)")
    finally:
        os.close(fd)
        os.unlink(path)
        os.rmdir(work)


def _run_requests(ring: Ring, n: int, ncq: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        ring.prep_bpf(bench_nop, user_data=i, cq_idx=i % ncq)
    ring.submit()
    for i in range(n):
        ring.wait_cqe(i % ncq)
    return time.perf_counter() - started


def conc_row(engine: str, sizes: list[int]) -> None:
    """N requests in flight at once on one ring: us per request should not grow with N."""
    with Ring(256, backend="emulated", engine=engine) as ring:
        ring.register_programs([bench_nop])
        _run_requests(ring, 100, 1)
        base = None
        for n in sizes:
            t = min(_run_requests(ring, n, 1) for _ in range(3)) / n * 1e6
            base = base or t
            print(f"conc     engine={engine} N={n:>6}: {t:.2f} us per request ({t / base:.2f}x N=1)")


def cqs_row(engine: str, counts: list[int], n: int = 1024) -> None:
    """n requests, completion i on CQ i % K: us per request against K."""
    base = None
    for k in counts:
        with Ring(256, cqs=[max(4, n // k + 1)] * (k - 1), backend="emulated", engine=engine) as ring:
            ring.register_programs([bench_nop])
            _run_requests(ring, n, k)
            t = min(_run_requests(ring, n, k) for _ in range(3)) / n * 1e6
        base = base or t
        print(f"cqs      engine={engine} K={k:>5}: {t:.2f} us per request ({t / base:.2f}x K=1)")


def rings_row(engine: str, count: int) -> None:
    """`count` rings, each registering and running a program, then closed: RSS and fds after."""
    def one() -> None:
        with Ring(8, backend="emulated", engine=engine) as ring:
            ring.register_programs([bench_nop])
            _run_requests(ring, 1, 1)
    for _ in range(20):  # warm: caches filled, allocator settled
        one()
    gc.collect()
    rss0, fd0, t0 = _rss_kib(), _fds(), time.perf_counter()
    for _ in range(count):
        one()
    gc.collect()
    dt = (time.perf_counter() - t0) / count * 1e3
    print(f"rings    engine={engine}: {count} rings register+run+close: RSS {(_rss_kib() - rss0) / 1024:+.1f} MiB, "
          f"fds {_fds() - fd0:+d}, {dt:.2f} ms per ring; maxrss "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


def compile_row(engine: str) -> None:
    """register_programs cost per ring: the first ring (cold), then later rings (warm)."""
    times = []
    for _ in range(6):
        with Ring(8, backend="emulated", engine=engine) as ring:
            started = time.perf_counter()
            ring.register_programs([chase_example.chase])
            ring.prep_bpf(chase_example.chase, user_data=0)  # args at address 0: ends with -EFAULT
            ring.submit()
            ring.wait_cqe()
            times.append(time.perf_counter() - started)
    warm = sorted(times[1:])[len(times[1:]) // 2]
    print(f"compile  engine={engine}: register_programs(+first run) cold {times[0] * 1e3:.1f} ms, "
          f"warm median {warm * 1e3:.2f} ms")


def jit_row() -> None:
    """JIT compile of one program (examples/chase.py's chase), warm LLVM, no cache: CPU and wall."""
    from pybpfuring.abi import isa
    from pybpfuring.loader.object import BpfObject
    from pybpfuring.compiler import driver
    from pybpfuring.runtime.engine.interp import Program
    from pybpfuring.runtime.engine.jit import JitCode
    obj = BpfObject.open(driver.compile_functions([chase_example.chase]))
    insns = isa.decode(next(iter(obj.programs.values())).insns)
    JitCode(Program(insns, name="warm-up"), 0, 1)
    for opt in (1, 2):
        walls, cpus = [], []
        for _ in range(5):
            c0, w0 = time.thread_time(), time.perf_counter()
            JitCode(Program(insns, name="chase"), 0, opt)
            cpus.append(time.thread_time() - c0)
            walls.append(time.perf_counter() - w0)
        print(f"jit      opt={opt}: compile of chase ({len(insns)} slots) warm: CPU {min(cpus) * 1e3:.1f} ms, "
              f"wall {min(walls) * 1e3:.1f} ms (best of 5)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--engine", default="native", choices=["native", "jit", "interp"])
    p.add_argument("--only", default="hop,conc,cqs,rings,compile,jit")
    p.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    a = p.parse_args(argv)
    only = set(a.only.split(","))
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1/5/15 min)")
    if "hop" in only:
        hop_row(a.engine, 5 if a.quick else 50)
    if "conc" in only:
        conc_row(a.engine, [1, 10, 100] if a.quick else [1, 10, 100, 1000, 10000])
    if "cqs" in only:
        cqs_row(a.engine, [1, 16] if a.quick else [1, 4, 16, 64, 256, 1024])
    if "rings" in only:
        rings_row(a.engine, 20 if a.quick else 1000)
    if "compile" in only:
        compile_row(a.engine)
    if "jit" in only:
        jit_row()
    return 0


if __name__ == "__main__":
    sys.exit(main())
