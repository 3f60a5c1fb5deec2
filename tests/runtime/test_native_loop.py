"""The native event loop (Ring(engine="native"), the default where it can be built) against the Python
loop it replaces (the reference: engine="interp" or "jit").

The model tests of test_model.py and test_stress.py run with the default engine; here they run again
with the Python loop forced, so both loops pass the same semantics tests. Then native-specific cases:
engine choice, reference programs and cp compared with the Python loop (CQEs, map contents, program
runs and instruction counts), located faults, CQ 0's backlog, the Python helpers a native run calls
(hash maps, trace_printk), and closing a ring with pinned memory in flight.
"""
from __future__ import annotations

import ctypes
import errno
import hashlib
import inspect
import os
from collections.abc import Callable
from pathlib import Path

import pytest

import cp
import progs
import run_reference
import test_model
import test_stress
from pybpfuring.runtime import Ring, RingStalledError, prep_nop, prep_read
from pybpfuring.runtime.backends.native import unavailable_reason
from test_model import faulting_elf

REASON = unavailable_reason()
needs_native = pytest.mark.skipif(REASON is not None, reason=f"native loop unavailable: {REASON}")
PYTHON_LOOPS = ["interp", "jit"]


def _model_tests() -> list[tuple[str, Callable[..., None]]]:
    found = []
    for module in (test_model, test_stress):
        for name, fn in vars(module).items():
            if name.startswith("test_") and inspect.isfunction(fn) and fn.__module__ == module.__name__:
                found.append((f"{module.__name__}.{name}", fn))
    return found


MODEL_TESTS = _model_tests()
# Each model test on each Python-loop engine, except the 10,000-request stress on the interpreter:
# the same loop code as its jit case, at ten times the time.
LOOP_CASES = [pytest.param(name, fn, loop, id=f"{name}-{loop}") for name, fn in MODEL_TESTS
              for loop in PYTHON_LOOPS
              if not (loop == "interp" and name.endswith("ten_thousand_concurrent_bpf_requests"))]


