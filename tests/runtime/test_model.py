"""The 2021 semantics on a Ring: CQ set-up limits, routing by cq_idx, emit/reap, waits, links,
user memory, registration rules, and located program faults."""
from __future__ import annotations

import ctypes
import errno
import logging

import pytest
import io

from elftools.elf.elffile import ELFFile

import progs
from pybpfuring.compiler.driver import compile_functions
from pybpfuring.errors import ProgramFault
from pybpfuring.lang import bpf_function
from pybpfuring.lang.constants import IOSQE_IO_HARDLINK, IOSQE_IO_LINK
from pybpfuring.runtime import RegistrationError, Ring, RingStalledError, prep_nop

ENOENT, EINVAL, EFAULT, ENOMEM, ECANCELED = (errno.ENOENT, errno.EINVAL, errno.EFAULT, errno.ENOMEM,
                                            errno.ECANCELED)


def test_ring_setup_limits_and_rounding(backend: str) -> None:
    with Ring(8, cqs=[3, 128, 65536], backend=backend) as ring:
        assert ring.backend == "emulated"
        assert ring.cq_count == 4
        assert [ring.cq_size(i) for i in (1, 2, 3)] == [4, 128, 65536]
        assert ring.cq_size(0) >= 16
    with pytest.raises(ValueError, match="1..65536"):
        Ring(8, cqs=[65537], backend=backend)
    with pytest.raises(ValueError, match="1..65536"):
        Ring(8, cqs=[0], backend=backend)
    with pytest.raises(ValueError, match="at most 1024"):
        Ring(8, cqs=[1] * 1025, backend=backend)
    with pytest.raises(ValueError, match="unknown backend"):
        Ring(8, backend="nonesuch")
    with Ring(8, cqs=[1] * 1024, backend=backend) as ring:
        assert ring.cq_count == 1025


def test_closed_ring_says_so(backend: str) -> None:
    ring = Ring(4, backend=backend)
    ring.close()
    ring.close()
    with pytest.raises(ValueError, match="closed"):
        ring.submit()


def test_user_sqes_complete_on_the_cq_they_name(backend: str) -> None:
    with Ring(8, cqs=[16, 16], backend=backend) as ring:
        for cq in (0, 1, 2, 7):
            sqe = ring.get_sqe(cq_idx=cq)
            assert sqe is not None
            prep_nop(sqe)
            sqe.user_data = 100 + cq
        ring.submit()
        assert ring.wait_cqe(1) == (101, 0, 0)
        assert ring.wait_cqe(2) == (102, 0, 0)
        main = sorted([ring.wait_cqe(0), ring.wait_cqe(0)])
        assert main == [(100, 0, 0), (107, -EINVAL, 0)]  # cq_idx 7 does not exist
        assert ring.peek_cqe(0) is None and ring.in_flight() == 0


def test_get_sqe_returns_none_when_the_queue_is_full(backend: str) -> None:
    with Ring(4, backend=backend) as ring:
        sqes = [ring.get_sqe() for _ in range(5)]
        assert all(s is not None for s in sqes[:4]) and sqes[4] is None
        for s in sqes[:4]:
            assert s is not None
            prep_nop(s)
        assert ring.submit() == 4
        assert len([ring.wait_cqe() for _ in range(4)]) == 4


def test_emit_cqe_drops_on_a_full_extra_cq(backend: str) -> None:
    with Ring(8, cqs=[16], backend=backend) as ring:
        ring.register_programs([progs.emit_to_cq1])
        ring.prep_bpf(progs.emit_to_cq1, user_data=40)
        ring.submit_and_wait(1)
        assert ring.wait_cqe(0) == (40, 0, 0)
        assert (progs.results[0], progs.results[1], progs.results[2]) == (16, 24, -ENOMEM)
        assert ring.cq_drops(1) == 24
        got = list(ring.cqes(1))
        assert [c.user_data for c in got] == list(range(1000, 1016))  # the oldest 16, in order


def test_reap_and_emit_errors(backend: str) -> None:
    with Ring(8, cqs=[4, 4], backend=backend) as ring:
        ring.register_programs([progs.bad_indexes])
        ring.prep_bpf(0, user_data=1)
        ring.submit_and_wait(1)
        assert ring.wait_cqe() == (1, 0, 0)
        assert [progs.results[i] for i in (3, 4, 5)] == [-ENOENT, -EINVAL, -EINVAL]


