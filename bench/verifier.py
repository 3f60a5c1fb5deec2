"""Verifier cost: for each program, the host kernel's verification time and the verifier's
`processed N insns` (BPF_LOG_STATS), for our compiler (target `generic`) next to clang's C twin
(`clang -O2 -g -target bpf -mcpu=v3`), both loaded by the same loader; ratios ours / clang's.

Programs: the generic-target variants of the 2021 reference programs (examples/reference_generic.py)
and a larger one (bench/verifier_programs.py); C twins in bench/verifier_c/programs.c.
Needs root (bpf()) and clang.
Numbers are measured in this run, on this machine; times are medians of --runs loads.

    python3 bench/verifier.py [--runs 7]
"""
from __future__ import annotations

import argparse
import math
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pybpfuring.compiler.driver import compile_full, load_module, programs_in  # noqa: E402
from pybpfuring.loader.object import BpfObject  # noqa: E402

REFERENCE_PROGRAMS = ROOT / "examples" / "reference_generic.py"
PY_PROGRAMS = ROOT / "bench" / "verifier_programs.py"
C_PROGRAMS = ROOT / "bench" / "verifier_c" / "programs.c"
CLANG_FLAGS = ["-O2", "-g", "-target", "bpf", "-mcpu=v3", "-c"]
LOG_STATS = 4  # BPF_LOG_STATS: only the statistics, on success too

_PROCESSED = re.compile(r"processed (\d+) insns")
_TIME = re.compile(r"verification time (\d+) usec")


@dataclass
class Stats:
    insns: int            # program size (instructions, callees included)
    processed: int        # instructions the verifier walked
    usec: float           # median verification time the kernel reported


def verifier_stats(elf: bytes | str, runs: int) -> dict[str, Stats]:
    """Load the object `runs` times with statistics on; per program, the medians."""
    times: dict[str, list[int]] = {}
    out: dict[str, Stats] = {}
    for _ in range(runs):
        with BpfObject.open(elf) as obj:
            obj.load(log_level=LOG_STATS)
            for name, prog in obj.programs.items():
                log = prog.verifier_log
                processed, usec = _PROCESSED.search(log), _TIME.search(log)
                if processed is None or usec is None:
                    raise RuntimeError(f"{name}: no statistics in the verifier log:\n{log}")
                times.setdefault(name, []).append(int(usec.group(1)))
                out[name] = Stats(prog.insn_count, int(processed.group(1)), 0.0)
    for name, st in out.items():
        st.usec = statistics.median(times[name])
    return out


def build_c(workdir: Path) -> Path:
    clang = shutil.which("clang")
    if clang is None:
        raise SystemExit("clang is needed for the C twins (apt-get install clang)")
    obj = workdir / "programs.o"
    subprocess.run([clang, *CLANG_FLAGS, str(C_PROGRAMS), "-o", str(obj)], check=True)
    return obj


def ratio(a: float, b: float) -> str:
    return f"{a / b:5.2f}x" if b else "   - "


def _geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else 0.0


def report(ours: dict[str, Stats], theirs: dict[str, Stats]) -> str:
    head = (f"{'program':<12} {'insns':>6} {'clang':>6} {'ratio':>6} | {'processed':>9} {'clang':>7} "
            f"{'ratio':>6} | {'verify us':>9} {'clang':>7} {'ratio':>6}")
    lines = [head, "-" * len(head)]
    tot = [0.0] * 6
    for name in ours:
        o, c = ours[name], theirs.get(name)
        if c is None:
            continue
        lines.append(f"{name:<12} {o.insns:>6} {c.insns:>6} {ratio(o.insns, c.insns):>6} | "
                     f"{o.processed:>9} {c.processed:>7} {ratio(o.processed, c.processed):>6} | "
                     f"{o.usec:>9.0f} {c.usec:>7.0f} {ratio(o.usec, c.usec):>6}")
        for i, v in enumerate((o.insns, c.insns, o.processed, c.processed, o.usec, c.usec)):
            tot[i] += v
    lines.append("-" * len(head))
    pairs = [(ours[n], theirs[n]) for n in ours if n in theirs]
    for label, pick in (("geomean", _geomean), ("worst", max)):
        r_insns = pick([o.insns / c.insns for o, c in pairs if c.insns])
        r_proc = pick([o.processed / c.processed for o, c in pairs if c.processed])
        lines.append(f"{label:<12} {'':>6} {'':>6} {r_insns:5.2f}x | {'':>9} {'':>7} {r_proc:5.2f}x |")
    lines.append(f"{'total':<12} {tot[0]:>6.0f} {tot[1]:>6.0f} {ratio(tot[0], tot[1]):>6} | "
                 f"{tot[2]:>9.0f} {tot[3]:>7.0f} {ratio(tot[2], tot[3]):>6} | "
                 f"{tot[4]:>9.0f} {tot[5]:>7.0f} {ratio(tot[4], tot[5]):>6}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7, help="loads per object (times are medians)")
    args = ap.parse_args(argv)
    programs = programs_in(load_module(REFERENCE_PROGRAMS)) + programs_in(load_module(PY_PROGRAMS))
    ours_elf = compile_full(programs, "generic").elf
    with tempfile.TemporaryDirectory() as tmp:
        c_obj = build_c(Path(tmp))
        theirs = verifier_stats(str(c_obj), args.runs)
    ours = verifier_stats(ours_elf, args.runs)
    print(f"verifier cost on {' '.join(__import__('os').uname()[2:3])}: pybpfuring (generic) vs "
          f"clang {' '.join(CLANG_FLAGS[:-1])}; ratios ours / clang's")
    print(report(ours, theirs))


if __name__ == "__main__":
    main()
