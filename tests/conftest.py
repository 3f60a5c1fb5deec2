"""Test-wide set-up: the public runtime API is checked by typeguard in every test run.

The import hook must be installed before the first import of these modules, so it lives here, in the
top-level conftest that pytest loads before any test module. Only the public API modules are
instrumented: instrumenting the interpreter's hot loop would only measure typeguard.
"""
from __future__ import annotations

import os
import sys

from hypothesis import settings
from typeguard import TypeCheckError, TypeCheckMemo, config, install_import_hook

TYPECHECKED_MODULES = [
    "pybpfuring.runtime.model",
    "pybpfuring.uring.ring",
    "pybpfuring.uring.prep",
    "pybpfuring.loader.object",
    "pybpfuring.loader.maps",
]

_already = [m for m in TYPECHECKED_MODULES if m in sys.modules]
if _already:  # pragma: no cover - a plugin imported them first: say so rather than check nothing
    raise RuntimeError(f"typeguard cannot instrument modules imported before tests/conftest.py: {_already}")


def _raise_type_error(exc: TypeCheckError, memo: TypeCheckMemo) -> None:
    # Users see a TypeError naming the argument, as a C extension's API would raise.
    raise TypeError(str(exc)) from None


config.typecheck_fail_callback = _raise_type_error
install_import_hook(TYPECHECKED_MODULES)


# Every hypothesis test draws the same examples each run (per version of the test): a red run then
# means a change broke something, not that a new random example was drawn. PYBPFURING_FUZZ=1 draws
# new ones (hunting for bugs; the fixed seeds of tests/security go random too).
settings.register_profile("fixed", derandomize=True, print_blob=True)
if os.environ.get("PYBPFURING_FUZZ") != "1":
    settings.load_profile("fixed")
