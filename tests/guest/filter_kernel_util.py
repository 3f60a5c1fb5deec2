"""Helpers for tests/guest/test_filters.py: run SQEs on a real ring, run code in a forked child."""
from __future__ import annotations

import json
import os
import select
import signal
import traceback
from typing import Callable, Iterable

from pybpfuring.uring.ring import IoUring

IORING_OP_SOCKET = 45
CQE_F_MORE, CQE_F_NOTIF = 1 << 1, 1 << 3


def run_sqes(ring: IoUring, fills: list[tuple[Callable, int]], batch: int = 32) -> list[int]:
    """Submit one SQE per (fill, user_data) (user_data unique), in batches; each one's cqe.res."""
    where = {ud: i for i, (_, ud) in enumerate(fills)}
    assert len(where) == len(fills), "user_data must be unique"
    results = [0] * len(fills)
    batch = min(batch, ring.sq_entries)      # never more SQEs at once than the ring holds
    for start in range(0, len(fills), batch):
        chunk = fills[start:start + batch]
        for fill, ud in chunk:
            sqe = ring.get_sqe()
            fill(sqe)
            sqe.user_data = ud
        # A denied SQE fails at submission, and without IORING_SETUP_SUBMIT_ALL the kernel stops
        # the batch there (docs/filters.md): submit again until the SQ is empty.
        submitted = 0
        while submitted < len(chunk):
            n = ring.submit()
            assert n > 0, f"the kernel took none of {len(chunk) - submitted} SQEs"
            submitted += n
        # One result CQE per SQE; one flagged IORING_CQE_F_MORE (a zero-copy send, even a denied
        # one: its prep already took a notification) is followed by its IORING_CQE_F_NOTIF CQE.
        pending = len(chunk)
        while pending:
            cqe = ring.wait_cqe(timeout=30)
            pending -= 1
            if cqe.flags & CQE_F_NOTIF:
                continue
            results[where[cqe.user_data]] = cqe.res
            if cqe.flags & CQE_F_MORE:
                pending += 1
    return results


def socket_fill(family: int, kind: int, protocol: int, flags: int = 0) -> Callable:
    def f(sqe) -> None:
        sqe.opcode = IORING_OP_SOCKET
        sqe.fd = family if family < 2**31 else family - 2**32
        sqe.off = kind
        sqe.len = protocol
        sqe.flags = flags
    return f


def in_child(fn: Callable[[], object], timeout: float = 120) -> object:
    """Run fn in a forked child (task filters cannot be undone); its JSON result or its error."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            out = {"ok": fn()}
        except BaseException as e:  # report anything to the parent
            out = {"error": f"{type(e).__name__}: {e}\n{traceback.format_exc()}"}
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    data = b""
    try:
        while True:
            ready, _, _ = select.select([r], [], [], timeout)
            if not ready:
                os.kill(pid, signal.SIGKILL)
                raise TimeoutError("child did not finish")
            chunk = os.read(r, 65536)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    out = json.loads(data or b'{"error": "child died without a result"}')
    if "error" in out:
        raise AssertionError(out["error"])
    return out["ok"]
