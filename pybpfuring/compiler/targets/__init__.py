"""Target ABI tables: where programs go in the ELF and how each helper is called, one table per target,
each constant with its source.

- `op_bpf`: the 2021 "io_uring BPF requests" ABI (`reference/io_uring-bpf-abi.md` §0.2, §2.1): section
  `iouring`, helpers iouring_queue_sqe=164, iouring_emit_cqe=165, iouring_reap_cqe=166, copy_to_user=167
  (RFC v2 patches 15/16/17/20; the verified IDs). The emulated backend runs this ELF.
- `generic`: a sleepable BPF_PROG_TYPE_SYSCALL program (`SEC("syscall")`) that any current kernel loads
  and runs with BPF_PROG_TEST_RUN; the io_uring helpers do not exist there.
The helper IDs and the 2021 ABI's numbers live in `pybpfuring.abi.bpf2021`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from pybpfuring.abi.bpf2021 import (BPF_FUNC_copy_from_user, BPF_FUNC_get_prandom_u32, BPF_FUNC_ktime_get_ns,
                           BPF_FUNC_trace_printk)

# Argument recipes: ("arg", i) passes language argument i (a Place is passed by address),
# ("sizeof", i) the byte size of argument i's type, ("const", v) a constant.
ArgRecipe = tuple[str, int]


@dataclass(frozen=True)
class HelperAbi:
    id: int
    args: tuple[ArgRecipe, ...]


_COMMON: dict[str, HelperAbi] = {
    "ktime_get_ns": HelperAbi(BPF_FUNC_ktime_get_ns, ()),
    "get_prandom_u32": HelperAbi(BPF_FUNC_get_prandom_u32, ()),
    # bpf_trace_printk(fmt, fmt_size, a1, a2, a3): the lowering supplies fmt and its size.
    "printk": HelperAbi(BPF_FUNC_trace_printk, ()),
    # bpf_copy_from_user(dst, size, user_ptr)
    "copy_from_user": HelperAbi(BPF_FUNC_copy_from_user, (("arg", 0), ("sizeof", 0), ("arg", 1))),
}

_OP_BPF: dict[str, HelperAbi] = {
    **_COMMON,
    # bpf_iouring_queue_sqe(ctx, sqe, sqe_len)
    "submit": HelperAbi(164, (("arg", 0), ("arg", 1), ("sizeof", 1))),
    # bpf_iouring_emit_cqe(ctx, cq_idx, user_data, res, flags)
    "emit_cqe": HelperAbi(165, (("arg", 0), ("arg", 1), ("arg", 2), ("arg", 3), ("arg", 4))),
    # bpf_iouring_reap_cqe(ctx, cq_idx, cqe_out, cqe_len)
    "reap_cqe": HelperAbi(166, (("arg", 0), ("arg", 1), ("arg", 2), ("sizeof", 2))),
    # bpf_copy_to_user(user_ptr, src, size)
    "copy_to_user": HelperAbi(167, (("arg", 0), ("arg", 1), ("sizeof", 1))),
}


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    program_section: str  # ELF section of @iouring_program functions
    helpers: dict[str, HelperAbi] = field(default_factory=dict)
    cpu: str = "v3"
    # For error messages: where this target's programs can run.
    runs_on: str = ""


TARGETS: dict[str, Target] = {
    "op_bpf": Target("op_bpf", "2021 IORING_OP_BPF ABI (emulated backend; patched 2021 kernels)",
                     "iouring", _OP_BPF, runs_on="the emulated backend or a kernel with the 2021 patches"),
    # Linux >= 7.1: `@loop_step` programs as struct_ops io_uring_bpf_ops (targets/bpf_ops.py). The
    # program section is per program, `struct_ops.s/<name>`; kfuncs, not helper ids, reach the ring.
    "bpf_ops": Target("bpf_ops", "Linux >= 7.1 io_uring_bpf_ops struct_ops (loop_step, kfuncs)",
                      "struct_ops.s", dict(_COMMON),
                      runs_on="Linux >= 7.1 built with CONFIG_IO_URING_BPF_OPS (the kernel loop)"),
    "generic": Target("generic", "sleepable BPF_PROG_TYPE_SYSCALL (any current kernel, BPF_PROG_TEST_RUN)",
                      "syscall", dict(_COMMON), runs_on="any kernel with bpf(), through BPF_PROG_TEST_RUN"),
}

def get_target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise ValueError(f"unknown target {name!r}; known targets: {', '.join(TARGETS)}") from None
