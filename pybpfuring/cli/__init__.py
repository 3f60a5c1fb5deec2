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

One module per command (cli/compile.py, ...); `sandbox`, `trace` and `vm` hand their arguments
to their own parsers. A user mistake prints a located message and exits 2; nothing prints a traceback of ours.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from ..errors import PyBpfUringError
from ..filters.sandbox import sandbox_main
from ..trace.cli import trace_main
from ..vm.cli import vm_main
from . import bench, check, compile as compile_cmd, disasm, info, run

EXIT_USER_ERROR = 2

# Commands that hand all their arguments (their own --help included) to another parser.
_PASS_THROUGH: dict[str, Callable[[argparse.Namespace], int]] = {
    "bench": bench.run,
    "sandbox": lambda args: sandbox_main(args.args),
    "trace": lambda args: trace_main(args.args),
    "vm": lambda args: vm_main(args.args),
}
_HELP = {"bench": "benchmarks", "sandbox": "run a command under a policy of io_uring filters",
         "trace": "what io_uring rings make the kernel do (bcc; docs/trace.md)",
         "vm": "the Linux 7.x QEMU guest"}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pybpfuring", description="io_uring BPF programs in Python")
    sub = p.add_subparsers(dest="command", required=True)
    for command in (compile_cmd, disasm, check, run, info):
        command.add_parser(sub)
    for name, handler in _PASS_THROUGH.items():
        c = sub.add_parser(name, help=_HELP[name], add_help=False)
        c.add_argument("args", nargs=argparse.REMAINDER)
        c.set_defaults(func=handler)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in _PASS_THROUGH:
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
