"""The kernel's side of a copy: KernelTrace (bcc on the io_uring tracepoints) around examples/cp.py.

Copies SRC to DST with the `cp` program (one IORING_OP_BPF request that reads and writes 4 KiB at a
time) and prints what the kernel saw this process do: reads and writes submitted and completed,
io_uring_enter calls and completions per MiB, CQ overflows, and the struct_ops scheduler's runs on
the kernel backend, next to the ring's own Ring.stats(). For N blocks the kernel must show N + 1
reads (the last returns 0: end of file), N writes and no overflow; the example checks that.

Needs bcc and the running kernel's headers (Debian: python3-bpfcc and linux-headers-$(uname -r);
the guest tier has both). Where they are missing it says what is missing and exits with 3.

    python3 examples/trace_copy.py [--backend auto|emulated|bpf_ops] SRC DST
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ring_stats  # noqa: E402  (examples/ring_stats.py: the copy with its Ring.stats)
from pybpfuring.trace.bcc_env import TraceUnavailable  # noqa: E402
from pybpfuring.trace.session import KernelTrace  # noqa: E402

IORING_OP_READ, IORING_OP_WRITE = 22, 23
BLOCK = 4096


def traced_copy(src: str, dst: str, backend: str) -> dict:
    """Copy under KernelTrace; the kernel's counts and the ring's, as one dict."""
    fd_in = os.open(src, os.O_RDONLY)
    try:
        fd_out = ring_stats.cp_example.open_destination(fd_in, src, dst)   # never truncates src
        try:
            with KernelTrace() as kt:
                copied, stats, used = ring_stats.copy_with_stats(fd_in, fd_out, backend)
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)
    iv = kt.result
    assert iv is not None
    mib = max(copied, 1) / (1 << 20)
    return {"backend": used, "bytes": copied, "reads": iv.ops.get(IORING_OP_READ, (0, 0, 0)),
            "writes": iv.ops.get(IORING_OP_WRITE, (0, 0, 0)), "enters": iv.enters,
            "enters_per_mib": iv.enters / mib, "completions_per_mib": iv.completions / mib,
            "overflows": iv.overflows, "struct_ops_runs": sum(p.run_cnt for p in iv.progs),
            "ring_stats": stats.as_dict()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default="auto", choices=["auto", "emulated", "bpf_ops"])
    p.add_argument("src")
    p.add_argument("dst")
    a = p.parse_args(argv)
    try:
        f = traced_copy(a.src, a.dst, a.backend)
    except TraceUnavailable as err:
        print(f"{p.prog}: cannot trace on this machine: {err}")
        return 3
    except OSError as exc:                # e.g. DST is SRC (never truncated), SRC unreadable
        print(f"{p.prog}: {exc}", file=sys.stderr)
        return 1
    blocks = -(-f["bytes"] // BLOCK)
    print(f"{f['bytes']} bytes on {f['backend']}: the kernel saw reads (submitted, completed, errors) "
          f"{f['reads']}, writes {f['writes']}; {f['enters']} io_uring_enter "
          f"({f['enters_per_mib']:.1f}/MiB), {f['completions_per_mib']:.1f} completions/MiB, "
          f"{f['overflows']} overflows, {f['struct_ops_runs']} struct_ops runs")
    print(f"Ring.stats(): {f['ring_stats']}")
    ok = f["reads"][1] == blocks + 1 and f["writes"][1] == blocks and f["overflows"] == 0
    if not ok:
        print(f"FAILED: expected {blocks + 1} reads, {blocks} writes and no overflow")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
