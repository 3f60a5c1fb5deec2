"""Measure a table of rows in this environment: availability, interleaved timed runs, syscall counts.

Shared by `bench cp` and `bench nops`. A row is anything with `id`, `label` and a command that prints
`ns=<elapsed ns> <unit>=<amount>`; each run is a fresh process, and run r visits the rows in an order
rotated by r, so slow drift (other load, thermal, page cache) spreads over all rows instead of
piling onto whichever row runs last.
"""
from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import snapshot

RUN_TIMEOUT = 1800.0
_RESULT = re.compile(r"^ns=(\d+) (\w+)=(\d+)$", re.M)


@dataclass
class RowResult:
    id: str
    label: str
    amount: int                       # bytes copied (cp) or requests completed (nops) per run
    status: str = "ok"                # ok | unavailable | failed
    reason: str = ""
    runs_s: list[float] = field(default_factory=list)
    syscalls_per_unit: float | None = None
    kernel: dict[str, Any] | None = None   # kernel-side counts per unit (bench/kernel_trace.py)
    notes: list[str] = field(default_factory=list)

    def stats(self) -> dict[str, float]:
        if not self.runs_s:
            return {}
        xs = sorted(self.runs_s)
        q1, q3 = (statistics.quantiles(xs, n=4, method="inclusive")[::2] if len(xs) > 1 else (xs[0], xs[0]))
        return {"median_s": statistics.median(xs), "min_s": xs[0], "max_s": xs[-1], "q1_s": q1, "q3_s": q3}

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), **self.stats()}


def worker_env() -> dict[str, str]:
    """The environment of a row's process: the code snapshot importable (bench, examples, pybpfuring)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(snapshot.current()), *filter(None, [env.get("PYTHONPATH")])])
    return env


def run_once(argv: list[str], timeout: float = RUN_TIMEOUT) -> tuple[int, int]:
    """Run one measurement; return (elapsed ns, amount) as the program reported them."""
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=worker_env(),
                          cwd=snapshot.current())
    found = _RESULT.search(proc.stdout)
    if proc.returncode != 0 or found is None:
        tail = (proc.stderr.strip() or proc.stdout.strip() or f"exit status {proc.returncode}")
        raise RuntimeError(tail.splitlines()[-1][:300])
    return int(found.group(1)), int(found.group(3))


def check_worker(argv: list[str] | None) -> str | None:
    """None if the row can run here, else the reason its `--check` gave."""
    if argv is None:
        return None
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=worker_env(),
                          cwd=snapshot.current())
    out = proc.stdout.strip().splitlines()
    if proc.returncode == 0 and out and out[-1] == "ok":
        return None
    last = out[-1] if out else (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
    return last.removeprefix("unavailable: ")[:300]


def interleaved(rows: list[RowResult], argv_of: Callable[[RowResult], list[str]], runs: int,
                log: Callable[[str], None], warmup: int = 1) -> None:
    """Time every runnable row `runs` times, rotating the order each round, after `warmup` untimed
    rounds (under QEMU TCG the first pass through a kernel path pays for translating it: the first
    row to run would look several times slower than it is)."""
    live = [r for r in rows if r.status == "ok"]
    for rnd in range(-warmup, runs):
        k = max(rnd, 0) % len(live) if live else 0
        for row in live[k:] + live[:k]:
            if row.status != "ok":
                continue
            try:
                ns, amount = run_once(argv_of(row))
            except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
                row.status, row.reason = "failed", f"{_round_name(rnd, runs)}: {exc}"
                log(f"  {row.id}: FAILED {exc}")
                continue
            if amount != row.amount:
                row.status, row.reason = "failed", f"{_round_name(rnd, runs)}: moved {amount}, not {row.amount}"
                continue
            if rnd >= 0:
                row.runs_s.append(ns / 1e9)
            log(f"  {_round_name(rnd, runs)} {row.id:18s} {ns / 1e6:10.1f} ms")


def _round_name(rnd: int, runs: int) -> str:
    return "warm-up" if rnd < 0 else f"round {rnd + 1}/{runs}"


def environment_info() -> dict[str, object]:
    """What the numbers depend on: kernel, CPU, mitigations, load, and whether this is the TCG guest."""
    in_guest = bool(os.environ.get("PYBPFURING_IN_GUEST"))
    info: dict[str, object] = {
        "environment": "guest" if in_guest else "host",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "spectre_v2": _read("/sys/devices/system/cpu/vulnerabilities/spectre_v2"),
        "meltdown": _read("/sys/devices/system/cpu/vulnerabilities/meltdown"),
        "loadavg_start": _read("/proc/loadavg"),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if in_guest:
        info["machine"] = "QEMU TCG guest (no KVM): absolute times are not the host's"
    return info


def _cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def stderr_log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
