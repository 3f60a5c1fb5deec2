"""io_uring BPF filters in the 7.2 guest: @iouring_filter programs registered with the real kernel.

Task filters cannot be removed, so every test that applies one runs in a forked child (in_child).
"""
from __future__ import annotations

import errno
import os
import random
import socket
import sys
import tempfile
from pathlib import Path

import pytest

from pybpfuring.errors import CompileError
from pybpfuring.filters import FilterCtx, cbpf, iouring_filter
from pybpfuring.filters.kernel import (FilterError, apply_filter, filters_supported, register_raw,
                                       restrict_task, support_line)
from pybpfuring.uring.prep import prep_nop, prep_openat
from pybpfuring.uring.ring import IoUring

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from filters import policies  # noqa: E402
from filter_kernel_util import in_child, run_sqes, socket_fill  # noqa: E402

pytestmark = pytest.mark.in_guest
EACCES = -errno.EACCES
AT_FDCWD = -100
IOSQE_IO_DRAIN, IOSQE_ASYNC = 1 << 1, 1 << 4


def test_kernel_has_filters() -> None:
    assert filters_supported()
    assert support_line().startswith("io_uring BPF filters: yes")


def _open_fill(path: str, flags: int, mode: int = 0):
    return lambda sqe: prep_openat(sqe, AT_FDCWD, path, flags, mode)


def _close_fds(results: list[int]) -> None:
    for r in results:
        if r >= 0:
            os.close(r)


def test_ring_filter_allows_and_denies_openat() -> None:
    d = tempfile.mkdtemp()
    with IoUring(8) as ring:
        apply_filter(ring.fd, policies.opens)
        res = run_sqes(ring, [(_open_fill("/dev/null", os.O_RDONLY), 1),
                              (_open_fill(f"{d}/w", os.O_CREAT | os.O_WRONLY, 0o644), 2),
                              (_open_fill(f"{d}/r", os.O_CREAT | os.O_RDONLY, 0o644), 3),
                              (_open_fill(f"{d}/m", os.O_CREAT | os.O_RDONLY, 0o777), 4)])
        _close_fds(res)
    assert res[0] >= 0 and res[2] >= 0, res
    assert res[1] == EACCES and res[3] == EACCES, res
    assert sorted(os.listdir(d)) == ["r"]           # the denied opens created nothing
    with IoUring(8) as other:                       # a ring filter is that ring's only
        res = run_sqes(other, [(_open_fill(f"{d}/w", os.O_CREAT | os.O_WRONLY, 0o644), 1)])
        _close_fds(res)
    assert res[0] >= 0


def _sweep(ring: IoUring) -> dict[int, int]:
    """One SQE of every opcode 1..64 with fd -1 and all else zero: opcode -> cqe.res."""
    fills = []
    for op in range(1, 65):
        def fill(sqe, op=op):
            sqe.opcode = op
            sqe.fd = -1
        fills.append((fill, 100 + op))
    return dict(zip(range(1, 65), run_sqes(ring, fills)))


def _all_opcode_results() -> dict:
    """In a child: the sweep on a plain ring, then the NOP filter with DENY_REST on the task and
    the NOPs and the sweep again."""
    with IoUring(8) as ring:
        plain = _sweep(ring)
    restrict_task([policies.nops], deny_rest=True)
    with IoUring(8) as ring:
        nop = run_sqes(ring, [(prep_nop, 1), (prep_nop, 0xF0 << 56)])
        filtered = _sweep(ring)
    return {"nop": nop, "plain": plain, "filtered": filtered}


def test_deny_rest_covers_every_other_opcode() -> None:
    out = in_child(_all_opcode_results)
    assert out["nop"] == [0, EACCES]                 # the NOP filter itself decides NOPs
    plain = {int(k): v for k, v in out["plain"].items()}
    filtered = {int(k): v for k, v in out["filtered"].items()}
    # Filters run at the end of io_init_req, after the opcode's prep: an SQE its prep refuses
    # fails with that same error; every SQE that gets past prep is denied, none runs.
    not_denied = {op: (filtered[op], plain[op]) for op in filtered if filtered[op] != EACCES}
    assert all(f == p and f < 0 for f, p in not_denied.values()), not_denied
    denied = [op for op, v in filtered.items() if v == EACCES]
    assert len(denied) >= 30 and all(plain[op] != EACCES for op in denied), (denied, plain)
    with IoUring(8) as ring:                         # and none of this touched the parent
        assert run_sqes(ring, [(prep_nop, 0xF0 << 56)]) == [0]


