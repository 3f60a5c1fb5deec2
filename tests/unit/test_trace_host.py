"""`pybpfuring trace` on the host: where bcc cannot run it says exactly what is missing and how to get
it; the interval arithmetic and the program text are checked here, the tracing itself in the guest
(tests/guest/test_trace_guest.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pybpfuring.trace import program
from pybpfuring.trace.bcc_env import TraceUnavailable, find_headers
from pybpfuring.trace.proginfo import ProgRuns
from pybpfuring.trace.report import Snapshot, diff, op_name, render_text

ROOT = Path(__file__).resolve().parents[2]
RELEASE = os.uname().release


def _host_has_headers() -> bool:
    try:
        find_headers(RELEASE)
        return True
    except TraceUnavailable:
        return False


def _trace(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("BCC_KERNEL_SOURCE", None)
    return subprocess.run([sys.executable, "-m", "pybpfuring", "trace", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(_host_has_headers(), reason="this machine has the running kernel's headers: "
                    "trace can run here, so there is no missing-headers message to check")
def test_missing_headers_message_says_what_and_how() -> None:
    proc = _trace("--", "true")
    assert proc.returncode == 3, proc.stderr
    err = proc.stderr
    assert f"headers of the running kernel {RELEASE}" in err
    assert f"/lib/modules/{RELEASE}/build" in err and "/sys/kernel/kheaders.tar.xz" in err
    assert f"apt-get install linux-headers-{RELEASE}" in err
    assert "pybpfuring vm fetch" in err and "Ring.stats()" in err
    assert "Traceback" not in err
    if not Path("/usr/lib/python3/dist-packages/bcc").is_dir():
        assert "apt-get install python3-bpfcc" in err


def test_bad_arguments_are_one_line_errors() -> None:
    proc = _trace("--ring", "3")
    assert proc.returncode == 2 and "give --pid PID or a COMMAND" in proc.stderr
    proc = _trace("--interval", "0", "--", "true")
    assert proc.returncode == 2 and "--interval" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_program_text_filters() -> None:
    everything = program.bpf_text(None, None)
    assert f"#define TRACE_PID   {program.ALL}" in everything and "@" not in everything
    one = program.bpf_text(1234, 7)
    assert "#define TRACE_PID   1234" in one and "#define TRACE_FD    7" in one
    for tp in ("io_uring_submit_req", "io_uring_complete", "io_uring_cqe_overflow", "io_uring_task_add",
               "io_uring_local_work_run", "sys_enter_io_uring_enter"):
        assert tp in one


def test_interval_is_the_difference_and_total_the_sum() -> None:
    a = Snapshot(ops={22: (5, 4, 0)}, counts=[2, 0, 1, 3, 9, 0], hist={(22, 3): 4},
                 progs={7: ProgRuns(7, "step", 100, 5000)})
    b = Snapshot(ops={22: (9, 9, 1), 23: (4, 4, 0)}, counts=[3, 1, 1, 5, 15, 2],
                 hist={(22, 3): 6, (22, 5): 3, (23, 4): 4}, progs={7: ProgRuns(7, "step", 160, 8000)})
    iv = diff(a, b, 0.0, 1.0)
    assert iv.ops == {22: (4, 5, 1), 23: (4, 4, 0)}
    assert (iv.enters, iv.overflows, iv.task_adds, iv.work_runs, iv.work_items, iv.unmatched) == \
        (1, 1, 0, 2, 6, 2)
    assert iv.completions == 11 and iv.enters_per_completion() == pytest.approx(1 / 11)
    assert iv.hist[22][3] == 2 and iv.hist[22][5] == 3 and iv.hist[23][4] == 4
    assert iv.progs[0].run_cnt == 60 and iv.progs[0].run_time_ns == 3000
    d = json.loads(json.dumps(iv.as_json()))
    assert d["ops"]["READ"] == {"submitted": 4, "completed": 5, "errors": 1,
                               "latency_usecs_log2": [[4, 7, 2], [16, 31, 3]]}
    assert d["ops"]["WRITE"]["latency_usecs_log2"] == [[8, 15, 4]]
    text = render_text(iv, lambda slots, unit: print(f"{unit} {sum(slots)}"))
    assert "READ" in text and "usecs 5" in text and "CQ overflows: 1" in text


def test_op_names_come_from_the_uapi_table() -> None:
    assert (op_name(0), op_name(22), op_name(23), op_name(250)) == ("NOP", "READ", "WRITE", "OP_250")


def test_unload_probe_text_is_complete() -> None:
    """Every placeholder of the unload probe is filled, with the offsets of this kernel's BTF."""
    from pybpfuring.trace.unload import struct_offsets
    try:
        offsets = struct_offsets()
    except (OSError, ValueError) as err:
        pytest.skip(f"no kernel BTF to read struct bpf_prog from: {err}")
    assert set(offsets) == set(program.LAYOUT.values())
    assert offsets["STATS_NSECS"] == offsets["STATS_CNT"] + 8      # u64_stats_t cnt, nsecs
    text = program.bpf_text(1234, None) + program.unload_text(77, 0xFFFF0000, 2, offsets)
    assert "@" not in text, [w for w in text.split() if "@" in w]
    assert "#define OPS_BTF_ID      77" in text and "cpu < NCPUS" in text
    assert f"fp + {offsets['PROG_STATS']}" in text
    capped = program.unload_text(None, 1, 4096, offsets)
    assert f"#define NCPUS           {program.MAX_CPUS}" in capped and "OPS_BTF_ID      0" in capped


