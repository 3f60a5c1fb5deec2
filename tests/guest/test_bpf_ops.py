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


# A loop_step program of this file: region accesses at offsets the verifier cannot know.
from pybpfuring.lang import (IOU_LOOP_STOP, IOU_REGION_SQ, Global, IoRingCtx, LoopParams,  # noqa: E402
                             ReadOnly, get_region, loop_step, u32)

sq_bytes = ReadOnly(u32)        # the SQ region's size (8 SQEs of 64 bytes)
probe_off = Global(u32)         # set by the test: unknown to the verifier
read_back = Global(u32)
read_past = Global(u32)
too_big_given = Global(u32, 7)


@loop_step
def probe_step(ctx: IoRingCtx, lp: LoopParams) -> int:
    global read_back, read_past, too_big_given
    sq = get_region(ctx, IOU_REGION_SQ, sq_bytes)
    big = get_region(ctx, IOU_REGION_SQ, sq_bytes * 1024)     # larger than the region: NULL
    too_big_given = 1 if big else 0
    if not sq:
        return IOU_LOOP_STOP
    sq.store_u32(probe_off, 0xA5A5A5A5)
    sq.store_u32(probe_off + 4, 0x5A5A5A5A)                    # past the end when probe_off = size-4
    read_back = sq.load_u32(probe_off)
    read_past = sq.load_u32(probe_off + 2)                     # straddles the end: reads 0
    return IOU_LOOP_STOP


def test_region_accesses_are_checked_against_the_region_size():
    import ctypes

    from pybpfuring.runtime.backends.bpf_ops import LoopRing
    size = 8 * 64
    with LoopRing(probe_step, entries=8, rodata={"sq_bytes": size},
                  bss={"probe_off": size - 4}) as loop:
        assert loop.run() == 0
        assert read_back.value == 0xA5A5A5A5
        assert read_past.value == 0
        assert too_big_given.value == 0
        # The same memory seen from user space (the mapping is a whole page): the word past the
        # region's checked size was not written.
        sqes = ctypes.string_at(loop.ring.sqes_addr, size + 4)
        assert sqes[size - 4:size] == (0xA5A5A5A5).to_bytes(4, "little")
        assert sqes[size:] == bytes(4)
