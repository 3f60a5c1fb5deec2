"""The talk's programming model on the Linux >= 7.1 loop (target `bpf_ops`), written in the language.

On this target `submit`, `emit_cqe` and `reap_cqe` in an `@iouring_program` are these functions
(the compiler routes the helper names here); a generated `@loop_step` scheduler
(`pybpfuring/runtime/backends/bpf_ops_model.py`) starts programs, routes kernel completions to
their CQ by the `cq_idx` of the SQE that caused them, re-runs programs whose WAIT is satisfied and
completes requests. docs/kernel.md, "Step 2", has the design.

State, all in maps user space reads too:
- virtual CQs 0..NCQ-1 (`model_cqes`, heads in `model_cq_head`, tails in `model_cq_tail`); CQ 0 is
  the one user space waits on;
- a request table (`model_reqs`): an SQE's user_data and cq_idx, by the slot its kernel user_data
  names (`TAG_HI << 32 | slot`);
- staged SQEs (`model_staged`): submit() copies the SQE there; the scheduler copies them into the SQ
  region and submits them once per step;
- start records (`model_starts`, written by user space) and program instances (`model_insts`);
- control words (`model_ctl`, indices CTL_*).
Limits of this first version: NCQ CQs of CQ_SLOTS entries, MAX_STAGED SQEs per step, MAX_REQS in
flight, MAX_INST program instances.
"""
from __future__ import annotations

from .constants import EBUSY, EFAULT, EINVAL, ENOENT, ENOMEM
from .globals import ReadOnly
from .decorators import bpf_function
from .maps import ArrayMap
from .structs import Cqe, Ctx, Sqe
from .types import i32, i64, struct, u32, u64

NCQ = 4
CQ_SLOTS = 256
MAX_REQS = 32
MAX_STAGED = 8
MAX_INST = 8
MAX_STARTS = 8
TAG_HI = 0x7B9F0000       # high word of the kernel-side user_data of routed requests

CTL_NSTAGED = 0
CTL_START_HEAD = 1
CTL_START_TAIL = 2        # written by user space
CTL_WANT = 3              # CQEs on CQ 0 that end io_uring_enter (written by user space)
CTL_INFLIGHT = 4
CTL_SUBMIT_ERR = 5
CTL_ACTIVE = 6            # program instances started and not completed
CTL_READY = 7             # set during a step when an instance can run again at once
CTL_WANT_CQ = 8           # the CQ whose CTL_WANT CQEs end io_uring_enter (written by user space)
CTL_NWRITES = 9           # copy_to_user writes staged for the scheduler
MAX_WRITES = 16

INST_FREE = 0
INST_RUNNABLE = 1
INST_WAITING = 2


@struct
class ReqSlot:
    user_data: u64
    cq_idx: u32
    used: u32


@struct
class StartRec:
    user_data: u64
    prog: u32
    cq_idx: u32


@struct
class Instance:
    user_data: u64
    prog: u32
    cq_idx: u32
    state: u32
    wait_idx: u32
    wait_nr: u32
    runs: u32


model_cqes = ArrayMap(Cqe, NCQ * CQ_SLOTS)
model_cq_head = ArrayMap(u32, NCQ)
model_cq_tail = ArrayMap(u32, NCQ)
model_reqs = ArrayMap(ReqSlot, MAX_REQS)
model_staged = ArrayMap(Sqe, MAX_STAGED)
model_starts = ArrayMap(StartRec, MAX_STARTS)
model_insts = ArrayMap(Instance, MAX_INST)
model_ctl = ArrayMap(u32, 16)

# User memory programs may write: the ring's MEM region (IORING_REGISTER_MEM_REGION), set by the
# loader; 0 bytes when the ring has none (then copy_to_user gives -EFAULT).
model_mem_base = ReadOnly(u64)
model_mem_size = ReadOnly(u32)


@struct
class PendingWrite:
    uptr: u64
    value: u64
    size: u32
    pad: u32


model_writes = ArrayMap(PendingWrite, MAX_WRITES)


@bpf_function
def model_put_user(uptr: u64, value: u64, size: u32) -> i64:
    """Stage a write of `size` (1, 2, 4, 8) bytes to user memory inside the MEM region; the
    scheduler performs it after the program returns. -EFAULT outside the region."""
    if uptr < model_mem_base or uptr - model_mem_base + size > model_mem_size:
        return -EFAULT
    n = model_ctl[CTL_NWRITES]
    if n >= MAX_WRITES:
        return -EBUSY
    w = model_writes[n]
    w.uptr = uptr
    w.value = value
    w.size = size
    model_ctl[CTL_NWRITES] = n + 1
    return 0


