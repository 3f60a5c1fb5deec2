"""`pybpfuring bench ...`: the benchmarks, which live beside the package in the repository (bench/)."""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from ..errors import PyBpfUringError


def run(args: argparse.Namespace) -> int:
    repo = Path(__file__).resolve().parents[2]
    if not (repo / "bench" / "__main__.py").is_file():
        raise PyBpfUringError("pybpfuring bench needs the repository checkout (its bench/ folder); "
                              "run it from a clone installed with `pip install -e .`")
    sys.path.insert(0, str(repo))  # first: a `bench` in the current directory must not shadow ours
    # bench/ is not part of the package (nor of the wheel): found on the path at run time.
    return importlib.import_module("bench.__main__").main(args.args)
