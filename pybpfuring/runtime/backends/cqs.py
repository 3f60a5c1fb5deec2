"""Completion queues of the emulated backend: CQ 0 (the main CQ) and the extra CQs 1..N.

Each CQ is a FIFO of `Cqe` tuples with the capacity the ring was set up with (a power of two). The
2021 patches drop a CQE that does not fit an *extra* CQ (`emit_cqe` then returns -ENOMEM); CQ 0 never
drops: like a kernel with IORING_FEAT_NODROP, CQEs beyond its size wait in an overflow backlog (here
simply the tail of the same FIFO), counted in `overflowed`.

Requests that returned WAIT sit in a per-CQ heap ordered by `wait_nr`, so posting a CQE wakes the
satisfied waiters in O(log n) instead of scanning them all (10,000 waiters on one CQ is a tested case).
"""
from __future__ import annotations

import errno
import heapq
from collections import deque
from typing import Any

from pybpfuring.errors import ArgumentError
from pybpfuring.abi.bpf2021 import MAX_CQ_ENTRIES
from pybpfuring.abi.structs import Cqe

from . import explain as why

_tuple_new = tuple.__new__


class CompletionQueue:
    """One CQ: `post` (False if it dropped the CQE), `reap` (oldest or None), `ready`."""

    __slots__ = ("index", "capacity", "entries", "drops", "overflowed", "posted", "promised", "_waiters",
                 "_seq")

    def __init__(self, index: int, capacity: int) -> None:
        self.index = index
        self.capacity = capacity
        self.entries: deque[Cqe] = deque()
        self.drops = 0        # CQEs an extra CQ refused because it was full
        self.overflowed = 0   # CQEs CQ 0 held beyond its size (kept, never dropped)
        self.posted = 0       # CQEs it took since the ring opened (Ring.stats().completed)
        self.promised = 0     # CQEs counted for woken waiters that have not run yet
        self._waiters: list[tuple[int, int, Any]] = []  # (wait_nr, seq, request)
        self._seq = 0

    @property
    def ready(self) -> int:
        return len(self.entries)

    def post(self, user_data: int, res: int, flags: int) -> bool:
        """Append a CQE; returns False (and counts a drop) if an extra CQ is full."""
        entries = self.entries
        if len(entries) >= self.capacity:
            if self.index:
                self.drops += 1
                return False
            self.overflowed += 1
        self.posted += 1
        entries.append(_tuple_new(Cqe, (user_data, res, flags)))
        return True

    def reap(self) -> Cqe | None:
        entries = self.entries
        return entries.popleft() if entries else None

    def peek(self) -> Cqe | None:
        entries = self.entries
        return entries[0] if entries else None

    # --- waiters -----------------------------------------------------------------------------
    def add_waiter(self, wait_nr: int, request: Any) -> None:
        self._seq += 1
        heapq.heappush(self._waiters, (wait_nr, self._seq, request))

    def satisfied_waiters(self) -> list[tuple[int, Any]]:
        """Remove and return (wait_nr, request), in wait order, for the waiters the CQEs satisfy.

        The 2021 kernel wakes every satisfied waiter (patch 22/23); each then re-runs and usually
        reaps its wait_nr CQEs. Waking them all for one CQE makes N waiters cost N^2 runs, so we
        wake waiters only while the CQEs not yet promised to an earlier one cover their wait_nr
        (the caller gives the promise back, `promised -= wait_nr`, when the woken one runs).
        Nothing is lost: the event loop calls this again whenever it is otherwise idle, so a
        waiter whose condition still holds after the others ran is woken then.
        """
        waiters = self._waiters
        available = len(self.entries) - self.promised
        woken = []
        while waiters and waiters[0][0] <= available:
            wait_nr, _, request = heapq.heappop(waiters)
            available -= wait_nr
            self.promised += wait_nr
            woken.append((wait_nr, request))
        return woken

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def waiting_requests(self) -> list[Any]:
        return [entry[2] for entry in sorted(self._waiters)]

    def clear_waiters(self) -> list[Any]:
        woken = [entry[2] for entry in self._waiters]
        self._waiters = []
        return woken


# --- an SQE's cq_idx ---------------------------------------------------------------------------
# An SQE's cq_idx (byte 48, the 2021 field) names the CQ its completion goes to. One that names no
# CQ of the ring fails the request (a BPF request too: the 2021 patches check it at submission) with
# -EINVAL, posted on CQ 0 where the SQE stands in the SQ. Every Python backend asks the three
# functions below. Two copies cannot call Python and keep their own test, written as
# `bad_cq_idx`'s: the native loop (runtime/backends/native/helpers.c, h_submit, which hands such an SQE
# to the Python dispatch) and the bpf_ops scheduler, a BPF program (bpf_ops_scheduler.py,
# `model_user_next`).
BAD_CQ_RES = -errno.EINVAL


def bad_cq_idx(cq_idx: int, ncq: int) -> bool:
    """True if `cq_idx` (a u16 read from an SQE) names no CQ of a ring with `ncq` CQs."""
    return cq_idx >= ncq


def completion_cq(cq_idx: int, ncq: int) -> int:
    """The CQ a request's CQE goes to: its cq_idx, or CQ 0 when that names no CQ."""
    return 0 if bad_cq_idx(cq_idx, ncq) else cq_idx


def refuse_bad_cq(explanations: why.Explanations, user_data: int, cq_idx: int, ncq: int) -> int:
    """Note why the request of a bad `cq_idx` fails (`ring.explain()`); its res (on CQ 0)."""
    explanations.note(0, user_data, BAD_CQ_RES, why.bad_cq(cq_idx, ncq))
    return BAD_CQ_RES


def cq_capacity(size: int, what: str) -> int:
    """The size rounded up to a power of two, or ValueError outside 1..65536 (2021 limits)."""
    if not isinstance(size, int) or isinstance(size, bool):
        raise ArgumentError(f"{what} must be an int number of entries, not {type(size).__name__}")
    if not 1 <= size <= MAX_CQ_ENTRIES:
        raise ArgumentError(f"{what} has {size} entries; a CQ holds 1..{MAX_CQ_ENTRIES} "
                         "(the 2021 patches' limit)")
    return 1 << (size - 1).bit_length()
