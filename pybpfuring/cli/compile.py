"""`pybpfuring compile FILE.py [-o OUT] [--force] [--target T] [--emit obj|ir|asm]`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..compiler.cache_key import source_files
from ..compiler.driver import compile_object, emit_text, load_module, programs_in
from ..compiler.targets import TARGETS
from ..errors import CompileError
from ..outputs import check_output, write_output


def add_parser(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("compile", help="compile a program file to a BPF ELF object")
    c.add_argument("file")
    c.add_argument("-o", "--output", help="where to write (default FILE.bpf.o in the current directory)")
    c.add_argument("--force", action="store_true",
                   help="write even over an existing file pybpfuring did not write, or an input")
    c.add_argument("--target", default="op_bpf", choices=sorted(TARGETS))
    c.add_argument("--emit", default="obj", choices=["obj", "ir", "asm"])
    c.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    module = load_module(args.file)
    progs = programs_in(module)
    if not progs:
        raise CompileError(f"{args.file} defines no @iouring_program or @loop_step functions")
    # Never write over the program, a module it imports, or a file that is not ours (docs/security.md).
    inputs = [args.file, *source_files(progs)]
    if args.emit in ("ir", "asm"):
        if args.output:
            check_output(args.output, inputs, args.force)
        text = emit_text(progs, args.target, args.emit)
        if args.output:
            write_output(args.output, text)
        else:
            sys.stdout.write(text)
        return 0
    out = args.output or str(Path(args.file).with_suffix(".bpf.o").name)
    check_output(out, inputs, args.force)
    elf = compile_object(progs, args.target)
    write_output(out, elf)
    print(f"{out}: {len(progs)} program(s) ({', '.join(p.name for p in progs)}), target {args.target}, "
          f"{len(elf)} bytes")
    return 0
