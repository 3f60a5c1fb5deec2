"""Compile errors are located; the kernel's admission rules are enforced before registration."""
from __future__ import annotations

import importlib.util
import inspect
import os

import pytest

from pybpfuring.errors import ArgumentError, CompileError
from pybpfuring.filters import FilterCtx, cbpf, compile_filter, iouring_filter
from pybpfuring.filters.evaluator import run

LIMIT = 3


def bad_loop(ctx):
    for i in range(3):
        pass
    return True


def bad_call(ctx):
    return len(ctx.user_data) > 0


def bad_arith(ctx):
    return ctx.open.flags + 1 == 2


def bad_field(ctx):
    return ctx.open.flgs == 0


def bad_union(ctx):
    return ctx.open == 0


def bad_string(ctx):
    return ctx.opcode == "x"


def bad_branch_name(ctx):
    if ctx.opcode == 1:
        x = ctx.sqe_flags
    else:
        x = ctx.pdu_size
    return x == 0


@pytest.mark.parametrize("fn,words", [
    (bad_loop, "loops are not in the filter language"),
    (bad_call, "calls are not in the filter language"),
    (bad_arith, "arithmetic on context fields"),
    (bad_field, "no field 'open.flgs'"),
    (bad_union, "ctx.open is a group of fields"),
    (bad_string, "str constants"),
    (bad_branch_name, "assigned differently on the branches"),
])
def test_errors_name_the_line_and_show_it(fn, words) -> None:
    with pytest.raises(CompileError) as ei:
        compile_filter(fn)
    text = str(ei.value)
    assert words in text
    head = text.split("\n")[0]
    path, line = head.split(":")[0], int(head.split(":")[1])
    assert path == __file__
    lines, first = inspect.getsourcelines(fn)
    assert first < line < first + len(lines)
    assert "^" in text.split("\n")[2]


def test_decorator_checks_opcodes() -> None:
    with pytest.raises(ArgumentError):
        iouring_filter()
    with pytest.raises(ArgumentError):
        iouring_filter(300)


def test_constants_fold_and_out_of_range_compares_fold() -> None:
    @iouring_filter(0)
    def f(ctx):
        return ctx.opcode != -1 and ctx.socket.family < (1 << 40) and ctx.sqe_flags & ~0xFF == 0
    assert [cbpf.disasm_insn(0, i) for i in f.compiled.program] == ["ret #1"]


def test_locals_globals_and_os_constants() -> None:
    @iouring_filter(18)
    def f(ctx):
        creat = ctx.open.flags & os.O_CREAT
        limit = LIMIT + 1
        return not creat and ctx.open.mode < limit
    for flags, mode in [(0, 0), (os.O_CREAT, 0), (0, 4), (0, 3)]:
        ctx = FilterCtx(open=(flags, mode, 0))
        assert bool(run(list(f.compiled.program), ctx.to_bytes())) == f(ctx)


def _load(tmp_path, name: str, src: str):
    path = tmp_path / f"{name}.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return getattr(mod, name), path


def test_oversized_filter_is_refused_with_the_def_line(tmp_path) -> None:
    values = ", ".join(str(i * 7919 + (i << 33)) for i in range(1500))
    fn, path = _load(tmp_path, "huge", f"def huge(ctx):\n    return ctx.user_data in ({values})\n")
    with pytest.raises(CompileError) as ei:
        compile_filter(fn)
    assert "accepts at most 4096" in str(ei.value)
    assert str(ei.value).startswith(f"{path}:1:")


def test_far_jumps_get_trampolines(tmp_path) -> None:
    values = ", ".join(str(i * 3 + (i << 33)) for i in range(400))
    fn, _ = _load(tmp_path, "wide", f"def wide(ctx):\n    return ctx.user_data in ({values})\n")
    prog = list(compile_filter(fn).program)
    assert cbpf.check(prog) is None and len(prog) > 800
    for u, want in [(0, True), (3 + (1 << 33), True), (4, False), (399 * 3 + (399 << 33), True)]:
        assert bool(run(prog, FilterCtx(user_data=u).to_bytes())) == want


def test_checker_refuses_what_the_kernel_refuses() -> None:
    I = cbpf.Insn
    assert cbpf.check([I(cbpf.LD | cbpf.B | cbpf.ABS, k=8), I(cbpf.RET | cbpf.A_SRC)])[1].startswith("opcode")
    assert "4-aligned" in cbpf.check([I(cbpf.LD | cbpf.W | cbpf.ABS, k=9), I(cbpf.RET)])[1]
    assert "below 40" in cbpf.check([I(cbpf.LD | cbpf.W | cbpf.ABS, k=40), I(cbpf.RET)])[1]
    assert "return" in cbpf.check([I(cbpf.LD | cbpf.IMM)])[1]
    assert "past the end" in cbpf.check([I(cbpf.JMP | cbpf.JA, k=5), I(cbpf.RET)])[1]
    assert cbpf.check([I(cbpf.RET, k=1)] * 4097)[0] == 4096
