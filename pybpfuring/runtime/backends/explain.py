"""Why a request completed with an error the runtime made (not the kernel): `ring.explain(cqe)`.

Every backend notes, at the place it decides, the rule a request broke and where (the program's
file and the line of the `return` that ended its run, which compiled programs record in
ctx.__line). The newest `KEPT` notes are kept; `explain` says so for an older CQE rather than
pretending it knows nothing.
"""
from __future__ import annotations

import collections
import errno
from dataclasses import dataclass
from typing import Callable

KEPT = 1024


@dataclass(frozen=True)
class Note:
    cq: int
    user_data: int
    res: int
    text: str


class Explanations:
    def __init__(self) -> None:
        self._notes: collections.deque[Note] = collections.deque(maxlen=KEPT)
        self.total = 0

    def note(self, cq: int, user_data: int, res: int, text: str) -> None:
        self._notes.append(Note(cq, user_data, res, text))
        self.total += 1

    def find(self, user_data: int, res: int, cq: int | None = None) -> str | None:
        for n in reversed(self._notes):
            if n.user_data == user_data and n.res == res and (cq is None or n.cq in (cq, -1)):
                return n.text
        return None

    def explain(self, user_data: int, res: int, cq: int | None = None) -> str:
        found = self.find(user_data, res, cq)
        if found is not None:
            return found
        name = errno.errorcode.get(-res, str(res)) if res < 0 else None
        if res >= 0:
            return f"res {res} is a result, not an error: nothing to explain"
        if self.total > KEPT:
            return (f"-{name}: no note for user_data {user_data:#x} among the newest {KEPT} error "
                    f"completions the runtime made ({self.total} so far); if it is older, its note "
                    "is gone. Else the kernel (or the program, as its result) chose this res")
        return (f"-{name}: not made by pybpfuring's runtime: the kernel's result for the request "
                "(see its opcode's man page), or a result the program completed with")


def file_of(locate: Callable[[int], object] | None) -> str | None:
    """The source file of a loaded program (its first line_info entry)."""
    return getattr(locate(0), "file", None) if locate is not None else None


def where(file: str | None, program: str, line: int) -> str:
    """`program at file:line` of a program's return. Lines are recorded by programs that use the
    ctx fields past the 2021 struct (lang/structs.py, Ctx); the others are named with their file."""
    if file and line:
        return f"{program} at {file}:{line}"
    return f"{program} ({file})" if file else program


def bad_wait(at: str, wait_idx: int, wait_nr: int, ncq: int, capacity: int) -> str:
    if wait_idx >= ncq:
        why = f"the ring has CQs 0..{ncq - 1}"
    elif wait_nr == 0:
        why = "wait_nr is 0: there is nothing to wait for"
    else:
        why = f"CQ {wait_idx} holds at most {capacity} CQEs, so the wait could never end"
    return f"-EINVAL: WAIT for {wait_nr} CQEs on CQ {wait_idx} returned by {at}: {why}"


def bad_return(at: str, value: int) -> str:
    return (f"-EINVAL: {at} returned {value}; only OK (0) and WAIT (1) mean something "
            "(a result goes out with `return complete(ctx, res)`, or `return res` in a generator)")


def bad_cq(cq_idx: int, ncq: int) -> str:
    return f"-EINVAL on CQ 0: the SQE's cq_idx is {cq_idx}, but the ring has CQs 0..{ncq - 1}"


def bad_program(index: int, count: int) -> str:
    return (f"-EFAULT: the IORING_OP_BPF SQE names program {index}; the ring has {count} "
            "registered (0..{})".format(count - 1) if count else
            f"-EFAULT: the IORING_OP_BPF SQE names program {index}; no programs are registered")


def bad_bpf_sqe() -> str:
    return ("-EINVAL: an IORING_OP_BPF SQE must have addr, len, ioprio and rw_flags 0 and no "
            "FIXED_FILE or BUFFER_SELECT flag (the 2021 patches' checks)")


def canceled(res: int) -> str:
    return (f"-ECANCELED: an earlier request of its IOSQE_IO_LINK chain failed (res {res}); "
            "IOSQE_IO_HARDLINK would have kept the chain going")
