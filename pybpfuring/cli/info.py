"""`pybpfuring info`: which backends, filters and tracing this machine supports, and why."""
from __future__ import annotations

import argparse

from ..filters.kernel import support_line as filter_line
from ..runtime.probe import describe_backends
from ..trace.bcc_env import support_line as trace_line


def add_parser(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("info", help="which backends this machine supports").set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print(describe_backends())
    print(filter_line())
    print(trace_line())
    return 0
