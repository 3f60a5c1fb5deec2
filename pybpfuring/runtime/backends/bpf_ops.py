"""Run `@loop_step` programs in the kernel's io_uring loop (Linux >= 7.1, struct_ops io_uring_bpf_ops).

    with LoopRing(nops_step, bss={"reqs_to_run": 1000}) as loop:
        loop.run()                              # one io_uring_enter(GETEVENTS): the loop runs
        print(loop.obj.bss["reqs_to_run"])      # 0

What a loader must do, in this order (the kernel's rules; `docs/kernel.md`):
1. create the ring with DEFER_TASKRUN (hence SINGLE_ISSUER); the programs here also rely on
   NO_SQARRAY + SQ_REWIND (the SQEs to submit are always the first slots of the SQ region);
2. open the object, set `ring_fd` in the struct_ops map and the `.rodata` the program reads
   (CQ head/tail/CQE offsets and ring sizes from `io_uring_params`: `get_region`'s size must be a
   constant the verifier knows, and it knows frozen `.rodata`);
3. load (maps, BTF, the sleepable STRUCT_OPS program with attach_btf_id = io_uring_bpf_ops);
4. attach (BPF_LINK_CREATE: the kernel installs the ops on the ring named by ring_fd);
5. io_uring_enter(GETEVENTS): the kernel calls loop_step until it returns IOU_LOOP_STOP;
6. detach (closing the link ejects the ops from the ring), close.
"""
from __future__ import annotations

import errno
from typing import Any, Mapping

from pybpfuring.compiler.targets.bpf_ops import struct_ops_name
from ...errors import PyBpfUringError
from ...lang.decorators import BpfFunction
from ...lang.globals import GlobalDecl
from pybpfuring.loader import BpfObject
from pybpfuring.loader.btf import STRUCT, BtfError, vmlinux_btf
from pybpfuring.uring import IoUring
from pybpfuring.abi import uring as C
from pybpfuring.uring.syscalls import io_uring_enter_raw

TARGET = "bpf_ops"
RING_FLAGS = (C.IORING_SETUP_SINGLE_ISSUER | C.IORING_SETUP_DEFER_TASKRUN | C.IORING_SETUP_NO_SQARRAY
              | C.IORING_SETUP_CQSIZE | C.IORING_SETUP_SQ_REWIND)


class LoopUnavailable(PyBpfUringError):
    """This kernel cannot run io_uring loop_step programs (Linux < 7.1, or built without
    CONFIG_IO_URING_BPF_OPS)."""


class LoopRunError(PyBpfUringError):
    """io_uring_enter failed while the kernel ran the loop."""


def kernel_has_loop_ops() -> bool:
    """True if the running kernel has the io_uring_bpf_ops struct_ops (its BTF says so)."""
    try:
        return bool(vmlinux_btf().find("bpf_struct_ops_io_uring_bpf_ops", STRUCT))
    except (BtfError, OSError):
        return False


BPF_F_MMAPABLE = 1 << 10


def ring_rodata(ring: IoUring) -> dict[str, int]:
    """The ring layout a loop program reads as ReadOnly globals (names as in liburing's tests)."""
    p = ring.params
    return {
        "cq_head_offset": p.cq_off.head, "cq_tail_offset": p.cq_off.tail,
        "cqes_offset": p.cq_off.cqes, "cq_entries": p.cq_entries, "sq_entries": p.sq_entries,
        "cq_mask": p.cq_entries - 1,
    }


# Benchmarks set this to 4 (BPF_LOG_STATS) to read `processed N insns` of every load from
# obj.programs[...].verifier_log; 0 keeps loads quiet (the log is fetched only on failure).
VERIFIER_LOG_LEVEL = 0


def load_retrying(obj: BpfObject, attempts: int = 5) -> None:
    """Load, retrying EAGAIN: the verifier gives up with EAGAIN when a signal is pending, which
    io_uring task work (TIF_NOTIFY_SIGNAL) can make true right after a ring was closed (docs/vm.md;
    libbpf retries the same way)."""
    for attempt in range(attempts):
        try:
            obj.load(log_level=VERIFIER_LOG_LEVEL)
            return
        except PyBpfUringError as err:
            if getattr(err, "errno", None) != errno.EAGAIN or attempt == attempts - 1:
                raise


