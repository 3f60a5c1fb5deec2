"""Turn measured tables into a markdown report (stdout), JSON and a PNG bar chart (docs/results/).

A document is {"benchmark", "generated", "command", "environments": [table, ...]}, each table as
bench/cp/run.py or bench/nops.py returns it. Ratios are per unit (byte or request) against the
table's baseline row of the *same* environment, so rows of different sizes still compare, and a
host row is never divided by a guest row.
"""
from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

from pybpfuring.outputs import write_atomic

# The talk's table (LPC 2021, "io_uring: BPF controlled I/O"): 4 KiB copy to /dev/zero, ms.
TALK_MS = [("read/write", 1350.0), ("io_uring QD1", 1630.0), ("io_uring + BPF", 810.0),
           ("read/write, mitigations off", 550.0)]
GiB = 1 << 30


def per_unit(row: dict[str, Any], stat: str = "median_s") -> float | None:
    """Seconds per byte (cp) or per request (nops), of the median run or (stat="min_s") the best."""
    if row.get("status") != "ok" or not row.get(stat) or not row.get("amount"):
        return None
    return row[stat] / row["amount"]


def ratios(table: dict[str, Any], stat: str = "median_s") -> dict[str, float]:
    """Each row's time per unit over the baseline row's, same environment. stat="min_s" compares
    best runs: interference from other load only ever slows a run down, so on a shared machine the
    best runs are the least disturbed estimate."""
    base = next((per_unit(r, stat) for r in table["rows"] if r["id"] == table["baseline"]), None)
    if not base:
        return {}
    return {r["id"]: pu / base for r in table["rows"] if (pu := per_unit(r, stat)) is not None}


