"""The bpf_conformance suite (`<repo>/../shared/conformance/*.data`) on the reference interpreter.

How the suite runs a test (its plugin protocol, ubpf's plugin being the reference runner): the `-- asm`
section is assembled (or `-- raw` slots are used when present), the `-- mem` bytes are given to the
program as r1 = their address and r2 = their length (mem-len.data checks r2), and r0 at exit must equal
`-- result`; a `-- error` section instead expects the run to fail. Helper 5 is ubpf's test helper
`unwind` (call_unwind_fail.data, callx.data): it returns its argument, and a zero return ends the
program with r0 = 0.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from conformance_data import SUITE, SUITE_FILES as FILES, SUITE_HELPERS, Case, load_case
from pybpfuring.abi import isa
from pybpfuring.abi.asm import AsmError, assemble
from pybpfuring.runtime.engine.faults import VmFault
from pybpfuring.runtime.engine.interp import Program, Vm
from pybpfuring.runtime.engine.memory import Memory

if not SUITE.is_dir():
    pytest.skip(f"bpf_conformance suite not found at {SUITE} (it lives in the project's shared/ "
                "folder beside the repository)", allow_module_level=True)

# Tests that cannot apply to a user-space VM, with the reason for each. Currently every test of the
# suite applies: the one helper it uses (5, `unwind`) is in tests/conformance_data.py.
NOT_APPLICABLE: dict[str, str] = {}


def run_case(case: Case, vm: Vm) -> int:
    region = vm.memory.allocate(len(case.mem), "conformance mem", init=case.mem) if case.mem else None
    try:
        program = Program(isa.decode(case.code), helpers=SUITE_HELPERS, name=case.name)
        return vm.run(program, r1=region.start if region else 0, r2=len(case.mem))
    finally:
        if region is not None:
            vm.memory.remove(region)


@pytest.fixture(scope="module")
def vm() -> Vm:
    return Vm(Memory())


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_conformance(path: Path, vm: Vm) -> None:
    if path.name in NOT_APPLICABLE:
        pytest.skip(NOT_APPLICABLE[path.name])
    try:
        case = load_case(path)
    except AsmError:
        if "-- error" in path.read_text():
            return  # an expected failure may be a program the assembler already refuses
        raise
    if case.error is not None:
        with pytest.raises(VmFault):
            run_case(case, vm)
        return
    assert case.result is not None, f"{path.name} has neither a result nor an error"
    assert run_case(case, vm) == case.result


def test_the_suite_is_all_there() -> None:
    assert len(FILES) >= 313


def test_a_wrong_semantics_would_be_caught(vm: Vm) -> None:
    """The comparison is real: a program whose result differs from `-- result` is noticed."""
    case = load_case(SUITE / "sdiv64-intmin-by-negone-reg.data")
    assert run_case(case, vm) == case.result
    broken = Case(case.name, assemble("mov %r0, 1\nexit"), b"", case.result, None)
    assert run_case(broken, vm) != case.result