@pytest.mark.parametrize("name,fn,loop", LOOP_CASES)
def test_model_semantics_on_the_python_loop(name: str, fn: Callable[..., None], loop: str, backend: str,
                                            request: pytest.FixtureRequest,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Every model test again, with Ring's default engine set to a Python-loop engine."""
    if backend != "emulated":
        pytest.skip("the event loop choice (Python or native) is the emulated backend's")
    kwdefaults = Ring.__init__.__kwdefaults__
    assert kwdefaults is not None and "engine" in kwdefaults
    monkeypatch.setitem(kwdefaults, "engine", loop)
    with Ring(2, backend="emulated") as probe:
        assert type(probe._impl).__name__ == "EmulatedBackend"  # the forced loop is in use
    fn(**{p: backend if p == "backend" else request.getfixturevalue(p)
          for p in inspect.signature(fn).parameters})


@needs_native
def test_auto_picks_the_native_loop_and_names_are_checked() -> None:
    with Ring(4) as ring:
        assert type(ring._impl).__name__ == "NativeBackend" and ring.backend == "emulated"
    with Ring(4, engine="native") as ring:
        assert type(ring._impl).__name__ == "NativeBackend"
    with Ring(4, engine="jit") as ring:
        assert type(ring._impl).__name__ == "EmulatedBackend"
    with pytest.raises(ValueError, match="native"):
        Ring(4, engine="quantum")


@needs_native
@pytest.mark.parametrize("which", ["test1", "test2", "test3", "test4"])
def test_reference_programs_match_the_python_loop(which: str, tmp_path: Path) -> None:
    def once(engine: str) -> run_reference.Result:
        run = getattr(run_reference, which)
        return run("emulated", str(tmp_path), engine) if which == "test4" else run("emulated", engine)

    def slots(r: run_reference.Result) -> list[object]:
        # user_data is the address of a fresh buffer in each run: compare it by role
        return ["user_data" if v == r.extra.get("user_data") else v for v in r.slots]

    native, python = once("native"), once("jit")
    assert slots(native) == slots(python)
    assert sorted((c.res, c.flags) for c in native.cq0) == sorted((c.res, c.flags) for c in python.cq0)
    assert native.extra.keys() == python.extra.keys()
    for key, value in python.extra.items():
        if key != "user_data":  # an address of a fresh buffer each time
            assert native.extra[key] == value, key


@needs_native
def test_cp_copies_exactly_with_the_same_runs_and_instructions(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(os.urandom(1_000_003))
    digests, stats = {}, {}
    for engine in ("native", "jit"):
        dst = tmp_path / f"dst-{engine}"
        copied = cp.copy_file(str(src), str(dst), "emulated", engine)
        assert copied.bytes_copied == 1_000_003
        digests[engine] = hashlib.sha256(dst.read_bytes()).hexdigest()
        stats[engine] = copied.program_runs
    assert digests["native"] == digests["jit"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert stats["native"] == stats["jit"] == 2 * (1_000_003 // 4096 + 1) + 2


@needs_native
def test_ring_stats_count_the_same_instructions(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(os.urandom(40_000))
    seen = {}
    for engine in ("native", "interp"):
        buf = ctypes.create_string_buffer(cp.BLOCK)
        fd_in, fd_out = os.open(src, os.O_RDONLY), os.open(os.devnull, os.O_WRONLY)
        try:
            with Ring(8, cqs=[8], engine=engine) as ring:
                ring.register_programs([cp.cp])
                cp.state[cp.BUF], cp.state[cp.IN_FD], cp.state[cp.OUT_FD] = ctypes.addressof(buf), fd_in, fd_out
                ring.prep_bpf(cp.cp, user_data=1)
                ring.submit_and_wait(1)
                assert ring.wait_cqe() == (1, 0, 0)
                s = ring.stats()
                seen[engine] = (s.program_runs, s.instructions, s.faults, s.in_flight)
        finally:
            os.close(fd_in)
            os.close(fd_out)
    assert seen["native"] == seen["interp"] and seen["native"][1] > 0


@needs_native
def test_faults_are_located_and_the_ring_stays_usable() -> None:
    with Ring(8, engine="native") as ring:
        ring.register_programs(faulting_elf())
        for user_data in (1, 2):
            ring.prep_bpf(0, user_data=user_data)
            ring.submit_and_wait(1)
            assert ring.wait_cqe() == (user_data, -errno.EFAULT, 0)
        assert ring.fault_count == 2
        fault = ring.faults[-1]
        assert fault.kind == "memory" and fault.loc is not None
        assert fault.loc.source_line().strip() == "n = ctx.wait_nr"
    with Ring(8, engine="native", budget=5000) as ring:
        ring.register_programs([progs.spin])
        ring.prep_bpf(0, user_data=3)
        ring.submit_and_wait(1)
        assert ring.wait_cqe() == (3, -errno.ELOOP, 0)
        assert ring.faults[0].kind == "budget" and ring.stats().instructions == 5000


@needs_native
def test_cq0_keeps_every_cqe_beyond_its_size() -> None:
    with Ring(2, engine="native") as ring:
        size = ring.cq_size(0)
        total = 3 * size + 1
        for i in range(total):
            sqe = ring.get_sqe()
            if sqe is None:
                ring.submit()
                sqe = ring.get_sqe()
            assert sqe is not None
            prep_nop(sqe)
            sqe.user_data = i
        ring.submit_and_wait(total)
        assert ring.cq_ready(0) == total
        assert [c.user_data for c in ring.cqes(0)] == list(range(total))
        assert ring.cq_drops(0) == 0


@needs_native
def test_extra_cq_overflow_and_bad_cq_index() -> None:
    with Ring(8, cqs=[16, 4], engine="native") as ring:
        ring.register_programs([progs.emit_to_cq1, progs.bad_indexes])
        progs.results[0] = progs.results[1] = progs.results[2] = 0
        ring.prep_bpf(progs.emit_to_cq1, user_data=40)
        ring.prep_bpf(progs.bad_indexes, user_data=0)
        sqe = ring.get_sqe(cq_idx=9)
        assert sqe is not None
        prep_nop(sqe)
        sqe.user_data = 77
        ring.submit_and_wait(3)
        assert sorted(ring.cqes(0)) == [(0, 0, 0), (40, 0, 0), (77, -errno.EINVAL, 0)]
        assert (progs.results[0], progs.results[1], progs.results[2]) == (16, 24, -errno.ENOMEM)
        assert ring.cq_drops(1) == 24 and ring.cq_ready(1) == 16
        assert (progs.results[3], progs.results[4], progs.results[5]) == (-errno.ENOENT, -errno.EINVAL,
                                                                          -errno.EINVAL)


@needs_native
def test_hash_map_helpers_reach_python_from_a_native_run() -> None:
    # nop_then_reap keeps its phase in a HashMap: those helper calls go through the Python callback.
    with Ring(64, cqs=[1024], engine="native") as ring:
        ring.register_programs([progs.nop_then_reap])
        progs.results[progs.WOKEN_REAPED] = 0
        for key in range(1, 201):
            ring.prep_bpf(progs.nop_then_reap, user_data=key)
        ring.submit_and_wait(200)
        assert {c.user_data for c in ring.cqes(0)} == set(range(1, 201))
        assert progs.results[progs.WOKEN_REAPED] == 200 and len(ring.maps["phase"]) == 0
        assert ring.in_flight() == 0


@needs_native
def test_close_cancels_a_pinned_read_in_flight(no_fd_leak: None) -> None:
    r, w = os.pipe()
    try:
        ring = Ring(4, engine="native")
        buf = bytearray(16)
        sqe = ring.get_sqe()
        assert sqe is not None
        prep_read(sqe, r, buf, 0)
        ring.submit()
        with pytest.raises(TimeoutError):
            ring.wait_cqe(timeout=0.05)
        assert ring.in_flight() == 1
        ring.close()
        os.write(w, b"still here")      # the cancelled read must not take it
        assert os.read(r, 64) == b"still here" and buf == bytearray(16)
    finally:
        os.close(r)
        os.close(w)


@needs_native
def test_wait_on_a_python_condition_and_a_stall() -> None:
    # Ring.wait_cqe/submit_and_wait give the native loop a CQ condition; any other callable works
    # through the backend's pump too (run until idle, check, block once, repeat).
    with Ring(8, cqs=[4], engine="native") as ring:
        impl = ring._impl
        assert impl is not None
        for i in range(3):
            sqe = ring.get_sqe(cq_idx=1)
            assert sqe is not None
            prep_nop(sqe)
            sqe.user_data = i
        impl.submit()
        impl.pump(lambda: ring.cq_ready(1) >= 3)
        assert [c.user_data for c in ring.cqes(1)] == [0, 1, 2]
        with pytest.raises(RingStalledError, match="never end"):
            ring.wait_cqe(1)


class _Woken(Exception):
    pass


@needs_native
def test_a_signal_interrupts_a_blocking_wait() -> None:
    # The loop blocks in io_uring_enter without the GIL; a signal must still reach Python's handler
    # (Ctrl-C works), and the ring stays usable after.
    import signal

    def handler(signum: int, frame: object) -> None:
        raise _Woken()

    r, w = os.pipe()
    previous = signal.signal(signal.SIGALRM, handler)
    try:
        with Ring(4, engine="native") as ring:
            buf = bytearray(8)
            sqe = ring.get_sqe()
            assert sqe is not None
            prep_read(sqe, r, buf, 0)
            sqe.user_data = 5
            ring.submit()
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            with pytest.raises(_Woken):
                ring.wait_cqe()
            os.write(w, b"data")
            assert ring.wait_cqe() == (5, 4, 0) and bytes(buf[:4]) == b"data"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        os.close(r)
        os.close(w)


@pytest.mark.parametrize("engine", ["native", "jit"])
def test_a_python_helper_refusing_its_arguments_is_a_located_fault(engine: str) -> None:
    # trace_printk stays a Python helper: during a native run it is reached through the JIT's
    # trampoline, bound to the running program; its HelperFault must fail the request as on the
    # Python loop, with the call's Python line.
    if engine == "native" and REASON is not None:
        pytest.skip(f"native loop unavailable: {REASON}")
    with Ring(8, engine=engine) as ring:
        impl = ring._impl
        assert impl is not None

        def refuse(*args: object) -> int:
            from pybpfuring.runtime.engine.faults import HelperFault
            raise HelperFault("no tracing today", errno.EPERM)

        impl.helpers.trace_printk = refuse  # type: ignore[attr-defined]
        ring.register_programs([progs.tracer])
        ring.prep_bpf(progs.tracer, user_data=42)
        ring.submit_and_wait(1)
        assert ring.wait_cqe() == (42, -errno.EPERM, 0)
        [fault] = ring.faults
        assert fault.kind == "helper" and "no tracing today" in str(fault)
        assert fault.loc is not None and "printk" in fault.loc.source_line()


@needs_native
def test_map_helpers_on_maps_without_a_native_index_call_python() -> None:
    # Maps the native code does not index go to the Python helpers through a ctypes callback; their
    # faults are the run's faults. (Every map kind has a native index today: mark the hash map as
    # foreign to reach the path.)
    from pybpfuring.runtime.backends.native.maps import map_descriptors
    with Ring(8, cqs=[8], engine="native") as ring:
        impl = ring._impl
        assert impl is not None
        ring.register_programs([progs.nop_then_reap])
        desc = map_descriptors(impl.maps)
        for i in range(0, len(desc), 7):
            if desc[i + 5] == 3:
                desc[i + 5], desc[i + 6] = 2, 0
        table = (ctypes.c_uint64 * len(desc))(*desc)
        impl._lib.nl_set_maps(impl._loop, table, len(impl.maps))
        ring.prep_bpf(progs.nop_then_reap, user_data=6)
        ring.submit_and_wait(1)
        assert ring.wait_cqe() == (6, 0, 0) and len(ring.maps["phase"]) == 0

        def refuse(*args: object) -> int:
            from pybpfuring.runtime.engine.faults import HelperFault
            raise HelperFault("map is busy", errno.EBUSY)

        impl.helpers.map_lookup_elem = refuse  # type: ignore[attr-defined]
        ring.prep_bpf(progs.nop_then_reap, user_data=7)
        ring.submit_and_wait(1)
        assert ring.wait_cqe() == (7, -errno.EBUSY, 0)
        [fault] = ring.faults
        assert fault.kind == "helper" and "map is busy" in str(fault) and fault.loc is not None
        assert "phase.get" in fault.loc.source_line()


@needs_native
def test_hash_maps_behave_as_on_the_python_loop() -> None:
    # The native index against the Python dict: same keys in the same (insertion) order, same
    # values, same errors, also after deletes and re-inserts and when full.
    from pybpfuring.loader.maps import MapError
    seen = {}
    for engine in ("native", "jit"):
        with Ring(8, cqs=[64], engine=engine) as ring:
            ring.register_programs([progs.nop_then_reap])
            phase = ring.maps["phase"]
            for k in range(1, 41):
                phase[k] = k * k
            for k in range(1, 41, 3):
                del phase[k]
            for k in (4, 100, 1):
                phase[k] = 7
            with pytest.raises(MapError):
                del phase[999]
            for key in range(200, 231):            # requests that park with a key in the map
                ring.prep_bpf(progs.nop_then_reap, user_data=key)
            ring.submit_and_wait(31)
            done = sorted(c.user_data for c in ring.cqes(0))
            seen[engine] = (list(phase.keys()), phase.items(), done, 5 in phase, 4 in phase)
            full = 0
            with pytest.raises(MapError, match="full"):
                for k in range(1000, 1000 + 20000):
                    phase[k] = 1
                    full += 1
            seen[engine] += (full,)
    assert seen["native"] == seen["jit"]
    assert seen["native"][0][-3:] == [4, 100, 1] and seen["native"][2] == list(range(200, 231))

@pytest.mark.parametrize("engine", ["native", "jit"])
def test_submit_routes_inline_completions_before_returning(engine: str) -> None:
    # A NOP completes during submission: submit() alone (no wait) already routes its CQE.
    if engine == "native" and REASON is not None:
        pytest.skip(f"native loop unavailable: {REASON}")
    with Ring(8, cqs=[4], engine=engine) as ring:
        sqe = ring.get_sqe(cq_idx=1)
        assert sqe is not None
        prep_nop(sqe)
        sqe.user_data = 1
        assert ring.submit() == 1
        assert ring.cq_ready(1) == 1 and ring.in_flight() == 0


def _random_workload(engine: str, seed: int) -> tuple[object, ...]:
    """A seeded mix of user SQEs (NOPs on CQs 0..2 and the missing CQ 3), BPF requests (`record`,
    `bad_wait`, a bad program index), links, hard links and CQE_SKIP_SUCCESS; run to completion.
    Returns what a user can observe: every CQ's CQEs, the programs' log, drops, faults."""
    import random
    from pybpfuring.lang.constants import IOSQE_IO_HARDLINK, IOSQE_IO_LINK
    from pybpfuring.abi import uring as RC
    rng = random.Random(seed)
    with Ring(8, cqs=[4, 64], engine=engine) as ring:
        ring.register_programs([progs.record, progs.bad_wait])
        progs.results[progs.LOG_LEN] = 0
        expected = 0
        for i in range(rng.randrange(4, 24)):
            flags = rng.choice([0, 0, 0, IOSQE_IO_LINK, IOSQE_IO_LINK, IOSQE_IO_HARDLINK])
            if rng.random() < 0.15:
                flags |= RC.IOSQE_CQE_SKIP_SUCCESS
            cq = rng.choice([0, 0, 1, 2, 2, 3])
            kind = rng.choice(["nop", "nop", "record", "record", "bad_wait", "missing"])
            if kind == "nop":
                sqe = ring.get_sqe(cq_idx=cq)
                if sqe is None:
                    ring.submit()
                    sqe = ring.get_sqe(cq_idx=cq)
                assert sqe is not None
                prep_nop(sqe)
                sqe.user_data, sqe.flags = 1000 + i, flags
            else:
                prog = {"record": 0, "bad_wait": 1, "missing": 7}[kind]
                ring.prep_bpf(prog, user_data=1000 + i, cq_idx=cq, flags=flags)
            expected += 1
        ring.submit()
        impl = ring._impl
        assert impl is not None
        impl.pump(lambda: ring.in_flight() == 0, 10.0)
        per_cq = tuple(tuple(sorted(ring.cqes(cq))) for cq in range(3))
        log = sorted(progs.results[10 + k] for k in range(progs.results[progs.LOG_LEN]))
        return per_cq, tuple(log), ring.cq_drops(1), ring.cq_drops(2), ring.fault_count, expected


@needs_native
@pytest.mark.parametrize("seed", range(40))
def test_random_workloads_end_the_same_on_both_loops(seed: int) -> None:
    native = _random_workload("native", seed)
    python = _random_workload("jit", seed)
    assert native == python
