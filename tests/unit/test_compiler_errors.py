"""The error corpus: every file in tests/unit/invalid/ is a program outside the language.

Each starts with `# expect: LINE:COL MESSAGE` (COL 1-based, as printed) and may say `# target: NAME`.
Compiling it must raise a CompileError (never an internal error or a raw exception) located exactly
there, through the API and through the command line (exit 2, `file:line:col: error: ...`, the source
line and a caret under the column).
"""
from __future__ import annotations

import io
import re
import subprocess
import sys
from contextlib import redirect_stderr
from pathlib import Path

import pytest

from pybpfuring.compiler.frontend import builder as frontend
from pybpfuring.compiler.lower import function as lowering
from pybpfuring.cli import main as cli_main
from pybpfuring.compiler.driver import compile_functions, compile_module, load_module, programs_in
from pybpfuring.errors import CompileError, InternalCompilerError

CORPUS = Path(__file__).parent / "invalid"
FILES = sorted(CORPUS.glob("*.py"))
_EXPECT = re.compile(r"^# expect: (\d+):(\d+) (.+)$", re.M)
_TARGET = re.compile(r"^# target: (\w+)$", re.M)


def expectation(path: Path) -> tuple[int, int, str, str]:
    text = path.read_text()
    m = _EXPECT.search(text)
    assert m, f"{path.name} has no `# expect: LINE:COL MESSAGE` header"
    t = _TARGET.search(text)
    return int(m.group(1)), int(m.group(2)), m.group(3), t.group(1) if t else "op_bpf"


def test_corpus_is_large_enough() -> None:
    assert len(FILES) >= 40


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_error_is_located(path: Path) -> None:
    line, col, message, target = expectation(path)
    with pytest.raises(CompileError) as info:
        compile_module(path, target)
    err = info.value
    assert not isinstance(err, InternalCompilerError), err.render()
    assert err.loc is not None, err.render()
    assert Path(err.loc.file).resolve() == path.resolve()
    assert (err.loc.line, err.loc.col + 1) == (line, col), err.render()
    assert message in err.message


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_cli_prints_located_error(path: Path, tmp_path: Path) -> None:
    line, col, message, target = expectation(path)
    stderr = io.StringIO()
    with redirect_stderr(stderr):
        rc = cli_main(["compile", str(path), "--target", target, "-o", str(tmp_path / "out.o")])
    assert rc == 2
    out = stderr.getvalue().splitlines()
    head = f"{path.resolve()}:{line}:{col}: error: "
    assert out[0].startswith(head) and message in out[0][len(head):], out
    source_line = path.read_text().splitlines()[line - 1]
    assert out[1].strip() == source_line.strip()
    # The caret sits under column `col` of the (indentation-stripped) source line.
    indent = len(source_line) - len(source_line.lstrip())
    assert out[2] == "    " + " " * (col - 1 - indent) + "^"
    assert not (tmp_path / "out.o").exists()


def test_python_dash_m_entry_point(tmp_path: Path) -> None:
    """One real process: `python -m pybpfuring compile FILE` exits 2 with the located message."""
    path = CORPUS / "true_division.py"
    proc = subprocess.run([sys.executable, "-m", "pybpfuring", "compile", str(path), "-o",
                           str(tmp_path / "x.o")], capture_output=True, text=True,
                          cwd=Path(__file__).parents[2])
    assert proc.returncode == 2
    assert f"true_division.py:8:9: error: '/' is true division" in proc.stderr
    assert "Traceback" not in proc.stderr


ICE_SOURCE = """from pybpfuring.lang import *


@iouring_program
def prog(ctx: Ctx) -> int:
    x = ctx.wait_nr
    return OK
"""


@pytest.mark.parametrize("stage", ["frontend", "lowering"])
def test_internal_error_carries_python_location(stage: str, monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    """A bug of ours (here: an injected crash) is an InternalCompilerError at the statement being
    compiled, in both the frontend and the lowering, never a raw traceback."""
    def broken(*args: object) -> None:
        raise KeyError("boom")
    if stage == "frontend":
        monkeypatch.setattr(frontend.FunctionBuilder, "return_stmt", broken)
    else:
        monkeypatch.setattr(lowering.FunctionLowering, "assign", broken)
    path = tmp_path / f"ice_{stage}.py"
    path.write_text(ICE_SOURCE)
    with pytest.raises(InternalCompilerError) as info:
        compile_functions(programs_in(load_module(path)), cache=False)
    err = info.value
    assert err.loc is not None and Path(err.loc.file).name == path.name
    want = "return OK" if stage == "frontend" else "x = ctx.wait_nr"
    assert ICE_SOURCE.splitlines()[err.loc.line - 1].strip() == want
    assert "KeyError" in err.message and "pybpfuring bug" in err.render()
