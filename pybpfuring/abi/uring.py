"""io_uring ABI constants, upstream numbering.

Every group names the header it comes from: the kernel uapi `include/uapi/linux/io_uring.h` (mirrored as
liburing's `src/include/liburing/io_uring.h`; values read from liburing @27255f4c, August 2026, which
covers Linux 7.x). Values are ABI: they never change once released, new ones are only appended.
"""
from __future__ import annotations

# --- syscall numbers: include/uapi/asm-generic/unistd.h (aarch64, riscv64, ...) and
# arch/x86/entry/syscalls/syscall_64.tbl. io_uring arrived after the numbering of all architectures
# was unified (Linux 5.1), so 425/426/427 hold everywhere except alpha (535..537), which we do not run on.
NR_IO_URING_SETUP = 425
NR_IO_URING_ENTER = 426
NR_IO_URING_REGISTER = 427

# --- enum io_uring_op (sqe->opcode): include/uapi/linux/io_uring.h
IORING_OP_NOP = 0
IORING_OP_READV = 1
IORING_OP_WRITEV = 2
IORING_OP_FSYNC = 3
IORING_OP_READ_FIXED = 4
IORING_OP_WRITE_FIXED = 5
IORING_OP_POLL_ADD = 6
IORING_OP_POLL_REMOVE = 7
IORING_OP_SYNC_FILE_RANGE = 8
IORING_OP_SENDMSG = 9
IORING_OP_RECVMSG = 10
IORING_OP_TIMEOUT = 11
IORING_OP_TIMEOUT_REMOVE = 12
IORING_OP_ACCEPT = 13
IORING_OP_ASYNC_CANCEL = 14
IORING_OP_LINK_TIMEOUT = 15
IORING_OP_CONNECT = 16
IORING_OP_FALLOCATE = 17
IORING_OP_OPENAT = 18
IORING_OP_CLOSE = 19
IORING_OP_FILES_UPDATE = 20
IORING_OP_STATX = 21
IORING_OP_READ = 22
IORING_OP_WRITE = 23
IORING_OP_FADVISE = 24
IORING_OP_MADVISE = 25
IORING_OP_SEND = 26
IORING_OP_RECV = 27
IORING_OP_OPENAT2 = 28
IORING_OP_EPOLL_CTL = 29
IORING_OP_SPLICE = 30
IORING_OP_PROVIDE_BUFFERS = 31
IORING_OP_REMOVE_BUFFERS = 32
IORING_OP_TEE = 33
IORING_OP_SHUTDOWN = 34
IORING_OP_RENAMEAT = 35
IORING_OP_UNLINKAT = 36
IORING_OP_MKDIRAT = 37
IORING_OP_SYMLINKAT = 38
IORING_OP_LINKAT = 39
IORING_OP_MSG_RING = 40
IORING_OP_FSETXATTR = 41
IORING_OP_SETXATTR = 42
IORING_OP_FGETXATTR = 43
IORING_OP_GETXATTR = 44
IORING_OP_SOCKET = 45
IORING_OP_URING_CMD = 46
IORING_OP_SEND_ZC = 47
IORING_OP_SENDMSG_ZC = 48
IORING_OP_READ_MULTISHOT = 49
IORING_OP_WAITID = 50
IORING_OP_FUTEX_WAIT = 51
IORING_OP_FUTEX_WAKE = 52
IORING_OP_FUTEX_WAITV = 53
IORING_OP_FIXED_FD_INSTALL = 54
IORING_OP_FTRUNCATE = 55
IORING_OP_BIND = 56
IORING_OP_LISTEN = 57
IORING_OP_RECV_ZC = 58
IORING_OP_EPOLL_WAIT = 59
IORING_OP_READV_FIXED = 60
IORING_OP_WRITEV_FIXED = 61
IORING_OP_PIPE = 62
IORING_OP_NOP128 = 63
IORING_OP_URING_CMD128 = 64
IORING_OP_LAST = 65

# --- sqe->flags (IOSQE_*): include/uapi/linux/io_uring.h, enum io_uring_sqe_flags_bit
IOSQE_FIXED_FILE = 1 << 0       # fd is an index into the registered file table
IOSQE_IO_DRAIN = 1 << 1         # issue after all earlier requests completed
IOSQE_IO_LINK = 1 << 2          # the next SQE starts only after this one succeeded
IOSQE_IO_HARDLINK = 1 << 3      # like LINK, but the chain survives a failure
IOSQE_ASYNC = 1 << 4            # always go to io-wq
IOSQE_BUFFER_SELECT = 1 << 5    # pick a buffer from sqe->buf_group
IOSQE_CQE_SKIP_SUCCESS = 1 << 6  # post no CQE when the request succeeds

