"""ELF section name -> program type, as libbpf's SEC() conventions define it.

A section matches an entry if it equals the prefix or starts with `prefix/` (libbpf's rule), so
`kprobe/do_sys_open` is a kprobe and `syscall` a syscall program.
"""
from __future__ import annotations

from dataclasses import dataclass

from pybpfuring.errors import PyBpfUringError

# enum bpf_prog_type
PROG_TYPE_SOCKET_FILTER = 1
PROG_TYPE_KPROBE = 2
PROG_TYPE_SCHED_CLS = 3
PROG_TYPE_SCHED_ACT = 4
PROG_TYPE_TRACEPOINT = 5
PROG_TYPE_XDP = 6
PROG_TYPE_PERF_EVENT = 7
PROG_TYPE_RAW_TRACEPOINT = 17
PROG_TYPE_TRACING = 26
PROG_TYPE_STRUCT_OPS = 27
PROG_TYPE_SYSCALL = 31


class UnsupportedSection(PyBpfUringError):
    """The program's section names a program type this kernel or loader cannot load."""


@dataclass(frozen=True)
class SectionType:
    prefix: str
    prog_type: int
    sleepable: bool = False
    expected_attach_type: int = 0
    # Set for program kinds no kernel we can run on has: the reason, said to the user at load.
    unavailable: str | None = None


_IOURING_2021 = ("section {section!r} is the 2021 IORING_OP_BPF ABI (BPF_PROG_TYPE_IOURING), which "
                 "was never merged: no released kernel, this one included, can load it. Run it on the "
                 "emulated backend, or compile for the Linux 7.1 target (struct_ops io_uring_bpf_ops)")

SECTION_TYPES: tuple[SectionType, ...] = (
    SectionType("syscall", PROG_TYPE_SYSCALL, sleepable=True),
    SectionType("struct_ops", PROG_TYPE_STRUCT_OPS),
    SectionType("struct_ops.s", PROG_TYPE_STRUCT_OPS, sleepable=True),
    SectionType("socket", PROG_TYPE_SOCKET_FILTER),
    SectionType("xdp", PROG_TYPE_XDP, expected_attach_type=37),       # BPF_XDP
    SectionType("tc", PROG_TYPE_SCHED_CLS),
    SectionType("classifier", PROG_TYPE_SCHED_CLS),
    SectionType("action", PROG_TYPE_SCHED_ACT),
    SectionType("kprobe", PROG_TYPE_KPROBE),
    SectionType("kretprobe", PROG_TYPE_KPROBE),
    SectionType("tracepoint", PROG_TYPE_TRACEPOINT),
    SectionType("tp", PROG_TYPE_TRACEPOINT),
    SectionType("raw_tracepoint", PROG_TYPE_RAW_TRACEPOINT),
    SectionType("raw_tp", PROG_TYPE_RAW_TRACEPOINT),
    SectionType("perf_event", PROG_TYPE_PERF_EVENT),
    SectionType("iouring", 0, unavailable=_IOURING_2021),
    SectionType("iouring.s", 0, sleepable=True, unavailable=_IOURING_2021),
)


def section_type(section: str) -> SectionType | None:
    """The table entry for a section name, or None if no entry matches."""
    for entry in SECTION_TYPES:
        if section == entry.prefix or section.startswith(entry.prefix + "/"):
            return entry
    return None


def describe_table() -> str:
    """The table as text (for docs and error messages)."""
    return ", ".join(e.prefix + ("" if not e.sleepable else " (sleepable)") for e in SECTION_TYPES)