class LoopRing:
    """A ring with one `@loop_step` program attached: create, configure, load, attach, run."""

    def __init__(self, program: BpfFunction, *, entries: int = 8, cq_entries: int = 8,
                 rodata: Mapping[str, int] | None = None, bss: Mapping[str, Any] | None = None,
                 elf: bytes | None = None, map_sizes: Mapping[str, int] | None = None,
                 mmapable: frozenset[str] = frozenset()):
        """`map_sizes`: max_entries of maps, set before they are created (the ring's sizes);
        `mmapable`: array maps created with BPF_F_MMAPABLE (user space maps them, `Map.mmap()`)."""
        if not isinstance(program, BpfFunction) or program.kind != "loop_step":
            raise TypeError(f"LoopRing runs a @loop_step program, not {program!r}")
        if not kernel_has_loop_ops():
            raise LoopUnavailable(
                "this kernel has no io_uring_bpf_ops struct_ops (it needs Linux >= 7.1 built with "
                "CONFIG_IO_URING_BPF_OPS); run @loop_step programs there, e.g. in the QEMU guest "
                "(python3 -m pybpfuring.vm run -- ...)")
        self.program = program
        self.ring = IoUring(entries, flags=RING_FLAGS, cq_entries=cq_entries)
        self.obj: BpfObject | None = None
        try:
            self.obj = BpfObject.open(elf if elf is not None else program.compile(TARGET))
            self.ops = self.obj.struct_ops[struct_ops_name(program.name)]
            self.ops["ring_fd"] = self.ring.fd
            self._set_data(".rodata", {**ring_rodata(self.ring), **(rodata or {})}, strict=rodata)
            self._set_data(".bss", dict(bss or {}), strict=bss)
            for name, entries in (map_sizes or {}).items():
                self.obj.maps[name].definition.max_entries = entries
            for name in mmapable:
                self.obj.maps[name].definition.map_flags |= BPF_F_MMAPABLE
            load_retrying(self.obj)
            self._bind_globals()
            self.ops.attach()
        except BaseException:
            self.close()
            raise

    def _set_data(self, section: str, values: dict[str, Any], strict: Mapping | None) -> None:
        """Set the variables the object has; a name the caller asked for must exist."""
        assert self.obj is not None
        for section_name in (section, ".data") if section == ".bss" else (section,):
            gd = self.obj.global_data.get(section_name)
            for name in list(values):
                if gd is not None and name in gd:
                    gd[name] = values.pop(name)
        missing = [n for n in values if strict and n in strict]
        if missing:
            raise KeyError(f"{self.program.name} has no {section} variable(s) {', '.join(missing)}")

    def _bind_globals(self) -> None:
        """Let `decl.value` read (and for Global, write) the live variables."""
        assert self.obj is not None
        for name, decl in self.program.globals.items():
            if not isinstance(decl, GlobalDecl):
                continue
            gd = self.obj.global_data.get(decl.section)
            if gd is None or name not in gd:
                continue
            setter = None if decl.read_only else (lambda v, gd=gd, n=name: gd.__setitem__(n, v))
            decl.bind(lambda gd=gd, n=name: gd[n], setter)

    def run(self) -> int:
        """One io_uring_enter(GETEVENTS): the kernel runs loop_step until it returns STOP."""
        while True:
            ret = io_uring_enter_raw(self.ring.fd, 0, 0, C.IORING_ENTER_GETEVENTS)
            if ret != -errno.EINTR:
                break
        if ret < 0:
            what = {errno.EINVAL: " (loop_step returned something other than CONTINUE/STOP)",
                    errno.EEXIST: " (called from a task other than the ring's submitter)"}
            raise LoopRunError(f"io_uring_enter on the loop ring failed: {errno.errorcode.get(-ret)}"
                               f"{what.get(-ret, '')}")
        return ret

    def close(self) -> None:
        for decl in self.program.globals.values():
            if isinstance(decl, GlobalDecl):
                decl.bind(None)
        if self.obj is not None:
            self.obj.close()            # detaches the link: the kernel ejects the ops
            self.obj = None
        self.ring.close()

    def __enter__(self) -> "LoopRing":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
