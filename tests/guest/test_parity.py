"""Parity of the two backends a Linux >= 7.1 machine offers: the same programs, through the same
public `Ring` API, give the same results on `emulated` (user-space engine) and `bpf_ops` (the
kernel's io_uring loop).

The four 2021 reference programs (examples/reference.py, run as examples/run_reference.py runs
them; expected values as in tests/runtime/test_reference.py) and examples/cp.py (files of edge sizes
and a few MiB on the guest's ext4 scratch disk). Each case runs once per backend and is compared
with the other backend's result, so a difference names the backend and the program.
"""
from __future__ import annotations

import hashlib
import os
import random
import sys
from pathlib import Path
from typing import Any

import pytest

from guest_tier import scratch_dir

pytestmark = pytest.mark.in_guest

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ["emulated", "bpf_ops"]
if str(ROOT / "examples") not in sys.path:
    sys.path.insert(0, str(ROOT / "examples"))

_results: dict[tuple[str, str], Any] = {}   # (case, backend) -> what the user sees, normalised


def _cqes(cqes: list[Any], addr: int) -> list[tuple[str | int, int]]:
    """(user_data, res) with the run's buffer address (different on each run) named."""
    return [("addr" if c.user_data == addr else c.user_data, c.res) for c in cqes]


def _remember(case: str, backend: str, seen: Any) -> None:
    """Keep the result; once both backends ran the case, they must agree."""
    _results[(case, backend)] = seen
    other = BACKENDS[1 - BACKENDS.index(backend)]
    if (case, other) in _results:
        assert seen == _results[(case, other)], f"{case}: {backend} differs from {other}"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_auto_picks_the_kernel_backend() -> None:
    from pybpfuring.runtime import Ring
    from pybpfuring.runtime.probe import default_backend
    with Ring(8, cqs=[16]) as ring:
        assert ring.backend == "bpf_ops" == default_backend()
    # Sizes come from the ring: many CQs and big ones stay in the kernel (no silent fallback).
    with Ring(8, cqs=[16] * 4 + [1024], engine="interp") as ring:
        assert ring.backend == "bpf_ops"
        assert ring.cq_count == 6 and ring.cq_size(5) == 1024


def test_reference_test1(backend: str) -> None:
    import run_reference
    r = run_reference.test1(backend)
    addr = r.extra["user_data"]
    assert r.slots[:6] == [11, 4, 5, 21, addr, 29] and r.slots[10] == 1
    assert r.extra["secret"] == 31                       # copy_to_user reached the ring's memory
    got = _cqes(r.cq0, addr)
    assert sorted(got, key=str) == sorted([(3, 13), (2, 0), ("addr", 0)], key=str)
    order = [u for u, _ in got]
    assert order.index(3) < order.index("addr")          # the emitted CQE before the completion
    _remember("test1", backend, (sorted(got, key=str), r.slots[:4], r.slots[5:11], r.extra["secret"]))


def test_reference_test2_counting(backend: str) -> None:
    import run_reference
    r = run_reference.test2(backend)
    assert r.slots == [11, 5] and r.extra["runs"] == 12 and r.cq0[-1].res == 0
    _remember("test2", backend, (r.slots, r.extra["runs"], [c.res for c in r.cq0]))


def test_reference_test3_pingpong(backend: str) -> None:
    import run_reference
    r = run_reference.test3(backend)
    assert r.slots[0] == 1 and r.slots[1] == 1 and sorted(r.slots[5:7]) == [20, 21]
    assert [c.res for c in r.cq0] == [0, 0]
    _remember("test3", backend, (r.slots, [c.res for c in r.cq0]))


def test_reference_test4_write_file(backend: str, tmp_path: Path) -> None:
    import run_reference
    r = run_reference.test4(backend, directory=str(scratch_dir(tmp_path, "parity")))
    assert r.extra["size"] == run_reference.FILE_SIZE and r.extra["all_0xae"]
    assert r.slots == [0, 16] and r.extra["runs"] == 5 and r.cq0[-1].res == 0
    _remember("test4", backend, (r.slots, r.extra, [c.res for c in r.cq0]))


def _digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 3 * 1024 * 1024 + 1234])
def test_cp(backend: str, size: int, tmp_path: Path) -> None:
    import cp
    d = scratch_dir(tmp_path, "parity")
    src, dst = d / f"src-{size}-{backend}", d / f"dst-{size}-{backend}"
    src.write_bytes(random.Random(size).randbytes(size))   # the same bytes for both backends
    try:
        stats = cp.copy_file(str(src), str(dst), backend)
        assert stats.bytes_copied == size
        assert _digest(dst) == _digest(src)
        assert stats.program_runs == 2 * -(-size // cp.BLOCK) + 2   # one run per CQE + first + EOF
        _remember(f"cp-{size}", backend, (stats.bytes_copied, stats.program_runs, _digest(dst)))
    finally:
        src.unlink(missing_ok=True)
        dst.unlink(missing_ok=True)


def test_cp_reports_a_read_error(backend: str, tmp_path: Path) -> None:
    import cp
    d = scratch_dir(tmp_path, "parity")
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)   # read(2) of a directory: EISDIR from the CQE
    out = os.open(d / f"out-{backend}", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        with pytest.raises(OSError) as info:
            cp.copy_fds(fd, out, backend)
        assert info.value.errno == 21
    finally:
        os.close(fd)
        os.close(out)
        (d / f"out-{backend}").unlink(missing_ok=True)
