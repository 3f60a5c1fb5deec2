"""The talk's programming model on the Linux >= 7.1 loop (target `bpf_ops`), written in the language.

On this target `submit`, `emit_cqe` and `reap_cqe` in an `@iouring_program` are the functions below
(the compiler routes the helper names here); a generated `@loop_step` scheduler
(`pybpfuring/runtime/backends/bpf_ops_model.py`) routes kernel completions to their CQ by the
`cq_idx` of the SQE that caused them, starts requests, runs ready programs and completes them.
docs/kernel.md, "How the model runs in the kernel", has the design.

Every size is the ring's: the maps below are declared with one entry and sized at load time
(`model_sizes()` in bpf_ops_model.py), and the counts the code needs are `.rodata` values set then,
constants to the verifier. No loop of a program's helper scans a table: request slots and program
instances come from free lists, runnable instances wait in a FIFO, and the waiters of a CQ in a
list sorted by `wait_nr`, so a step costs what it does, not what the ring could hold.

State (all in maps; user space reads and writes them through mmap):
- CQs 0..ncq-1: `model_cq` (head, tail, where its slots are in `model_cqes`, its size, drops,
  overflow, waiters); CQ 0 is the one io_uring_enter waits on; its slots hold more than its size
  (the overflow backlog: like a kernel with IORING_FEAT_NODROP, CQ 0 never drops).
- kernel requests: `model_reqs`, by the slot the kernel-side user_data names (TAG_HI << 32 | slot);
- SQEs waiting to be handed to the kernel: `model_staged` (a FIFO);
- requests user space started: `model_starts` (a FIFO written by user space);
- program instances: `model_insts`, runnable ones in `model_runq` (a FIFO);
- chains user space continues: `model_links` (link id, res), filled when a request that carries a
  link id completes (the scheduler then returns to user space);
- control words `model_ctl` (CTL_*).
"""
from __future__ import annotations

from .constants import EBUSY, EFAULT, EINVAL, ENOENT, ENOMEM
from .globals import ReadOnly
from .decorators import bpf_function
from .maps import ArrayMap
from .structs import Cqe, Ctx, Sqe
from .types import Array, i32, i64, struct, u16, u32, u64, u8

TAG_HI = 0x7B9F0000       # high word of the kernel-side user_data of routed requests
NONE = 0xFFFFFFFF         # the end of a list
IORING_OP_BPF = 37        # the 2021 opcode of a BPF request
IORING_OP_NOP = 0
IORING_NOP_INJECT_RESULT = 1   # nop_flags (sqe->rw_flags): complete with the result in sqe->len
IOSQE_IO_LINK = 1 << 2
IOSQE_IO_HARDLINK = 1 << 3
IOSQE_CQE_SKIP_SUCCESS = 1 << 6
IORING_CQE_F_MORE = 1 << 1

# Compile-time bounds of the scheduler's per-step loops. They bound one step's work, not what a
# program can do: a step that reaches one returns IOU_LOOP_CONTINUE without sleeping and goes on.
MAX_INSTANCES = 1024      # the most program instances a ring may have (the waiter-list walk bound)
MAX_WRITES = 64           # copy_to_user calls one program run may make

