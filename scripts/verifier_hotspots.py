"""Where the verifier spends its walk: loads a compiled object with log level 1 and counts, per
instruction, how often the verifier processed it (development aid for docs/compiler.md).

    PYTHONPATH=$PWD python3 scripts/verifier_hotspots.py [--clang] PROGRAM [TOP]
"""
from __future__ import annotations

import collections
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from pybpfuring.compiler.driver import compile_full, load_module, programs_in  # noqa: E402
from pybpfuring.loader import object as bpf_object, syscalls as sc  # noqa: E402
from pybpfuring.loader.object import BpfObject  # noqa: E402

# The whole log: 16 MiB from the first try (the default would keep only a tail of a long walk).
_prog_load = sc.prog_load
bpf_object.sc.prog_load = lambda req, log_level=0, log_size=0: _prog_load(req, log_level, sc.MAX_LOG)

_INSN = re.compile(r"^(\d+): \(([0-9a-f]{2})\) (.*)$")


def counts(log: str) -> tuple[collections.Counter[int], dict[int, str]]:
    seen: collections.Counter[int] = collections.Counter()
    text: dict[int, str] = {}
    for line in log.splitlines():
        m = _INSN.match(line)
        if m:
            seen[int(m.group(1))] += 1
            text[int(m.group(1))] = m.group(3).split(";")[0]
    return seen, text


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    name, top = args[0], int(args[1]) if len(args) > 1 else 40
    if "--clang" in sys.argv:
        import verifier  # bench/verifier.py
        with tempfile.TemporaryDirectory() as tmp:
            elf: bytes | str = str(verifier.build_c(Path(tmp)))
            obj = BpfObject.open(elf)
            obj.load(log_level=2)
    else:
        progs = programs_in(load_module(ROOT / "examples" / "reference_generic.py"))
        progs += programs_in(load_module(ROOT / "bench" / "verifier_programs.py"))
        obj = BpfObject.open(compile_full(progs, "generic").elf)
        obj.load(log_level=2)
    log = obj.programs[name].verifier_log
    seen, text = counts(log)
    print(log.strip().splitlines()[-3:])
    for idx in sorted(seen):
        print(f"{idx:5} {seen[idx]:6}  {text[idx]}")


if __name__ == "__main__":
    main()
