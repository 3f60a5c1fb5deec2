"""`python -m bench cp|nops|compile|all` (also `pybpfuring bench ...`): see bench/__init__.py."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from pybpfuring.outputs import write_atomic

from bench import datafile, report, snapshot
from bench.guest import GUEST_OUT, run_guest
from bench.measure import stderr_log

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "docs" / "results"
SIZE_SUFFIX = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(text: str) -> int:
    """'1G', '256M', '4096' -> bytes; a positive multiple of 4 KiB."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = t[-1:] if t[-1:] in SIZE_SUFFIX else ""
    try:
        n = int(float(t[:len(t) - len(unit)]) * SIZE_SUFFIX[unit])
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 1G, 256M, 65536)") from None
    if n <= 0 or n % 4096:
        raise argparse.ArgumentTypeError(f"size {text!r} must be a positive multiple of 4 KiB")
    return n


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {n}")
    return n


def _common(p: argparse.ArgumentParser, runs: int) -> None:
    p.add_argument("--runs", type=_positive, default=runs, help=f"timed runs per row (default {runs})")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    p.add_argument("--where", choices=["host", "guest", "both", "here"], default="both",
                   help="host, the Linux 7.x QEMU guest (pybpfuring vm), or both (default)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory for JSON/MD/PNG "
                   "(default docs/results)")
    p.add_argument("--no-write", action="store_true", help="print the table only")
    p.add_argument("--no-syscalls", action="store_true", help="skip counting syscalls")
    p.add_argument("--no-kernel-trace", action="store_true", help="skip the kernel-side counts "
                   "(pybpfuring trace, where bcc runs: the guest) of the in-kernel rows")
    p.add_argument("--only", default="", help="comma-separated row ids to run (default: all)")
    p.add_argument("--json-only", type=Path, help=argparse.SUPPRESS)  # the guest's half of --where


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pybpfuring bench", description="pybpfuring's benchmarks "
                                "(method and numbers: docs/performance.md)")
    sub = p.add_subparsers(dest="bench", required=True)
    cp = sub.add_parser("cp", help="4 KiB QD1 copy of a cached file to /dev/zero (the talk's table)")
    cp.add_argument("--size", type=parse_size, default=parse_size("1G"), help="host copy size (1G)")
    cp.add_argument("--guest-size", type=parse_size, default=parse_size("256M"),
                    help="copy size in the TCG guest, ~12x slower than the host (256M)")
    cp.add_argument("--emulated-size", type=parse_size, default=parse_size("128M"),
                    help="cap for the emulated row on the host (128M)")
    cp.add_argument("--guest-emulated-size", type=parse_size, default=parse_size("16M"),
                    help="cap for the emulated row in the guest (16M)")
    cp.add_argument("--data-dir", type=Path, help="where the run's private directory (source files, "
                    "code snapshot) is made and removed again: not tmpfs (default /var/tmp; "
                    "/scratch/bench in the guest)")
    _common(cp, 5)
    nops = sub.add_parser("nops", help="a chain of N NOPs: BPF-driven vs user space (Python, C)")
    nops.add_argument("--count", type=_positive, default=100_000, help="NOPs per run on the host")
    nops.add_argument("--guest-count", type=_positive, default=20_000, help="NOPs per run in the guest")
    nops.add_argument("--emulated-count", type=_positive, default=20_000,
                      help="cap for the emulated row (host; a tenth of it in the guest)")
    _common(nops, 5)
    sub.add_parser("compile", help="the compiler benchmark (bench/compile.py; its own options)")
    sub.add_parser("usecases", help="the use-case programs beside Python, asyncio and C "
                   "(bench/usecases.py; its own options)")
    rend = sub.add_parser("report", help="re-render the markdown and PNG of a results JSON")
    rend.add_argument("json", type=Path)
    al = sub.add_parser("all", help="cp, nops and compile with their defaults")
    _common(al, 5)
    return p


