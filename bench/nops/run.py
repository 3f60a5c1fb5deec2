"""Measure the nops table in this environment and return its JSON (rows as in bench/report.py)."""
from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import cbuild, kernel_trace, syscalls
from bench.measure import RowResult, check_worker, environment_info, interleaved

BASELINE = "c_nops"
# Rows whose kernel-side counts are recorded: the in-kernel rows, and the C user-space chain beside them.
KERNEL_TRACED = ("c_nops", "kernel_program_nops", "kernel_loop_step_nops", "kernel_loop_step_nops_qd1")
COUNT_FOR_SYSCALLS = 2000


@dataclass(frozen=True)
class NopsOptions:
    count: int
    runs: int
    emulated_count: int
    count_syscalls: bool = True
    kernel_trace: bool = True         # kernel-side counts of the traced rows (bench/kernel_trace.py)
    warmup: int = 1
    only: tuple[str, ...] = ()


@dataclass(frozen=True)
class NopRow:
    id: str
    label: str
    max_count: int | None = None

    def argv(self, count: int) -> list[str]:
        if self.id == BASELINE:
            return [str(cbuild.build("nops/nops.c")), str(count)]
        return [sys.executable, "-m", "bench.nops.worker", self.id, str(count)]


def all_rows(emulated_count: int) -> list[NopRow]:
    return [
        NopRow(BASELINE, "user space, C (liburing): NOP, wait, reap, repeat"),
        NopRow("py_nops", "user space, Python (runtime.ring.IoUring): NOP, wait, reap, repeat"),
        NopRow("emulated_native_nops", "BPF-driven, emulated, native event loop (@iouring_program "
               "chains NOPs on CQ 1)"),
        NopRow("emulated_jit_nops", "BPF-driven, emulated, JIT engine (same program)",
               max_count=emulated_count),
        NopRow("emulated_interp_nops", "BPF-driven, emulated, interpreter (same program)",
               max_count=emulated_count),
        NopRow("kernel_program_nops", "BPF-driven in the kernel (same @iouring_program, Ring "
               "backend=bpf_ops)"),
        NopRow("kernel_loop_step_nops", "BPF-driven in the kernel loop (examples/bpf_nops.py, "
               "loop_step, up to 8 in flight)"),
        NopRow("kernel_loop_step_nops_qd1", "BPF-driven in the kernel loop (examples/bpf_nops.py, "
               "loop_step, one in flight: the kernel loop's own cost per step at QD1)"),
    ]


def _count_sizes(res: RowResult) -> tuple[int, int]:
    """The two chain lengths a row is counted at (syscalls, kernel side): their difference is per request."""
    n = min(COUNT_FOR_SYSCALLS, max(res.amount, 2))
    return n // 2, n


def _availability(row: NopRow) -> str | None:
    if row.id == BASELINE:
        try:
            cbuild.build("nops/nops.c")
            return None
        except cbuild.BuildUnavailable as exc:
            return str(exc)
    return check_worker([sys.executable, "-m", "bench.nops.worker", row.id, "--check"])


def measure_nops(opts: NopsOptions, log: Callable[[str], None]) -> dict[str, object]:
    info = environment_info()
    rows = [r for r in all_rows(opts.emulated_count) if not opts.only or r.id in opts.only]
    results = []
    for row in rows:
        res = RowResult(row.id, row.label, min(opts.count, row.max_count or opts.count))
        reason = _availability(row)
        if reason is not None:
            res.status, res.reason = "unavailable", reason
            log(f"  {row.id}: not available: {reason}")
        elif res.amount < opts.count:
            res.notes.append(f"{res.amount:,} NOPs, not {opts.count:,} (per-request cost)")
        results.append(res)
    by_id = {r.id: r for r in rows}
    interleaved(results, lambda res: by_id[res.id].argv(res.amount), opts.runs, log, opts.warmup)
    method, bcc = "not counted (--no-syscalls)", ""
    if opts.count_syscalls:
        counter, note = syscalls.choose_counter()
        bcc = syscalls.bcc_status()
        method = f"none available ({note})"
        if counter is not None:
            method = (f"{counter.method} ({note}); per request from chains of "
                      f"{COUNT_FOR_SYSCALLS // 2} and {COUNT_FOR_SYSCALLS}")
            for res in results:
                if res.status == "ok":
                    try:
                        res.syscalls_per_unit = syscalls.slope(counter, by_id[res.id].argv, *_count_sizes(res))
                    except (syscalls.CountFailed, OSError) as exc:
                        res.notes.append(f"syscall count failed: {exc}")
    trace_note = "not counted (--no-kernel-trace)"
    if opts.kernel_trace:
        trace_note = kernel_trace.count_rows(
            results, lambda r: r.id in KERNEL_TRACED, lambda r, k: by_id[r.id].argv(k), _count_sizes, 1,
            "request", f"per request from chains of {COUNT_FOR_SYSCALLS // 2} and {COUNT_FOR_SYSCALLS}",
            log)
    info["loadavg_end"] = Path("/proc/loadavg").read_text().strip()
    return {"benchmark": "nops", "count": opts.count, "runs": opts.runs, "warmup": opts.warmup,
            "baseline": BASELINE, "unit": "requests", "info": info, "syscall_method": method, "bcc": bcc,
            "kernel_trace_method": trace_note,
            "rows": [r.to_json() for r in results]}
