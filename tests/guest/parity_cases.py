"""The cases of the model's parity suite: each runs programs of parity_progs.py through the public
`Ring` API on one backend and returns what a user sees (every CQE per CQ in order, map values,
memory and file contents), with addresses replaced by names so runs can be compared.

`CASES[name].run(backend, directory)` gives the observation; `CASES[name].check(observation)`
asserts the 2021 semantics (docs/runtime.md) on it. tests/guest/test_parity_model.py runs every case
on `emulated` (checked) and on `bpf_ops` (compared with emulated) in the guest; the host runs the
emulated half as a sanity twin.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pybpfuring.lang import IOSQE_IO_LINK
from pybpfuring.runtime import Ring, Timespec, prep_nop
from pybpfuring.uring import RingClosedError

import parity_progs as P

Observation = dict[str, Any]
CASE_SECONDS = 120       # a case that takes longer has hung (the guest run must go on)


@dataclass(frozen=True)
class Case:
    name: str
    item: str                                   # what it shows, one line (docs/kernel.md "Parity")
    run: Callable[[str, Path], Observation]
    check: Callable[[Observation], None]


CASES: dict[str, Case] = {}


def settle(ring: Ring, done: Callable[[], bool], cq: int, seconds: float = 20.0) -> None:
    """Let completions the kernel makes asynchronously (io-wq, linked SQEs) arrive: run the event
    loop (peek_cqe enters it without waiting) until `done()` or `seconds` pass. A count that is
    never reached shows up as a difference in the observation, not as a hang."""
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:
        ring.submit_and_wait(0)
        ring.peek_cqe(cq)


def case(item: str, check: Callable[[Observation], None]) -> Callable[[Callable[..., Observation]], Callable[..., Observation]]:
    def register(run: Callable[[str, Path], Observation]) -> Callable[[str, Path], Observation]:
        name = run.__name__
        CASES[name] = Case(name, item, run, check)
        return run
    return register


@contextlib.contextmanager
def deadline(seconds: int = CASE_SECONDS) -> Iterator[None]:
    """TimeoutError if the block runs longer (a hung wait must not stop the whole guest run)."""
    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"the case ran over {seconds} s (hung?)")
    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


class Names:
    """Replaces run-specific values (addresses, fds) in user_data by stable names."""

    def __init__(self) -> None:
        self.names: dict[int, str] = {}

    def __call__(self, value: int) -> int | str:
        return self.names.get(value, value)


def cqes(ring: Ring, cq: int, names: Names | None = None) -> list[tuple[Any, int, int]]:
    """Every ready CQE of CQ `cq`, consumed, as (user_data, res, flags)."""
    name = names or Names()
    return [(name(c.user_data), c.res, c.flags) for c in ring.cqes(cq)]


def all_cqs(ring: Ring, names: Names | None = None) -> dict[str, list[tuple[Any, int, int]]]:
    return {f"cq{i}": cqes(ring, i, names) for i in range(ring.cq_count)}


def wait_for(ring: Ring, user_data: int, cq: int = 0, names: Names | None = None) -> list[tuple[Any, int, int]]:
    """CQEs of CQ `cq` consumed in order up to and including the one with `user_data`."""
    name = names or Names()
    got = []
    while True:
        c = ring.wait_cqe(cq, timeout=60)
        got.append((name(c.user_data), c.res, c.flags))
        if c.user_data == user_data:
            return got


def out(*slots: int) -> dict[int, int]:
    return {s: P.out[s] for s in slots}


def nop(ring: Ring, user_data: int, cq: int = 0, flags: int = 0) -> None:
    sqe = ring.get_sqe(cq)
    if sqe is None:
        ring.submit()
        sqe = ring.get_sqe(cq)
    assert sqe is not None
    prep_nop(sqe)
    sqe.user_data = user_data
    sqe.flags = flags


EINVAL, EFAULT, ENOENT, ENOMEM, ECANCELED, ETIME, EBADF = (
    -errno.EINVAL, -errno.EFAULT, -errno.ENOENT, -errno.ENOMEM, -errno.ECANCELED, -errno.ETIME, -errno.EBADF)


# ---- "What a user saw" (issue 11) ------------------------------------------------------------

def _check_cq_full(o: Observation) -> None:
    assert o["cq_size"] == 4
    assert o["first"] == {0: 4, 1: 6, 2: ENOMEM}
    assert [c[0] for c in o["cq1_after_first"]] == [1000, 1001, 1002, 1003]
    assert o["second"] == {0: 4, 1: 8, 2: ENOMEM}           # still full: both refused
    assert o["third"] == {0: 7, 1: 8, 2: ENOMEM}            # drained: 3 more accepted
    assert [c[0] for c in o["cq1_after_third"]] == [1000, 1001, 1002]
    assert [c[1] for c in o["cq0"]] == [0, 0, 0]


@case("CQ size honoured: emit_cqe to a full extra CQ gives -ENOMEM, exactly the accepted CQEs are read",
      _check_cq_full)
def cq_full_emit(backend: str, directory: Path) -> Observation:
    o: Observation = {}
    with Ring(8, cqs=[4], backend=backend) as ring:
        ring.register_programs([P.emit_many])
        o["cq_size"] = ring.cq_size(1)
        ring.prep_bpf(P.emit_many, user_data=10)
        ring.submit_and_wait(1)
        o["first"] = out(0, 1, 2)
        ring.prep_bpf(P.emit_many, user_data=2)
        ring.submit_and_wait(2)
        o["second"] = out(0, 1, 2)
        o["cq1_after_first"] = cqes(ring, 1)
        ring.prep_bpf(P.emit_many, user_data=3)
        ring.submit_and_wait(3)
        o["third"] = out(0, 1, 2)
        o["cq1_after_third"] = cqes(ring, 1)
        o["cq0"] = cqes(ring, 0)
    return o


def _check_kernel_cqes_full(o: Observation) -> None:
    assert [c[0] for c in o["cq1"]] == [1, 2, 3, 4] and o["drops"] == 2
    assert o["cq0"] == [(7, 0, 0)]


@case("kernel CQEs routed to a full extra CQ are dropped and counted (cq_drops), the rest kept",
      _check_kernel_cqes_full)
def kernel_cqes_to_full_cq(backend: str, directory: Path) -> Observation:
    with Ring(8, cqs=[4], backend=backend) as ring:
        ring.register_programs([P.record])
        for ud in range(1, 7):
            nop(ring, ud, cq=1)
        nop(ring, 7)
        ring.submit_and_wait(1)
        return {"cq0": cqes(ring, 0), "cq1": cqes(ring, 1), "drops": ring.cq_drops(1)}


def _check_wait_across(o: Observation) -> None:
    assert o["runs_after"] == [1, 1, 2]
    assert o["reaped"] == {11: 100, 12: 101, 13: 102}
    assert o["cq0"][-1] == (1, 0, 0) and [c[0] for c in o["cq0"][:-1]] == [200, 201, 202]


@case("WAIT wait_idx=1 wait_nr=3 across several submit_and_wait calls, NOPs posted one at a time",
      _check_wait_across)
def wait_across_enters(backend: str, directory: Path) -> Observation:
    o: Observation = {"runs_after": [], "cq0": []}
    with Ring(8, cqs=[8], backend=backend) as ring:
        ring.register_programs([P.wait_three])
        ring.prep_bpf(P.wait_three, user_data=1)
        ring.submit_and_wait(0)
        for k in range(3):
            nop(ring, 100 + k, cq=1)
            nop(ring, 200 + k)
            ring.submit_and_wait(1)
            o["cq0"] += wait_for(ring, 200 + k)
            o["runs_after"].append(P.out[10])
        o["cq0"] += wait_for(ring, 1)
        o["reaped"] = out(11, 12, 13)
        o["rest"] = all_cqs(ring)
    return o


def _check_link(o: Observation) -> None:
    assert o["before_token"] == [] and o["runs_before"] == 1
    assert o["cq0"] == [(1, 0, 0), (2, 0, 0)]
    assert o["failed"] == [(3, EINVAL, 0), (4, ECANCELED, 0)]


@case("IOSQE_IO_LINK from a BPF request to a following NOP: the NOP waits; a failed one cancels it",
      _check_link)
def link_bpf_to_nop(backend: str, directory: Path) -> Observation:
    o: Observation = {}
    with Ring(8, cqs=[8], backend=backend) as ring:
        ring.register_programs([P.wait_token, P.finish])
        ring.prep_bpf(P.wait_token, user_data=1, flags=IOSQE_IO_LINK)
        nop(ring, 2)
        ring.submit()
        o["before_token"] = cqes(ring, 0)
        o["runs_before"] = P.out[14]
        nop(ring, 50, cq=1)                      # the token the program waits for
        ring.submit_and_wait(2)
        o["cq0"] = cqes(ring, 0)
        ring.prep_bpf(P.finish, user_data=3, flags=IOSQE_IO_LINK)   # ends with -EINVAL
        nop(ring, 4)
        ring.submit_and_wait(2)
        o["failed"] = cqes(ring, 0)
        o["token"] = out(14, 15)
    return o


def _check_bad_index(o: Observation) -> None:
    assert o["bad"] == [(70, EFAULT, 0)]
    assert o["after"] == [(5, 0, 0)] and o["log"] == {90: 2, 91: 5, 92: 99}
    assert sorted(o["spawned"]) == [(99, EFAULT, 0), (99, 0, 0)]
    assert o["spawn_cq0"] == [(0, 0, 0), (7, 0, 0)]


@case("bad program index: the request completes with -EFAULT on CQ 0 (or its CQ, from BPF) and the "
      "ring stays usable", _check_bad_index)
def bad_program_index(backend: str, directory: Path) -> Observation:
    o: Observation = {}
    with Ring(8, cqs=[8], backend=backend) as ring:
        ring.register_programs([P.record, P.spawn])
        ring.prep_bpf(7, user_data=70)
        ring.submit_and_wait(1)
        o["bad"] = cqes(ring, 0)
        ring.prep_bpf(P.record, user_data=5)
        ring.submit_and_wait(1)
        o["after"] = cqes(ring, 0)
        ring.prep_bpf(P.spawn, user_data=0)       # starts record (index 0): user_data 99, CQ 1
        ring.prep_bpf(P.spawn, user_data=7)       # starts index 7: -EFAULT on CQ 1
        ring.submit_and_wait(2)
        o["spawn_cq0"] = sorted(cqes(ring, 0))
        settle(ring, lambda: ring.cq_ready(1) >= 2, 1)
        o["spawned"] = cqes(ring, 1)
        o["log"] = out(90, 91, 92)
    return o


def _check_bad_cq(o: Observation) -> None:
    assert o["cq0"] == [(1, EINVAL, 0), (2, EINVAL, 0), (3, 0, 0)]
    assert o["runs"] == {90: 0}
    assert o["bpf_submitted"] == {29: 0} and (29, EINVAL, 0) in o["basics_cq0"]


@case("cq_idx out of range: the request completes with -EINVAL on CQ 0 (user SQE, BPF request, SQE "
      "a program submits)", _check_bad_cq)
def bad_cq_idx(backend: str, directory: Path) -> Observation:
    o: Observation = {}
    with Ring(8, cqs=[8, 8], backend=backend) as ring:
        ring.register_programs([P.record, P.basics])
        nop(ring, 1, cq=P.BAD_CQ)
        ring.prep_bpf(P.record, user_data=2, cq_idx=P.BAD_CQ)
        ring.submit_and_wait(2)
        nop(ring, 3)
        ring.submit_and_wait(3)
        o["cq0"] = cqes(ring, 0)
        o["runs"] = out(90)
        ring.prep_bpf(P.basics, user_data=9)
        ring.submit()
        o["basics_cq0"] = wait_for(ring, 9)
        o["bpf_submitted"] = out(29)
    return o


def _check_refusal_order(o: Observation) -> None:
    assert o["user"] == [(1, 0, 0), (2, EINVAL, 0), (3, EINVAL, 0), (4, 0, 0)]
    assert o["program"] == [(9, 0, 0)]
    assert o["seen"] == {200: 41000, 201: 42000 + EINVAL, 202: 43000, 203: 2}


@case("a cq_idx out of range fails where it stands in the SQ: CQ 0 holds the CQEs in submission "
      "order (a user's NOPs and BPF request, a program's NOPs)", _check_refusal_order)
def refusal_order(backend: str, directory: Path) -> Observation:
    o: Observation = {}
    with Ring(8, cqs=[8, 8], backend=backend) as ring:
        ring.register_programs([P.record, P.refusal_order])
        nop(ring, 1)
        nop(ring, 2, cq=P.BAD_CQ)
        ring.prep_bpf(P.record, user_data=3, cq_idx=P.BAD_CQ)
        nop(ring, 4)
        ring.submit_and_wait(4)
        o["user"] = cqes(ring, 0)
        ring.prep_bpf(P.refusal_order, user_data=9, cq_idx=1)
        ring.submit()
        o["program"] = wait_for(ring, 9, cq=1)
        o["seen"] = out(200, 201, 202, 203)
    return o


def _fanout(n: int) -> Callable[[str, Path], Observation]:
    def run(backend: str, directory: Path) -> Observation:
        path = directory / f"fanout-{n}-{backend}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        buf = (ctypes.c_uint8 * 512)(*[(i * 7 + 3) & 0xFF for i in range(512)])
        try:
            with Ring(64, cqs=[64], backend=backend) as ring:
                ring.register_programs([P.fanout])
                P.cfg[0], P.cfg[1] = fd, ctypes.addressof(buf)
                ring.prep_bpf(P.fanout, user_data=n)
                ring.submit_and_wait(1)
                o: Observation = {"cqs": all_cqs(ring), "out": out(39, 40, 41, 42, 43)}
            o["file"] = path.read_bytes()
            return o
        finally:
            os.close(fd)
            path.unlink(missing_ok=True)
    return run


def _check_fanout(n: int) -> Callable[[Observation], None]:
    def check(o: Observation) -> None:
        assert o["out"] == {39: 1, 40: n, 41: n, 42: 8 * n, 43: sum(500 + i for i in range(n))}
        assert o["cqs"] == {"cq0": [(n, 0, 0)], "cq1": []}
        assert o["file"] == bytes((i * 7 + 3) & 0xFF for i in range(8 * n))
    return check


for _n in (8, 32):
    _run = _fanout(_n)
    _run.__name__ = f"fanout_{_n}"
    case(f"fan-out: `for i in range(64): if i < n:` submits {_n} writes, one WAIT, a reap loop",
         _check_fanout(_n))(_run)


def _check_after_close(o: Observation) -> None:
    assert o["log"] == {90: 2, 91: 5, 92: 6} and o["seen"] == {5: 0, 6: 1}
    assert o["keys"] == [5, 6] and o["missing"] is False
    assert o["write"].startswith("RingClosedError")


@case("maps readable after the ring closes (ArrayMap and HashMap), writes refused", _check_after_close)
def maps_after_close(backend: str, directory: Path) -> Observation:
    with Ring(8, backend=backend) as ring:
        ring.register_programs([P.record])
        for ud in (5, 6):
            ring.prep_bpf(P.record, user_data=ud)
        ring.submit_and_wait(2)
    o: Observation = {"log": out(90, 91, 92), "seen": {5: P.seen[5], 6: P.seen[6]},
                      "keys": sorted(P.seen), "missing": 7 in P.seen}
    try:
        P.out[0] = 1
        o["write"] = "accepted"
    except RingClosedError as err:
        o["write"] = f"RingClosedError: {err}"
    return o


# ---- the model's behaviours ---------------------------------------------------------------------

def _check_basics(o: Observation) -> None:
    assert o["out"] == {19: 2, 20: ENOENT, 21: 0, 22: 0, 23: 21, 24: -5, 25: 3, 26: EINVAL,
                        27: EINVAL, 28: 0, 29: 0, 30: 0, 31: 0, 32: 0, 33: 28, 34: 0}
    assert sorted(o["cq0"]) == sorted([(30, 31, 0), (29, EINVAL, 0), (1, 0, 0)])
    assert o["cq0"][-1] == (1, 0, 0)
    assert o["rest"] == {"cq0": [], "cq1": [], "cq2": [(31, 32, 0)]}


@case("submit / emit_cqe / reap_cqe, reap on empty -ENOENT, bad CQ -EINVAL, WAIT for its own NOP",
      _check_basics)
def basics(backend: str, directory: Path) -> Observation:
    with Ring(8, cqs=[4, 4], backend=backend) as ring:
        ring.register_programs([P.basics])
        ring.prep_bpf(P.basics, user_data=1)
        ring.submit()
        o: Observation = {"cq0": wait_for(ring, 1)}
        o["rest"] = all_cqs(ring)
        o["out"] = out(*range(19, 35))
    return o


def _check_completions(o: Observation) -> None:
    assert o["cq0"] == [(0, 0, 0), (1, EINVAL, 0), (2, EINVAL, 0), (3, EINVAL, 0), (4, EINVAL, 0)]
    assert o["runs"] == {16: 5}


@case("OK completes with 0; another return value, WAIT for 0 CQEs, on a missing CQ or for more than "
      "the CQ holds complete with -EINVAL", _check_completions)
def completions(backend: str, directory: Path) -> Observation:
    with Ring(8, cqs=[4], backend=backend) as ring:
        ring.register_programs([P.finish])
        for how in range(5):
            ring.prep_bpf(P.finish, user_data=how)
        ring.submit_and_wait(5)
        return {"cq0": cqes(ring, 0), "runs": out(16)}


def _check_timer(o: Observation) -> None:
    assert o["out"] == {50: 2, 51: 0, 52: 77, 53: o["expect_res"]}
    assert o["cq0"][-1] == ("ts", 0, 0)


def _timer(count: int) -> Callable[[str, Path], Observation]:
    def run(backend: str, directory: Path) -> Observation:
        names = Names()
        with Ring(8, cqs=[4], backend=backend) as ring:
            ring.register_programs([P.timer])
            ts = ring.user_memory(Timespec)
            ts.tv_sec, ts.tv_nsec = (5, 0) if count else (0, 20_000_000)
            names.names[ctypes.addressof(ts)] = "ts"
            P.cfg[2] = count
            ring.prep_bpf(P.timer, user_data=ctypes.addressof(ts))
            ring.submit()
            if count:                               # a completion ends a counting timeout
                nop(ring, 3)
                ring.submit()
            o: Observation = {"cq0": wait_for(ring, ctypes.addressof(ts), names=names),
                              "out": out(50, 51, 52, 53), "expect_res": 0 if count else ETIME}
            o["rest"] = all_cqs(ring, names)
        return o
    return run


_t = _timer(0)
_t.__name__ = "timeout"
case("prep_timeout from a program: -ETIME on CQ 1 after 20 ms, reaped after a WAIT", _check_timer)(_t)
_t = _timer(1)
_t.__name__ = "timeout_count"
case("prep_timeout with count 1: a NOP's completion ends it (res 0)", _check_timer)(_t)


def _check_fixed(o: Observation) -> None:
    assert o["cq2"] == [(55, 16, 0), (56, 16, 0)] and o["out"] == {55: 0, 56: 0}
    assert o["file"] == bytes(range(100, 132))


@case("registered files (IOSQE_FIXED_FILE) and buffers (WRITE_FIXED) in SQEs a program submits",
      _check_fixed)
def fixed_files_and_buffers(backend: str, directory: Path) -> Observation:
    path = directory / f"fixed-{backend}"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    null = os.open(os.devnull, os.O_WRONLY)
    buf = (ctypes.c_uint8 * 32)(*range(100, 132))
    try:
        with Ring(8, cqs=[4, 4], backend=backend) as ring:
            ring.register_programs([P.fixed_io])
            ring.register_files([null, fd])
            ring.register_buffers([buf])
            P.cfg[0], P.cfg[1] = fd, ctypes.addressof(buf)
            ring.prep_bpf(P.fixed_io, user_data=1)
            ring.submit_and_wait(1)
            settle(ring, lambda: ring.cq_ready(2) >= 2, 2)
            o: Observation = {"cq0": cqes(ring, 0), "cq2": sorted(cqes(ring, 2)), "out": out(55, 56)}
        o["file"] = path.read_bytes()
        return o
    finally:
        os.close(fd)
        os.close(null)
        path.unlink(missing_ok=True)


def _check_instances(o: Observation) -> None:
    assert o["cq0"] == [(3, 0, 0), (1, 0, 0), (2, 0, 0)]
    assert o["log"] == {59: 3, 60: 3, 61: 1, 62: 2} and o["runs"] == {71: 2, 72: 2, 73: 2}
    assert o["waiting"] == [3, 2, 1]


@case("three instances of one program, each waiting on its own CQ, released in the order 3, 1, 2",
      _check_instances)
def instances(backend: str, directory: Path) -> Observation:
    o: Observation = {"cq0": [], "waiting": []}
    with Ring(8, cqs=[4, 4, 4], backend=backend) as ring:
        ring.register_programs([P.await_own])
        for me in (1, 2, 3):
            ring.prep_bpf(P.await_own, user_data=me)
        ring.submit()
        for me in (3, 1, 2):
            o["waiting"].append(ring.in_flight())
            nop(ring, 40 + me, cq=me)
            ring.submit()
            o["cq0"] += wait_for(ring, me)
        o["log"] = out(59, 60, 61, 62)
        o["runs"] = out(71, 72, 73)
    return o


def _check_every_cq(o: Observation) -> None:
    for cq in range(4):
        got = o["cqs"][f"cq{cq}"]
        want = [(100 * cq + 1, cq, 0), (100 * cq + 3, -cq, 1), (100 * cq + 2, 0, 0)]
        if cq == 0:
            want.append((7, 0, 0))
        assert sorted(got) == sorted(want), (cq, got)
        assert got.index((100 * cq + 1, cq, 0)) < got.index((100 * cq + 3, -cq, 1))


@case("several CQs: emitted CQEs and NOP completions land on the CQ each names, in order",
      _check_every_cq)
def every_cq(backend: str, directory: Path) -> Observation:
    with Ring(8, cqs=[8, 8, 8], backend=backend) as ring:
        ring.register_programs([P.to_every_cq])
        ring.prep_bpf(P.to_every_cq, user_data=7)
        ring.submit()
        settle(ring, lambda: all(ring.cq_ready(cq) >= 3 for cq in (1, 2, 3)) and ring.cq_ready(0) >= 4, 0)
        return {"cqs": all_cqs(ring)}


def _check_chains(o: Observation) -> None:
    got = o["cq2"]
    assert sorted(got) == [(1, 0, 0), (2, 0, 0), (3, EBADF, 0), (4, ECANCELED, 0), (5, 0, 0)]
    assert got.index((1, 0, 0)) < got.index((2, 0, 0)) and got.index((3, EBADF, 0)) < got.index((4, ECANCELED, 0))


@case("IOSQE_IO_LINK in SQEs a program submits: in order; a failed head cancels the next (-ECANCELED)",
      _check_chains)
def bpf_links(backend: str, directory: Path) -> Observation:
    with Ring(8, cqs=[4, 8], backend=backend) as ring:
        ring.register_programs([P.chains])
        ring.prep_bpf(P.chains, user_data=1)
        ring.submit_and_wait(1)
        settle(ring, lambda: ring.cq_ready(2) >= 5, 2)
        return {"cq0": cqes(ring, 0), "cq2": cqes(ring, 2)}


def _check_user_copy(o: Observation) -> None:
    assert o["out"] == {110: 41, 111: 0, 112: 0} and o["memory"] == 124
    assert o["bad"] == {110: 0, 111: EFAULT, 112: EFAULT}


@case("copy_from_user / copy_to_user on ring.user_memory(...); a bad pointer gives -EFAULT",
      _check_user_copy)
def user_memory(backend: str, directory: Path) -> Observation:
    with Ring(8, backend=backend) as ring:
        ring.register_programs([P.user_copy])
        value = ring.user_memory(ctypes.c_uint64)
        value.value = 41
        ring.prep_bpf(P.user_copy, user_data=ctypes.addressof(value))
        ring.submit_and_wait(1)
        o: Observation = {"out": out(110, 111, 112), "memory": value.value}
        ring.prep_bpf(P.user_copy, user_data=8)
        ring.submit_and_wait(2)
        o["bad"] = out(110, 111, 112)
        o["cq0"] = [c[1:] for c in cqes(ring, 0)]
    return o


def _check_flood(o: Observation) -> None:
    assert o["out"] == {120: 100}
    assert sorted(o["cq0"]) == sorted([(2000 + i, 0, 0) for i in range(100)] + [(100, 0, 0)])
    assert [c[0] for c in o["cq0"] if c[0] != 100] == [2000 + i for i in range(100)]


@case("CQ 0 never drops: 100 NOPs from one run on a ring whose CQ 0 holds 16, all read in order",
      _check_flood)
def cq0_never_drops(backend: str, directory: Path) -> Observation:
    with Ring(8, backend=backend) as ring:
        ring.register_programs([P.flood])
        ring.prep_bpf(P.flood, user_data=100)
        ring.submit()
        got = []
        while len(got) < 101:
            c = ring.wait_cqe(0, timeout=60)
            got.append((c.user_data, c.res, c.flags))
        return {"cq0": got, "out": out(120)}


def _timed_out(ring: Ring, seconds: float) -> str:
    """How wait_cqe(0, timeout=seconds) ended: "on time" (TimeoutError after the time, not long
    after: the guest runs under TCG), "at once" (TimeoutError before: nothing can complete, as
    docs/runtime.md says), or what it returned or raised."""
    start = time.monotonic()
    try:
        c = ring.wait_cqe(0, timeout=seconds)
    except TimeoutError:
        took = time.monotonic() - start
        return "on time" if seconds * 0.9 <= took < seconds + 20 else "at once" if took < seconds else "late"
    except Exception as err:
        return type(err).__name__
    return f"a CQE {c.user_data}"


def _check_timed_waits(o: Observation) -> None:
    # Nothing in flight, or only a program waiting for CQEs nobody will post: nothing can end
    # the wait, so it ends at once; a read in the kernel might complete: the wait takes its time.
    assert (o["idle"], o["read_pending"], o["program_waiting"]) == ("at once", "on time", "at once"), o
    assert o["read"] == (1, 5, 0) and o["data"] == b"hello"
    assert o["token"] == [(2, 0, 0)] and o["in_flight"] == 0


@case("timed waits end on time while a read and a program wait on the kernel (the kernel loop "
      "ignores io_uring_enter's timeout): TimeoutError, then the ring goes on", _check_timed_waits)
def timed_waits(backend: str, directory: Path) -> Observation:
    from pybpfuring.runtime import prep_read
    o: Observation = {}
    r, w = os.pipe()
    try:
        with Ring(8, cqs=[4], backend=backend) as ring:
            ring.register_programs([P.wait_token])
            o["idle"] = _timed_out(ring, 0.3)          # nothing in flight at all
            buf = ring.user_memory(ctypes.c_char * 16)
            sqe = ring.get_sqe(0)
            prep_read(sqe, r, buf, nbytes=16)
            sqe.user_data = 1
            ring.submit()
            o["read_pending"] = _timed_out(ring, 0.5)  # the pipe is empty: the read waits
            os.write(w, b"hello")
            c = ring.wait_cqe(0, timeout=30)
            o["read"], o["data"] = (c.user_data, c.res, c.flags), buf.raw[:c.res]
            ring.prep_bpf(P.wait_token, user_data=2)
            ring.submit()
            o["program_waiting"] = _timed_out(ring, 0.5)   # it waits for a token on CQ 1
            nop(ring, 77, cq=1)
            ring.submit()
            o["token"] = wait_for(ring, 2)
            settle(ring, lambda: ring.in_flight() == 0, 0)
            o["in_flight"] = ring.in_flight()
    finally:
        os.close(r)
        os.close(w)
    return o
