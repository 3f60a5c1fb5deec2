"""Generator programs, per-request state and results on both backends of a Linux >= 7.1 machine:
the same scenarios as tests/runtime/test_generators.py, through the public Ring API, give the same
CQEs on `emulated` and on `bpf_ops` (the programs run in the kernel's io_uring loop there)."""
from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.in_guest

ROOT = Path(__file__).resolve().parents[2]
for sub in ("tests/runtime", "examples"):
    if str(ROOT / sub) not in sys.path:
        sys.path.insert(0, str(ROOT / sub))

BACKENDS = ["emulated", "bpf_ops"]
_seen: dict[tuple[str, str], Any] = {}


def run_scenario(name: str, backend: str) -> Any:
    import gen_progs as G
    from pybpfuring.runtime import Ring
    fn, cqs = G.SCENARIOS[name]
    with Ring(64, cqs=cqs, backend=backend) as ring:
        assert ring.backend == backend
        ring.register_programs(G.EXPLAIN_PROGRAMS if name == "explain" else G.GEN_PROGRAMS)
        got = fn(ring)
    other = BACKENDS[1 - BACKENDS.index(backend)]
    if name == "explain":           # the texts may differ in detail; their facts are checked
        got = got["cqes"], got
        _seen[(name, backend)] = got[0]
        if (name, other) in _seen:
            assert got[0] == _seen[(name, other)]
        return got[1]
    _seen[(name, backend)] = got
    if (name, other) in _seen:
        assert got == _seen[(name, other)], f"{name}: {backend} differs from {other}"
    return got


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_generator_and_twin_sums(backend: str) -> None:
    r = run_scenario("sums", backend)
    assert r["results"] == r["expect"] and r["leftover"] == [0] * 17


def test_unreadable_args_give_efault(backend: str) -> None:
    assert run_scenario("bad_args", backend)["cqes"] == [(8, -errno.EFAULT), (16, -errno.EFAULT)]


def test_waits_and_results(backend: str) -> None:
    r = run_scenario("waits", backend)
    assert r["cqes"] == [(50, 3), (60, -errno.EINVAL), (71, -71), (72, 73), (73, -73), (74, 75)]


@pytest.mark.parametrize("example,args", [("chase.py", ["--chains", "16", "--hops", "30"]),
                                          ("fanout.py", ["--files", "16"])])
def test_generator_examples(backend: str, example: str, args: list[str]) -> None:
    out = subprocess.run([sys.executable, str(ROOT / "examples" / example), "--backend", backend,
                          *args], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"on {backend}" in out.stdout


def test_explain_says_which_rule_and_where(backend: str) -> None:
    import gen_progs as G
    G.check_explanations(run_scenario("explain", backend))
