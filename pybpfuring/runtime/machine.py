"""What this machine can run: io_uring, bpf(), the io_uring_bpf_ops struct_ops.

Each check does the real thing (sets up an io_uring, creates a BPF map, reads the kernel's BTF) and
says why when it fails, so "not supported" always comes with a reason. Only the ring and the
loader lie below it: the backends (bpf_ops_ring's probe) and their choice (backends/select.py)
import it, never the other way.
"""
from __future__ import annotations

import os
import platform
from dataclasses import dataclass

from pybpfuring.loader import syscalls as sc
from pybpfuring.loader.btf import STRUCT, BtfError, vmlinux_btf
from pybpfuring.uring import IoUring


@dataclass(frozen=True)
class Support:
    name: str
    available: bool
    why: str


def check_io_uring() -> Support:
    try:
        with IoUring(2) as ring:
            ops = ring.probe()
        return Support("io_uring", True, f"io_uring_setup works; the kernel supports {len(ops)} opcodes "
                       f"(last {max(ops) if ops else '-'})")
    except OSError as e:
        return Support("io_uring", False, f"io_uring_setup failed: {e}")


def check_bpf() -> Support:
    try:
        fd = sc.map_create(2, 4, 8, 1)  # a one-entry array map: the cheapest real bpf() call
        os.close(fd)
        return Support("bpf", True, "bpf() works (map created)")
    except OSError as e:
        return Support("bpf", False, f"bpf() failed: {e}")


def check_bpf_ops() -> Support:
    try:
        btf = vmlinux_btf()
    except BtfError as e:
        return Support("bpf_ops", False, str(e))
    if btf.find("io_uring_bpf_ops", STRUCT):
        return Support("bpf_ops", True, "the kernel's BTF has struct io_uring_bpf_ops (Linux >= 7.1)")
    return Support("bpf_ops", False, f"kernel {platform.release()} has no struct io_uring_bpf_ops in its BTF "
                   "(needs Linux >= 7.1 with CONFIG_IO_URING_BPF_OPS=y)")


def backends() -> list[Support]:
    uring, bpf, ops = check_io_uring(), check_bpf(), check_bpf_ops()
    kernel_ok = uring.available and bpf.available and ops.available
    return [
        Support("emulated", uring.available,
                "programs run in the user-space engine on a real io_uring; " + uring.why),
        Support("bpf_ops", kernel_ok, "programs run inside io_uring_enter (loop_step); " +
                "; ".join(s.why for s in (ops, bpf) if not s.available or s is ops)),
        Support("op_bpf", False, "the 2021 IORING_OP_BPF patches were never merged; no kernel has them: "
                "objects for this ABI are compiled and checked structurally only"),
        Support("verifier tier", bpf.available,
                "compiled programs can be loaded into this kernel's verifier and run with "
                "BPF_PROG_TEST_RUN (pybpfuring check); " + bpf.why),
    ]


__all__ = ["Support", "backends", "check_bpf", "check_bpf_ops", "check_io_uring"]
