"""Generator programs that use each prep_* of the language once, against real files and sockets
(tests/runtime/test_usecase_prep.py runs them). Each request waits on its own CQ `args.cq`."""
from __future__ import annotations

from pybpfuring.lang import (AT_FDCWD, EIO, IOSQE_IO_LINK, MSG_NOSIGNAL, O_RDONLY, SHUT_WR,
                             STATX_SIZE, Ctx, Sqe, copy_from_user, i32, i64, iouring_program,
                             prep_accept, prep_close, prep_connect, prep_link_timeout, prep_openat,
                             prep_read, prep_recv, prep_send, prep_shutdown, prep_splice,
                             prep_statx, struct, submit, u32, u64, wait_cqe)

STX_SIZE_OFFSET = 40      # struct statx: stx_size is the u64 at byte 40


@struct
class PrepArgs:
    cq: u32
    fd: i32          # a listening socket, a connected socket, or the input file
    fd2: i32         # pipe write end / output file
    fd3: i32         # pipe read end
    path: u64        # NUL-terminated path in user memory
    buf: u64         # data buffer in user memory
    buf2: u64        # statx buffer / sockaddr / timespec
    size: u32
    addrlen: u32
    off: u64


@iouring_program
def open_stat_read(ctx: Ctx, args: PrepArgs) -> i32:
    """statx the path for its size, openat it, read that many bytes, close: returns bytes read."""
    sqe = Sqe()
    prep_statx(sqe, AT_FDCWD, args.path, 0, STATX_SIZE, args.buf2)
    sqe.cq_idx = args.cq
    submit(ctx, sqe)
    cqe = yield wait_cqe(ctx, args.cq)
    if cqe.res < 0:
        return cqe.res
    size: u64 = 0
    copy_from_user(size, args.buf2 + STX_SIZE_OFFSET)
    if size > args.size:
        size = args.size
    sqe = Sqe()
    prep_openat(sqe, AT_FDCWD, args.path, O_RDONLY, 0)
    sqe.cq_idx = args.cq
    submit(ctx, sqe)
    cqe = yield wait_cqe(ctx, args.cq)
    if cqe.res < 0:
        return cqe.res
    fd = cqe.res
    sqe = Sqe()
    prep_read(sqe, fd, args.buf, u32(size), 0)
    sqe.cq_idx = args.cq
    submit(ctx, sqe)
    cqe = yield wait_cqe(ctx, args.cq)
    got = cqe.res
    sqe = Sqe()
    prep_close(sqe, fd)
    sqe.cq_idx = args.cq
    submit(ctx, sqe)
    cqe = yield wait_cqe(ctx, args.cq)
    return got


@iouring_program
def splice_through_pipe(ctx: Ctx, args: PrepArgs) -> i32:
    """`size` bytes of file `fd` at `off` into a pipe (write end fd2), then from the pipe (read
    end fd3) into the output file whose fd is in `addrlen`, at offset 0: returns bytes moved."""
    sqe = Sqe()
    prep_splice(sqe, args.fd, i64(args.off), args.fd2, -1, args.size, 0)
    sqe.cq_idx = args.cq
    submit(ctx, sqe)
    cqe = yield wait_cqe(ctx, args.cq)
    if cqe.res <= 0:
        return cqe.res if cqe.res < 0 else -EIO
    moved = cqe.res
    sqe = Sqe()
    prep_splice(sqe, args.fd3, -1, i32(args.addrlen), 0, u32(moved), 0)
    sqe.cq_idx = args.cq
    submit(ctx, sqe)
    cqe = yield wait_cqe(ctx, args.cq)
    return cqe.res


@iouring_program
def accept_echo_once(ctx: Ctx, args: PrepArgs) -> i32:
    """accept on `fd`, recv up to `size` bytes, send them back, shutdown(SHUT_WR), close."""
    sqe = Sqe()
    prep_accept(sqe, args.fd, 0, 0, 0)
    sqe.cq_idx = args.cq
    submit(ctx, sqe)
    cqe = yield wait_cqe(ctx, args.cq)
    if cqe.res < 0:
        return cqe.res
    conn = cqe.res
    sqe = Sqe()
    prep_recv(sqe, conn, args.buf, args.size, 0)
    sqe.cq_idx = args.cq
    submit(ctx, sqe)
    cqe = yield wait_cqe(ctx, args.cq)
    n = cqe.res
    if n > 0:
        sqe = Sqe()
        prep_send(sqe, conn, args.buf, u32(n), MSG_NOSIGNAL)
        sqe.cq_idx = args.cq
        submit(ctx, sqe)
        cqe = yield wait_cqe(ctx, args.cq)
        if cqe.res < 0:
            n = cqe.res
    sqe = Sqe()
    prep_shutdown(sqe, conn, SHUT_WR)
    sqe.cq_idx = args.cq
    submit(ctx, sqe)
    cqe = yield wait_cqe(ctx, args.cq)
    sqe = Sqe()
    prep_close(sqe, conn)
    sqe.cq_idx = args.cq
    submit(ctx, sqe)
    cqe = yield wait_cqe(ctx, args.cq)
    return n


@iouring_program
def connect_and_send(ctx: Ctx, args: PrepArgs) -> i32:
    """connect socket `fd` to the sockaddr at buf2 (addrlen bytes), send `size` bytes of buf."""
    sqe = Sqe()
    prep_connect(sqe, args.fd, args.buf2, args.addrlen)
    sqe.cq_idx = args.cq
    submit(ctx, sqe)
    cqe = yield wait_cqe(ctx, args.cq)
    if cqe.res < 0:
        return cqe.res
    sqe = Sqe()
    prep_send(sqe, args.fd, args.buf, args.size, MSG_NOSIGNAL)
    sqe.cq_idx = args.cq
    submit(ctx, sqe)
    cqe = yield wait_cqe(ctx, args.cq)
    return cqe.res


@iouring_program
def recv_with_deadline(ctx: Ctx, args: PrepArgs) -> i32:
    """recv on `fd` linked to a link timeout (Timespec at buf2): returns the recv's result
    (-ECANCELED when the peer stayed silent) plus 1000 * (the timeout's -res) to show both."""
    sqe = Sqe()
    prep_recv(sqe, args.fd, args.buf, args.size, 0)
    sqe.flags = IOSQE_IO_LINK
    sqe.user_data = 1
    sqe.cq_idx = args.cq
    submit(ctx, sqe)
    prep_link_timeout(sqe, args.buf2, 0)
    sqe.user_data = 2
    sqe.cq_idx = args.cq
    submit(ctx, sqe)
    recv_res = 0
    timeout_res = 0
    for i in range(2):
        cqe = yield wait_cqe(ctx, args.cq)
        if cqe.user_data == 1:
            recv_res = cqe.res
        else:
            timeout_res = cqe.res
    return recv_res - 1000 * timeout_res


PROGRAMS = [open_stat_read, splice_through_pipe, accept_echo_once, connect_and_send,
            recv_with_deadline]
