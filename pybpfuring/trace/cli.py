"""`pybpfuring trace [--pid PID] [--ring FD] [--interval S] [--duration S] [--json] [-- COMMAND]`.

Attaches the bcc program of program.py to the io_uring tracepoints and prints, per interval, what the
kernel did for the traced rings (docs/trace.md). With a COMMAND, it is started stopped (before exec),
traced by its pid from its first system call, and the trace ends when it exits (its exit status is
the trace's); otherwise the trace runs until Ctrl-C or --duration.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from typing import Any

from pybpfuring.errors import PyBpfUringError

from .bcc_env import TraceUnavailable, setup_bcc
from .proginfo import StructOpsWatch
from .report import Snapshot, diff, render_json, render_text
from .session import snapshot as _snapshot
from .unload import load_program, settle

EXIT_UNAVAILABLE = 3
# Seconds between looks for new struct_ops programs (and a COMMAND's exit): live programs' counts per
# interval. One unloaded before a look is counted by the unload probe (unload.py); without that probe
# (it says why on stderr), a program living less than this can be missed.
SCAN_PERIOD = 0.01
# Waits for the tracer's go (one byte, or EOF if the tracer died), then becomes the command.
_LAUNCHER = ("import os, sys\n"
             "fd = int(sys.argv[1])\n"
             "go = os.read(fd, 1)\n"
             "os.close(fd)\n"
             "if go != b'g':\n"
             "    sys.exit(125)\n"
             "try:\n"
             "    os.execvp(sys.argv[2], sys.argv[2:])\n"
             "except OSError as err:\n"
             "    print(f'pybpfuring trace: cannot run {sys.argv[2]}: {err.strerror}', file=sys.stderr)\n"
             "    sys.exit(127)\n")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pybpfuring trace", description="What io_uring rings make the "
                                "kernel do: bcc on the io_uring tracepoints (docs/trace.md).")
    p.add_argument("--pid", type=int, help="trace only the rings this process submits to")
    p.add_argument("--ring", type=int, metavar="FD", help="only the ring with this fd in that process")
    p.add_argument("--interval", type=float, default=1.0, metavar="S", help="seconds per report")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    p.add_argument("--json", action="store_true", help="one JSON object per interval, then the total")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ARGS: run and trace it")
    return p


def trace_main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    try:
        _check_args(args, command)
        setup = setup_bcc()
    except TraceUnavailable as err:
        print(str(err), file=sys.stderr)
        return EXIT_UNAVAILABLE
    except PyBpfUringError as err:
        print(f"pybpfuring trace: {err}", file=sys.stderr)
        return 2
    print(f"pybpfuring trace: kernel headers from {setup.headers}", file=sys.stderr)
    return _Tracer(setup.bcc, args, command).run()


def _check_args(args: argparse.Namespace, command: list[str]) -> None:
    if args.interval <= 0:
        raise PyBpfUringError("--interval must be a positive number of seconds")
    if args.ring is not None and args.pid is None and not command:
        raise PyBpfUringError("--ring FD names a ring of one process: give --pid PID or a COMMAND")
    if args.pid is not None and command:
        raise PyBpfUringError("give --pid or a COMMAND, not both")
    if args.pid is not None and not os.path.isdir(f"/proc/{args.pid}"):
        raise PyBpfUringError(f"no process {args.pid}")


class _Tracer:
    def __init__(self, bcc: Any, args: argparse.Namespace, command: list[str]) -> None:
        self.bcc, self.args, self.command = bcc, args, command
        self.child: subprocess.Popen[bytes] | None = None
        self._go: int | None = None
        self.watch: StructOpsWatch | None = None

    def _start_child(self) -> int:
        """The command's process, held until the probes are attached: a small launcher reads one
        byte from a pipe, then execs the command in place (same pid). (Holding it in preexec_fn
        would deadlock: Popen waits for the exec.)"""
        read_end, self._go = os.pipe()
        os.set_inheritable(read_end, True)
        self.child = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(read_end), *self.command],
                                      pass_fds=(read_end,))
        os.close(read_end)
        return self.child.pid

    def _release_child(self) -> None:
        if self._go is not None:
            os.write(self._go, b"g")
            os.close(self._go)
            self._go = None

    def run(self) -> int:
        pid = self._start_child() if self.command else self.args.pid
        try:
            b, why = load_program(self.bcc, pid, self.args.ring)
        except Exception as err:   # bcc raises bare Exception when its clang fails
            self._abort_child()
            print(f"pybpfuring trace: bcc could not compile or attach the tracing program: {err}",
                  file=sys.stderr)
            return EXIT_UNAVAILABLE
        if why is not None:
            print(f"pybpfuring trace: struct_ops programs unloaded between two looks "
                  f"({SCAN_PERIOD * 1000:.0f} ms) are missed: {why}", file=sys.stderr)
        watch = self.watch = StructOpsWatch(pid)
        try:
            return self._loop(b, watch)
        finally:
            watch.close()
            b.cleanup()

    def _abort_child(self) -> None:
        if self.child is not None:
            self.child.kill()
            if self._go is not None:     # the launcher is gone: no go byte, just close
                os.close(self._go)
                self._go = None
            self.child.wait()

    def _loop(self, b: Any, watch: StructOpsWatch) -> int:
        hist_printer = _log2_printer(self.bcc)
        first = last = Snapshot()
        t0 = last_t = time.time()
        self._release_child()
        status = 0
        end = None if self.args.duration is None else t0 + self.args.duration
        try:
            while True:
                done = self._sleep(end)
                now = time.time()
                snap = _snapshot(b, watch)
                self._emit(diff(last, snap, last_t, now - last_t), hist_printer)
                last, last_t = snap, now
                if done:
                    break
        except KeyboardInterrupt:
            if self.child is not None:
                self.child.send_signal(signal.SIGINT)
                self.child.wait()
        if self.child is not None:
            status = self.child.wait()
            settle(b, set(watch.fds))      # its closed rings' programs, freed a little later
            last = _snapshot(b, watch)
        self._emit(diff(first, last, t0, time.time() - t0, total=True), hist_printer)
        return status

    def _sleep(self, end: float | None) -> bool:
        """Wait one interval; True once the command exited or the duration is over."""
        deadline = time.time() + self.args.interval
        if end is not None:
            deadline = min(deadline, end)
        while time.time() < deadline:
            if self.child is not None and self.child.poll() is not None:
                return True
            # A struct_ops program may live for less than an interval: take an fd on it early, so
            # its run count stays readable after its process closed it.
            if self.watch is not None:
                self.watch.scan()
            time.sleep(min(SCAN_PERIOD, max(deadline - time.time(), 0)))
        return end is not None and time.time() >= end

    def _emit(self, interval: Any, hist_printer: Any) -> None:
        text = render_json(interval) if self.args.json else render_text(interval, hist_printer)
        print(text, flush=True)
        if not self.args.json:
            print(flush=True)


def _log2_printer(bcc: Any) -> Any:
    """bcc's own log2 histogram printer (the layout of biolatency & co.)."""
    printer = getattr(getattr(bcc, "table", None), "_print_log2_hist", None)
    if printer is None:
        raise TraceUnavailable("pybpfuring trace: this bcc has no log2 histogram printer "
                               "(bcc.table._print_log2_hist); install Debian's python3-bpfcc")
    return lambda slots, unit: printer(slots, unit, None)
