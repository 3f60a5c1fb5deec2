"""Bad program files get one located CompileError (exit 2 on the CLI), never a raw traceback, an
exit code taken over by the program, or a dead process.

Classes: not a Python file; not a regular file; sys.exit() or an exception at the program's top
level (compiling imports it: docs/cli.md); expressions nested too deep for Python's compiler or for
ours; LLVM running out of BPF stack (its fatal error used to exit the whole process); map sizes the
kernel refuses; and random program shapes through the frontend.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from pybpfuring.compiler.driver import compile_functions, load_module, programs_in
from pybpfuring.errors import CompileError, InternalCompilerError
from source_shapes import ShapeGen

SEED = 20261203 if os.environ.get("PYBPFURING_FUZZ") != "1" else random.randrange(2**32)
PROGRAM = """\
from pybpfuring import ArrayMap, Ctx, OK, iouring_program, u64
arr = ArrayMap(u64, 4)


@iouring_program
def prog(ctx: Ctx) -> int:
    x = {expr}
    arr[1] = x
    return OK
"""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pybpfuring", *args], capture_output=True,
                          text=True, timeout=300)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_file_that_is_not_python_is_refused(tmp_path):
    notes = write(tmp_path, "notes.txt", "Remember to buy milk.\n")
    proc = cli("compile", str(notes))
    assert proc.returncode == 2
    assert f"{notes} is not a Python program file" in proc.stderr
    assert "Traceback" not in proc.stderr and "AssertionError" not in proc.stderr


def test_a_program_path_that_is_not_a_regular_file_is_refused(tmp_path):
    fifo = tmp_path / "prog.py"
    os.mkfifo(fifo)
    for path in (fifo, tmp_path):
        proc = cli("compile", str(path))
        assert proc.returncode == 2 and "is not a regular file" in proc.stderr, proc.stderr


def test_sys_exit_at_top_level_is_not_the_exit_code(tmp_path):
    prog = write(tmp_path, "exits.py", "import sys\n\nsys.exit(3)\n")
    proc = cli("compile", str(prog))
    assert proc.returncode == 2
    assert f"{prog}:3:1: error: importing exits.py called sys.exit(3) at its top level" in proc.stderr
    assert 'if __name__ == "__main__":' in proc.stderr


def test_an_exception_at_import_shows_only_the_users_frames(tmp_path):
    prog = write(tmp_path, "raises.py", textwrap.dedent("""\
        import json


        def load(text):
            return json.loads(text)


        CONFIG = load('{')
        """))
    proc = cli("compile", str(prog))
    assert proc.returncode == 2
    err = proc.stderr
    assert f"{prog}:5:12: error: importing raises.py failed: JSONDecodeError" in err
    assert "Traceback (your code):" in err
    assert 'raises.py", line 8' in err and 'raises.py", line 5' in err   # the user's frames
    assert "json/decoder.py" not in err and "importlib" not in err and "pybpfuring/" not in err


@pytest.mark.parametrize("expr", ["+".join(["arr[0]"] * 5000), "-" * 5000 + "arr[0]",
                                  "-" * 300 + "arr[0]", "(" * 150 + "arr[0]" + ")" * 150])
def test_deep_expressions_get_a_located_error(tmp_path, expr):
    prog = write(tmp_path, "deep.py", PROGRAM.format(expr=expr))
    proc = cli("compile", str(prog), "-o", str(tmp_path / "deep.o"))
    assert proc.returncode in (0, 2), proc.stderr
    if proc.returncode == 2:
        assert f"{prog}:7:" in proc.stderr and "^" in proc.stderr, proc.stderr
        for raw in ("RecursionError", "internal compiler error", "Traceback"):
            assert raw not in proc.stderr


def test_llvm_stack_overflow_is_a_located_error_not_a_dead_process(tmp_path):
    """LLVM's fatal "BPF stack limit exceeded" called exit(1): in-process, it killed pytest."""
    prog = write(tmp_path, "wide.py", PROGRAM.format(expr="+".join(["arr[0]"] * 150)))
    module = load_module(prog)
    with pytest.raises(CompileError) as info:
        compile_functions(programs_in(module), "op_bpf", cache=False)
    assert not isinstance(info.value, InternalCompilerError)
    assert info.value.loc is not None and (info.value.loc.file, info.value.loc.line) == (str(prog), 7)
    assert "512-byte BPF stack" in info.value.message


@pytest.mark.parametrize("declaration, why", [
    ("ArrayMap(u64, 2**40)", "max_entries must be 1..4294967295"),
    ("ArrayMap(u64, 0)", "max_entries must be 1..4294967295"),
    ("ArrayMap(Array[u8, 2**31], 1)", "value is at most 2147483647 bytes"),
    ("ArrayMap(Array[u8, 4096], 2**20)", "pybpfuring refuses maps over 1024 MiB"),
    ("HashMap(Array[u8, 1024], u64, 16)", "key is at most 512 bytes"),
    ("HashMap(u32, Array[u8, 8 << 20], 16)", "value is at most"),
])
def test_map_sizes_the_kernel_refuses_are_located_compile_errors(tmp_path, declaration, why):
    prog = write(tmp_path, "maps.py", textwrap.dedent(f"""\
        from pybpfuring import Array, ArrayMap, HashMap, u8, u32, u64

        big = {declaration}
        """))
    proc = cli("compile", str(prog))
    assert proc.returncode == 2
    assert f"{prog}:3:7: error: map cannot be created: " in proc.stderr and why in proc.stderr


def test_random_program_shapes_give_only_located_compile_errors(tmp_path):
    findings, compiled = [], 0
    warnings.simplefilter("ignore", SyntaxWarning)   # the shapes include `1[2]` and `x is 1`
    for i in range(300):
        path = write(tmp_path, f"shape_{i}.py", ShapeGen(SEED + i).module())
        target = ("op_bpf", "bpf_ops", "generic")[i % 3]
        try:
            compile_functions(programs_in(load_module(path)), target, cache=False)
            compiled += 1
        except InternalCompilerError as exc:
            findings.append(f"seed {SEED + i} ({target}): {exc.message}")
        except CompileError as exc:
            if exc.loc is None and "nothing to compile" not in exc.message:
                findings.append(f"seed {SEED + i} ({target}): unlocated: {exc.message}")
        except Exception as exc:  # noqa: BLE001 - any other class is the bug this test looks for
            findings.append(f"seed {SEED + i} ({target}): {type(exc).__name__}: {exc}")
    assert not findings, "\n".join(findings[:20])
    assert compiled >= 10, "the shapes are too wild to reach code generation"
