"""Ring.stats() on the kernel backend and `pybpfuring trace` (bcc on io_uring tracepoints), in the
Linux 7.x guest, checked against what the programs did.

- stats: the kernel scheduler counts the same things the emulated loops count (tests/runtime/
  test_ring_stats.py): a cp of N blocks is N + 1 reads and N writes, 2N + 2 runs, 2N + 1 WAITs.
- trace: the kernel's own tracepoints see exactly those N + 1 reads and N writes complete, and no CQ
  overflow; `pybpfuring trace -- python3 examples/cp.py SRC DST` prints the histograms.
- struct_ops runs: a ring that lives a few ms still reports its scheduler's runs (the unload probe).
- bench: the kernel-side columns of the cp table (bench/kernel_trace.py) on the in-kernel row.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from guest_tier import scratch_dir

pytestmark = pytest.mark.in_guest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))


def _source(tmp_path: Path, blocks: int) -> tuple[Path, Path, bytes]:
    d = scratch_dir(tmp_path, "trace")
    src, dst = d / f"src-{blocks}", d / f"dst-{blocks}"
    data = os.urandom(blocks * 4096)
    src.write_bytes(data)
    os.sync()
    return src, dst, data


@pytest.mark.parametrize("blocks", [0, 1, 64])
def test_stats_bpf_ops_cp_counts(tmp_path: Path, blocks: int) -> None:
    import ring_stats
    src, dst, data = _source(tmp_path, blocks)
    fd_in, fd_out = os.open(src, os.O_RDONLY), os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        copied, stats, backend = ring_stats.copy_with_stats(fd_in, fd_out, "bpf_ops")
    finally:
        os.close(fd_in)
        os.close(fd_out)
    assert backend == "bpf_ops" and copied == len(data) and dst.read_bytes() == data
    for key, want in ring_stats.expected_copy_stats(blocks).items():
        assert getattr(stats, key) == want, (key, stats)
    assert stats.faults == 0 and stats.in_flight == 0


def test_stats_bpf_ops_burst_drops() -> None:
    import ring_stats
    stats = ring_stats.burst_stats(10, "bpf_ops")
    assert stats.completed == (1, ring_stats.BURST_CQ_SIZE)
    assert stats.overflows == (0, 10 - ring_stats.BURST_CQ_SIZE)
    assert (stats.program_runs, stats.waits, stats.program_submitted) == (1, 0, 0)


def _trace_unavailable() -> str | None:
    from pybpfuring.trace.bcc_env import TraceUnavailable, setup_bcc
    try:
        setup_bcc()
    except TraceUnavailable as err:
        return str(err).splitlines()[0]
    return None


def _trace(args: list[str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
    why = _trace_unavailable()
    if why is not None:
        pytest.skip(f"bcc cannot run in this guest: {why}")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "pybpfuring", "trace", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("blocks", [1024])   # 4 MiB: the scheduler lives long enough to be seen
def test_trace_kernel_cp_counts(tmp_path: Path, blocks: int) -> None:
    """The kernel's own tracepoints: N + 1 reads (the last at end of file) and N writes complete,
    nothing fails, no CQE overflows; the struct_ops scheduler ran (the kernel backend did the copy)."""
    src, dst, data = _source(tmp_path, blocks)
    proc = _trace(["--json", "--interval", "600", "--", sys.executable, str(EXAMPLES / "cp.py"),
                   str(src), str(dst)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert dst.read_bytes() == data
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    total = records[-1]
    assert total["total"] is True
    ops = total["ops"]
    assert ops["READ"]["completed"] == blocks + 1 and ops["READ"]["submitted"] == blocks + 1
    assert ops["WRITE"]["completed"] == blocks and ops["WRITE"]["submitted"] == blocks
    assert ops["READ"]["errors"] == 0 and ops["WRITE"]["errors"] == 0
    assert set(ops) == {"READ", "WRITE"}, ops          # nothing else reached the kernel
    assert total["cq_overflows"] == 0
    assert sum(n for _, _, n in ops["READ"]["latency_usecs_log2"]) == blocks + 1
    assert total["struct_ops"] and sum(p["runs"] for p in total["struct_ops"]) > 0
    assert total["io_uring_enter"] >= 1
    print("total:", json.dumps(total))


def test_trace_cp_prints_histograms(tmp_path: Path) -> None:
    src, dst, data = _source(tmp_path, 16)
    proc = _trace(["--interval", "600", "--", sys.executable, str(EXAMPLES / "cp.py"), str(src), str(dst)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "copied 65536 bytes" in out
    total = out[out.rindex("\ntotal\n"):]
    assert "latency of READ, submission to completion:" in total
    assert "latency of WRITE, submission to completion:" in total
    assert "usecs" in total and "distribution" in total and "CQ overflows: 0" in total
    # 16 blocks: the scheduler lives a few ms; the unload probe still reports its runs
    assert "struct_ops program " in total and " runs, " in total, total
    print(out)


def test_trace_kernel_trace_in_process_counts(tmp_path: Path) -> None:
    """KernelTrace (what benchmarks use): the kernel's counts of this process's own kernel-backend
    copy, with the enters and completions per MiB a benchmark row records."""
    why = _trace_unavailable()
    if why is not None:
        pytest.skip(f"bcc cannot run in this guest: {why}")
    import ring_stats
    from pybpfuring.trace.session import KernelTrace
    blocks = 256
    src, dst, data = _source(tmp_path, blocks)
    fd_in, fd_out = os.open(src, os.O_RDONLY), os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        with KernelTrace() as kt:
            copied, stats, backend = ring_stats.copy_with_stats(fd_in, fd_out, "bpf_ops")
    finally:
        os.close(fd_in)
        os.close(fd_out)
    assert backend == "bpf_ops" and copied == len(data)
    iv = kt.result
    assert iv.ops[22][:2] == (blocks + 1, blocks + 1) and iv.ops[23][:2] == (blocks, blocks)
    assert iv.overflows == 0 and iv.progs and sum(p.run_cnt for p in iv.progs) > 0
    mib = copied / (1 << 20)
    print(f"kernel side, {blocks} blocks: {iv.enters} enters ({iv.enters / mib:.2f}/MiB), "
          f"{iv.completions} completions ({iv.completions / mib:.1f}/MiB), "
          f"struct_ops runs {sum(p.run_cnt for p in iv.progs)}, local work runs {iv.work_runs}; "
          f"Ring.stats: {stats.as_dict()}")


def _wait_struct_ops_gone(timeout: float = 60.0) -> None:
    """Until the kernel has freed every io_uring struct_ops program (a closed ring's scheduler is
    freed a little after the close, from a work queue). Each look holds its fds only for the look."""
    from pybpfuring.trace.proginfo import StructOpsWatch
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        watch = StructOpsWatch(None)
        try:
            watch.scan()
            if not watch.fds:
                return
        finally:
            watch.close()
        time.sleep(0.05)
    pytest.fail(f"a closed ring's struct_ops program was not freed within {timeout:.0f} s")


def _kernel_copy(tmp_path: Path, blocks: int, until_freed: bool = False
                 ) -> tuple[object, object, bytes, Path]:
    """A kernel-backend copy of `blocks` blocks inside a KernelTrace; (trace, Ring.stats, data, dst).
    until_freed: the block ends only once the kernel freed the ring's scheduler."""
    import ring_stats
    from pybpfuring.trace.session import KernelTrace
    src, dst, data = _source(tmp_path, blocks)
    fd_in, fd_out = os.open(src, os.O_RDONLY), os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        with KernelTrace() as kt:
            copied, stats, backend = ring_stats.copy_with_stats(fd_in, fd_out, "bpf_ops")
            if until_freed:
                _wait_struct_ops_gone()
    finally:
        os.close(fd_in)
        os.close(fd_out)
    assert backend == "bpf_ops" and copied == len(data)
    return kt, stats, data, dst