def _measure_here(args: argparse.Namespace, data: Path, guest: bool) -> dict:
    only = tuple(filter(None, args.only.split(",")))
    if args.bench == "cp":
        from bench.cp.run import CpOptions, measure_cp
        return measure_cp(CpOptions(size=args.guest_size if guest else args.size, runs=args.runs,
                                    emulated_size=args.guest_emulated_size if guest else args.emulated_size,
                                    data_dir=data, count_syscalls=not args.no_syscalls,
                                    kernel_trace=not args.no_kernel_trace,
                                    warmup=args.warmup, only=only), stderr_log)
    from bench.nops.run import NopsOptions, measure_nops
    return measure_nops(NopsOptions(count=args.guest_count if guest else args.count, runs=args.runs,
                                    emulated_count=args.emulated_count // (10 if guest else 1),
                                    count_syscalls=not args.no_syscalls,
                                    kernel_trace=not args.no_kernel_trace, warmup=args.warmup, only=only),
                        stderr_log)


def _guest_argv(argv: list[str]) -> list[str]:
    """This command again, for the guest: measure there, write JSON to the scratch disk."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in ("--where", "--out", "--json-only"):
            skip = True
            continue
        if a.startswith(("--where=", "--out=", "--json-only=")) or a == "--no-write":
            continue
        out.append(a)
    return [sys.executable, "-m", "bench", *out, "--where", "here", "--json-only", GUEST_OUT]


def run_table(args: argparse.Namespace, argv: list[str]) -> int:
    """Measure where asked, print the markdown, write the files; the code runs from a snapshot.

    On the host everything a run writes (the code snapshot the guest also reads, the source files)
    lives in one private directory (datafile.private_run_dir), removed when the run ends."""
    guest_data = datafile.guest_dir()
    if guest_data is not None:
        return _run_table(args, argv, snapshot.current(), guest_data)
    with datafile.private_run_dir(getattr(args, "data_dir", None)) as work:
        data = work / "data"
        datafile.prepare_dir(data)  # refuses tmpfs before anything is copied
        if os.environ.get(snapshot.ENV):
            return _run_table(args, argv, snapshot.current(), data)
        tree = snapshot.take(work)
        os.environ[snapshot.ENV] = str(tree)
        try:
            return _run_table(args, argv, tree, data)
        finally:
            del os.environ[snapshot.ENV]


def _run_table(args: argparse.Namespace, argv: list[str], tree: Path, data: Path) -> int:
    in_guest_now = bool(os.environ.get("PYBPFURING_IN_GUEST"))
    if args.json_only:
        table = _measure_here(args, data, guest=in_guest_now)
        write_atomic(args.json_only, json.dumps(table, indent=1))
        return 0
    tables = []
    if args.where in ("host", "both", "here"):
        stderr_log(f"[bench {args.bench}] measuring on this machine")
        tables.append(_measure_here(args, data, guest=in_guest_now))
    if args.where in ("guest", "both"):
        stderr_log(f"[bench {args.bench}] measuring in the Linux 7.x QEMU guest (TCG; slow)")
        tables.append(run_guest(_guest_argv(argv), tree, stderr_log))
    doc = report.document(args.bench, tables, ["pybpfuring", "bench", *argv])
    print(report.markdown(doc))
    if not args.no_write:
        for path in report.write_outputs(doc, args.out):
            stderr_log(f"[bench {args.bench}] wrote {path}")
    return 0


def run_compile(extra: list[str]) -> int:
    if not (REPO / "bench" / "compile.py").is_file():
        print("bench compile: not available: bench/compile.py does not exist yet", file=sys.stderr)
        return 0
    from bench import compile as compile_bench  # type: ignore[attr-defined]
    return int(compile_bench.main(extra) or 0)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["compile"]:  # its options (and --help) are bench/compile.py's own
        return run_compile(argv[1:])
    if argv[:1] == ["usecases"]:  # its options (and --help) are bench/usecases.py's own
        from bench import usecases
        return int(usecases.main(argv[1:]) or 0)
    args = parser().parse_args(argv)
    try:
        if args.bench == "report":
            doc = json.loads(args.json.read_text())
            print(report.markdown(doc))
            for path in report.write_outputs(doc, args.json.parent, json_too=False):
                stderr_log(f"[bench report] wrote {path}")
            return 0
        if args.bench == "all":
            common = argv[1:]
            return max(main(["cp", *common]), main(["nops", *common]), run_compile([]))
        return run_table(args, argv)
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a failure of the harness itself: one clear line, no traceback
        from bench.datafile import DataDirError
        kind = "" if isinstance(exc, DataDirError) else f"{type(exc).__name__}: "
        print(f"bench {args.bench}: error: {kind}{exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
