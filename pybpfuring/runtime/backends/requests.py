"""What the 2021 patches check of an SQE before it runs, shared by every backend that parses SQEs in
Python (emulated, bpf_ops; the native loop reuses the emulated dispatch)."""
from __future__ import annotations

from pybpfuring.abi import uring as C
from pybpfuring.abi.structs import SQE_HEAD

# The flags that make an SQE part of a link chain (the backends cut chains at BPF requests).
LINK_FLAGS = C.IOSQE_IO_LINK | C.IOSQE_IO_HARDLINK
# An IORING_OP_BPF request takes no file and no selected buffer (v2 patch 13/23: -EINVAL).
_BPF_BAD_FLAGS = C.IOSQE_FIXED_FILE | C.IOSQE_BUFFER_SELECT


def malformed_bpf_sqe(raw: bytes) -> bool:
    """An IORING_OP_BPF SQE with fields the request does not take (addr, len, ioprio, rw_flags) or
    a file/buffer flag: the 2021 patches complete it with -EINVAL without running a program."""
    _, flags, ioprio, _, _, addr, length, rw_flags, _ = SQE_HEAD.unpack_from(raw)
    return bool(addr or length or ioprio or rw_flags or flags & _BPF_BAD_FLAGS)
