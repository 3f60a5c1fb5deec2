"""Generator programs against their hand-written twins: what the frame costs.

examples/chase.py's lookup in both styles (`chase`, a generator; `chase_classic`, the same state
machine by hand in request_state), 16 lookups of 50 dependent 4 KiB reads each, on one ring.

- Every backend this machine runs (emulated: each engine; bpf_ops where the kernel has it):
  microseconds and BPF instructions per hop, medians of --runs runs with their spread, both styles
  alternating in one process; ratio generator / classic.
- bpf_ops: the verifier's `processed N insns` (BPF_LOG_STATS) of the scheduler with each program
  (the difference between the two is the programs' own cost).

    python3 bench/generators.py [--runs 5] [--chains 16] [--hops 50]
"""
from __future__ import annotations

import argparse
import ctypes
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "examples")]

import chase as C  # noqa: E402
from pybpfuring.runtime import Ring  # noqa: E402
from pybpfuring.runtime.probe import check_bpf_ops  # noqa: E402

STYLES = {"generator": C.chase, "classic": C.chase_classic}


def one_run(path: str, fd: int, starts: list[int], backend: str, engine: str, style: str) -> tuple[float, int, int]:
    """(seconds, instructions, hops) of one ring doing every lookup once."""
    prog = STYLES[style]
    kw = {} if backend == "bpf_ops" else {"engine": engine}
    with Ring(64, cqs=[4] * len(starts), backend=backend, **kw) as ring:
        ring.register_programs([prog])
        keep = []
        for c, start in enumerate(starts):
            buf = ring.user_memory(ctypes.c_uint8 * C.RECORD)
            args = ring.user_memory(C.Args.ctype)
            args.fd, args.start, args.buf, args.cq = fd, start, ctypes.addressof(buf), c + 1
            keep += [buf, args]
            ring.prep_bpf(prog, user_data=ctypes.addressof(args))
        t0 = time.perf_counter()
        ring.submit_and_wait(len(starts))
        elapsed = time.perf_counter() - t0
        res = [ring.wait_cqe().res for _ in starts]
        assert all(r > 0 for r in res), res
        stats = ring.stats()
        return elapsed, stats.instructions, stats.program_runs


def verifier_insns(prog: object) -> int:
    """`processed N insns` of the scheduler loaded with `prog` (bpf_ops only)."""
    from pybpfuring.runtime.backends import bpf_ops
    from pybpfuring.runtime.backends.bpf_ops_model import ModelRing
    bpf_ops.VERIFIER_LOG_LEVEL = 4
    try:
        ring = ModelRing([prog], entries=8, cq_sizes=[16, 4])
        try:
            logs = [p.verifier_log for p in ring.loop.obj.programs.values()]  # type: ignore[union-attr]
        finally:
            ring.close()
    finally:
        bpf_ops.VERIFIER_LOG_LEVEL = 0
    return sum(int(m) for log in logs for m in re.findall(r"processed (\d+) insns", log))


def spread(xs: list[float]) -> str:
    med = statistics.median(xs)
    return f"{med:.2f} ({min(xs):.2f}-{max(xs):.2f})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--chains", type=int, default=16)
    p.add_argument("--hops", type=int, default=50)
    a = p.parse_args(argv)
    print(f"load average at start: {os.getloadavg()[0]:.2f}; {a.runs} runs per row; "
          f"{a.chains} lookups x {a.hops} hops")
    work = tempfile.mkdtemp(prefix="pybpfuring-bench-gen-")
    try:
        path = os.path.join(work, "records")
        starts = [s for s, _ in C.build_file(path, a.chains, a.hops, random.Random(1))]
        fd = os.open(path, os.O_RDONLY)
        try:
            targets = [("emulated", e) for e in ("native", "jit", "interp")]
            if check_bpf_ops().available:
                targets.append(("bpf_ops", "-"))
            print("| backend | engine | us/hop generator | us/hop classic | ratio | insns/hop gen | insns/hop classic |")
            print("|---|---|---|---|---|---|---|")
            for backend, engine in targets:
                times: dict[str, list[float]] = {s: [] for s in STYLES}
                insns: dict[str, float] = {}
                for _ in range(a.runs):
                    for style in STYLES:          # alternating: load changes hit both alike
                        t, n, runs = one_run(path, fd, starts, backend, engine, style)
                        hops = a.chains * a.hops
                        times[style].append(t / hops * 1e6)
                        insns[style] = n / hops
                g, c = statistics.median(times["generator"]), statistics.median(times["classic"])
                print(f"| {backend} | {engine} | {spread(times['generator'])} | {spread(times['classic'])} "
                      f"| {g / c:.2f} | {insns['generator']:.0f} | {insns['classic']:.0f} |")
            if check_bpf_ops().available:
                vg, vc = verifier_insns(C.chase), verifier_insns(C.chase_classic)
                print(f"\nverifier, scheduler + chase (generator): {vg} insns processed; + chase_classic: "
                      f"{vc}; ratio {vg / vc:.2f}")
        finally:
            os.close(fd)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