def test_trace_short_ring_struct_ops_runs(tmp_path: Path) -> None:
    """A ring that copies a few blocks lives a few ms after its scheduler is loaded: too short for
    a look every 10 ms to catch. The unload probe counts its runs when the kernel frees it: here the
    traced block ends only after the program is gone, so no look could have read it."""
    why = _trace_unavailable()
    if why is not None:
        pytest.skip(f"bcc cannot run in this guest: {why}")
    blocks = 1                         # (4 blocks too in the guest: 11 runs for 10 program runs)
    kt, stats, data, dst = _kernel_copy(tmp_path, blocks, until_freed=True)
    assert kt.unload_probe is None, kt.unload_probe
    assert dst.read_bytes() == data
    iv = kt.result
    assert iv.ops[22][:2] == (blocks + 1, blocks + 1) and iv.ops[23][:2] == (blocks, blocks)
    assert stats.program_runs == 2 * blocks + 2
    assert len(iv.progs) == 1, iv.progs            # one ring, one scheduler
    prog = iv.progs[0]
    # Counted at unload (no look took an fd on it); loop_step is called for every program run, and
    # a few times more with nothing to run (64 blocks: 133 calls for 130 runs).
    assert prog.unloaded, prog
    assert stats.program_runs <= prog.run_cnt <= stats.program_runs + 8, (prog, stats)
    assert prog.run_time_ns > 0
    print(f"{blocks} blocks: {prog}; Ring.stats program_runs {stats.program_runs}")


def test_trace_bench_kernel_columns(tmp_path: Path) -> None:
    """The cp table's kernel-side columns for the in-kernel row: the copy's difference between 64
    and 128 KiB is 256 reads and 256 writes per MiB, none overflowing, at most one io_uring_enter per
    block (the bench's sink is /dev/zero: there the @iouring_program row enters once per block, the
    raw loop_step row never; an ext4 destination takes 2 enters in all, test_trace_kernel_cp_counts);
    per_unit is what bench/cp/run.py records."""
    why = _trace_unavailable()
    if why is not None:
        pytest.skip(f"bcc cannot run in this guest: {why}")
    sys.path.insert(0, str(ROOT))
    from bench import datafile, kernel_trace
    from bench.cp.rows import all_rows
    row = next(r for r in all_rows(1 << 20) if r.id == "kernel_program")
    d = scratch_dir(tmp_path, "bench-trace")
    k = kernel_trace.per_unit(lambda n: row.argv(str(datafile.source_file(d, n)), n), 64 << 10,
                              128 << 10, 1 << 20)
    assert k["completions_per_unit"] == 512.0, k
    assert k["ops"]["READ"]["completed"] == 33 + 1 and k["ops"]["WRITE"]["completed"] == 32, k
    assert k["cq_overflows"] == [0, 0]
    assert 0 <= k["enters_per_unit"] <= 256, k
    assert k["struct_ops_runs_per_unit"] >= 512, k
    print("kernel_program, kernel side:", k)


def test_trace_copy_example(tmp_path: Path) -> None:
    """examples/trace_copy.py on the kernel backend: the kernel's counts of the copy it prints are
    checked by the example itself (N + 1 reads, N writes, no overflow: exit 0)."""
    why = _trace_unavailable()
    if why is not None:
        pytest.skip(f"bcc cannot run in this guest: {why}")
    src, dst, data = _source(tmp_path, 64)
    out = subprocess.run([sys.executable, str(EXAMPLES / "trace_copy.py"), "--backend", "bpf_ops",
                          str(src), str(dst)], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "on bpf_ops" in out.stdout and dst.read_bytes() == data
