"""Constants programs may use by name. Plain ints; the compiler folds them.

Sources: io_uring opcodes, SQE flags and timeout flags from upstream `include/uapi/linux/io_uring.h`
(the numbering every current kernel uses; the 2021 ABI differs only in IORING_OP_BPF=37, which lives in the
`op_bpf` target table, not here). Errno values from Linux `include/uapi/asm-generic/errno*.h`.
`OK`/`WAIT` are the 2021 bpf_v3 `IORING_BPF_OK`/`IORING_BPF_WAIT` (values inferred as 0/1 in
`reference/io_uring-bpf-abi.md` §0.2).
"""
from __future__ import annotations

import errno as _errno

OK = 0
WAIT = 1
# Per-request state (generator frames, request_state): slots per program; ctx.req is below it.
REQUEST_SLOTS = 4096

_OPS = [
    "NOP", "READV", "WRITEV", "FSYNC", "READ_FIXED", "WRITE_FIXED", "POLL_ADD", "POLL_REMOVE",
    "SYNC_FILE_RANGE", "SENDMSG", "RECVMSG", "TIMEOUT", "TIMEOUT_REMOVE", "ACCEPT", "ASYNC_CANCEL",
    "LINK_TIMEOUT", "CONNECT", "FALLOCATE", "OPENAT", "CLOSE", "FILES_UPDATE", "STATX", "READ", "WRITE",
    "FADVISE", "MADVISE", "SEND", "RECV", "OPENAT2", "EPOLL_CTL", "SPLICE", "PROVIDE_BUFFERS",
    "REMOVE_BUFFERS", "TEE", "SHUTDOWN", "RENAMEAT", "UNLINKAT", "MKDIRAT", "SYMLINKAT", "LINKAT",
    "MSG_RING", "FSETXATTR", "SETXATTR", "FGETXATTR", "GETXATTR", "SOCKET", "URING_CMD", "SEND_ZC",
    "SENDMSG_ZC", "READ_MULTISHOT", "WAITID", "FUTEX_WAIT", "FUTEX_WAKE", "FUTEX_WAITV",
    "FIXED_FD_INSTALL", "FTRUNCATE", "BIND", "LISTEN", "RECV_ZC", "EPOLL_WAIT", "READV_FIXED",
    "WRITEV_FIXED", "PIPE",
]
IORING_OPS: dict[str, int] = {f"IORING_OP_{name}": i for i, name in enumerate(_OPS)}

IOSQE_FLAGS: dict[str, int] = {
    "IOSQE_FIXED_FILE": 1 << 0, "IOSQE_IO_DRAIN": 1 << 1, "IOSQE_IO_LINK": 1 << 2,
    "IOSQE_IO_HARDLINK": 1 << 3, "IOSQE_ASYNC": 1 << 4, "IOSQE_BUFFER_SELECT": 1 << 5,
    "IOSQE_CQE_SKIP_SUCCESS": 1 << 6,
}
IOSQE_BITS: dict[str, int] = {
    "IOSQE_FIXED_FILE_BIT": 0, "IOSQE_IO_DRAIN_BIT": 1, "IOSQE_IO_LINK_BIT": 2,
    "IOSQE_IO_HARDLINK_BIT": 3, "IOSQE_ASYNC_BIT": 4, "IOSQE_BUFFER_SELECT_BIT": 5,
    "IOSQE_CQE_SKIP_SUCCESS_BIT": 6,
}
IORING_TIMEOUT_FLAGS: dict[str, int] = {
    "IORING_TIMEOUT_ABS": 1 << 0, "IORING_TIMEOUT_UPDATE": 1 << 1, "IORING_TIMEOUT_BOOTTIME": 1 << 2,
    "IORING_TIMEOUT_REALTIME": 1 << 3, "IORING_LINK_TIMEOUT_UPDATE": 1 << 4,
    "IORING_TIMEOUT_ETIME_SUCCESS": 1 << 5, "IORING_TIMEOUT_MULTISHOT": 1 << 6,
}
MISC: dict[str, int] = {
    "IORING_FSYNC_DATASYNC": 1 << 0,
    "IORING_CQE_F_BUFFER": 1 << 0, "IORING_CQE_F_MORE": 1 << 1,
    # Map update flags (include/uapi/linux/bpf.h).
    "BPF_ANY": 0, "BPF_NOEXIST": 1, "BPF_EXIST": 2,
}
ERRNOS: dict[str, int] = {name: getattr(_errno, name) for name in (
    "EPERM", "ENOENT", "EINTR", "EIO", "EBADF", "EAGAIN", "ENOMEM", "EFAULT", "EBUSY", "EEXIST",
    "EINVAL", "ENOSPC", "E2BIG", "ECANCELED", "ETIME", "ENOSYS", "EOPNOTSUPP", "ERANGE", "ETIMEDOUT",
    "EOVERFLOW", "ENODATA", "EPIPE",
)}

ALL_CONSTANTS: dict[str, int] = {
    "OK": OK, "WAIT": WAIT, "REQUEST_SLOTS": REQUEST_SLOTS, **IORING_OPS, **IOSQE_FLAGS, **IOSQE_BITS, **IORING_TIMEOUT_FLAGS, **MISC,
    **ERRNOS,
}
globals().update(ALL_CONSTANTS)
