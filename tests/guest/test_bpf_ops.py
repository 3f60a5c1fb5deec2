"""@loop_step programs compiled by pybpfuring, run by the kernel's io_uring loop (Linux >= 7.1).

Inside the guest (or on a real >= 7.1 machine: `PYBPFURING_IN_GUEST=1 pytest tests/guest`):
liburing's two bpf-ops tests, ported to Python, loaded by our loader and run with one
io_uring_enter(GETEVENTS) each.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.in_guest

ROOT = Path(__file__).resolve().parents[2]


def _example(name: str):
    spec = importlib.util.spec_from_file_location(f"pybpfuring_example_{name}", ROOT / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def nops():
    return _example("bpf_nops")


def test_nops_complete_1000_in_one_enter(nops):
    from pybpfuring.runtime.backends.bpf_ops import LoopRing
    with LoopRing(nops.nops_step, bss={"reqs_to_run": 1000}) as loop:
        assert loop.run() == 0
        assert nops.reqs_to_run.value == 0
        assert nops.reqs_inflight.value == 0
