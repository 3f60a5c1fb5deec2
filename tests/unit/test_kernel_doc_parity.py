"""docs/kernel.md's parity table lists every case of the guest parity suite (and nothing else), so
the page says what is compared between the backends."""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_parity_table_lists_every_case() -> None:
    sys.path.insert(0, str(ROOT / "tests" / "guest"))
    try:
        from parity_cases import CASES
    finally:
        sys.path.remove(str(ROOT / "tests" / "guest"))
    text = (ROOT / "docs" / "kernel.md").read_text()
    section = text.split("### Parity", 1)[1].split("\n### ", 1)[0]
    listed = re.findall(r"^\| `(\w+)` \|", section, re.M)
    assert listed == list(CASES), (set(CASES) ^ set(listed))