@bpf_function
def model_copy_sqe(dst: Sqe, src: Sqe) -> None:
    """Copy an SQE into the upstream layout: bytes 48..63 (the 2021 cq_idx) are cleared."""
    dst.opcode = src.opcode
    dst.flags = src.flags
    dst.ioprio = src.ioprio
    dst.fd = src.fd
    dst.off = src.off
    dst.addr = src.addr
    dst.len = src.len
    dst.rw_flags = src.rw_flags
    dst.user_data = src.user_data
    dst.buf_index = src.buf_index
    dst.personality = src.personality
    dst.splice_fd_in = src.splice_fd_in
    dst.addr3 = 0
    dst.__pad3 = 0


@bpf_function
def model_emit_cqe(ctx: Ctx, cq_idx: u32, user_data: u64, res: i32, cflags: u32) -> i64:
    """Post a CQE to virtual CQ cq_idx; -ENOMEM (dropped) if it is full."""
    if cq_idx >= NCQ:
        return -EINVAL
    head = model_cq_head[cq_idx]
    tail = model_cq_tail[cq_idx]
    if tail - head >= CQ_SLOTS:
        return -ENOMEM
    e = model_cqes[cq_idx * CQ_SLOTS + (tail & (CQ_SLOTS - 1))]
    e.user_data = user_data
    e.res = res
    e.flags = cflags
    model_cq_tail[cq_idx] = tail + 1
    return 0


@bpf_function
def model_reap_cqe(ctx: Ctx, cq_idx: u32, cqe: Cqe) -> i64:
    """Move the oldest CQE of virtual CQ cq_idx into cqe; -ENOENT if it is empty."""
    cqe.user_data = 0
    cqe.res = 0
    cqe.flags = 0
    if cq_idx >= NCQ:
        return -EINVAL
    head = model_cq_head[cq_idx]
    if head == model_cq_tail[cq_idx]:
        return -ENOENT
    e = model_cqes[cq_idx * CQ_SLOTS + (head & (CQ_SLOTS - 1))]
    cqe.user_data = e.user_data
    cqe.res = e.res
    cqe.flags = e.flags
    model_cq_head[cq_idx] = head + 1
    return 0


@bpf_function
def model_submit(ctx: Ctx, sqe: Sqe) -> i64:
    """Stage an SQE for this step's submission; its completion goes to CQ sqe.cq_idx."""
    n = model_ctl[CTL_NSTAGED]
    if n >= MAX_STAGED:
        return -EBUSY
    slot: u32 = MAX_REQS
    for i in range(MAX_REQS):
        if model_reqs[i].used == 0:
            slot = i
            break
    if slot >= MAX_REQS:
        return -EBUSY
    r = model_reqs[slot]
    r.used = 1
    r.user_data = sqe.user_data
    r.cq_idx = sqe.cq_idx
    st = model_staged[n]
    model_copy_sqe(st, sqe)
    st.user_data = (u64(TAG_HI) << 32) | slot
    model_ctl[CTL_NSTAGED] = n + 1
    model_ctl[CTL_INFLIGHT] += 1
    return 0


# The helpers of the model, as this target implements them (frontend_calls routes the names).
MODEL_HELPERS = {"submit": model_submit, "emit_cqe": model_emit_cqe, "reap_cqe": model_reap_cqe}

__all__ = ["MODEL_HELPERS", "NCQ", "CQ_SLOTS", "MAX_REQS", "MAX_STAGED", "MAX_INST", "MAX_STARTS",
           "TAG_HI", "ReqSlot", "StartRec", "Instance", "model_cqes", "model_cq_head",
           "model_cq_tail", "model_reqs", "model_staged", "model_starts", "model_insts", "model_ctl",
           "model_copy_sqe", "model_emit_cqe", "model_reap_cqe", "model_submit", "INST_FREE",
           "INST_RUNNABLE", "INST_WAITING", "CTL_NSTAGED", "CTL_START_HEAD", "CTL_START_TAIL",
           "CTL_WANT", "CTL_INFLIGHT", "CTL_SUBMIT_ERR", "CTL_ACTIVE", "CTL_READY", "CTL_WANT_CQ", "CTL_NWRITES", "MAX_WRITES",
           "model_mem_base", "model_mem_size", "PendingWrite", "model_writes", "model_put_user"]
