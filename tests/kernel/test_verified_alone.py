"""`@bpf_function(verified_alone=True)`: a global BPF function the verifier checks once, on its own.

The kernel backend's scheduler calls every program and its own helpers this way, so that the
verification cost follows the program instead of multiplying with the scheduler's paths. Here the
host kernel verifies and runs such functions (target `generic`, BPF_PROG_TEST_RUN), and the
verifier's own count shows the cost does not grow with the number of call sites.
"""
from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from pybpfuring.compiler.driver import compile_module
from pybpfuring.errors import CompileError
from pybpfuring.loader.object import BpfObject

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("bpf_available")]

HEADER = '''
from pybpfuring.lang import *

out = ArrayMap(u64, 8)

@struct
class Pair:
    a: u64
    b: u64

@bpf_function(verified_alone={alone})
def heavy(p: Pair, k: u32) -> i64:
    for i in range(64):
        if i < k:
            p.a += out[i & 3] + u64(i)
    return i64(p.a + p.b)
'''


def program(calls: int) -> str:
    body = ["@iouring_program", "def prog(ctx: Ctx) -> int:", "    p = Pair()"]
    for n in range(calls):
        body += [f"    if out[7] == {n}:", f"        p.b = {n}", f"        out[4] += u64(heavy(p, u32(out[5])))"]
    body.append("    return OK")
    return "\n".join(body) + "\n"


def load(tmp_path: Path, calls: int, alone: bool) -> tuple[BpfObject, int]:
    path = tmp_path / f"alone_{calls}_{alone}.py"
    path.write_text(HEADER.format(alone=alone) + "\n" + program(calls))
    obj = BpfObject.open(compile_module(path, "generic"))
    obj.load(log_level=4)         # BPF_LOG_STATS: "processed N insns"
    logs = " ".join(str(getattr(p, "verifier_log", "")) for p in obj.programs.values())
    found = re.findall(r"processed (\d+) insns", logs)
    return obj, int(found[0]) if found else -1


def test_a_function_verified_alone_is_global_in_btf_and_runs(tmp_path: Path) -> None:
    path = tmp_path / "alone.py"
    path.write_text(HEADER.format(alone=True) + "\n" + program(1))
    elf = compile_module(path, "generic")
    with BpfObject.open(elf) as obj:
        btf = obj.btf
        heavy = [t for t in btf.types if t is not None and t.kind_name == "FUNC" and btf.str_at(t.name_off) == "heavy"]
        assert heavy and heavy[0].vlen == 1          # BTF_FUNC_GLOBAL
    with BpfObject.open(elf) as obj:
        obj.load()
        obj.maps["out"][5] = 10
        obj.maps["out"][0] = 1
        retval, _ = obj.programs["prog"].test_run(bytes(16))
        assert retval == 0
        # p.a = 0 + sum(out[i & 3] + i for i < 10) = 3 * 1 (i = 0, 4, 8) + 45 = 48; p.b = 0
        assert obj.maps["out"][4] == 48


def test_its_cost_does_not_multiply_with_call_sites(tmp_path: Path) -> None:
    alone1, cost1 = load(tmp_path, 1, True)
    alone8, cost8 = load(tmp_path, 8, True)
    inline8, cost_inline8 = load(tmp_path, 8, False)
    for o in (alone1, alone8, inline8):
        o.close()
    if min(cost1, cost8, cost_inline8) < 0:
        pytest.skip("this kernel's verifier log gives no instruction count")
    # Eight call sites of a function verified alone cost about one verification of it plus the
    # calls; inlined, the loop is verified at each site.
    assert cost8 < 2 * cost1, (cost1, cost8)
    assert cost_inline8 > 3 * cost8, (cost8, cost_inline8)


def test_it_must_return_an_integer(tmp_path: Path) -> None:
    path = tmp_path / "bad.py"
    path.write_text(textwrap.dedent('''
        from pybpfuring.lang import *

        @bpf_function(verified_alone=True)
        def flag(x: u32) -> bool:
            return x > 3

        @iouring_program
        def prog(ctx: Ctx) -> int:
            if flag(2):
                return OK
            return OK
    '''))
    with pytest.raises(CompileError, match="returns an integer") as err:
        compile_module(path, "generic")
    assert "bad.py:5" in str(err.value)