def test_unloaded_programs_keep_their_final_count_in_intervals() -> None:
    """A program seen live, then counted at unload: the total is its final count, marked unloaded."""
    old = Snapshot(progs={7: ProgRuns(7, "model_step", 10, 100)})
    new = Snapshot(progs={7: ProgRuns(7, "model_step", 25, 300, unloaded=True),
                          9: ProgRuns(9, "model_step", 4, 40, unloaded=True)})
    iv = diff(Snapshot(), new, 0.0, 1.0, total=True)
    assert [(p.prog_id, p.run_cnt, p.unloaded) for p in iv.progs] == [(7, 25, True), (9, 4, True)]
    assert [p.run_cnt for p in diff(old, new, 0.0, 1.0).progs] == [15, 4]
    record = json.loads(json.dumps(iv.as_json()))
    assert record["struct_ops"][1] == {"prog_id": 9, "name": "model_step", "runs": 4,
                                       "run_time_ns": 40, "unloaded": True}
    assert "struct_ops program 9 model_step: 4 runs, 0.000 ms (unloaded)" in render_text(iv, None)


def test_bench_table_prints_kernel_side_columns() -> None:
    """The cp/nops table has the kernel-side columns; a row traced shows its counts, an untraced
    row (or a table from before the columns existed) leaves them empty."""
    sys.path.insert(0, str(ROOT))
    from bench import report
    row = {"id": "kernel_program", "label": "in-kernel", "amount": 1 << 20, "status": "ok", "reason": "",
           "runs_s": [0.5], "median_s": 0.5, "min_s": 0.5, "max_s": 0.5, "q1_s": 0.5, "q3_s": 0.5,
           "syscalls_per_unit": 0.0, "notes": [],
           "kernel": {"enters_per_unit": 0.0, "completions_per_unit": 512.0}}
    plain = dict(row, id="c_rw", label="c loop", kernel=None)
    table = {"info": {"environment": "guest", "kernel": "7.2", "cpus": 2, "cpu_model": "x",
                      "spectre_v2": "", "loadavg_start": "1"}, "unit": "bytes", "baseline": "c_rw",
             "syscall_method": "perf", "kernel_trace_method": "pybpfuring trace (bcc)", "rows": [plain, row]}
    md = report.table_markdown(table)
    assert "| enters/MiB (kernel) | completions/MiB (kernel) |" in md
    assert "Kernel side (enters, completions): pybpfuring trace (bcc)." in md
    assert "| 0.0 | 0.00 | 512.0 |" in md
    assert "| 0.0 |  |  |" in md                      # the untraced row
    del table["kernel_trace_method"]
    assert "Kernel side (enters, completions): n/a." in report.table_markdown(table)
