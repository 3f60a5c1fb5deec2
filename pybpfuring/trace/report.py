"""One interval of `pybpfuring trace`: the counts as a record, printed as text or one JSON line.

The kernel-side tables are cumulative (never cleared: clearing races with the events and would lose
some); each interval is the difference from the previous reading, done here.
"""
from __future__ import annotations

import contextlib
import io
import json
import time
from dataclasses import dataclass, field
from typing import Any

from pybpfuring.abi import uring as C

from .proginfo import ProgRuns
from .program import ENTERS, OVERFLOWS, TASK_ADDS, UNMATCHED, WORK_ITEMS, WORK_RUNS

OP_NAMES = {v: k.removeprefix("IORING_OP_") for k, v in vars(C).items()
            if k.startswith("IORING_OP_") and isinstance(v, int) and k != "IORING_OP_LAST"}


def op_name(op: int) -> str:
    return OP_NAMES.get(op, f"OP_{op}")


@dataclass
class Snapshot:
    """Cumulative counts read from the kernel tables at one moment."""

    ops: dict[int, tuple[int, int, int]] = field(default_factory=dict)   # op -> (sub, comp, err)
    counts: list[int] = field(default_factory=lambda: [0] * 6)
    hist: dict[tuple[int, int], int] = field(default_factory=dict)      # (op, slot) -> n
    progs: dict[int, ProgRuns] = field(default_factory=dict)


@dataclass
class Interval:
    """What happened between two snapshots."""

    start: float
    seconds: float
    ops: dict[int, tuple[int, int, int]]
    enters: int
    overflows: int
    task_adds: int
    work_runs: int
    work_items: int
    unmatched: int
    hist: dict[int, list[int]]           # op -> counts per log2 slot
    progs: list[ProgRuns]
    total: bool = False

    @property
    def completions(self) -> int:
        return sum(c for _, c, _ in self.ops.values()) + self.unmatched

    def enters_per_completion(self) -> float | None:
        return self.enters / self.completions if self.completions else None

    def as_json(self) -> dict[str, Any]:
        return {
            "time": round(self.start, 3), "seconds": round(self.seconds, 3), "total": self.total,
            "ops": {op_name(op): {"submitted": s, "completed": c, "errors": e,
                                  "latency_usecs_log2": _buckets(self.hist.get(op, []))}
                    for op, (s, c, e) in sorted(self.ops.items())},
            "completions": self.completions, "unmatched_completions": self.unmatched,
            "io_uring_enter": self.enters, "enters_per_completion": self.enters_per_completion(),
            "cq_overflows": self.overflows, "task_work_added": self.task_adds,
            "local_work_runs": self.work_runs, "local_work_items": self.work_items,
            "struct_ops": [{"prog_id": p.prog_id, "name": p.name, "runs": p.run_cnt,
                            "run_time_ns": p.run_time_ns, "unloaded": p.unloaded} for p in self.progs],
        }


def _buckets(slots: list[int]) -> list[list[int]]:
    """[[low, high, count], ...] of the non-empty log2 slots (slot k holds 2**(k-1) .. 2**k - 1)."""
    out = []
    for k, n in enumerate(slots):
        if n:
            out.append([0, 0, n] if k == 0 else [1 << (k - 1), (1 << k) - 1, n])
    return out


def diff(old: Snapshot, new: Snapshot, start: float, seconds: float, total: bool = False) -> Interval:
    ops = {}
    for op, (s, c, e) in new.ops.items():
        o = old.ops.get(op, (0, 0, 0))
        d = (s - o[0], c - o[1], e - o[2])
        if any(d):
            ops[op] = d
    hist: dict[int, list[int]] = {}
    for (op, slot), n in new.hist.items():
        d = n - old.hist.get((op, slot), 0)
        if d:
            row = hist.setdefault(op, [0] * 65)
            row[min(slot, 64)] += d
    cnt = [n - o for n, o in zip(new.counts, old.counts)]
    progs = []
    for pid, p in sorted(new.progs.items()):
        before = old.progs.get(pid)
        progs.append(ProgRuns(pid, p.name, p.run_cnt - (before.run_cnt if before else 0),
                              p.run_time_ns - (before.run_time_ns if before else 0), p.unloaded))
    return Interval(start, seconds, ops, cnt[ENTERS], cnt[OVERFLOWS], cnt[TASK_ADDS], cnt[WORK_RUNS],
                    cnt[WORK_ITEMS], cnt[UNMATCHED], hist, progs, total)


def render_text(iv: Interval, print_hist: Any) -> str:
    """The interval as bcc tools print theirs: counts, then one log2 histogram per opcode."""
    stamp = time.strftime("%H:%M:%S", time.localtime(iv.start + iv.seconds))
    head = "total" if iv.total else f"{stamp}  interval {iv.seconds:.2f} s"
    lines = [head, f"  {'opcode':<16}{'submitted':>10}{'completed':>11}{'errors':>8}"]
    for op, (s, c, e) in sorted(iv.ops.items()):
        lines.append(f"  {op_name(op):<16}{s:>10}{c:>11}{e:>8}")
    if not iv.ops:
        lines.append("  (no io_uring requests)")
    epc = iv.enters_per_completion()
    lines.append(f"  io_uring_enter calls: {iv.enters}   completions: {iv.completions}"
                 + (f" ({iv.unmatched} without a traced submission)" if iv.unmatched else "")
                 + f"   enters per completion: {'-' if epc is None else f'{epc:.3f}'}")
    lines.append(f"  CQ overflows: {iv.overflows}   task work added: {iv.task_adds}   "
                 f"local work runs: {iv.work_runs} ({iv.work_items} items)")
    for p in iv.progs:
        lines.append(f"  struct_ops program {p.prog_id} {p.name}: {p.run_cnt} runs, "
                     f"{p.run_time_ns / 1e6:.3f} ms" + (" (unloaded)" if p.unloaded else ""))
    for op, slots in sorted(iv.hist.items()):
        lines.append(f"\n  latency of {op_name(op)}, submission to completion:")
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            print_hist(slots, "usecs")
        lines.append(buf.getvalue().rstrip("\n"))
    return "\n".join(lines)


def render_json(iv: Interval) -> str:
    return json.dumps(iv.as_json(), sort_keys=True)
