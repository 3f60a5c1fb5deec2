"""docs/language.md stays true: its complete examples (```python blocks) compile, and its error
example is what the compiler prints for the same program in the error corpus."""
from __future__ import annotations

import io
import re
from contextlib import redirect_stderr
from pathlib import Path

import pytest

from pybpfuring.cli import main as cli_main
from pybpfuring.compiler.driver import compile_module
from pybpfuring.loader.elf import read_elf

ROOT = Path(__file__).parents[2]
DOC = ROOT / "docs" / "language.md"
TEXT = DOC.read_text()
EXAMPLES = re.findall(r"```python\n(.*?)```", TEXT, re.S)


def test_doc_has_examples() -> None:
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_example_compiles(index: int, tmp_path: Path) -> None:
    path = tmp_path / f"language_example_{index}.py"
    path.write_text(EXAMPLES[index])
    elf = compile_module(path)
    names = set(re.findall(r"^def (\w+)\(ctx", EXAMPLES[index], re.M))
    assert names and names <= {s.name for s in read_elf(elf).symbols}


def test_error_example_is_what_the_compiler_prints() -> None:
    shown = re.search(r"```\n(prog\.py:.*?)```", TEXT, re.S).group(1).rstrip("\n")
    stderr = io.StringIO()
    corpus = ROOT / "tests" / "unit" / "invalid" / "true_division.py"
    with redirect_stderr(stderr):
        assert cli_main(["compile", str(corpus), "-o", "/dev/null"]) == 2
    printed = stderr.getvalue().rstrip("\n").replace(str(corpus), "prog.py")
    assert printed == shown
