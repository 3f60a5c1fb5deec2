"""The use-case benchmark's outputs: ratios to each table's baseline, markdown, one plot per case.

A document (bench/usecases.py `main`) is {"when", "command", "environments": [...]}; an environment
is {"environment": "host"|"guest", "info": {kernel, load, when, backends, syscalls}, "tables": [...]}
or {"environment": ..., "unavailable": reason}. A table is {"case", "what", "unit", "rows"}; a row is
{"row": name, "per_s", "spread_pct", ...} or {"row": name, "unavailable": reason}: a row that could
not run is kept with its reason, never dropped.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report import ratio_chart

C_ROW = "c-liburing"


def baseline_of(case: str, row: str) -> str:
    """The row a row's ratio is taken against: the C liburing loop doing the same job (for lookups,
    at the same queue depth)."""
    if case == "lookup":
        return f"{C_ROW}-qd{row.rpartition('-qd')[2]}"
    return C_ROW


def add_ratios(table: dict[str, Any]) -> None:
    """ratio_to_c = time per unit / the baseline's (the inverse of the throughputs); None where the
    row or its baseline did not run."""
    rate = {r["row"]: r["per_s"] for r in table["rows"] if "per_s" in r}
    for r in table["rows"]:
        base = rate.get(baseline_of(table["case"], r["row"]))
        r["ratio_to_c"] = base / r["per_s"] if base and r.get("per_s") else None


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:,.3g}"
    return str(v)


def table_markdown(t: dict[str, Any]) -> list[str]:
    cols: list[str] = []
    for r in t["rows"]:
        cols += [k for k in r if k not in cols and k not in ("row", "unavailable")]
    lines = [f"### {t['case']}: {t['what']}", "", "| row | " + " | ".join(cols) + " |",
             "|---|" + "---|" * len(cols)]
    for r in t["rows"]:
        if "unavailable" in r:
            lines.append(f"| {r['row']} | not run: {r['unavailable']} |" + " |" * (len(cols) - 1))
        else:
            lines.append(f"| {r['row']} | " + " | ".join(_cell(r.get(c)) for c in cols) + " |")
    return lines + [""]


def markdown(doc: dict[str, Any]) -> str:
    lines = [f"# bench usecases ({doc['when']})", "", f"Command: `{' '.join(doc['command'])}`. "
             "per_s is the median of the runs, spread_pct (max - min) / median; ratio_to_c = time "
             "per unit / the C liburing loop's for the same job in the same environment (lower is "
             "faster).", ""]
    for env in doc["environments"]:
        if "unavailable" in env:
            lines += [f"## {env['environment']}: not measured: {env['unavailable']}", ""]
            continue
        i = env["info"]
        lines += [f"## {env['environment']}: Linux {i['kernel']}, backends {', '.join(i['backends'])}"
                  f", {i['when']}, load {i['load']} before the run ({i.get('load_after', '?')} after: "
                  "the bench's own processes)", "",
                  f"System calls counted by: {i['syscalls']}.", ""]
        for t in env["tables"]:
            lines += table_markdown(t)
    return "\n".join(lines)


def plot(doc: dict[str, Any], out_dir: Path) -> list[Path]:
    """usecases-<case>.png: each row's time per unit relative to the C loop's, one panel per
    environment (log scale). Nothing without matplotlib."""
    envs = [e for e in doc["environments"] if "unavailable" not in e]
    written = []
    for case in sorted({t["case"] for e in envs for t in e["tables"]}):
        panels = [(f"{case}, {e['environment']} (Linux {e['info']['kernel']})",
                   [(r["row"], r["ratio_to_c"], None) for r in t["rows"] if r.get("ratio_to_c")])
                  for e in envs for t in e["tables"] if t["case"] == case]
        path = ratio_chart(panels, "time per unit relative to the C liburing loop (lower is faster)",
                           out_dir / f"usecases-{case}.png")
        if path is not None:
            written.append(path)
    return written
