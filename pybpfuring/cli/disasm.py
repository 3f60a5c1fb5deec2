"""`pybpfuring disasm OBJ.o` (BPF with the Python source lines) or `disasm POLICY.py` (the cBPF of a
policy file's @iouring_filter functions)."""
from __future__ import annotations

import argparse
import sys

from ..filters.sandbox import disasm_policy
from ..loader.disasm import disassemble_object


def add_parser(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("disasm", help="disassemble an object with its Python source lines")
    d.add_argument("object")
    d.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.object.endswith(".py"):
        sys.stdout.write(disasm_policy(args.object))
    else:
        sys.stdout.write(disassemble_object(args.object))
    return 0
