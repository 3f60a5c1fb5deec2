"""Our compiled filters against liburing's hand-written cBPF for the same rules: never longer, and
each decides what its Python function decides (on every context that matters for the rule)."""
from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import handwritten_rules as R  # noqa: E402

from pybpfuring.filters import FilterCtx  # noqa: E402
from pybpfuring.filters.evaluator import run  # noqa: E402

RULES = list(R.HAND_COUNT)


@pytest.mark.parametrize("rule", RULES, ids=[r.__name__ for r in RULES])
def test_no_longer_than_the_hand_written_filter(rule) -> None:
    assert len(rule.compiled.program) <= R.HAND_COUNT[rule], rule.compiled.disasm()


def _contexts():
    for family in (socket.AF_UNIX, socket.AF_INET, socket.AF_INET6, 2**32 - 1):
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_STREAM | socket.SOCK_CLOEXEC):
            yield FilterCtx(opcode=R.IORING_OP_SOCKET, socket=(family, kind, 0))
    for flags in (os.O_RDONLY, os.O_CREAT | os.O_RDWR, os.O_CREAT | (1 << 40), 1 << 40):
        for resolve in (0, R.RESOLVE_IN_ROOT, R.RESOLVE_IN_ROOT | (1 << 33), 1 << 33):
            yield FilterCtx(opcode=R.IORING_OP_OPENAT, open=(flags, 0o644, resolve))


@pytest.mark.parametrize("rule", RULES, ids=[r.__name__ for r in RULES])
def test_decides_as_its_python_function(rule) -> None:
    for ctx in _contexts():
        assert bool(run(list(rule.compiled.program), ctx.to_bytes())) == rule(ctx), ctx