def _inherited() -> dict:
    restrict_task([policies.sockets], deny_rest=False)
    pid = os.fork()
    if pid == 0:
        with IoUring(8) as ring:
            res = run_sqes(ring, [(socket_fill(socket.AF_UNIX, socket.SOCK_STREAM, 0), 1),
                                  (socket_fill(socket.AF_INET6, socket.SOCK_STREAM, 0), 2)])
        _close_fds(res)
        os._exit(0 if res[0] >= 0 and res[1] == EACCES else 1)
    _, status = os.waitpid(pid, 0)
    return {"grandchild_status": os.waitstatus_to_exitcode(status)}


def test_task_filters_are_inherited_by_a_forked_child() -> None:
    assert in_child(_inherited) == {"grandchild_status": 0}
    with IoUring(8) as ring:                         # the test process itself is not restricted
        res = run_sqes(ring, [(socket_fill(socket.AF_INET6, socket.SOCK_STREAM, 0), 1)])
        _close_fds(res)
    assert res[0] != EACCES


def test_refused_filters_give_clear_errors() -> None:
    I = cbpf.Insn
    with IoUring(4) as ring:
        with pytest.raises(FilterError) as ei:       # a byte load: not allowed in io_uring filters
            register_raw(ring.fd, 0, [I(cbpf.LD | cbpf.B | cbpf.ABS, k=8), I(cbpf.RET | cbpf.A_SRC)])
        assert "instruction 0" in str(ei.value) and ei.value.errno == errno.EINVAL
        with pytest.raises(FilterError) as ei:       # oversized: 4,097 instructions
            register_raw(ring.fd, 0, [I(cbpf.RET, k=1)] * 4097)
        assert "more than the kernel's 4096" in str(ei.value) and ei.value.errno == errno.EINVAL
        with pytest.raises(FilterError) as ei:       # more per-opcode data than the kernel gives
            register_raw(ring.fd, policies.IORING_OP_SOCKET, [I(cbpf.RET, k=1)], pdu_size=24)
        assert ei.value.errno == errno.EMSGSIZE and "kernel pdu size 12" in str(ei.value)
        with pytest.raises(FilterError) as ei:       # an opcode past the kernel's IORING_OP_LAST
            register_raw(ring.fd, 200, [I(cbpf.RET, k=1)])
        assert ei.value.errno == errno.EINVAL

        @iouring_filter(policies.IORING_OP_SOCKET)
        def wrong_union(ctx) -> bool:
            return ctx.open.flags == 0
        with pytest.raises(CompileError) as ce:
            apply_filter(ring.fd, wrong_union)
        assert f"{__file__}:" in str(ce.value) and "does not fill" in str(ce.value)


# --- differential: the Python function vs the kernel's decision on real SQEs -------------------
N_NOP, N_SOCKET, N_OPEN = 1000, 1000, 400


def _u64(r: random.Random) -> int:
    pick = r.random()
    if pick < 0.3:
        return r.choice([1, 2, 3, policies.BIG, policies.BIG ^ 0x10000, 0x1_0000_0000, 0x2_0000_0004,
                         0x2_0000_0005, 0xF << 60, (0xF << 60) | 5, 0xFFFFFFFF]) ^ r.choice([0, 0, 1 << 40])
    if pick < 0.5:
        return r.getrandbits(r.randrange(1, 64))
    return r.getrandbits(64)


def _unique(r: random.Random, n: int, used: set) -> list[int]:
    out = []
    while len(out) < n:
        u = _u64(r)
        if u not in used and u != 0:
            used.add(u)
            out.append(u)
    return out


def _nop_cases(r: random.Random, used: set) -> list[tuple[FilterCtx, tuple]]:
    cases = []
    for ud in _unique(r, N_NOP, used):
        flags = r.choice([0, 0, IOSQE_IO_DRAIN, IOSQE_ASYNC])
        def fill(sqe, flags=flags):
            prep_nop(sqe)
            sqe.flags = flags
        cases.append((FilterCtx(user_data=ud, opcode=0, sqe_flags=flags), (fill, ud)))
    return cases