# --- io_uring_params->flags (IORING_SETUP_*): include/uapi/linux/io_uring.h
IORING_SETUP_IOPOLL = 1 << 0
IORING_SETUP_SQPOLL = 1 << 1
IORING_SETUP_SQ_AFF = 1 << 2
IORING_SETUP_CQSIZE = 1 << 3
IORING_SETUP_CLAMP = 1 << 4
IORING_SETUP_ATTACH_WQ = 1 << 5
IORING_SETUP_R_DISABLED = 1 << 6
IORING_SETUP_SUBMIT_ALL = 1 << 7
IORING_SETUP_COOP_TASKRUN = 1 << 8
IORING_SETUP_TASKRUN_FLAG = 1 << 9
IORING_SETUP_SQE128 = 1 << 10
IORING_SETUP_CQE32 = 1 << 11
IORING_SETUP_SINGLE_ISSUER = 1 << 12
IORING_SETUP_DEFER_TASKRUN = 1 << 13
IORING_SETUP_NO_MMAP = 1 << 14
IORING_SETUP_REGISTERED_FD_ONLY = 1 << 15
IORING_SETUP_NO_SQARRAY = 1 << 16
IORING_SETUP_HYBRID_IOPOLL = 1 << 17
IORING_SETUP_CQE_MIXED = 1 << 18
IORING_SETUP_SQE_MIXED = 1 << 19
# Linux 7.x: the kernel ignores SQ head/tail and always takes SQEs from index 0 (needs NO_SQARRAY,
# excludes SQPOLL); user space must leave head and tail at 0.
IORING_SETUP_SQ_REWIND = 1 << 20

# --- io_uring_enter(2) flags (IORING_ENTER_*): include/uapi/linux/io_uring.h
IORING_ENTER_GETEVENTS = 1 << 0
IORING_ENTER_SQ_WAKEUP = 1 << 1
IORING_ENTER_SQ_WAIT = 1 << 2
IORING_ENTER_EXT_ARG = 1 << 3
IORING_ENTER_REGISTERED_RING = 1 << 4
IORING_ENTER_ABS_TIMER = 1 << 5
IORING_ENTER_EXT_ARG_REG = 1 << 6
IORING_ENTER_NO_IOWAIT = 1 << 7

# --- io_uring_params->features (IORING_FEAT_*): include/uapi/linux/io_uring.h
IORING_FEAT_SINGLE_MMAP = 1 << 0
IORING_FEAT_NODROP = 1 << 1
IORING_FEAT_SUBMIT_STABLE = 1 << 2
IORING_FEAT_RW_CUR_POS = 1 << 3
IORING_FEAT_CUR_PERSONALITY = 1 << 4
IORING_FEAT_FAST_POLL = 1 << 5
IORING_FEAT_POLL_32BITS = 1 << 6
IORING_FEAT_SQPOLL_NONFIXED = 1 << 7
IORING_FEAT_EXT_ARG = 1 << 8
IORING_FEAT_NATIVE_WORKERS = 1 << 9
IORING_FEAT_RSRC_TAGS = 1 << 10
IORING_FEAT_CQE_SKIP = 1 << 11
IORING_FEAT_LINKED_FILE = 1 << 12
IORING_FEAT_REG_REG_RING = 1 << 13
IORING_FEAT_RECVSEND_BUNDLE = 1 << 14
IORING_FEAT_MIN_TIMEOUT = 1 << 15
IORING_FEAT_RW_ATTR = 1 << 16
IORING_FEAT_NO_IOWAIT = 1 << 17

# --- mmap(2) offsets on the ring fd (IORING_OFF_*): include/uapi/linux/io_uring.h
IORING_OFF_SQ_RING = 0
IORING_OFF_CQ_RING = 0x8000000
IORING_OFF_SQES = 0x10000000

# --- sq_ring->flags (IORING_SQ_*) and cq_ring->flags (IORING_CQ_*): include/uapi/linux/io_uring.h
IORING_SQ_NEED_WAKEUP = 1 << 0  # the SQPOLL thread sleeps: enter with SQ_WAKEUP
IORING_SQ_CQ_OVERFLOW = 1 << 1  # CQEs wait in the kernel's overflow list: enter with GETEVENTS
IORING_SQ_TASKRUN = 1 << 2      # task work is pending: enter with GETEVENTS
IORING_CQ_EVENTFD_DISABLED = 1 << 0

# --- cqe->flags (IORING_CQE_F_*): include/uapi/linux/io_uring.h
IORING_CQE_F_BUFFER = 1 << 0
IORING_CQE_F_MORE = 1 << 1      # the same request will post more CQEs (multishot)
IORING_CQE_F_SOCK_NONEMPTY = 1 << 2
IORING_CQE_F_NOTIF = 1 << 3
IORING_CQE_F_BUF_MORE = 1 << 4
IORING_CQE_F_SKIP = 1 << 5
IORING_CQE_F_32 = 1 << 15
IORING_CQE_BUFFER_SHIFT = 16

