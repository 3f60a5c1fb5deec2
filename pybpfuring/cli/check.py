"""`pybpfuring check FILE.py`: load a program file into this kernel's verifier (target generic)."""
from __future__ import annotations

import argparse

from ..compiler.driver import compile_module
from ..loader.object import BpfObject


def add_parser(sub: argparse._SubParsersAction) -> None:
    k = sub.add_parser("check", help="load a program file into this kernel's verifier (target generic)")
    k.add_argument("file")
    k.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    elf = compile_module(args.file, target="generic")
    with BpfObject.open(elf) as obj:
        obj.load()
        for name, prog in obj.programs.items():
            print(f"{name}: verified by the running kernel ({prog.insn_count} instructions)")
    return 0