CTL_STAGE_HEAD = 0        # model_staged FIFO (written by programs and user space)
CTL_STAGE_TAIL = 1
CTL_START_HEAD = 2        # model_starts FIFO (tail written by user space)
CTL_START_TAIL = 3
CTL_RUNQ_HEAD = 4
CTL_RUNQ_TAIL = 5
CTL_DIRTY_HEAD = 6        # CQs whose waiters must be checked again
CTL_DIRTY_TAIL = 7
CTL_LINK_HEAD = 8         # model_links FIFO (head written by user space)
CTL_LINK_TAIL = 9
CTL_REQ_FREE = 10         # free lists (NONE when empty) and the slots never used yet
CTL_REQ_BUMP = 11
CTL_INST_FREE = 12
CTL_INST_BUMP = 13
CTL_INFLIGHT = 14         # kernel requests not completed
CTL_ACTIVE = 15           # program instances started and not completed
CTL_WANT = 16             # CQEs on CQ CTL_WANT_CQ that end io_uring_enter (user space)
CTL_WANT_CQ = 17
CTL_SUBMIT_ERR = 18
CTL_NWRITES = 19
CTL_RUNS = 20             # program runs
CTL_STOP = 21             # a reason to return to user space at the end of this step
CTL_CQ0_FULL = 22         # routing stopped: CQ 0 holds all it can until user space reaps
CTL_BUSY = 23             # set by each step: work is ready now (runnable, queued, staged)
CTL_ROUTED = 24           # kernel CQEs routed in this step
CTL_NSUBMIT = 25          # SQEs handed to the kernel in this step
CTL_CUR = 26              # the instance running now
CTL_WALK_PREV = 27        # model_wait_on's list walk
CTL_WALK_CUR = 28
CTL_RUN_STAGE = 29        # CTL_STAGE_TAIL when the current run began
CTL_WHY_TAIL = 30         # notes written to model_why (user space reads them: ring.explain)
CTL_FLUSHED = 31          # this io_uring_enter let the kernel run its local task work once
WHY_NOTES = 64            # the newest notes kept in the kernel until user space reads them
WHY_BAD_WAIT, WHY_BAD_RETURN, WHY_BAD_PROGRAM, WHY_BAD_CQ = 1, 2, 3, 4
CTL_WAITS = 32            # program runs that returned WAIT (Ring.stats)
CTL_PROG_SQES = 33        # SQEs programs submitted (Ring.stats)
CTL_TIMERS = 34           # deadline timers of timed waits in the kernel (not requests)
CTL_WORDS = 35
DEADLINE_CQ = 0xFFFF      # the cq_idx of a deadline timer: its CQE ends the io_uring_enter

INST_FREE = 0
INST_RUNNABLE = 1
INST_WAITING = 2
INST_RUNNING = 3


@struct
class CqState:
    head: u32             # advanced by whoever reaps (programs, user space)
    tail: u32
    base: u32             # its first slot in model_cqes
    mask: u32             # slots - 1 (a power of two)
    size: u32             # an extra CQ takes no more (-ENOMEM); CQ 0 counts overflow beyond it
    drops: u32
    overflow: u32
    promised: u32         # CQEs counted for woken waiters that have not run yet
    wait_head: u32        # waiting instances, by wait_nr then arrival (NONE: none)
    wait_tail: u32
    dirty: u32
    pad: u32


@struct
class ReqSlot:
    user_data: u64
    cq_idx: u32
    next: u32             # free list
    link: u32             # 0, or the chain user space continues when this completes
    flags: u32            # the SQE's IOSQE_* flags


@struct
class Instance:
    user_data: u64
    prog: u32
    cq_idx: u32
    state: u32
    wait_idx: u32
    wait_nr: u32
    runs: u32
    next: u32             # free list, or the next waiter on its CQ
    link: u32
    fail: i32
    flags: u32
    claimed: u32          # woken with wait_nr CQEs promised on CQ wait_idx
    pad: u32


@struct
class LinkDone:
    link: u32
    res: i32


@struct
class WhyNote:
    """Why the scheduler failed a request (WHY_*), for ring.explain()."""
    user_data: u64
    res: i32
    code: u32
    a: u32
    b: u32
    line: u32
    prog: u32


@struct
class CtlWords:
    """The control words (CTL_*), u32 each; user space reads and writes them through an mmap."""
    w: Array[u32, CTL_WORDS]


@struct
class PendingWrite:
    uptr: u64
    value: u64
    size: u32
    pad: u32


model_cq = ArrayMap(CqState, 1)
model_cqes = ArrayMap(Cqe, 1)
model_reqs = ArrayMap(ReqSlot, 1)
model_staged = ArrayMap(Sqe, 1)
model_starts = ArrayMap(Sqe, 1)      # user space's submissions (pad words: fail, link)
model_insts = ArrayMap(Instance, 1)
model_runq = ArrayMap(u32, 1)
model_wlink = ArrayMap(u64, 1)    # waiter lists: wait_nr << 32 | next waiter on the same CQ
model_dirty = ArrayMap(u32, 1)
model_links = ArrayMap(LinkDone, 1)
model_writes = ArrayMap(PendingWrite, MAX_WRITES)
# One value holding every control word: a function looks it up once (`ctl = model_ctl[0]`) and
# reads each word with one load, where a word per element cost a lookup (a helper the verifier
# inlines, a NULL test, about ten instructions) on every access, ~50 of them a step.
model_ctl = ArrayMap(CtlWords, 1)
model_ctxbuf = ArrayMap(Ctx, 1)   # the context of the program running now
model_why = ArrayMap(WhyNote, WHY_NOTES)

