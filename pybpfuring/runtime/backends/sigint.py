"""Ctrl-C while a program runs as native code (the JIT, the native loop).

Python runs its SIGINT handler at the next bytecode, and during a native run that is inside a
helper callback (ctypes): a KeyboardInterrupt raised there is swallowed by ctypes ("Exception
ignored on calling ctypes callback"), the helper returns 0, and the run fails with a bogus fault
while Ctrl-C is lost. While a pump is running, `SigintDeferral` replaces the handler with one that,
during a run, only notes the signal; `raise_pending()` raises the KeyboardInterrupt once the run
is over and the request it ran is in a consistent state. Runs are short (the budget is at most
2^24 instructions), so Ctrl-C still lands within ~100 ms. Outside runs the previous handler runs
at once, as if nothing had been installed.
"""
from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class SigintDeferral:
    def __init__(self) -> None:
        self.in_run = False    # set around a native run by the backend
        self.pending = False

    @contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield   # signal handlers run in the main thread only: nothing to defer here
            return
        previous = signal.getsignal(signal.SIGINT)
        if not callable(previous):   # SIG_IGN, SIG_DFL or set outside Python: leave it alone
            yield
            return

        def handler(signum: int, frame: FrameType | None) -> None:
            if self.in_run:
                self.pending = True
            else:
                previous(signum, frame)

        signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
            self.in_run = False

    def raise_pending(self) -> None:
        """After a run: raise the KeyboardInterrupt that arrived during it, if any."""
        self.in_run = False
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt
