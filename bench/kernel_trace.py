"""The kernel's own counts for a benchmark row: io_uring_enter calls and completions per unit.

Our syscall column (bench/syscalls.py) counts what the row's process asks of the kernel. This counts
what the kernel saw happen for the row's rings, from its io_uring tracepoints, with `pybpfuring trace`
(bcc; docs/trace.md): `io_uring_enter` calls, CQEs completed (per opcode), CQ overflows, and the
struct_ops scheduler's runs from bpf_prog_info (the kernel backend's rows).

Tracing costs time per request (a bcc program on every submission and completion), so it never
touches the timed runs: each traced row runs again, in an untimed pass after all timed rounds, at two
sizes, and the counts per unit are the difference (start-up, the warm-up copy of /dev/null, ring
setup cancel out, as in the syscall count). Rows traced: the in-kernel ones, and the C liburing row
of the same table as the user-space reference (a row per request to the kernel).
"""
from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from bench import snapshot
from bench.measure import RowResult, worker_env

TRACE_TIMEOUT = 1800.0
INTERVAL = "86400"        # one interval: only the total record is read


class TraceFailed(Exception):
    pass


def unavailable_reason() -> str | None:
    """None if `pybpfuring trace` can run here, else its first line of why not."""
    from pybpfuring.trace.bcc_env import TraceUnavailable, setup_bcc
    try:
        setup_bcc()
    except TraceUnavailable as exc:
        return str(exc).splitlines()[0].removeprefix("pybpfuring trace: ")
    return None


def trace_total(argv: list[str]) -> dict[str, Any]:
    """The `total` record of `pybpfuring trace --json -- argv` (the row's own process, from exec)."""
    cmd = [sys.executable, "-m", "pybpfuring", "trace", "--json", "--interval", INTERVAL, "--", *argv]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TRACE_TIMEOUT, env=worker_env(),
                          cwd=snapshot.current())
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not records or not records[-1].get("total"):
        tail = (proc.stderr.strip() or f"exit status {proc.returncode}").splitlines()[-1]
        raise TraceFailed(f"pybpfuring trace: {tail[:300]}")
    return records[-1]


def _runs(total: dict[str, Any]) -> int:
    return sum(p["runs"] for p in total.get("struct_ops", []))


def per_unit(argv_at: Callable[[int], list[str]], small: int, large: int, unit: int) -> dict[str, Any]:
    """Kernel-side counts per `unit` of work (a MiB, a request): the difference of a row traced at
    `large` and at `small`, so what every run does once cancels out."""
    a, b = trace_total(argv_at(small)), trace_total(argv_at(large))
    units = (large - small) / unit

    def slope(key: Callable[[dict[str, Any]], int]) -> float:
        return (key(b) - key(a)) / units
    return {
        "enters_per_unit": slope(lambda t: t["io_uring_enter"]),
        "completions_per_unit": slope(lambda t: t["completions"]),
        "struct_ops_runs_per_unit": slope(_runs),
        "sizes": [small, large],
        "io_uring_enter": [a["io_uring_enter"], b["io_uring_enter"]],
        "completions": [a["completions"], b["completions"]],
        "struct_ops_runs": [_runs(a), _runs(b)],
        "cq_overflows": [a["cq_overflows"], b["cq_overflows"]],
        "task_work_added": [a["task_work_added"], b["task_work_added"]],
        "local_work_runs": [a["local_work_runs"], b["local_work_runs"]],
        "ops": {op: {k: v for k, v in c.items() if k != "latency_usecs_log2"}
                for op, c in b["ops"].items()},
    }


def count_rows(results: list[RowResult], traced: Callable[[RowResult], bool],
               argv_at: Callable[[RowResult, int], list[str]], sizes: Callable[[RowResult], tuple[int, int]],
               unit: int, unit_name: str, sizes_note: str, log: Callable[[str], None]) -> str:
    """Trace each ok row `traced` selects (untimed), fill its `kernel` field; the method note."""
    why = unavailable_reason()
    if why is not None:
        return f"not counted: {why}"
    traced_ids = [res.id for res in results if res.status == "ok" and traced(res)]
    for res in results:
        if res.id not in traced_ids:
            continue
        small, large = sizes(res)
        try:
            res.kernel = per_unit(lambda n, res=res: argv_at(res, n), small, large, unit)
        except (TraceFailed, OSError, subprocess.TimeoutExpired, ValueError, KeyError) as exc:
            res.notes.append(f"kernel trace failed: {exc}")
            continue
        k = res.kernel
        log(f"  {res.id}: kernel side {k['enters_per_unit']:.2f} io_uring_enter/{unit_name}, "
            f"{k['completions_per_unit']:.1f} completions/{unit_name}, "
            f"{k['struct_ops_runs_per_unit']:.1f} struct_ops runs/{unit_name}, "
            f"CQ overflows {k['cq_overflows'][1]}")
    return (f"pybpfuring trace (bcc on the io_uring tracepoints) of {', '.join(traced_ids)}, in an "
            f"untimed pass after the timed runs; {sizes_note}")
