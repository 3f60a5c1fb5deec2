"""Helpers of the security tier: another local user (nobody) who plants files where root will look.

The hostile files are created by a real unprivileged process (`setpriv --reuid=65534 ...`), so their
owner and modes are what an attacker would produce, not what root pretends they would be.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534
SETPRIV = shutil.which("setpriv")

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the threat is a root tool; these tests run as root")
needs_setpriv = pytest.mark.skipif(SETPRIV is None, reason="setpriv (util-linux) is not installed")


def as_nobody(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run `argv` as uid/gid 65534 with no supplementary groups; fails the test if it fails."""
    assert SETPRIV is not None
    proc = subprocess.run([SETPRIV, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv],
                          capture_output=True, text=True, timeout=60, **kwargs)  # type: ignore[call-overload]
    assert proc.returncode == 0, f"{argv} as nobody failed: {proc.stderr}"
    return proc


def nobody_sh(script: str) -> None:
    """A shell script run as nobody (e.g. `mkdir`, `ln -s`, `printf > file`)."""
    as_nobody(["/bin/sh", "-ec", script])


@contextmanager
def shared_dir() -> Iterator[Path]:
    """A world-writable sticky directory (like /tmp) under a fresh private name, removed afterwards.

    pytest's own tmp_path sits under a 0700 folder nobody cannot enter."""
    path = Path(tempfile.mkdtemp(prefix="pbu-shared-"))
    os.chmod(path, 0o1777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def pybpfuring(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
               timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`python3 -m pybpfuring ARGS` as the user would type it (this checkout first on the path)."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "pybpfuring", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
