"""Our code next to clang's for the same programs (docs/compiler.md, "Before and after"): BPF
instruction counts and the verifier's `processed N insns` are deterministic for a given source,
compiler and kernel, so the ratios the compiler work reached are asserted here, as a guard against a
change that makes our output grow. Needs clang (for the C twins) and bpf() (the verifier counts);
about two seconds."""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests" / "kernel"))

from diffharness import bpf_unavailable  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("clang") is None, reason="clang is not installed")

# Goals of issue 16: BPF instructions <= 1.05x clang's, verifier work <= 1.1x. Where a program does
# not reach a goal yet, its bound is today's figure (docs/compiler.md says why it differs).
INSNS_BOUND = {"cp_qd1": 1.10, "histogram": 1.06}
PROCESSED_BOUND = {"histogram": 1.50}


def test_bpf_instructions_next_to_clang():
    from bench import compile as cb
    with tempfile.TemporaryDirectory() as tmp:
        theirs = cb.clang_objects({c.c_file for c in cb.cases()}, Path(tmp))
    assert not isinstance(theirs, str), theirs
    for case in cb.cases():
        from pybpfuring.compiler.driver import compile_functions
        ours = cb.insn_count(compile_functions([case.program], "op_bpf", cache=False), case.program.name)
        ratio = ours / cb.insn_count(theirs[case.c_file], case.program.name)
        assert ratio <= INSNS_BOUND.get(case.name, 1.05), (case.name, ours, ratio)


def test_verifier_work_next_to_clang():
    reason = bpf_unavailable()
    if reason:
        pytest.skip(reason)
    from bench import verifier as vb
    from pybpfuring.compiler.driver import compile_full, load_module, programs_in
    programs = programs_in(load_module(vb.REFERENCE_PROGRAMS)) + programs_in(load_module(vb.PY_PROGRAMS))
    ours = vb.verifier_stats(compile_full(programs, "generic").elf, 1)
    with tempfile.TemporaryDirectory() as tmp:
        theirs = vb.verifier_stats(str(vb.build_c(Path(tmp))), 1)
    for name, o in ours.items():
        c = theirs[name]
        assert o.insns / c.insns <= INSNS_BOUND.get(name, 1.05), (name, o.insns, c.insns)
        assert o.processed / c.processed <= PROCESSED_BOUND.get(name, 1.10), (name, o.processed, c.processed)
