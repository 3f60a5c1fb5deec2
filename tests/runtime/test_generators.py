"""Generator programs (`yield wait_cqe`), per-request state and results on the emulated backend,
every engine: the same CQEs as their hand-written twins and as the 2021 semantics say."""
from __future__ import annotations

import ctypes
import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import gen_progs as G
from pybpfuring.runtime import Ring

ENGINES = ["interp", "jit", "native"]
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_scenario(name: str, engine: str) -> dict:
    fn, cqs = G.SCENARIOS[name]
    with Ring(64, cqs=cqs, backend="emulated", engine=engine) as ring:
        ring.register_programs(G.EXPLAIN_PROGRAMS if name == "explain" else G.GEN_PROGRAMS)
        return fn(ring)


@pytest.mark.parametrize("engine", ENGINES)
def test_explain_says_which_rule_and_where(engine: str) -> None:
    G.check_explanations(run_scenario("explain", engine))


def test_explain_of_a_result_the_runtime_did_not_make() -> None:
    with Ring(8, backend="emulated") as ring:
        from pybpfuring.runtime import prep_read
        sqe = ring.get_sqe()
        prep_read(sqe, 12345, bytearray(8), 0)    # a bad fd: the kernel's -EBADF
        sqe.user_data = 9
        ring.submit_and_wait(1)
        c = ring.wait_cqe()
        assert c.res == -errno.EBADF
        assert "not made by pybpfuring's runtime" in ring.explain(c)
    assert "not made" in ring.explain(c)         # still answers after close


@pytest.mark.parametrize("engine", ENGINES)
def test_generator_and_hand_written_twin_give_the_same_results(engine: str) -> None:
    r = run_scenario("sums", engine)
    assert r["results"] == r["expect"]
    assert r["leftover"] == [0] * 17       # every CQE reaped by the program that waited for it


@pytest.mark.parametrize("engine", ENGINES)
def test_args_that_cannot_be_read_complete_the_request_with_efault(engine: str) -> None:
    assert run_scenario("bad_args", engine)["cqes"] == [(8, -errno.EFAULT), (16, -errno.EFAULT)]


@pytest.mark.parametrize("engine", ENGINES)
def test_wait_nr_results_and_impossible_waits(engine: str) -> None:
    r = run_scenario("waits", engine)
    assert r["cqes"] == [(50, 3), (60, -errno.EINVAL), (71, -71), (72, 73), (73, -73), (74, 75)]
    assert r["cq1_left"] == 0


def test_thousands_of_generator_requests_in_flight_each_keep_their_frame() -> None:
    # 1,000 requests wait at once, on 1,000 CQs; each resumes with its own locals (its sum is its own).
    with Ring(4096, cqs=[4] * 1000, backend="emulated", engine="native") as ring:
        ring.register_programs([G.sum_gen])
        keep = []
        for k in range(1000):
            a = ring.user_memory(G.SumArgs.ctype)
            a.n, a.cq, a.base = 3, k + 1, k * 10
            keep.append(a)
            ring.prep_bpf(G.sum_gen, user_data=ctypes.addressof(a))
        ring.submit_and_wait(1000)
        res = {c.user_data: c.res for c in (ring.wait_cqe() for _ in range(1000))}
        assert [res[ctypes.addressof(a)] for a in keep] == [3 * k * 10 + 3 for k in range(1000)]


@pytest.mark.parametrize("example,args", [("chase.py", ["--chains", "8", "--hops", "20"]),
                                          ("fanout.py", ["--files", "16", "--size", "3000"])])
def test_generator_examples_run_and_check_themselves(example: str, args: list[str]) -> None:
    out = subprocess.run([sys.executable, str(EXAMPLES / example), "--backend", "emulated", *args],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "match" in out.stdout or "holds" in out.stdout


def compile_error(tmp_path: Path, body: str) -> str:
    src = tmp_path / "prog.py"
    src.write_text("from pybpfuring.lang import *\n\n" + textwrap.dedent(body))
    out = subprocess.run([sys.executable, "-m", "pybpfuring", "compile", str(src), "-o",
                          str(tmp_path / "prog.o")], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert out.returncode != 0, out.stdout
    assert "Traceback" not in out.stderr, out.stderr
    return out.stderr


def test_a_reference_kept_across_a_yield_is_a_located_error(tmp_path: Path) -> None:
    err = compile_error(tmp_path, """
        @iouring_program
        def p(ctx: Ctx) -> i32:
            sqe = Sqe()
            prep_nop(sqe)
            submit(ctx, sqe)
            cqe = yield wait_cqe(ctx, 1)
            sqe.user_data = 5
            return 0
        """)
    assert "prog.py:6:5" in err and "'sqe'" in err and "yield at line 9" in err and "^" in err


def test_a_yield_inside_an_expression_is_a_located_error(tmp_path: Path) -> None:
    err = compile_error(tmp_path, """
        @iouring_program
        def p(ctx: Ctx) -> i32:
            x = 1 + (yield wait_cqe(ctx, 1))
            return 0
        """)
    assert "prog.py:6:14" in err and "yield is a statement of its own" in err


def test_wait_gives_no_value_and_yield_needs_a_wait(tmp_path: Path) -> None:
    err = compile_error(tmp_path, """
        @iouring_program
        def p(ctx: Ctx) -> i32:
            c = yield wait(ctx, 1, 3)
            return 0
        """)
    assert "wait() gives no value" in err
    err = compile_error(tmp_path, """
        @iouring_program
        def p(ctx: Ctx) -> i32:
            yield 5
            return 0
        """)
    assert "a program yields wait_cqe(ctx, cq) or wait(ctx, cq, nr)" in err


def test_a_bpf_function_cannot_wait(tmp_path: Path) -> None:
    err = compile_error(tmp_path, """
        @bpf_function
        def f(ctx: Ctx) -> i32:
            yield wait(ctx, 1, 1)
            return 0

        @iouring_program
        def p(ctx: Ctx) -> int:
            f(ctx)
            return OK
        """)
    assert "only an @iouring_program can wait" in err


def test_ring_engine_says_what_auto_chose() -> None:
    from pybpfuring.runtime.backends.native import unavailable_reason
    with Ring(4, backend="emulated") as ring:
        assert ring.engine == ("native" if unavailable_reason() is None else "jit")
    with Ring(4, backend="emulated", engine="interp") as ring:
        assert ring.engine == "interp"


def test_struct_ctype_twin_has_the_same_layout() -> None:
    import gen_progs as G
    a = G.SumArgs.ctype(n=3, cq=2, base=7)
    assert ctypes.sizeof(a) == G.SumArgs.__bpf_struct__.size
    assert bytes(a) == (3).to_bytes(4, "little") + (2).to_bytes(4, "little") + (7).to_bytes(8, "little")
