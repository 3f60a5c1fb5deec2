"""Conditions a wait can be given that native event loops understand without calling Python."""
from __future__ import annotations

from typing import Any


class CqAtLeast:
    """`until` for `pump`: CQ `cq` holds at least `n` CQEs. Callable, so the Python loop (the
    reference) uses it as any condition; a native loop reads `cq.index` and `n` instead."""

    __slots__ = ("cq", "n")

    def __init__(self, cq: Any, n: int) -> None:
        self.cq = cq
        self.n = n

    def __call__(self) -> bool:
        return bool(self.cq.ready >= self.n)

    def __repr__(self) -> str:
        return f"CqAtLeast(cq={getattr(self.cq, 'index', '?')}, n={self.n})"
