"""Named, time-bounded steps of the guest machinery, and the one error they raise.

Every long action (apt update, a download, building the initramfs, booting) is a *step* with a name
and a timeout, so a failure is one line that says which step broke and why, never a hang or a raw
traceback from our internals.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from pybpfuring.errors import PyBpfUringError


class VmError(PyBpfUringError):
    """A step of obtaining, building or running the guest failed; `step` names it."""

    def __init__(self, step: str, message: str, hint: str | None = None):
        self.step = step
        self.message = message
        self.hint = hint
        text = f"vm: step '{step}' failed: {message}"
        if hint:
            text += f"\nhint: {hint}"
        super().__init__(text)


class NoAptAccess(VmError):
    """apt could not reach the configured mirror: the machine truly cannot obtain the kernel."""


def progress(message: str) -> None:
    """One progress line on stderr (stdout stays free for command output)."""
    if os.environ.get("PYBPFURING_VM_QUIET") == "1":
        return
    print(f"[pybpfuring vm] {message}", file=sys.stderr, flush=True)


@contextmanager
def timed_step(name: str) -> Iterator[None]:
    """Print the start and the duration of a long step."""
    progress(f"{name} ...")
    start = time.monotonic()
    yield
    progress(f"{name}: done in {time.monotonic() - start:.1f} s")


def run_step(step: str, argv: Sequence[str | Path], timeout: float, cwd: Path | None = None,
             env: dict[str, str] | None = None, input_bytes: bytes | None = None
             ) -> subprocess.CompletedProcess[bytes]:
    """Run one external tool for `step`; a missing tool, a timeout or a non-zero exit is a VmError."""
    args = [str(a) for a in argv]
    try:
        proc = subprocess.run(args, cwd=cwd, env=env, input=input_bytes, capture_output=True,
                              timeout=timeout, check=False)
    except FileNotFoundError:
        raise VmError(step, f"the program '{args[0]}' is not installed",
                      "install the Debian packages listed in .ci/apt-packages.txt") from None
    except subprocess.TimeoutExpired:
        raise VmError(step, f"'{' '.join(args[:3])} ...' did not finish within {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise VmError(step, f"'{' '.join(args[:3])} ...' exited with status {proc.returncode}: "
                            f"{last_lines(proc.stderr or proc.stdout)}")
    return proc


def last_lines(output: bytes, count: int = 4) -> str:
    """The tail of a tool's output, enough to say why it failed."""
    lines = [ln for ln in output.decode(errors="replace").splitlines() if ln.strip()]
    return " | ".join(lines[-count:]) if lines else "(no output)"
