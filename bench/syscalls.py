"""Count the system calls a benchmark row makes per MiB copied.

Methods, in order of preference:
  perf   `perf stat -e raw_syscalls:sys_enter` (Debian's linux-perf): an in-kernel counter on the
         syscall-entry tracepoint, children included; the program runs at nearly full speed.
  strace `strace -f -c`: exact too, but every syscall stops the process (ptrace), so it is slow.
bcc (Debian's python3-bpfcc) is probed and reported, not used for this column: perf counts the
same tracepoint without needing the running kernel's headers. Where bcc runs (the guest), the
kernel-side columns use it (bench/kernel_trace.py: `pybpfuring trace`).

A process's start-up (the interpreter, imports, ring setup) makes syscalls too. They are cancelled
out by counting the same row at two sizes: per MiB = (count(b) - count(a)) / (b - a) MiB.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Callable

COUNT_TIMEOUT = 900.0
SYSTEM_PYTHON = "/usr/bin/python3"


@dataclass(frozen=True)
class Counter:
    """A way to count a command's syscalls: `method` names it, `count(argv)` runs and counts."""

    method: str
    count: Callable[[list[str]], int]


class CountFailed(Exception):
    pass


def _run_to_file(argv: list[str], out: str) -> None:
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          timeout=COUNT_TIMEOUT)
    if proc.returncode != 0:
        raise CountFailed(f"{argv[0]} exit {proc.returncode}: {proc.stderr.strip()[-300:]}")


def _perf_count(argv: list[str]) -> int:
    with tempfile.NamedTemporaryFile("r", suffix=".perf") as out:
        _run_to_file(["perf", "stat", "-x,", "-o", out.name, "-e", "raw_syscalls:sys_enter", "--",
                      *argv], out.name)
        for line in out.read().splitlines():
            fields = line.split(",")
            if len(fields) > 2 and fields[2] == "raw_syscalls:sys_enter" and fields[0].isdigit():
                return int(fields[0])
    raise CountFailed("perf stat printed no raw_syscalls:sys_enter count")


def _strace_count(argv: list[str]) -> int:
    with tempfile.NamedTemporaryFile("r", suffix=".strace") as out:
        _run_to_file(["strace", "-f", "-c", "-o", out.name, "--", *argv], out.name)
        for line in out.read().splitlines():
            m = re.match(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?total\s*$", line)
            if m:
                return int(m.group(1))
    raise CountFailed("strace -c printed no total line")


def bcc_status() -> str:
    """Why bcc is or is not usable from here (reported with the results)."""
    for python in (sys.executable, SYSTEM_PYTHON):
        if not os.path.exists(python):
            continue
        proc = subprocess.run([python, "-c", "import bcc"], capture_output=True, timeout=60)
        if proc.returncode == 0:
            return (f"importable from {python} (the syscall column uses perf; the kernel-side columns "
                    "use bcc where the kernel's headers are found)")
    return f"not importable from {sys.executable} nor {SYSTEM_PYTHON} (python3-bpfcc not installed)"


def _works(counter: Counter) -> bool:
    try:
        return counter.count(["/bin/true"]) > 0
    except (CountFailed, OSError, subprocess.TimeoutExpired):
        return False


def choose_counter(prefer: str = "auto") -> tuple[Counter | None, str]:
    """The first counting method that works here, and a note saying what was tried."""
    candidates = [Counter("perf", _perf_count), Counter("strace", _strace_count)]
    if prefer != "auto":
        candidates = [c for c in candidates if c.method == prefer]
    tried = []
    for counter in candidates:
        if shutil.which(counter.method) is None:
            tried.append(f"{counter.method}: not installed")
        elif _works(counter):
            return counter, "; ".join(tried + [f"{counter.method}: used"])
        else:
            tried.append(f"{counter.method}: does not work here")
    return None, "; ".join(tried) or "no method"


def slope(counter: Counter, argv_at: Callable[[int], list[str]], small: int, large: int,
          unit: int = 1) -> float:
    """Syscalls per `unit` of work: (count(large) - count(small)) / ((large - small) / unit).

    Each size is counted twice and the smaller count kept: a process's start-up makes a few
    syscalls that depend on timing (futex waits, allocator trims on a loaded machine), and such
    noise only ever adds calls, so the minimum is the count of the work itself."""
    def count(size: int) -> int:
        return min(counter.count(argv_at(size)) for _ in range(2))
    diff = count(large) - count(small)
    return max(diff, 0) / ((large - small) / unit)


def per_mib(counter: Counter, argv_at: Callable[[int], list[str]], size: int) -> float:
    """Syscalls per MiB for a command copying `size` bytes, start-up cancelled (two sizes)."""
    small = max(size // 2, 4096) // 4096 * 4096
    return slope(counter, argv_at, small, max(size, 2 * small), 1 << 20)
