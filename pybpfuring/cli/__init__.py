"""The `pybpfuring` command line (also `python -m pybpfuring`).

    pybpfuring compile FILE.py [-o OUT] [--force] [--target T] [--emit obj|ir|asm]
    pybpfuring disasm OBJ.o               BPF instructions interleaved with the Python source lines
    pybpfuring disasm POLICY.py           the cBPF of a policy file's @iouring_filter functions
    pybpfuring sandbox --policy P.py [--deny-rest] -- CMD   run CMD under io_uring filters
    pybpfuring check FILE.py              load into this kernel's verifier (target generic)
    pybpfuring run SCRIPT.py [ARGS...]    run an example's main(argv) on the default backend
    pybpfuring info                       which backends this machine supports, and why
    pybpfuring bench ...                  benchmarks (see docs/performance.md)
    pybpfuring vm ...                     the Linux 7.x QEMU guest (see docs/vm.md)
    pybpfuring trace [-- COMMAND]         io_uring tracepoints with bcc (see docs/trace.md)

A user mistake prints a located message and exits 2; nothing prints a traceback of ours.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from ..errors import CompileError, PyBpfUringError
from ..outputs import check_output, write_output
from ..compiler.targets import TARGETS

EXIT_USER_ERROR = 2


def _compile(args: argparse.Namespace) -> int:
    from ..compiler.cache_key import source_files
    from ..compiler.driver import emit_text, load_module, programs_in, compile_object
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


def _disasm(args: argparse.Namespace) -> int:
    if args.object.endswith(".py"):          # a policy file: its @iouring_filter functions as cBPF
        from ..filters.sandbox import disasm_policy
        sys.stdout.write(disasm_policy(args.object))
        return 0
    from pybpfuring.loader.disasm import disassemble_object
    sys.stdout.write(disassemble_object(args.object))
    return 0


def _check(args: argparse.Namespace) -> int:
    from pybpfuring.loader.object import BpfObject
    from ..compiler.driver import compile_module
    elf = compile_module(args.file, target="generic")
    with BpfObject.open(elf) as obj:
        obj.load()
        for name, prog in obj.programs.items():
            print(f"{name}: verified by the running kernel ({prog.insn_count} instructions)")
    return 0


def _run(args: argparse.Namespace) -> int:
    from .run import run_main
    return run_main([args.script, *args.args])


def _info(args: argparse.Namespace) -> int:
    from ..runtime.probe import describe_backends
    from ..filters.kernel import support_line
    print(describe_backends())
    print(support_line())
    from ..trace.bcc_env import support_line as trace_line
    print(trace_line())
    return 0


def _bench(args: argparse.Namespace) -> int:
    # The benchmarks live beside the package in the repository (bench/), not in the wheel.
    repo = Path(__file__).resolve().parents[2]
    if not (repo / "bench" / "__main__.py").is_file():
        raise PyBpfUringError("pybpfuring bench needs the repository checkout (its bench/ folder); "
                              "run it from a clone installed with `pip install -e .`")
    sys.path.insert(0, str(repo))  # first: a `bench` in the current directory must not shadow ours
    from bench.__main__ import main as bench_main  # type: ignore[import-not-found]
    return bench_main(args.args)


def _sandbox(args: argparse.Namespace) -> int:
    from ..filters.sandbox import sandbox_main
    return sandbox_main(args.args)


def _trace(args: argparse.Namespace) -> int:
    from ..trace.cli import trace_main
    return trace_main(args.args)


def _vm(args: argparse.Namespace) -> int:
    from ..vm.cli import vm_main
    return vm_main(args.args)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pybpfuring", description="io_uring BPF programs in Python")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compile", help="compile a program file to a BPF ELF object")
    c.add_argument("file")
    c.add_argument("-o", "--output", help="where to write (default FILE.bpf.o in the current directory)")
    c.add_argument("--force", action="store_true",
                   help="write even over an existing file pybpfuring did not write, or an input")
    c.add_argument("--target", default="op_bpf", choices=sorted(TARGETS))
    c.add_argument("--emit", default="obj", choices=["obj", "ir", "asm"])
    c.set_defaults(func=_compile)
    d = sub.add_parser("disasm", help="disassemble an object with its Python source lines")
    d.add_argument("object")
    d.set_defaults(func=_disasm)
    k = sub.add_parser("check", help="load a program file into this kernel's verifier (target generic)")
    k.add_argument("file")
    k.set_defaults(func=_check)
    r = sub.add_parser("run", help="run SCRIPT's main(argv) on the default backend")
    r.add_argument("script")
    r.add_argument("args", nargs=argparse.REMAINDER)
    r.set_defaults(func=_run)
    i = sub.add_parser("info", help="which backends this machine supports")
    i.set_defaults(func=_info)
    b = sub.add_parser("bench", help="benchmarks", add_help=False)
    b.add_argument("args", nargs=argparse.REMAINDER)
    b.set_defaults(func=_bench)
    s = sub.add_parser("sandbox", help="run a command under a policy of io_uring filters",
                       add_help=False)
    s.add_argument("args", nargs=argparse.REMAINDER)
    s.set_defaults(func=_sandbox)
    t = sub.add_parser("trace", help="what io_uring rings make the kernel do (bcc; docs/trace.md)",
                       add_help=False)
    t.add_argument("args", nargs=argparse.REMAINDER)
    t.set_defaults(func=_trace)
    v = sub.add_parser("vm", help="the Linux 7.x QEMU guest", add_help=False)
    v.add_argument("args", nargs=argparse.REMAINDER)
    v.set_defaults(func=_vm)
    return p


# Commands that hand all their arguments (their own --help included) to another parser.
_PASS_THROUGH = {"bench": _bench, "vm": _vm, "run": _run, "sandbox": _sandbox, "trace": _trace}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in _PASS_THROUGH and argv[0] != "run":
        args = argparse.Namespace(command=argv[0], args=argv[1:], func=_PASS_THROUGH[argv[0]])
    else:
        args = parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.func
    try:
        return handler(args)
    except PyBpfUringError as e:
        print(str(e), file=sys.stderr)
        return EXIT_USER_ERROR
    except (OSError, ValueError) as e:
        # Files that don't exist, bad arguments: say so in one line.
        print(f"pybpfuring {args.command}: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