# --- per-opcode flags: include/uapi/linux/io_uring.h
IORING_FSYNC_DATASYNC = 1 << 0                 # sqe->fsync_flags
IORING_TIMEOUT_ABS = 1 << 0                    # sqe->timeout_flags
IORING_TIMEOUT_UPDATE = 1 << 1
IORING_TIMEOUT_BOOTTIME = 1 << 2
IORING_TIMEOUT_REALTIME = 1 << 3
IORING_LINK_TIMEOUT_UPDATE = 1 << 4
IORING_TIMEOUT_ETIME_SUCCESS = 1 << 5
IORING_TIMEOUT_MULTISHOT = 1 << 6
IORING_POLL_ADD_MULTI = 1 << 0                 # POLL_ADD command flags live in sqe->len
IORING_POLL_UPDATE_EVENTS = 1 << 1
IORING_POLL_UPDATE_USER_DATA = 1 << 2
IORING_POLL_ADD_LEVEL = 1 << 3
IORING_ASYNC_CANCEL_ALL = 1 << 0               # sqe->cancel_flags
IORING_ASYNC_CANCEL_FD = 1 << 1
IORING_ASYNC_CANCEL_ANY = 1 << 2
IORING_ASYNC_CANCEL_FD_FIXED = 1 << 3
IORING_ASYNC_CANCEL_USERDATA = 1 << 4
IORING_ASYNC_CANCEL_OP = 1 << 5
IORING_FILE_INDEX_ALLOC = 0xFFFFFFFF           # sqe->file_index: let the kernel pick a slot

# --- enum io_uring_register_op (io_uring_register(2) opcodes): include/uapi/linux/io_uring.h
IORING_REGISTER_BUFFERS = 0
IORING_UNREGISTER_BUFFERS = 1
IORING_REGISTER_FILES = 2
IORING_UNREGISTER_FILES = 3
IORING_REGISTER_EVENTFD = 4
IORING_UNREGISTER_EVENTFD = 5
IORING_REGISTER_FILES_UPDATE = 6
IORING_REGISTER_EVENTFD_ASYNC = 7
IORING_REGISTER_PROBE = 8
IORING_REGISTER_PERSONALITY = 9
IORING_UNREGISTER_PERSONALITY = 10
IORING_REGISTER_RESTRICTIONS = 11
IORING_REGISTER_ENABLE_RINGS = 12
IORING_REGISTER_FILES2 = 13
IORING_REGISTER_FILES_UPDATE2 = 14
IORING_REGISTER_BUFFERS2 = 15
IORING_REGISTER_BUFFERS_UPDATE = 16
IORING_REGISTER_IOWQ_AFF = 17
IORING_UNREGISTER_IOWQ_AFF = 18
IORING_REGISTER_IOWQ_MAX_WORKERS = 19
IORING_REGISTER_RING_FDS = 20
IORING_UNREGISTER_RING_FDS = 21
IORING_REGISTER_PBUF_RING = 22
IORING_UNREGISTER_PBUF_RING = 23
IORING_REGISTER_SYNC_CANCEL = 24
IORING_REGISTER_FILE_ALLOC_RANGE = 25
IORING_REGISTER_PBUF_STATUS = 26
IORING_REGISTER_NAPI = 27
IORING_UNREGISTER_NAPI = 28
IORING_REGISTER_CLOCK = 29
IORING_REGISTER_CLONE_BUFFERS = 30
IORING_REGISTER_SEND_MSG_RING = 31
IORING_REGISTER_ZCRX_IFQ = 32
IORING_REGISTER_RESIZE_RINGS = 33

# --- struct io_uring_probe_op->flags: include/uapi/linux/io_uring.h
IO_URING_OP_SUPPORTED = 1 << 0

# --- sizes fixed by the ABI: include/uapi/linux/io_uring.h
SQE_SIZE = 64   # sizeof(struct io_uring_sqe) without IORING_SETUP_SQE128
CQE_SIZE = 16   # sizeof(struct io_uring_cqe) without IORING_SETUP_CQE32


def opcode_name(opcode: int) -> str:
    """`IORING_OP_READ` for 22; `IORING_OP_<n>` for numbers newer than this table."""
    return _OPCODE_NAMES.get(opcode, f"IORING_OP_{opcode}")


_OPCODE_NAMES = {value: name for name, value in dict(globals()).items()
                 if name.startswith("IORING_OP_") and name != "IORING_OP_LAST"}
