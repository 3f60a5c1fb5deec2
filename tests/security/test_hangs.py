"""No hang: live-locked and never-ending programs on every engine of the emulated backend.

- a live-lock (a program waking itself with no I/O) is ended by the ring's run budget: its request
  completes with -EDEADLK on its CQ, the fault names the program and its Python line, `submit()`
  returns, and the ring stays usable (before: `submit()` spun for ever);
- a timed wait (`wait_cqe(timeout=)`, `submit_and_wait(timeout=)`) ends on time even while
  programs keep running and never block (before: the timeout was only seen when the loop blocked);
- Ctrl-C (SIGINT) interrupts a spinning or blocked loop within 100 ms on every engine, the native
  C loop included (measured in a child process: the time from kill() to its KeyboardInterrupt).
"""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import hang_progs
from pybpfuring.runtime import Ring
from pybpfuring.runtime.backends.native import unavailable_reason

ENGINES = ["interp", "jit", pytest.param("native", marks=pytest.mark.skipif(
    unavailable_reason() is not None, reason=f"native loop unavailable: {unavailable_reason()}"))]
HERE = Path(__file__).parent


@pytest.mark.parametrize("engine", ENGINES)
def test_live_lock_is_ended_by_the_run_budget(engine):
    with Ring(8, cqs=[8], engine=engine, run_budget=5000) as ring:
        ring.register_programs([hang_progs.spin])
        before = ring.maps["runs"][0]
        ring.prep_bpf(hang_progs.spin, user_data=0x51)
        start = time.monotonic()
        ring.submit()   # returns: the live-lock is ended inside this call
        assert time.monotonic() - start < 30
        cqe = ring.wait_cqe(0, timeout=5)
        assert (cqe.user_data, cqe.res) == (0x51, -errno.EDEADLK)
        assert ring.maps["runs"][0] - before == 5000
        fault = ring.faults[-1]
        assert fault.errno == errno.EDEADLK and "run_budget" in fault.message
        assert fault.loc is not None and fault.loc.file.endswith("hang_progs.py")
        assert ring.in_flight() == 0
        # The ring is still usable: the same program runs again, and is ended again.
        ring.prep_bpf(hang_progs.spin, user_data=0x52)
        ring.submit_and_wait(1, timeout=30)
        assert ring.wait_cqe(0).res == -errno.EDEADLK


@pytest.mark.parametrize("engine", ENGINES)
def test_default_run_budget_ends_a_live_lock_in_one_submit(engine):
    with Ring(8, cqs=[8], engine=engine) as ring:
        ring.register_programs([hang_progs.spin])
        ring.prep_bpf(hang_progs.spin, user_data=1)
        ring.submit()
        assert ring.cq_ready(0) == 1 and ring.wait_cqe(0).res == -errno.EDEADLK


@pytest.mark.parametrize("engine", ENGINES)
def test_timed_waits_end_on_time_while_programs_keep_running(engine):
    with Ring(8, cqs=[8], engine=engine, run_budget=2000) as ring:
        ring.register_programs([hang_progs.nop_loop])
        ring.prep_bpf(hang_progs.nop_loop, user_data=2)
        ring.submit()   # bounded: at most run_budget + 1 runs, then the rest stays ready
        for wait in (lambda: ring.wait_cqe(0, timeout=0.3),
                     lambda: ring.submit_and_wait(1, timeout=0.3)):
            start = time.monotonic()
            with pytest.raises(TimeoutError):
                wait()
            elapsed = time.monotonic() - start
            assert 0.3 <= elapsed < 0.3 + 0.25, elapsed
        assert ring.in_flight() >= 1          # the request is still alive: nothing was lost
        runs = ring.maps["runs"][1]
        ring.peek_cqe(0)                      # non-blocking: returns after its share of runs
        assert ring.maps["runs"][1] > runs


CHILD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {here!r})
    import hang_progs
    from pybpfuring.runtime import Ring
    ring = Ring(8, cqs=[8], engine={engine!r}, run_budget=2**32 - 1)
    ring.register_programs([hang_progs.spin, hang_progs.nop_loop])
    ring.prep_bpf(hang_progs.{prog}, user_data=3)
    print("ready", flush=True)
    try:
        if {prog!r} == "spin":
            ring.submit()                   # a live-lock the budget will not end for hours
        else:
            ring.submit()
            ring.wait_cqe(0)                # blocks for ever: the request never completes
        print("returned", flush=True)
    except KeyboardInterrupt:
        print("interrupted", time.monotonic(), flush=True)
    # What is left is consistent: the interrupted request either completed with -EINTR (the
    # interpreter, interrupted inside the run) or is still in flight (JIT and native: between runs).
    cqe = ring.wait_cqe(0, timeout=0) if ring.cq_ready(0) else None
    print("after", cqe.res if cqe else "none", ring.in_flight(), flush=True)
    start = time.monotonic()
    ring.close()
    print("closed", time.monotonic() - start, flush=True)
""")


@pytest.mark.parametrize("prog", ["spin", "nop_loop"])
@pytest.mark.parametrize("engine", ENGINES)
def test_ctrl_c_interrupts_within_100_ms(engine, prog):
    code = CHILD.format(here=str(HERE), engine=engine, prog=prog)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert child.stdout.readline().strip() == "ready"
        time.sleep(1.0)   # well inside the spin or the blocking wait
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        line = child.stdout.readline().split()
        assert line and line[0] == "interrupted", line
        latency = float(line[1]) - sent
        assert latency < 0.1, f"{engine}/{prog}: Ctrl-C took {latency * 1000:.0f} ms"
        after = child.stdout.readline().split()
        if after[1] == "none":
            assert int(after[2]) >= 1, after            # still in flight, nothing lost
        else:
            assert int(after[1]) == -errno.EINTR, after  # completed, with the reason
        closed = child.stdout.readline().split()
        assert closed[0] == "closed" and float(closed[1]) < 5, closed
        assert child.wait(timeout=60) == 0
    finally:
        child.kill()
        child.wait()
