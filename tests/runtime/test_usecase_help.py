"""Every use-case example runs as a script and answers --help (without touching a ring)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("example", ["lookup.py", "fanout_collect.py", "tcp_echo.py", "tcp_proxy.py",
                                     "splice_records.py"])
def test_usecase_example_help(example: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, str(ROOT / "examples" / example), "--help"],
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage:") and "--backend" in out.stdout
