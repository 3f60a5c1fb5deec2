"""Run a benchmark inside the Linux 7.x QEMU guest (pybpfuring.vm) and bring its table back.

The guest sees the host's root file system, so it runs this same tree with the same interpreter; the
C baselines are built on the host first (the guest reads them from the shared cache). The table is
written to the guest's scratch disk and read back by the host after the guest powers off.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import cbuild

GUEST_OUT = "/scratch/out/bench-table.json"
GUEST_TIMEOUT = 3 * 3600.0
C_SOURCES = ("cp/rw.c", "cp/uring.c", "nops/nops.c")


def run_guest(argv: list[str], tree: Path, log: Callable[[str], None],
              c_sources: tuple[str, ...] = C_SOURCES) -> dict[str, Any]:
    """The guest's table, or {"environment": "guest", "unavailable": reason}. `tree` is the code
    snapshot the guest runs (bench/snapshot.py: the live tree gives ESTALE over virtio-fs); the C
    baselines `c_sources` are built here first."""
    try:
        from pybpfuring.vm import run_in_guest
    except ImportError as exc:
        return {"environment": "guest", "unavailable": f"pybpfuring.vm cannot be imported: {exc}"}
    for source in c_sources:
        try:
            cbuild.build(source)
        except cbuild.BuildUnavailable:
            pass  # the guest reports the row as unavailable itself
    try:
        result = run_in_guest(argv, cwd=tree, timeout=GUEST_TIMEOUT, on_line=lambda s: log(f"  guest| {s}"))
    except Exception as exc:  # VmError, NoAptAccess, missing QEMU ...: the reason is the row
        return {"environment": "guest", "unavailable": f"{type(exc).__name__}: {exc}"}
    out = result.out_dir / Path(GUEST_OUT).name
    if result.exit_status != 0 or not out.is_file():
        return {"environment": "guest", "unavailable": f"the guest run exited {result.exit_status} "
                f"without a table (console log: {result.run_dir / 'console.log'})"}
    table: dict[str, Any] = json.loads(out.read_text())
    table["info"]["guest_boot_seconds"] = round(result.boot_seconds, 1)
    return table
