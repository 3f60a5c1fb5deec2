"""Measure the cp table in this environment (host, or inside the QEMU guest) and return its JSON."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import cbuild, datafile, kernel_trace, syscalls
from bench.cp.rows import BASELINE, Row, all_rows
from bench.report import human_size
from bench.measure import RowResult, check_worker, environment_info, interleaved

BLOCK = 4096
COUNT_SIZE = 16 << 20   # syscalls are counted on copies of 8 and 16 MiB (start-up cancelled)


@dataclass(frozen=True)
class CpOptions:
    size: int
    runs: int
    emulated_size: int
    data_dir: Path | None = None
    count_syscalls: bool = True
    kernel_trace: bool = True         # kernel-side counts of the traced rows (bench/kernel_trace.py)
    warmup: int = 1
    only: tuple[str, ...] = ()        # row ids to run (empty: all)


def row_size(row: Row, size: int) -> int:
    return min(size, row.max_size) if row.max_size else size


def _availability(row: Row) -> str | None:
    if row.c_source is not None:
        try:
            cbuild.build(row.c_source)
            return None
        except cbuild.BuildUnavailable as exc:
            return str(exc)
    return check_worker(row.check_argv())


def measure_cp(opts: CpOptions, log: Callable[[str], None]) -> dict[str, object]:
    info = environment_info()
    directory = opts.data_dir or datafile.guest_dir()
    if directory is None:
        raise datafile.DataDirError("measure_cp needs a data directory (bench/__main__.py makes one)")
    fs = datafile.prepare_dir(directory)
    rows = [r for r in all_rows(opts.emulated_size) if not opts.only or r.id in opts.only]
    big = datafile.source_file(directory, opts.size)

    def src_for(row: Row, size: int) -> str:
        return str(datafile.source_file(directory, size) if row.whole_file else big)

    results: list[RowResult] = []
    for row in rows:
        res = RowResult(row.id, row.label, row_size(row, opts.size))
        reason = _availability(row)
        if reason is not None:
            res.status, res.reason = "unavailable", reason
            log(f"  {row.id}: not available: {reason}")
        elif res.amount < opts.size:
            res.notes.append(f"copies {human_size(res.amount)}, not {human_size(opts.size)} (per-block cost)")
        results.append(res)
    by_id = {r.id: r for r in rows}
    sources = {res.id: src_for(by_id[res.id], res.amount) for res in results if res.status == "ok"}
    cached = {p: datafile.warm(Path(p)) for p in set(sources.values())}
    log(f"  source files cached before the runs: {_fmt_cached(cached)}")
    interleaved(results, lambda res: by_id[res.id].argv(sources[res.id], res.amount), opts.runs, log,
                opts.warmup)
    cached_after = {p: datafile.cached_fraction(Path(p)) for p in set(sources.values())}

    method_note, bcc = "not counted (--no-syscalls)", ""
    if opts.count_syscalls:
        method_note, bcc = _count_syscalls(results, by_id, directory, big, log)
    trace_note = "not counted (--no-kernel-trace)"
    if opts.kernel_trace:
        trace_note = _count_kernel_side(results, by_id, directory, big, log)
    info["loadavg_end"] = Path("/proc/loadavg").read_text().strip()
    return {
        "benchmark": "cp", "block": BLOCK, "sink": "/dev/zero", "size": opts.size, "runs": opts.runs,
        "warmup": opts.warmup,
        "baseline": BASELINE, "unit": "bytes", "info": info,
        "data": {"dir": str(directory), "fs": fs, "cached_before": _fmt_cached(cached),
                 "cached_after": _fmt_cached(cached_after)},
        "syscall_method": method_note, "bcc": bcc, "kernel_trace_method": trace_note,
        "rows": [r.to_json() for r in results],
    }


def _count_syscalls(results: list[RowResult], by_id: dict[str, Row], directory: Path, big: Path,
                    log: Callable[[str], None]) -> tuple[str, str]:
    counter, note = syscalls.choose_counter()
    bcc = syscalls.bcc_status()
    if counter is None:
        return f"none available ({note})", bcc
    for res in results:
        if res.status != "ok":
            continue
        row = by_id[res.id]
        size = min(COUNT_SIZE, max(res.amount, 2 * BLOCK))

        def argv_at(n: int, row: Row = row) -> list[str]:
            src = datafile.source_file(directory, n) if row.whole_file else big
            return row.argv(str(src), n)
        try:
            res.syscalls_per_unit = syscalls.per_mib(counter, argv_at, size)
            log(f"  {res.id}: {res.syscalls_per_unit:.1f} syscalls/MiB ({counter.method})")
        except (syscalls.CountFailed, OSError) as exc:
            res.notes.append(f"syscall count failed: {exc}")
    sizes = f"{COUNT_SIZE >> 21} and {COUNT_SIZE >> 20} MiB (or half and all of a smaller row)"
    return f"{counter.method} ({note}); per MiB from copies of {sizes}", bcc


# Rows whose kernel-side counts are recorded: the in-kernel rows, and liburing's QD1 loop beside them.
KERNEL_TRACED = ("c_uring", "kernel_program", "kernel_loop_step")


def _count_kernel_side(results: list[RowResult], by_id: dict[str, Row], directory: Path, big: Path,
                       log: Callable[[str], None]) -> str:
    def argv_at(res: RowResult, n: int) -> list[str]:
        row = by_id[res.id]
        return row.argv(str(datafile.source_file(directory, n) if row.whole_file else big), n)

    def sizes(res: RowResult) -> tuple[int, int]:
        large = min(COUNT_SIZE, max(res.amount, 2 * BLOCK))
        return max(large // 2, BLOCK) // BLOCK * BLOCK, large
    return kernel_trace.count_rows(results, lambda r: r.id in KERNEL_TRACED, argv_at, sizes, 1 << 20, "MiB",
                                   f"per MiB from copies of {COUNT_SIZE >> 21} and {COUNT_SIZE >> 20} MiB "
                                   "(or half and all of a smaller row)", log)


def _fmt_cached(cached: dict[str, float]) -> str:
    return ", ".join(f"{Path(p).name} {100 * f:.0f}%" for p, f in sorted(cached.items()))
