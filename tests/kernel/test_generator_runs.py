"""Generator programs run by the kernel, run after run, against the reference evaluator.

Each program is compiled for the `generic` target (a BPF_PROG_TYPE_SYSCALL program the host
kernel verifies and runs with BPF_PROG_TEST_RUN) and driven as a request would be: run with
ctx.runs = 0, 1, 2, ... until it returns OK, its frame map persisting in between. At every run the
kernel's (return value, ctx.wait_idx, ctx.wait_nr, ctx.res) must equal the evaluator's, whose
resume is its own (it skips to the yield through the structured IR) while the compiled code jumps
through a switch into the resume blocks: the transformation's two readings must agree.
"""
from __future__ import annotations

import struct
from pathlib import Path

import pytest

from pybpfuring.compiler.driver import compile_full, load_module, programs_in
from pybpfuring.compiler.evaluator import Evaluator
from pybpfuring.loader.object import BpfObject

HEADER = """from pybpfuring.lang import *

inp = ArrayMap(u64, 4)
"""

PROGRAMS = {
    # a counter and a total across yields inside a loop, and a result
    "loop": """
@iouring_program
def loop(ctx: Ctx) -> i32:
    total = 0
    for i in range(6):
        total += i * 10 + i32(inp[0])
        yield wait(ctx, 1, u32(i) + 1)
        total += 1
    return total
""",
    # yields in both branches of an if, inside a while loop with a proven bound
    "branches": """
@iouring_program
def branches(ctx: Ctx) -> i32:
    n: u32 = 0
    acc: u64 = inp[1]
    while n < 5:
        if (acc + n) & 1:
            yield wait(ctx, 2, 1)
            acc = acc * 3 + 1
        else:
            acc = acc // 2
            yield wait(ctx, 3, 2)
        n += 1
    return i32(acc & 0xFFFF)
""",
    # early results, a break out of a loop after a yield, a bool and a narrow int kept
    "early": """
@iouring_program
def early(ctx: Ctx) -> i32:
    flag = inp[2] > 3
    small: u8 = u8(inp[2])
    for i in range(10):
        yield wait(ctx, 1, 1)
        small += 50
        if flag and i == 2:
            break
        if i == 7:
            return -7
    return i32(small)
""",
}

CTX = struct.Struct("<QIIiIII")          # lang/structs.py Ctx (32 bytes)


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("gen") / "genprogs.py"
    path.write_text(HEADER + "".join(PROGRAMS.values()))
    fns = programs_in(load_module(str(path)))
    result = compile_full(fns, "generic")
    obj = BpfObject.open(result.elf)
    obj.load()
    yield obj, result.typed
    obj.close()


def drive_kernel(obj: BpfObject, name: str, inputs: list[int]) -> list[tuple[int, int, int, int]]:
    for i, v in enumerate(inputs):
        obj.maps["inp"][i] = v
    seen = []
    for runs in range(40):
        ctx = bytearray(CTX.pack(0, 0, 0, 0, 0, runs, 0))
        retval, _ = obj.programs[name].test_run(ctx)
        _, nr, idx, res, *_ = CTX.unpack(bytes(ctx))
        seen.append((retval, idx, nr, res))
        if retval != 1:
            break
    return seen


def drive_evaluator(typed, name: str, inputs: list[int]) -> list[tuple[int, int, int, int]]:
    ev = Evaluator(typed, maps={"inp": dict(enumerate(inputs))})
    seen = []
    for runs in range(40):
        r = ev.run(name, CTX.pack(0, 0, 0, 0, 0, runs, 0))
        _, nr, idx, res, *_ = CTX.unpack(r.ctx_out)
        seen.append((r.retval, idx, nr, res))
        if r.retval != 1:
            break
    return seen


@pytest.mark.parametrize("name,inputs,runs", [
    ("loop", [0, 0, 0], 7), ("loop", [5, 0, 0], 7),
    ("branches", [0, 6, 0], 6), ("branches", [0, 7, 0], 6), ("branches", [0, 2**40 + 3, 0], 6),
    ("early", [0, 0, 9], 4), ("early", [0, 0, 1], 9),
])
def test_the_kernel_runs_a_generator_as_the_evaluator_does(programs, name: str, inputs: list[int],
                                                            runs: int) -> None:
    obj, typed = programs
    kernel = drive_kernel(obj, name, inputs)
    assert kernel == drive_evaluator(typed, name, inputs)
    assert len(kernel) == runs and kernel[-1][0] == 0      # OK, after the expected number of runs
    if name == "loop":
        assert kernel[-1][3] == sum(i * 10 + inputs[0] + 1 for i in range(6))
        assert [k[2] for k in kernel[:-1]] == [1, 2, 3, 4, 5, 6]   # wait_nr of each yield
