"""The emulated backend gives the same results with either engine: the reference interpreter and
the LLVM JIT (Ring(engine="jit"))."""
from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

import cp
import progs
import run_reference
from pybpfuring.runtime import Ring
from test_model import faulting_elf

ENGINES = ["interp", "jit"]


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_reference_test1_and_pingpong(backend: str, engine: str) -> None:
    r = run_reference.test1(backend, engine)
    assert r.slots[:6] == [11, 4, 5, 21, r.extra["user_data"], 29] and r.extra["secret"] == 31
    r = run_reference.test3(backend, engine)
    assert sorted(r.slots[5:7]) == [20, 21]


def test_reference_write_file(backend: str, engine: str, tmp_path: Path) -> None:
    r = run_reference.test4(backend, str(tmp_path), engine)
    assert r.extra["all_0xae"] and r.extra["size"] == 256 * 1024


def test_cp(backend: str, engine: str, tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(os.urandom(300_001))
    assert cp.copy_file(str(src), str(dst), backend, engine).bytes_copied == 300_001
    assert dst.read_bytes() == src.read_bytes()


def test_faults_are_the_same(backend: str, engine: str) -> None:
    with Ring(8, backend=backend, engine=engine) as ring:
        ring.register_programs(faulting_elf())
        ring.prep_bpf(0, user_data=1)
        ring.submit_and_wait(1)
        assert ring.wait_cqe() == (1, -errno.EFAULT, 0)
        [fault] = ring.faults
        assert fault.loc is not None and fault.loc.source_line().strip() == "n = ctx.wait_nr"
    with Ring(8, backend=backend, engine=engine, budget=5000) as ring:
        ring.register_programs([progs.spin])
        ring.prep_bpf(0, user_data=2)
        ring.submit_and_wait(1)
        assert ring.wait_cqe() == (2, -errno.ELOOP, 0)


def test_unknown_engine(backend: str) -> None:
    with pytest.raises(ValueError, match="unknown engine"):
        Ring(8, backend=backend, engine="quantum")
