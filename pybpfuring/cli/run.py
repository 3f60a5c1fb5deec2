"""`pybpfuring run FILE.py [args...]`: run an example script's `main(argv)` (argv = the args after FILE).

The script is imported as a module (so its @iouring_program functions compile with their source
file), its directory is put first on sys.path (so it can import its neighbours), and `main(args)`'s
int is the exit status. A script without `main` is run as `__main__` instead.
"""
from __future__ import annotations

import argparse
import os
import runpy
import sys

from ..compiler.driver import load_module
from ..errors import PyBpfUringError


def run(args: argparse.Namespace) -> int:
    return run_main([args.script, *args.args])


def add_parser(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("run", help="run SCRIPT's main(argv) on the default backend")
    r.add_argument("script")
    r.add_argument("args", nargs=argparse.REMAINDER)
    r.set_defaults(func=run)


def run_main(argv: list[str]) -> int:
    """argv = [FILE.py, args...]; returns the exit status."""
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: pybpfuring run FILE.py [ARGS...]\n  runs FILE's main(ARGS) "
              "(or the file as a script when it has no main)", file=sys.stderr)
        return 2 if not argv else 0
    path = argv[0]
    if not os.path.isfile(path):
        print(f"pybpfuring run: no such file: {path}", file=sys.stderr)
        return 2
    directory = os.path.dirname(os.path.abspath(path))
    old_argv, old_path = sys.argv, list(sys.path)
    sys.argv = [path, *argv[1:]]
    sys.path.insert(0, directory)
    try:
        module = load_module(path, exit_is_error=False)
        main = getattr(module, "main", None)
        if callable(main):
            status = main(list(argv[1:]))
            return status if isinstance(status, int) else 0
        runpy.run_path(path, run_name="__main__")
        return 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except PyBpfUringError as exc:
        print(f"pybpfuring run: {exc}", file=sys.stderr)
        return 1
    finally:
        sys.argv, sys.path[:] = old_argv, old_path