def test_copy_from_and_to_user_memory(backend: str) -> None:
    value = ctypes.c_uint64(41)
    with Ring(8, backend=backend) as ring:
        ring.register_programs([progs.user_copy])
        ring.prep_bpf(progs.user_copy, user_data=ctypes.addressof(value))
        ring.submit_and_wait(1)
        assert ring.wait_cqe().res == 0
        assert (progs.results[6], progs.results[7], progs.results[8]) == (0, 41, 0)
        assert value.value == 42
        # Bad user pointers: -EFAULT from both helpers, the process is untouched.
        for bad in (8, 0xFFFF_FFFF_FFFF_0000, 0x10):
            ring.prep_bpf(progs.user_copy, user_data=bad)
            ring.submit_and_wait(1)
            assert ring.wait_cqe().res == 0
            assert (progs.results[6], progs.results[7], progs.results[8]) == (-EFAULT, 0, -EFAULT)


def test_read_only_user_memory_gives_efault_on_copy_to_user(backend: str) -> None:
    import mmap
    libc = ctypes.CDLL(None)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                          ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    addr = libc.mmap(None, 4096, mmap.PROT_READ, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    try:
        with Ring(8, backend=backend) as ring:
            ring.register_programs([progs.user_copy])
            ring.prep_bpf(progs.user_copy, user_data=addr)
            ring.submit_and_wait(1)
            assert ring.wait_cqe().res == 0
            assert (progs.results[6], progs.results[7], progs.results[8]) == (0, 0, -EFAULT)
    finally:
        libc.munmap(addr, 4096)


def test_bpf_request_linked_to_a_nop_runs_first(backend: str) -> None:
    with Ring(8, backend=backend) as ring:
        ring.register_programs([progs.record])
        ring.prep_bpf(progs.record, user_data=1, flags=IOSQE_IO_LINK)
        sqe = ring.get_sqe()
        assert sqe is not None
        prep_nop(sqe)
        sqe.user_data = 2
        sqe.flags = IOSQE_IO_LINK
        ring.prep_bpf(progs.record, user_data=3)
        ring.submit_and_wait(3)
        assert [c.user_data for c in ring.cqes()] == [1, 2, 3]
        assert [progs.results[i] for i in (9, 10, 11)] == [2, 1, 3]


def test_failed_bpf_request_cancels_the_rest_of_its_chain(backend: str) -> None:
    with Ring(8, cqs=[4], backend=backend) as ring:
        ring.register_programs([progs.bad_wait, progs.record])
        ring.prep_bpf(progs.bad_wait, user_data=1, flags=IOSQE_IO_LINK)
        sqe = ring.get_sqe(cq_idx=1)
        assert sqe is not None
        prep_nop(sqe)
        sqe.user_data = 2
        sqe.flags = IOSQE_IO_LINK
        ring.prep_bpf(progs.record, user_data=3)
        ring.submit_and_wait(2)
        assert sorted(ring.cqes(0)) == [(1, -EINVAL, 0), (3, -ECANCELED, 0)]
        assert list(ring.cqes(1)) == [(2, -ECANCELED, 0)]
        assert progs.results[9] == 0  # `record` never ran
        # a hard link survives the failure
        ring.prep_bpf(progs.bad_wait, user_data=4, flags=IOSQE_IO_HARDLINK)
        ring.prep_bpf(progs.record, user_data=5)
        ring.submit_and_wait(2)
        assert list(ring.cqes(0)) == [(4, -EINVAL, 0), (5, 0, 0)]


def test_chain_submitted_by_a_program_keeps_its_order(backend: str) -> None:
    with Ring(8, cqs=[4, 4], backend=backend) as ring:
        ring.register_programs([progs.linked_nops])
        ring.prep_bpf(progs.linked_nops, user_data=1)
        ring.submit_and_wait(1)
        assert ring.wait_cqe() == (1, 0, 0)
        assert [ring.wait_cqe(2).user_data, ring.wait_cqe(2).user_data] == [7, 8]


def test_bpf_request_errors(backend: str) -> None:
    with Ring(8, backend=backend) as ring:
        ring.register_programs([progs.record])
        ring.prep_bpf(5, user_data=1)        # no program 5: an empty slot
        sqe = ring.prep_bpf(0, user_data=2)
        sqe.len = 1                          # BPF SQEs must have addr = len = 0
        ring.prep_bpf(0, user_data=3, cq_idx=9)
        ring.submit_and_wait(3)
        assert sorted(ring.cqes()) == [(1, -EFAULT, 0), (2, -EINVAL, 0), (3, -EINVAL, 0)]
        with pytest.raises(RegistrationError, match="no registered program"):
            ring.prep_bpf("nonesuch")


def test_programs_register_once_and_maps_bind(backend: str) -> None:
    with Ring(8, backend=backend) as ring:
        assert ring.register_programs([progs.record, progs.nop_then_reap]) == ["record",
                                                                               "nop_then_reap"]
        with pytest.raises(RegistrationError, match="once per ring"):
            ring.register_programs([progs.record])
        assert set(ring.maps) == {"results", "phase"}
        progs.results[9] = 0
        assert ring.maps["results"][9] == 0
        ring.maps["results"][40] = -7
        assert progs.results[40] == -7
        progs.phase[5] = 9
        assert 5 in progs.phase and list(progs.phase) == [5] and ring.maps["phase"][5] == 9
        del progs.phase[5]
        assert 5 not in progs.phase
    with Ring(8, backend=backend) as ring:
        with pytest.raises(RegistrationError, match="not an @iouring_program"):
            ring.register_programs([bpf_function(lambda x: x)])


def test_programs_from_an_elf_are_indexed_in_elf_order(backend: str) -> None:
    elf = compile_functions([progs.record, progs.spin], "op_bpf")
    with Ring(8, backend=backend) as ring:
        names = ring.register_programs(elf)
        assert sorted(names) == ["record", "spin"]
        ring.maps["results"][9] = 0
        ring.prep_bpf("record", user_data=77)
        ring.submit_and_wait(1)
        assert ring.wait_cqe() == (77, 0, 0)
        assert ring.maps["results"][10] == 77


def test_budget_exhaustion_fails_the_request_with_a_located_fault(backend: str,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    with Ring(8, backend=backend, budget=5000) as ring:
        ring.register_programs([progs.spin, progs.record])
        ring.prep_bpf(progs.spin, user_data=9)
        with caplog.at_level(logging.WARNING, logger="pybpfuring.runtime"):
            ring.submit_and_wait(1)
        assert ring.wait_cqe() == (9, -errno.ELOOP, 0)
        [fault] = ring.faults
        assert isinstance(fault, ProgramFault) and fault.program == "spin"
        assert fault.loc is not None and fault.loc.file.endswith("progs.py")
        assert "results[30] = results[30] + 1" in fault.loc.source_line() or \
            "for i in range(100000)" in fault.loc.source_line()
        assert "progs.py" in caplog.text
        # the ring stays usable
        ring.prep_bpf(progs.record, user_data=10)
        ring.submit_and_wait(1)
        assert ring.wait_cqe() == (10, 0, 0)


def faulting_elf() -> bytes:
    """`reads_ctx` with its ctx load redirected above the stack (an unmapped gap): a real bad access."""
    elf = bytearray(compile_functions([progs.reads_ctx], "op_bpf"))
    section = ELFFile(io.BytesIO(bytes(elf))).get_section_by_name("iouring")
    start, size = section["sh_offset"], section["sh_size"]
    for off in range(start, start + size, 8):
        opcode, regs = elf[off], elf[off + 1]
        disp = int.from_bytes(elf[off + 2:off + 4], "little", signed=True)
        if opcode == 0x61 and disp == 8:  # ldxw rX, [rY+8]: ctx.wait_nr
            elf[off + 1] = (regs & 0x0F) | (10 << 4)  # read [r10+8] instead
            return bytes(elf)
    raise AssertionError("no ctx.wait_nr load found")


def test_memory_fault_fails_the_request_with_efault_and_the_python_line(backend: str) -> None:
    with Ring(8, backend=backend) as ring:
        ring.register_programs(faulting_elf())
        ring.prep_bpf("reads_ctx", user_data=3)
        ring.submit_and_wait(1)
        assert ring.wait_cqe() == (3, -EFAULT, 0)
        [fault] = ring.faults
        assert fault.errno == EFAULT and fault.loc is not None
        assert fault.loc.source_line().strip() == "n = ctx.wait_nr"
        assert "progs.py" in fault.render()


def test_a_wait_that_can_never_end_raises_instead_of_hanging(backend: str) -> None:
    with Ring(8, backend=backend) as ring:
        with pytest.raises(RingStalledError, match="never end"):
            ring.wait_cqe(0)
        with pytest.raises(TimeoutError):
            ring.wait_cqe(0, timeout=0.01)


def test_wait_cqe_timeout_with_a_request_in_flight(backend: str) -> None:
    from pybpfuring.runtime import prep_timeout
    with Ring(8, backend=backend) as ring:
        sqe = ring.get_sqe()
        assert sqe is not None
        prep_timeout(sqe, 5.0)
        sqe.user_data = 1
        ring.submit()
        with pytest.raises(TimeoutError):
            ring.wait_cqe(0, timeout=0.05)


def test_a_program_can_start_another_bpf_request(backend: str) -> None:
    with Ring(8, cqs=[4], backend=backend) as ring:
        ring.register_programs([progs.spawn, progs.record])
        ring.maps["results"][progs.LOG_LEN] = 0
        ring.prep_bpf(progs.spawn, user_data=1)  # starts `record` (index 1)
        ring.submit_and_wait(1)
        assert ring.wait_cqe(0) == (1, 0, 0)
        assert ring.wait_cqe(1) == (99, 0, 0)
        assert progs.results[32] == 0 and progs.results[10] == 99


def test_at_most_100_programs_per_ring(backend: str) -> None:
    from pybpfuring.lang.decorators import BpfFunction
    many = [BpfFunction(progs.record.py_func, "iouring", name=f"p{i}") for i in range(101)]
    with Ring(8, backend=backend) as ring:
        with pytest.raises(RegistrationError, match="at most 100"):
            ring.register_programs(many)


def test_programs_of_a_python_file(backend: str) -> None:
    import run_reference
    path = run_reference.reference.__file__
    with Ring(8, cqs=[128, 128], backend=backend) as ring:
        assert ring.register_programs(path) == ["test", "counting", "pingpong", "write_file"]
        assert ring.maps["arr"][0] == 0


def test_cqe_skip_success(backend: str) -> None:
    from pybpfuring.lang.constants import IOSQE_CQE_SKIP_SUCCESS
    from pybpfuring.runtime import prep_read
    with Ring(8, cqs=[4], backend=backend) as ring:
        ring.register_programs([progs.record])
        sqe = ring.get_sqe(cq_idx=1)
        assert sqe is not None
        prep_nop(sqe)
        sqe.user_data, sqe.flags = 1, IOSQE_CQE_SKIP_SUCCESS
        sqe = ring.get_sqe(cq_idx=1)
        assert sqe is not None
        prep_read(sqe, -1, bytearray(8), 0)  # fails: its CQE is posted after all
        sqe.user_data, sqe.flags = 2, IOSQE_CQE_SKIP_SUCCESS
        ring.prep_bpf(progs.record, user_data=3, flags=IOSQE_CQE_SKIP_SUCCESS)
        ring.submit()
        assert ring.wait_cqe(1) == (2, -errno.EBADF, 0)
        with pytest.raises(RingStalledError):  # nothing else will come: no hang
            ring.wait_cqe(1)
        assert ring.cq_ready(0) == 0 and progs.results[10] == 3
        # a skip-success member of a chain still starts the next one
        sqe = ring.get_sqe()
        assert sqe is not None
        prep_nop(sqe)
        sqe.user_data, sqe.flags = 4, IOSQE_CQE_SKIP_SUCCESS | IOSQE_IO_LINK
        ring.prep_bpf(progs.record, user_data=5)
        ring.submit_and_wait(1)
        assert list(ring.cqes(0)) == [(5, 0, 0)]


def test_a_long_hard_linked_chain_of_refused_requests(backend: str) -> None:
    n = 3000
    with Ring(4096, backend=backend) as ring:
        for i in range(n):
            sqe = ring.get_sqe(cq_idx=9)  # no CQ 9: each fails with -EINVAL on CQ 0
            assert sqe is not None
            prep_nop(sqe)
            sqe.user_data, sqe.flags = i, IOSQE_IO_HARDLINK
        ring.submit_and_wait(n)
        assert [c.user_data for c in ring.cqes()] == list(range(n))


def test_printk_ktime_and_prandom(backend: str, caplog: pytest.LogCaptureFixture) -> None:
    with Ring(8, backend=backend) as ring:
        ring.register_programs([progs.tracer])
        ring.prep_bpf(progs.tracer, user_data=42)
        with caplog.at_level(logging.INFO, logger="pybpfuring.trace"):
            ring.submit_and_wait(1)
        assert ring.wait_cqe() == (42, 0, 0)
        assert progs.results[34] == 1
        assert "request 42: ff-0" in caplog.text
