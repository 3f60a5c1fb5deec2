"""The numbers of BPF and of the 2021 "io_uring BPF requests" ABI that both the compiler and the runtime
use: helper IDs, the IORING_OP_BPF opcode and register codes, and the limits of the patches.

Standard helper IDs are from `include/uapi/linux/bpf.h` (`__BPF_FUNC_MAPPER`); the 2021 values from the
RFC v2 patches (`reference/io_uring-bpf-abi.md` §0.2, §2.1), each with its patch.
"""
from __future__ import annotations

BPF_FUNC_map_lookup_elem = 1
BPF_FUNC_map_update_elem = 2
BPF_FUNC_map_delete_elem = 3
BPF_FUNC_ktime_get_ns = 5
BPF_FUNC_trace_printk = 6
BPF_FUNC_get_prandom_u32 = 7
BPF_FUNC_copy_from_user = 148

IORING_OP_BPF_2021 = 37
IORING_REGISTER_BPF_2021 = 20
IORING_UNREGISTER_BPF_2021 = 21
MAX_BPF_PROGS = 100  # IORING_MAX_BPF_PROGS, v2 patch 13/23
MAX_EXTRA_CQS = 1024  # IO_MAX_CQRINGS, v2 patch 10/23
MAX_CQ_ENTRIES = 65536  # 2 * IORING_MAX_CQ_ENTRIES... v2 patch 09/23
STACK_SIZE = 512  # MAX_BPF_STACK