# Sizes, set by the loader (powers of two where a FIFO masks with them).
model_ncq = ReadOnly(u32)
model_nreqs = ReadOnly(u32)       # kernel requests in flight (and SQEs staged): power of two
model_ninst = ReadOnly(u32)       # program instances: power of two, <= MAX_INSTANCES
model_nstarts = ReadOnly(u32)     # power of two
model_nlinks = ReadOnly(u32)      # power of two
model_nprogs = ReadOnly(u32)
model_ndirty = ReadOnly(u32)      # the dirty-CQ FIFO: power of two >= model_ncq
# User memory programs may write: the ring's MEM region (IORING_REGISTER_MEM_REGION), set by the
# loader; 0 bytes when the ring has none (then copy_to_user gives -EFAULT).
model_mem_base = ReadOnly(u64)
model_mem_size = ReadOnly(u32)


@bpf_function
def model_put_user(uptr: u64, value: u64, size: u32) -> i64:
    """Stage a write of `size` (1, 2, 4, 8) bytes to user memory inside the MEM region; the
    scheduler performs it as soon as the program returns. -EFAULT outside the region."""
    ctl = model_ctl[0]
    if uptr < model_mem_base or uptr - model_mem_base + size > model_mem_size:
        return -EFAULT
    n = ctl.w[CTL_NWRITES]
    if n >= MAX_WRITES:
        return -EBUSY
    w = model_writes[n]
    w.uptr = uptr
    w.value = value
    w.size = size
    ctl.w[CTL_NWRITES] = n + 1
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
def model_mark_dirty(cq_idx: u32) -> None:
    if model_cq[cq_idx].dirty == 0 and model_cq[cq_idx].wait_head != NONE:
        model_cq[cq_idx].dirty = 1
        ctl = model_ctl[0]
        t = ctl.w[CTL_DIRTY_TAIL]
        model_dirty[t & (model_ndirty - 1)] = cq_idx
        ctl.w[CTL_DIRTY_TAIL] = t + 1


@bpf_function
def model_push_runq(j: u32) -> None:
    ctl = model_ctl[0]
    model_insts[j].state = INST_RUNNABLE
    t = ctl.w[CTL_RUNQ_TAIL]
    model_runq[t & (model_ninst - 1)] = j
    ctl.w[CTL_RUNQ_TAIL] = t + 1


@bpf_function(verified_alone=True)
def model_wake(cq_idx: u32) -> i64:
    """Wake the waiters of a CQ while the CQEs not promised to an earlier one cover their wait_nr
    (as the emulated backend does, cqs.py); 1 if more may be satisfied than one call woke."""
    if cq_idx in model_cq:        # always (it came from the dirty list): one lookup for all
        q = model_cq[cq_idx]
        avail = i64(q.tail - q.head) - i64(q.promised)
        for i in range(64):
            j = q.wait_head
            if j == NONE:
                return 0
            link = model_wlink[j]
            nr = u32(link >> 32)
            if i64(nr) > avail:
                return 0
            nxt = u32(link & 0xFFFFFFFF)
            q.wait_head = nxt
            if nxt == NONE:
                q.wait_tail = NONE
            avail -= i64(nr)
            q.promised += nr
            model_insts[j].claimed = 1
            model_push_runq(j)
        return 1
    return 0


@bpf_function(verified_alone=True)
def model_post(cq_idx: u32, user_data: u64, res: i32, cflags: u32) -> i64:
    """Append a CQE to CQ cq_idx and mark its waiters for waking. An extra CQ that is full refuses
    it (-ENOMEM, counted in drops); CQ 0 keeps CQEs beyond its size (counted in overflow) up to
    its backlog, then refuses them too (-ENOMEM: the memory the ring was given is used up).
    `if k in m: q = m[k]`: one lookup for every field, and no stack copy for a missing key (this
    frame is part of every program's call chain, 512 bytes in all)."""
    if cq_idx in model_cq:
        q = model_cq[cq_idx]
        tail = q.tail
        ready = tail - q.head
        if ready >= q.size:
            if cq_idx != 0 or ready > q.mask:
                q.drops += 1
                return -ENOMEM
            q.overflow += 1
        slot = q.base + (tail & q.mask)
        if slot in model_cqes:
            e = model_cqes[slot]
            e.user_data = user_data
            e.res = res
            e.flags = cflags
        q.tail = tail + 1
        # Its waiters are woken right after the program (or the routing) that posted it, in
        # model_wake_dirty: waking from here would nest one more call frame under programs.
        model_mark_dirty(cq_idx)
        return 0
    return -ENOMEM                  # a CQ the ring lacks (callers refuse it before: -EINVAL)


