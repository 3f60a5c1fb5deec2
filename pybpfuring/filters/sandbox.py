"""`pybpfuring sandbox --policy policy.py [--deny-rest] -- COMMAND [ARGS...]`: apply a policy file's
filters to this process (task filters, inherited by every child) and exec the command.

A policy file is Python that defines `@iouring_filter` functions (all of them are applied, in the
order they are defined) or a list `POLICY` of them (then only those). `--deny-rest` also denies every
opcode no filter names. The command then runs with io_uring allowed, within the policy.
`pybpfuring disasm policy.py` prints each filter's cBPF with its Python lines.
"""
from __future__ import annotations

import argparse
import os
import shutil

from ..compiler.driver import load_module
from .decorator import IouringFilter
from .kernel import FilterError, restrict_task


def policy_filters(path: str) -> list[IouringFilter]:
    module = load_module(path)
    listed = getattr(module, "POLICY", None)
    if listed is not None:
        filters = list(listed)
        bad = [f for f in filters if not isinstance(f, IouringFilter)]
        if bad:
            raise FilterError(f"{path}: POLICY holds {bad[0]!r}, not an @iouring_filter function")
    else:
        filters = [v for v in vars(module).values() if isinstance(v, IouringFilter)]
    if not filters:
        raise FilterError(f"{path} defines no @iouring_filter functions (and no POLICY list)")
    return filters


def disasm_policy(path: str) -> str:
    out = []
    for f in policy_filters(path):
        comp = f.compiled
        out.append(f"filter {f.fn.__name__} (opcodes {', '.join(map(str, f.opcodes))}): "
                   f"{len(comp.program)} instructions ({comp.unoptimized_len} before peephole)")
        out.append(comp.disasm())
        out.append("")
    return "\n".join(out)


def sandbox_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="pybpfuring sandbox",
                                description="run COMMAND under a policy of io_uring filters")
    p.add_argument("--policy", required=True, help="a Python file with @iouring_filter functions")
    p.add_argument("--deny-rest", action="store_true",
                   help="deny every io_uring opcode the policy does not name")
    p.add_argument("--no-new-privs", action="store_true",
                   help="set PR_SET_NO_NEW_PRIVS (required without CAP_SYS_ADMIN)")
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        p.error("no COMMAND given (pybpfuring sandbox --policy P.py -- COMMAND ARGS...)")
    exe = shutil.which(cmd[0])
    if exe is None:
        raise FilterError(f"sandbox: command not found: {cmd[0]}")
    restrict_task(policy_filters(args.policy), deny_rest=args.deny_rest,
                  no_new_privs=args.no_new_privs)
    os.execv(exe, cmd)
    return 127   # not reached
