"""A frozen copy of the code a benchmark runs (pybpfuring/, bench/, examples/).

The working tree is shared with engineers who edit it while a benchmark runs for minutes: a worker
started mid-edit would import half-written files, and the QEMU guest, which reads the host's tree
over virtio-fs, gets ESTALE for files replaced under it. Every row of one table therefore runs the
same snapshot, taken once at the start into the run's private directory (bench/datafile.py), which is
removed at the end.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PARTS = ("pybpfuring", "bench", "examples")
ENV = "PYBPFURING_BENCH_TREE"


def take(parent: Path) -> Path:
    """Copy the code into a new directory under `parent` (a disk file system the guest also sees)."""
    root = Path(tempfile.mkdtemp(prefix="tree-", dir=parent))
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for part in PARTS:
        if (REPO / part).is_dir():
            shutil.copytree(REPO / part, root / part, ignore=ignore)
    return root


def current() -> Path:
    """The tree workers run: the snapshot if one was taken, else the working tree."""
    env = os.environ.get(ENV)
    return Path(env) if env else REPO

