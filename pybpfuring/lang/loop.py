"""The Linux >= 7.1 io_uring loop (`struct io_uring_bpf_ops`, member `loop_step`), in the language.

A `@loop_step` program is called by the kernel inside `io_uring_enter()` (instead of the normal
submit-and-wait) once per step of the ring's event loop, with the ring's context and the loop
parameters. It reaches the rings through *regions* (`get_region`), submits the SQEs it wrote into
the SQ region with `submit_sqes`, and returns IOU_LOOP_CONTINUE (after setting
`lp.cq_wait_idx`: the loop sleeps until the CQ tail reaches it) or IOU_LOOP_STOP (io_uring_enter
returns 0).

    sq = get_region(ctx, IOU_REGION_SQ, sq_entries * SQE_SIZE)     # size: a load-time constant
    sqe = sq.view(Sqe, 0)                                          # a Sqe inside the SQ region
    head = cq.load_u32(cq_head_offset)                             # a u32 at a byte offset
    cq.store_u32(cq_head_offset, head + 1)

Every region access is checked against the region's size (the constant given to `get_region`):
out of range (or a region the kernel did not give, NULL) reads 0 and drops writes, like an array
index past the end. The size must be a constant the verifier knows: a literal, or `ReadOnly`
globals (set by the loader before load), combined with arithmetic.

Sources (`reference/io_uring-bpf-abi.md` §3.2; torvalds/linux `io_uring/bpf-ops.[ch]`,
`io_uring/loop.h`; checked against the BTF of Debian's 7.2 kernel): `struct io_uring_bpf_ops
{ int (*loop_step)(struct io_ring_ctx *, struct iou_loop_params *); __u32 ring_fd; void *priv; }`
(offsets 0, 8, 16; 24 bytes), `struct iou_loop_params { __u32 cq_wait_idx; }`, regions MEM=0,
CQ=1, SQ=2, IOU_LOOP_CONTINUE=0, IOU_LOOP_STOP=1. These enums are kernel-internal (not uapi).
"""
from __future__ import annotations

from .helpers import Intrinsic
from .types import layout, u32

IOU_LOOP_CONTINUE = 0
IOU_LOOP_STOP = 1
IOU_REGION_MEM = 0
IOU_REGION_CQ = 1
IOU_REGION_SQ = 2
SQE_SIZE = 64     # sizeof(struct io_uring_sqe) (no IORING_SETUP_SQE128)
CQE_SIZE = 16     # sizeof(struct io_uring_cqe) (no IORING_SETUP_CQE32)

LOOP_CONSTANTS: dict[str, int] = {
    "IOU_LOOP_CONTINUE": IOU_LOOP_CONTINUE, "IOU_LOOP_STOP": IOU_LOOP_STOP,
    "IOU_REGION_MEM": IOU_REGION_MEM, "IOU_REGION_CQ": IOU_REGION_CQ,
    "IOU_REGION_SQ": IOU_REGION_SQ, "SQE_SIZE": SQE_SIZE, "CQE_SIZE": CQE_SIZE,
}


class IoRingCtx:
    """The ring (`struct io_ring_ctx`, `struct iou_ctx` in 7.2's BTF): opaque. Pass it to
    get_region() and submit_sqes(); it has no fields a program may read or write."""


IoRingCtx.__bpf_struct__ = layout("io_ring_ctx", [], module=__name__)  # type: ignore[attr-defined]


class LoopParams:
    """`struct iou_loop_params`: set `lp.cq_wait_idx` to the CQ tail value to sleep until, before
    returning IOU_LOOP_CONTINUE (a hint: the loop may run again earlier)."""

    cq_wait_idx: int


LoopParams.__bpf_struct__ = layout("iou_loop_params", [("cq_wait_idx", u32)],  # type: ignore[attr-defined]
                                   module=__name__)


class RegionType:
    """The type of a region reference: a pointer the kernel gave (or NULL) and its checked size.
    Regions live in locals and are passed to inline @bpf_functions; they cannot be stored in maps,
    structs or globals."""

    name = "Region"
    size = 16

    def __repr__(self) -> str:
        return "Region"


Region = RegionType()

# Methods of a region: load_<t>(off) -> t, store_<t>(off, v), view(StructClass, off) -> reference.
REGION_SCALARS = ("u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64")

get_region = Intrinsic(
    "get_region", "get_region(ctx, region_id, size) -> Region: the ring memory region `region_id` "
    "(IOU_REGION_SQ: the SQE array; IOU_REGION_CQ: SQ/CQ headers and CQEs, as mmap'ed at "
    "IORING_OFF_SQ_RING; IOU_REGION_MEM: the parameter region). `size` must be a load-time constant "
    "no larger than the region; test the result (`if not r:`) before relying on it.")
submit_sqes = Intrinsic(
    "submit_sqes", "submit_sqes(ctx, nr) -> i32: submit the first `nr` SQEs of the SQ region "
    "(IORING_SETUP_SQ_REWIND rings); returns how many were submitted or a negative errno.")

LOOP_INTRINSICS: dict[str, Intrinsic] = {i.name: i for i in (get_region, submit_sqes)}

__all__ = ["IoRingCtx", "LoopParams", "Region", "RegionType", "get_region", "submit_sqes",
           "LOOP_CONSTANTS", "REGION_SCALARS", *LOOP_CONSTANTS]
globals().update(LOOP_CONSTANTS)