def _socket_cases(r: random.Random, used: set) -> list[tuple[FilterCtx, tuple]]:
    cases = []
    for ud in _unique(r, N_SOCKET, used):
        family = r.choice([1, 2, 16, 10, r.randrange(0, 64), r.getrandbits(32)])
        kind = r.choice([1, 2, 3, 5, r.randrange(16)]) | r.choice([0, 0, 0x80000, 0x800])
        proto = r.choice([0, 0, 6, 17, 255, 256, r.getrandbits(32)])
        flags = IOSQE_ASYNC if r.random() < 0.05 else 0
        ctx = FilterCtx(user_data=ud, opcode=policies.IORING_OP_SOCKET, sqe_flags=flags, pdu_size=12,
                        socket=(family, kind, proto))
        cases.append((ctx, (socket_fill(family, kind, proto, flags), ud)))
    return cases


O_LARGEFILE = 0o100000      # x86_64


def _open_cases(r: random.Random, used: set, missing_dir: str) -> list[tuple[FilterCtx, tuple]]:
    """Open flags as the kernel hands them to filters (build_open_how + io_openat_prep): mode kept
    only with O_CREAT/O_TMPFILE, O_LARGEFILE forced on 64-bit. O_PATH is left out (it rewrites flags)."""
    choices = [os.O_RDONLY, os.O_WRONLY, os.O_RDWR, os.O_CREAT, os.O_EXCL, os.O_TRUNC, os.O_APPEND,
               os.O_NONBLOCK, os.O_CLOEXEC, os.O_NOFOLLOW, os.O_DIRECTORY, os.O_SYNC]
    cases = []
    for ud in _unique(r, N_OPEN, used):
        flags = 0
        for bit in r.sample(choices, r.randrange(0, 4)):
            flags |= bit
        mode = r.choice([0, 0o644, 0o755, 0o756, 0o777, r.randrange(0o10000)])
        kflags = flags | O_LARGEFILE
        kmode = mode & 0o7777 if flags & os.O_CREAT else 0      # O_TMPFILE is not drawn
        ctx = FilterCtx(user_data=ud, opcode=policies.IORING_OP_OPENAT, pdu_size=24,
                        open=(kflags, kmode, 0))
        cases.append((ctx, (_open_fill(f"{missing_dir}/f", flags, mode), ud)))
    return cases


def _differential(seed: int) -> dict:
    r = random.Random(seed)
    used: set = set()
    missing = os.path.join(tempfile.mkdtemp(), "missing")   # never created: opens end in ENOENT
    groups = {"nops": _nop_cases(r, used), "sockets": _socket_cases(r, used),
              "opens": _open_cases(r, used, missing)}
    out = {}
    for name, cases in groups.items():
        filt = getattr(policies, name)
        with IoUring(64) as ring:
            apply_filter(ring.fd, filt)
            res = run_sqes(ring, [sqe for _, sqe in cases])
        if name == "sockets":
            _close_fds(res)
        mismatches = [(repr(ctx), got) for (ctx, _), got in zip(cases, res)
                      if filt(ctx) != (got != EACCES)]
        out[name] = {"n": len(cases), "allowed": sum(g != EACCES for g in res),
                     "mismatches": mismatches[:5], "n_mismatch": len(mismatches)}
    return out


def test_differential_python_vs_kernel_on_real_sqes() -> None:
    seed = int(os.environ.get("PYBPFURING_FILTER_SEED", "19"))
    out = _differential(seed)
    total = sum(g["n"] for g in out.values())
    print(f"filter differential (seed {seed}): {total} contexts: " + ", ".join(
        f"{k} {v['n']} ({v['allowed']} allowed, {v['n_mismatch']} mismatches)" for k, v in out.items()))
    assert total >= 2000
    for name, g in out.items():
        assert g["n_mismatch"] == 0, (name, g["mismatches"])
        assert 0 < g["allowed"] < g["n"], (name, g)      # both decisions were exercised