def human_size(n: int) -> str:
    for scale, name in ((GiB, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= scale:
            return f"{n / scale:g} {name}"
    return f"{n} B"


def _size(n: int, unit: str) -> str:
    return human_size(n) if unit == "bytes" else f"{n:,}"


def _row_cells(table: dict[str, Any], row: dict[str, Any], ratio: float | None,
               best: float | None) -> list[str]:
    unit = table["unit"]
    if row["status"] != "ok":
        what = "not available" if row["status"] == "unavailable" else "failed"
        reason = " ".join(row["reason"].split()).replace("|", "\\|")
        return [row["label"], _size(row["amount"], unit), "", f"{what}: {reason}", "", "", "", "", "", "",
                "", ""]
    # ms per GiB copied, or ns per request
    norm = row["median_s"] / row["amount"] * (GiB * 1e3 if unit == "bytes" else 1e9)
    sys = row.get("syscalls_per_unit")
    return [row["label"], _size(row["amount"], unit), str(len(row["runs_s"])),
            f"{row['median_s'] * 1000:.1f}", f"{row['min_s'] * 1000:.1f}–{row['max_s'] * 1000:.1f}",
            f"{(row['q3_s'] - row['q1_s']) * 1000:.1f}", f"{norm:,.0f}",
            f"{ratio:.2f}" if ratio is not None else "", f"{best:.2f}" if best is not None else "",
            f"{sys:,.1f}" if sys is not None else "n/a", *_kernel_cells(row),
            ] + ([" ; ".join(row["notes"])] if row["notes"] else [])


def _kernel_cells(row: dict[str, Any]) -> list[str]:
    """io_uring_enter calls and completions per unit as the kernel's tracepoints saw them (rows
    traced by bench/kernel_trace.py; tables from before it have no such field)."""
    k = row.get("kernel")
    if not k:
        return ["", ""]
    return [f"{k['enters_per_unit']:,.2f}", f"{k['completions_per_unit']:,.1f}"]


def table_markdown(table: dict[str, Any]) -> str:
    info = table["info"]
    unit = table["unit"]
    per = "ms/GiB" if unit == "bytes" else "ns/request"
    sys_col = "syscalls/MiB" if unit == "bytes" else "syscalls/request"
    head = (f"### {info['environment']}: Linux {info['kernel']}, {info['cpus']} CPUs "
            f"({info['cpu_model']})\n\n"
            + (f"{info['machine']}.  \n" if "machine" in info else "")
            + f"spectre_v2: {info['spectre_v2'] or 'n/a'}; load average at start {info['loadavg_start']}, "
              f"at end {info.get('loadavg_end', '?')}.  \n")
    if "data" in table:
        d = table["data"]
        head += (f"Source: {d['dir']} ({d['fs']}); page cache before: {d['cached_before']}; "
                 f"after: {d['cached_after']}.  \n")
    head += f"Syscalls counted with: {table['syscall_method']}. bcc: {table.get('bcc') or 'n/a'}.  \n"
    head += f"Kernel side (enters, completions): {table.get('kernel_trace_method', 'n/a')}.\n\n"
    per_k = "MiB" if unit == "bytes" else "request"
    cols = ["row", "size" if unit == "bytes" else "requests", "runs", "median ms", "min–max ms",
            "IQR ms", per, f"vs {table['baseline']} (median)", "(best runs)", sys_col,
            f"enters/{per_k} (kernel)", f"completions/{per_k} (kernel)", "note"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    rs, best = ratios(table), ratios(table, "min_s")
    for row in table["rows"]:
        cells = _row_cells(table, row, rs.get(row["id"]), best.get(row["id"]))
        cells += [""] * (len(cols) - len(cells))
        lines.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"


def talk_markdown() -> str:
    base = TALK_MS[0][1]
    lines = ["### The talk (LPC 2021), for comparison\n", "| loop | ms | vs read/write |", "|---|---|---|"]
    lines += [f"| {name} | {ms:.0f} | {ms / base:.2f} |" for name, ms in TALK_MS]
    return "\n".join(lines) + "\n"


def document(benchmark: str, tables: list[dict[str, Any]], command: list[str]) -> dict[str, Any]:
    return {"benchmark": benchmark, "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": command, "environments": tables}


def markdown(doc: dict[str, Any]) -> str:
    title = {"cp": "4 KiB copy of a page-cached file to /dev/zero, QD1",
             "nops": "a chain of NOP requests, one after another"}.get(doc["benchmark"], doc["benchmark"])
    parts = [f"## {title}\n", f"`{' '.join(doc['command'])}` — {doc['generated']}\n"]
    for table in doc["environments"]:
        if "unavailable" in table:
            parts.append(f"### {table['environment']}: not available: {table['unavailable']}\n")
        else:
            parts.append(table_markdown(table))
    if doc["benchmark"] == "cp":
        parts.append(talk_markdown())
    return "\n".join(parts)


def write_outputs(doc: dict[str, Any], out_dir: Path, *, json_too: bool = True) -> list[Path]:
    """<benchmark>.json, .md and (with matplotlib) .png in out_dir; returns the paths written.

    Each file is written to a temporary name beside it and renamed (a reader never sees half a
    table). `json_too=False` when re-rendering from that JSON: the input is never rewritten.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    name = doc["benchmark"]
    written = []
    if json_too:
        written.append(write_atomic(out_dir / f"{name}.json", json.dumps(doc, indent=1) + "\n"))
    written.append(write_atomic(out_dir / f"{name}.md", markdown(doc)))
    png = plot(doc, out_dir / f"{name}.png")
    return written + ([png] if png else [])


def plot(doc: dict[str, Any], path: Path) -> Path | None:
    """A bar chart of each row's time relative to its environment's baseline (log scale)."""
    panels = [(f"{t['info']['environment']} (Linux {t['info']['kernel']})",
               [(r["label"], ratios(t)[r["id"]], ratios(t, "min_s")[r["id"]])
                for r in t["rows"] if r["id"] in ratios(t)])
              for t in doc["environments"] if "unavailable" not in t]
    if doc["benchmark"] == "cp":
        panels.append(("the talk (LPC 2021)", [(n, ms / TALK_MS[0][1], None) for n, ms in TALK_MS]))
    return ratio_chart(panels, "time per unit relative to the baseline row (lower is faster)", path)


def ratio_chart(panels: list[tuple[str, list[tuple[str, float, float | None]]]], xlabel: str,
                path: Path) -> Path | None:
    """Horizontal bars of ratios to a baseline (log scale, 1x marked), one panel per (title, bars);
    a bar is (label, median ratio, best-runs ratio or None). None without matplotlib or bars."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        return None
    panels = [p for p in panels if p[1]]
    if not panels:
        return None
    height = sum(len(bars) for _, bars in panels) * 0.38 + 1.2 * len(panels)
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, height), squeeze=False, sharex=True)
    every = [v for _, bars in panels for _, v, _b in bars]
    for ax, (title, bars) in zip(axes[:, 0], panels):
        labels, values = [b[0] for b in bars][::-1], [b[1] for b in bars][::-1]
        best = [(b[2], y) for y, b in enumerate(bars[::-1]) if b[2] is not None]
        ax.barh(labels, values, color=["tab:blue" if v <= 1.0 else "tab:orange" for v in values],
                label="median runs")
        if best:
            ax.plot([b for b, _ in best], [y for _, y in best], "k|", markersize=14, label="best runs")
            ax.legend(fontsize=7, loc="upper right")
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xlim(min(every + [1.0]) * 0.7, max(every + [1.0]) * 3)  # room for the value labels
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}x"))
        ax.set_title(title, fontsize=10)
        for y, v in enumerate(values):
            ax.text(v, y, f" {v:.2f}x", va="center", fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
    axes[-1, 0].set_xlabel(xlabel)
    fig.tight_layout()
    image = io.BytesIO()
    fig.savefig(image, format="png", dpi=110)
    plt.close(fig)
    return write_atomic(path, image.getvalue())
