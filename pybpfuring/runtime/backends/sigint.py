"""Ctrl-C while a program runs as native code (the JIT, the native loop).

Python runs its SIGINT handler at the next bytecode, and during a native run that is inside a
helper callback (ctypes): a KeyboardInterrupt raised there is swallowed by ctypes ("Exception
ignored on calling ctypes callback"), the helper returns 0, and the run fails with a bogus fault
while Ctrl-C is lost. So, the first time a ring's event loop runs in the main thread, Python's
default SIGINT handler is replaced (once per process) by one that, while the main thread is in a
run, only notes the signal; `leave_run()` raises the KeyboardInterrupt once the run is over and its
request is in a consistent state. Runs are short (a budget of at most 2^24 instructions), so Ctrl-C
still lands within ~100 ms. Outside runs it does what the default handler does. A handler the
application installed itself is left alone (and then Ctrl-C behaves as it did before).

Installing is done once, not per call: `signal.signal` costs ~17 µs, more than a whole QD1 step of
the native loop. The check before each run reads the handler with `_signal.getsignal` (20 ns):
`signal.getsignal` converts the result to an enum (1.9 µs), which was 14% of a QD1 lookup's time.
"""
from __future__ import annotations

import signal
import threading
from types import FrameType

from _signal import getsignal as _raw_getsignal   # signal.getsignal without its enum conversion

_MAIN = threading.main_thread().ident


class SigintDeferral:
    def __init__(self) -> None:
        self._in_run = False
        self._pending = False

    def ensure_installed(self) -> None:
        """Put our handler in place of Python's default one (main thread only; cheap when done)."""
        if threading.get_ident() != _MAIN:
            return
        if _raw_getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, self._handler)

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self._in_run:
            self._pending = True
        else:
            signal.default_int_handler(signum, frame)

    def enter_run(self) -> None:
        if threading.get_ident() == _MAIN:
            self._in_run = True

    def run_interruptible(self) -> None:
        """The rest of this run may take Ctrl-C at once (the interpreter's own run)."""
        if threading.get_ident() == _MAIN:
            self._in_run = False

    def leave_run(self) -> None:
        """After a run: raise the KeyboardInterrupt that arrived during it, if any."""
        if threading.get_ident() != _MAIN:
            return
        self._in_run = False
        if self._pending:
            self._pending = False
            raise KeyboardInterrupt


SIGINT_DEFERRAL = SigintDeferral()
