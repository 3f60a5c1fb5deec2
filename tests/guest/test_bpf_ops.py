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


def _scratch_dir(tmp_path: Path) -> Path:
    """The guest's ext4 scratch disk (never tmpfs: io_uring punts shmem reads to io-wq)."""
    base = os.environ.get("PYBPFURING_SCRATCH")
    if not base:
        return tmp_path
    d = Path(base) / "bpf_ops"
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.mark.parametrize("size", [3 * 1024 * 1024 + 1234, 0])
def test_cp_copies_a_file_in_the_kernel_loop(tmp_path, size):
    cp = _example("bpf_cp")
    d = _scratch_dir(tmp_path)
    src, dst = d / f"src-{size}", d / f"dst-{size}"
    src.write_bytes(os.urandom(size))
    try:
        assert cp.copy_file(str(src), str(dst)) == size
        assert dst.stat().st_size == size
        assert hashlib.sha256(dst.read_bytes()).digest() == hashlib.sha256(src.read_bytes()).digest()
    finally:
        src.unlink(missing_ok=True)
        dst.unlink(missing_ok=True)


def test_cp_reports_a_failed_read_as_its_errno(tmp_path):
    cp = _example("bpf_cp")
    d = _scratch_dir(tmp_path)
    (d / "a_directory").mkdir(exist_ok=True)
    with pytest.raises(OSError) as err:     # read(2) of a directory: EISDIR, from the CQE
        cp.copy_file(str(d / "a_directory"), str(d / "dst-dir"))
    assert err.value.errno == 21
    (d / "dst-dir").unlink(missing_ok=True)