@bpf_function
def model_emit_cqe(ctx: Ctx, cq_idx: u32, user_data: u64, res: i32, cflags: u32) -> i64:
    """Post a CQE to CQ cq_idx: 0, -EINVAL for a CQ the ring lacks, -ENOMEM if it is full."""
    if cq_idx >= model_ncq:
        return -EINVAL
    return model_post(cq_idx, user_data, res, cflags)


@bpf_function
def model_reap_cqe(ctx: Ctx, cq_idx: u32, cqe: Cqe) -> i64:
    """Move the oldest CQE of CQ cq_idx into cqe; -ENOENT if it is empty."""
    cqe.user_data = 0
    cqe.res = 0
    cqe.flags = 0
    if cq_idx >= model_ncq:
        return -EINVAL
    if cq_idx in model_cq:
        q = model_cq[cq_idx]
        head = q.head
        if head == q.tail:
            return -ENOENT
        slot = q.base + (head & q.mask)
        if slot in model_cqes:
            e = model_cqes[slot]
            cqe.user_data = e.user_data
            cqe.res = e.res
            cqe.flags = e.flags
        q.head = head + 1
        return 0
    return -ENOENT


@bpf_function(verified_alone=True)
def model_note(user_data: u64, res: i32, code: u32, a: u32, b: u32) -> i64:
    """Record why a request failed; the line and program are the running program's."""
    ctl = model_ctl[0]
    t = ctl.w[CTL_WHY_TAIL]
    x = t & (WHY_NOTES - 1)
    model_why[x].user_data = user_data
    model_why[x].res = res
    model_why[x].code = code
    model_why[x].a = a
    model_why[x].b = b
    model_why[x].line = model_ctxbuf[0].__line
    model_why[x].prog = model_insts[ctl.w[CTL_CUR]].prog
    ctl.w[CTL_WHY_TAIL] = t + 1
    return 0


@bpf_function(verified_alone=True)
def model_start(user_data: u64, prog: u32, cq_idx: u32, flags_link: u32, fail: i32) -> i64:
    """A new BPF request: an instance in the run queue; -EBUSY if every instance is in use.
    `flags_link` is the SQE flags | link id << 8 (a BPF-to-BPF call passes five arguments)."""
    ctl = model_ctl[0]
    j = ctl.w[CTL_INST_FREE]
    if j != NONE:
        ctl.w[CTL_INST_FREE] = model_insts[j].next
    else:
        j = ctl.w[CTL_INST_BUMP]
        if j >= model_ninst:
            return -EBUSY
        ctl.w[CTL_INST_BUMP] = j + 1
    inst = model_insts[j]
    inst.user_data = user_data
    inst.prog = prog
    inst.cq_idx = cq_idx
    inst.flags = flags_link & 0xFF
    inst.fail = fail
    inst.link = flags_link >> 8
    inst.wait_idx = 0
    inst.wait_nr = 0
    inst.claimed = 0
    inst.runs = 0                           # ctx.runs: 0 on the request's first run
    inst.next = NONE
    if cq_idx >= model_ncq:
        inst.cq_idx = 0                     # a CQ the ring lacks: -EINVAL on CQ 0
        inst.fail = -EINVAL
    elif fail == 0 and prog >= model_nprogs:
        inst.fail = -EFAULT                 # an empty slot of the program table
        # (noted in model_pick: a note here would make the call chain under a program one
        # frame deeper than the verifier's 512-byte stack allows)
    ctl.w[CTL_ACTIVE] += 1
    model_push_runq(j)
    return 0


