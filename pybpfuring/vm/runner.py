"""Run a command of this project inside the guest, with the host's Python and packages.

The guest sees the host's root file system, so the same interpreter (`sys.executable`), the same
site-packages (llvmlite, pyelftools, pytest ...) and the same working tree are used, unchanged.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from pybpfuring.vm.cache import cache_dir
from pybpfuring.vm.image import SCRATCH_MOUNT, Job
from pybpfuring.vm.kernel import ensure_artifacts
from pybpfuring.vm.qemu import GuestResult, MachineConfig, run_job

DEFAULT_TIMEOUT = 900.0
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Host variables worth carrying into the guest (the rest of the host environment is not).
PASSED_THROUGH = ("PYTHONPATH", "PYTHONHASHSEED", "HYPOTHESIS_PROFILE", "LANG", "CI", "PYBPFURING_FUZZ")


def guest_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The job's environment: the host interpreter first on PATH, and where things are."""
    # The interpreter's own directory first (a virtual environment's bin/, whose python3 sees
    # its packages), then the directory of the interpreter it links to.
    dirs = dict.fromkeys([str(Path(sys.executable).absolute().parent),
                          str(Path(sys.executable).resolve().parent)])
    env = {k: os.environ[k] for k in PASSED_THROUGH if k in os.environ}
    env.update({
        "PATH": ":".join([*dirs, SYSTEM_PATH]),
        "HOME": "/root",
        "PYBPFURING_IN_GUEST": "1",
        # The cache root (vm/ below it holds sid's bpftool/libbpf, which the guest reads).
        "PYBPFURING_CACHE": str(cache_dir().parent),
        "PYBPFURING_SCRATCH": SCRATCH_MOUNT,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "TERM": "dumb",  # the serial console is a tty, but its output is read by a program
    })
    env.update(extra or {})
    return env


def run_in_guest(argv: list[str], cwd: str | Path | None = None, timeout: float = DEFAULT_TIMEOUT,
                 on_line: Callable[[str], None] | None = None, env: dict[str, str] | None = None,
                 config: MachineConfig | None = None) -> GuestResult:
    """Boot the guest, run `argv` (as root, in `cwd`, default the current directory), power off."""
    manifest = ensure_artifacts()
    job = Job(argv=list(argv), cwd=str(Path(cwd or os.getcwd()).resolve()), env=guest_env(env))
    return run_job(manifest, job, timeout, config, on_line)


def guest_shell(timeout: float = 4 * 3600.0) -> int:
    """An interactive root shell in the guest on this terminal."""
    manifest = ensure_artifacts()
    # -i, not -l: a login shell's /etc/profile would reset PATH (the host interpreter comes first)
    job = Job(argv=["/bin/bash", "-i"], cwd=os.getcwd(), env=guest_env({"PS1": r"guest:\w# "}))
    return run_job(manifest, job, timeout, None, None, mode="shell").exit_status
