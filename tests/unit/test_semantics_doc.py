"""docs/semantics.md names, for each rule, the tests that check it: every test it names exists (a
renamed or deleted test must not leave a rule pointing at nothing), and every parity case it names
is a case of the guest parity suite."""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEXT = (ROOT / "docs" / "semantics.md").read_text()


def _functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}


def test_named_tests_exist() -> None:
    named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", TEXT)
    assert len(named) >= 20
    missing = [f"{f}::{t}" for f, t in named
               if not (ROOT / f).is_file() or t not in _functions(ROOT / f)]
    assert not missing, missing


def test_named_parity_cases_exist() -> None:
    sys.path.insert(0, str(ROOT / "tests" / "guest"))
    try:
        from parity_cases import CASES
    finally:
        sys.path.remove(str(ROOT / "tests" / "guest"))
    named = set()
    for group in re.findall(r"parity ((?:`\w+`(?:,\s*)?)+)", TEXT):
        named |= set(re.findall(r"`(\w+)`", group))
    assert len(named) >= 12
    assert named <= set(CASES), named - set(CASES)
