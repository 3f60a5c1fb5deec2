"""Fixtures of the runtime tests: every test runs once per backend this machine has."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

# The Linux >= 7.1 kernel backend joins this list when it exists (it skips itself elsewhere).
BACKENDS = ["emulated"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture
def no_fd_leak() -> object:
    """Fails the test if it leaves file descriptors open."""
    before = open_fds()
    yield None
    leaked = open_fds() - before
    # listdir's own directory fd is gone by now; anything left is ours
    assert not leaked, f"file descriptors leaked: {sorted(leaked)}"