@bpf_function(verified_alone=True)
def model_stage(sqe: Sqe, user_data: u64, cq_idx: u32, link: u32, fail: i32) -> i64:
    """Hand a kernel SQE to the next submission, routed back to CQ cq_idx with user_data;
    -EBUSY when every request slot is in flight. With `fail` < 0 the kernel gets, in the SQE's
    place, a NOP that completes with `fail` (IORING_NOP_INJECT_RESULT): the request fails where
    it stands in its chain, after the SQE linked before it, and cancels the ones linked after it,
    as a request the 2021 patches refuse does."""
    ctl = model_ctl[0]
    s = ctl.w[CTL_REQ_FREE]
    if s != NONE:
        ctl.w[CTL_REQ_FREE] = model_reqs[s].next
    else:
        s = ctl.w[CTL_REQ_BUMP]
        if s >= model_nreqs:
            return -EBUSY
        ctl.w[CTL_REQ_BUMP] = s + 1
    # Each slot is looked up once for all its fields (`if k in m: r = m[k]`; the keys are always in
    # range: both maps have model_nreqs entries), not once per field.
    if s in model_reqs:
        r = model_reqs[s]
        r.user_data = user_data
        r.cq_idx = cq_idx
        r.link = link
        r.flags = sqe.flags
        r.next = NONE
        if fail < 0:
            r.flags = 0
    x = ctl.w[CTL_STAGE_TAIL] & (model_nreqs - 1)
    # Field by field (no stack copy: this frame is under every program that submits). Bytes
    # 48..63 (the 2021 cq_idx) stay zero: the upstream layout. The kernel must post every CQE
    # (the slot is freed by it): skip-success is applied when the CQE is routed.
    if x in model_staged:
        st = model_staged[x]
        st.user_data = (u64(TAG_HI) << 32) | s
        if fail < 0:
            st.opcode = IORING_OP_NOP
            st.flags = sqe.flags & (IOSQE_IO_LINK | IOSQE_IO_HARDLINK)
            st.ioprio = 0
            st.fd = 0
            st.off = 0
            st.addr = 0
            st.len = u32(fail)
            st.rw_flags = IORING_NOP_INJECT_RESULT
            st.buf_index = 0
            st.personality = 0
            st.splice_fd_in = 0
        else:
            st.opcode = sqe.opcode
            st.flags = sqe.flags & ~IOSQE_CQE_SKIP_SUCCESS
            st.ioprio = sqe.ioprio
            st.fd = sqe.fd
            st.off = sqe.off
            st.addr = sqe.addr
            st.len = sqe.len
            st.rw_flags = sqe.rw_flags
            st.buf_index = sqe.buf_index
            st.personality = sqe.personality
            st.splice_fd_in = sqe.splice_fd_in
    t = ctl.w[CTL_STAGE_TAIL]
    ctl.w[CTL_STAGE_TAIL] = t + 1
    ctl.w[CTL_INFLIGHT] += 1
    return 0


@bpf_function
def model_submit(ctx: Ctx, sqe: Sqe) -> i64:
    """Submit an SQE from a program: its completion goes to CQ sqe.cq_idx. An IORING_OP_BPF SQE
    starts a request; a cq_idx the ring lacks fails the request with -EINVAL on CQ 0."""
    ctl = model_ctl[0]
    ctl.w[CTL_PROG_SQES] += 1
    bpf = sqe.opcode == IORING_OP_BPF
    if bpf and sqe.flags & (IOSQE_IO_LINK | IOSQE_IO_HARDLINK) != 0:
        return -EINVAL                      # docs/kernel.md: links from a BPF request in a program
    if sqe.cq_idx >= model_ncq:             # -EINVAL on CQ 0, in its place in its chain and the SQ
        model_note(sqe.user_data, -EINVAL, WHY_BAD_CQ, sqe.cq_idx, 0)
        return model_stage(sqe, sqe.user_data, 0, 0, -EINVAL)
    if bpf:
        return model_start(sqe.user_data, u32(sqe.off), sqe.cq_idx, sqe.flags, 0)
    return model_stage(sqe, sqe.user_data, sqe.cq_idx, 0, 0)


# The helpers of the model, as this target implements them (frontend_calls routes the names).
MODEL_HELPERS = {"submit": model_submit, "emit_cqe": model_emit_cqe, "reap_cqe": model_reap_cqe}
