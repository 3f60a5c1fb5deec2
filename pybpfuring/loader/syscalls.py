"""The bpf() system call through ctypes: one small function per command we use.

Each command fills its own member of `union bpf_attr` (include/uapi/linux/bpf.h). We describe only
the members we use as ctypes structures; the kernel accepts a shorter attr as long as every byte it
does not know is zero, and a longer one as long as the tail it does not know is zero.
Every failure becomes `BpfSyscallError` naming the command and errno (EPERM explains the privilege).
"""
from __future__ import annotations

import ctypes
import errno as errno_mod
import os
import platform
from dataclasses import dataclass

from pybpfuring.errors import BpfSyscallError

_SYSCALL_NR = {"x86_64": 321, "aarch64": 280, "arm64": 280}

# enum bpf_cmd
MAP_CREATE = 0
MAP_LOOKUP_ELEM = 1
MAP_UPDATE_ELEM = 2
MAP_DELETE_ELEM = 3
MAP_GET_NEXT_KEY = 4
PROG_LOAD = 5
PROG_TEST_RUN = 10
OBJ_GET_INFO_BY_FD = 15
BTF_LOAD = 18
BTF_GET_FD_BY_ID = 19
MAP_FREEZE = 22
LINK_CREATE = 28
LINK_DETACH = 34

CMD_NAMES = {
    MAP_CREATE: "BPF_MAP_CREATE", MAP_LOOKUP_ELEM: "BPF_MAP_LOOKUP_ELEM",
    MAP_UPDATE_ELEM: "BPF_MAP_UPDATE_ELEM", MAP_DELETE_ELEM: "BPF_MAP_DELETE_ELEM",
    MAP_GET_NEXT_KEY: "BPF_MAP_GET_NEXT_KEY", PROG_LOAD: "BPF_PROG_LOAD",
    PROG_TEST_RUN: "BPF_PROG_TEST_RUN", OBJ_GET_INFO_BY_FD: "BPF_OBJ_GET_INFO_BY_FD",
    BTF_LOAD: "BPF_BTF_LOAD", BTF_GET_FD_BY_ID: "BPF_BTF_GET_FD_BY_ID", MAP_FREEZE: "BPF_MAP_FREEZE",
    LINK_CREATE: "BPF_LINK_CREATE", LINK_DETACH: "BPF_LINK_DETACH",
}

# map update flags
BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2
# prog_flags
BPF_F_SLEEPABLE = 1 << 4
# map_flags
BPF_F_NO_PREALLOC = 1 << 0
BPF_F_RDONLY_PROG = 1 << 7
BPF_F_MMAPABLE = 1 << 10
# enum bpf_attach_type (only what we attach with)
BPF_STRUCT_OPS = 44

u8, u16, u32, s32, u64 = ctypes.c_uint8, ctypes.c_uint16, ctypes.c_uint32, ctypes.c_int32, ctypes.c_uint64


class MapCreateAttr(ctypes.Structure):
    _fields_ = [("map_type", u32), ("key_size", u32), ("value_size", u32), ("max_entries", u32),
                ("map_flags", u32), ("inner_map_fd", u32), ("numa_node", u32),
                ("map_name", ctypes.c_char * 16), ("map_ifindex", u32), ("btf_fd", u32),
                ("btf_key_type_id", u32), ("btf_value_type_id", u32),
                ("btf_vmlinux_value_type_id", u32), ("map_extra", u64)]


class MapElemAttr(ctypes.Structure):
    _fields_ = [("map_fd", u32), ("_pad", u32), ("key", u64), ("value", u64), ("flags", u64)]


class ProgLoadAttr(ctypes.Structure):
    _fields_ = [("prog_type", u32), ("insn_cnt", u32), ("insns", u64), ("license", u64),
                ("log_level", u32), ("log_size", u32), ("log_buf", u64), ("kern_version", u32),
                ("prog_flags", u32), ("prog_name", ctypes.c_char * 16), ("prog_ifindex", u32),
                ("expected_attach_type", u32), ("prog_btf_fd", u32), ("func_info_rec_size", u32),
                ("func_info", u64), ("func_info_cnt", u32), ("line_info_rec_size", u32),
                ("line_info", u64), ("line_info_cnt", u32), ("attach_btf_id", u32),
                ("attach_btf_obj_fd", u32), ("core_relo_cnt", u32), ("fd_array", u64),
                ("core_relos", u64), ("core_relo_rec_size", u32), ("log_true_size", u32)]


class BtfLoadAttr(ctypes.Structure):
    _fields_ = [("btf", u64), ("btf_log_buf", u64), ("btf_size", u32), ("btf_log_size", u32),
                ("btf_log_level", u32), ("btf_log_true_size", u32)]


class TestRunAttr(ctypes.Structure):
    _fields_ = [("prog_fd", u32), ("retval", u32), ("data_size_in", u32), ("data_size_out", u32),
                ("data_in", u64), ("data_out", u64), ("repeat", u32), ("duration", u32),
                ("ctx_size_in", u32), ("ctx_size_out", u32), ("ctx_in", u64), ("ctx_out", u64),
                ("flags", u32), ("cpu", u32), ("batch_size", u32)]


class LinkCreateAttr(ctypes.Structure):
    _fields_ = [("prog_or_map_fd", u32), ("target_fd", u32), ("attach_type", u32), ("flags", u32),
                ("target_btf_id", u32), ("_tail", u32 * 7)]


class FdAttr(ctypes.Structure):
    """MAP_FREEZE, LINK_DETACH: just an fd."""
    _fields_ = [("fd", u32)]


class InfoByFdAttr(ctypes.Structure):
    _fields_ = [("bpf_fd", u32), ("info_len", u32), ("info", u64)]


class GetFdByIdAttr(ctypes.Structure):
    _fields_ = [("id", u32), ("next_id", u32), ("open_flags", u32)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _syscall_nr() -> int:
    machine = platform.machine()
    try:
        return _SYSCALL_NR[machine]
    except KeyError:
        raise syscall_error(errno_mod.ENOSYS, f"bpf(): unsupported architecture {machine!r}") from None


def _error(cmd: int, err: int, what: str = "") -> BpfSyscallError:
    name = CMD_NAMES.get(cmd, f"bpf cmd {cmd}")
    if err == errno_mod.EPERM:
        text = (f"{name} failed: EPERM (operation not permitted): loading BPF needs root "
                "or the CAP_BPF capability (plus CAP_PERFMON/CAP_NET_ADMIN for some program types)")
    else:
        text = f"{name} failed: {errno_mod.errorcode.get(err, str(err))} ({os.strerror(err)})"
    if what:
        text += f" [{what}]"
    return syscall_error(err, text)


def syscall_error(err: int, text: str) -> BpfSyscallError:
    """A BpfSyscallError whose str() is just `text` (OSError would prefix "[Errno N]"),
    with `.errno` still set for callers that branch on it."""
    exc = BpfSyscallError(text)
    exc.errno = err
    return exc


def bpf(cmd: int, attr: ctypes.Structure, what: str = "") -> int:
    """Run one bpf() command; returns its non-negative result or raises `BpfSyscallError`.

    `what` names the object concerned (map or program name) to make the error actionable.
    """
    while True:
        ret = _libc.syscall(_syscall_nr(), ctypes.c_int(cmd), ctypes.byref(attr),
                            ctypes.c_uint(ctypes.sizeof(attr)))
        if ret >= 0:
            return ret
        err = ctypes.get_errno()
        if err != errno_mod.EINTR:
            raise _error(cmd, err, what)


def _addr(buf: ctypes.Array | None) -> int:
    return ctypes.addressof(buf) if buf is not None else 0


def _cbuf(data: bytes | bytearray) -> ctypes.Array:
    return (ctypes.c_char * max(len(data), 1)).from_buffer_copy(bytes(data) or b"\0")


# ---- maps -------------------------------------------------------------------------------------

def map_create(map_type: int, key_size: int, value_size: int, max_entries: int, *, map_flags: int = 0,
               name: str = "", btf_fd: int = 0, btf_key_type_id: int = 0, btf_value_type_id: int = 0,
               btf_vmlinux_value_type_id: int = 0) -> int:
    attr = MapCreateAttr(map_type=map_type, key_size=key_size, value_size=value_size,
                         max_entries=max_entries, map_flags=map_flags,
                         map_name=name.encode()[:15], btf_fd=btf_fd, btf_key_type_id=btf_key_type_id,
                         btf_value_type_id=btf_value_type_id,
                         btf_vmlinux_value_type_id=btf_vmlinux_value_type_id)
    return bpf(MAP_CREATE, attr, f"map {name!r}")


def map_lookup(fd: int, key: bytes, value_size: int) -> bytes | None:
    """The value stored under `key`, or None if there is none (ENOENT)."""
    kbuf, vbuf = _cbuf(key), ctypes.create_string_buffer(value_size)
    attr = MapElemAttr(map_fd=fd, key=_addr(kbuf), value=_addr(vbuf))
    try:
        bpf(MAP_LOOKUP_ELEM, attr)
    except BpfSyscallError as exc:
        if exc.errno == errno_mod.ENOENT:
            return None
        raise
    return vbuf.raw


def map_update(fd: int, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
    kbuf, vbuf = _cbuf(key), _cbuf(value)
    bpf(MAP_UPDATE_ELEM, MapElemAttr(map_fd=fd, key=_addr(kbuf), value=_addr(vbuf), flags=flags))


def map_delete(fd: int, key: bytes) -> bool:
    """Delete `key`; False if it was not there."""
    kbuf = _cbuf(key)
    try:
        bpf(MAP_DELETE_ELEM, MapElemAttr(map_fd=fd, key=_addr(kbuf)))
    except BpfSyscallError as exc:
        if exc.errno == errno_mod.ENOENT:
            return False
        raise
    return True


def map_get_next_key(fd: int, key: bytes | None, key_size: int) -> bytes | None:
    """The key after `key` (the first key if None), or None at the end."""
    kbuf = _cbuf(key) if key is not None else None
    nbuf = ctypes.create_string_buffer(key_size)
    try:
        bpf(MAP_GET_NEXT_KEY, MapElemAttr(map_fd=fd, key=_addr(kbuf), value=_addr(nbuf)))
    except BpfSyscallError as exc:
        if exc.errno == errno_mod.ENOENT:
            return None
        raise
    return nbuf.raw


def map_freeze(fd: int) -> None:
    bpf(MAP_FREEZE, FdAttr(fd=fd))


# ---- BTF and programs -------------------------------------------------------------------------

@dataclass
class LoadResult:
    """What a load with a verifier log returned: the fd (or errno) and the log text."""
    fd: int
    errno: int
    log: str


def _grow_log(cmd_log_true: int, size: int) -> int:
    return max(cmd_log_true + 1, size * 4)


MAX_LOG = 16 << 20
PROG_LOAD_EAGAIN_RETRIES = 5  # the largest verifier log we ask for (the kernel allows up to 1 GiB)


def btf_load(blob: bytes, log_level: int = 0) -> LoadResult:
    """BPF_BTF_LOAD; errors come back in the result (with the log) so the caller can explain them."""
    data = _cbuf(blob)
    size = 1 << 16 if log_level else 0
    while True:
        log = ctypes.create_string_buffer(size) if size else None
        attr = BtfLoadAttr(btf=_addr(data), btf_size=len(blob), btf_log_buf=_addr(log),
                           btf_log_size=size, btf_log_level=log_level if size else 0)
        try:
            fd = bpf(BTF_LOAD, attr, "BTF")
            return LoadResult(fd, 0, _log_text(log))
        except BpfSyscallError as exc:
            if exc.errno == errno_mod.ENOSPC and size and size < MAX_LOG:
                size = min(MAX_LOG, _grow_log(attr.btf_log_true_size, size))
                continue
            if exc.errno == errno_mod.EPERM:
                raise
            return LoadResult(-1, exc.errno, _log_text(log))


def _log_text(log: ctypes.Array | None) -> str:
    return log.value.decode(errors="replace") if log is not None else ""


@dataclass
class ProgLoadRequest:
    """Everything BPF_PROG_LOAD takes from us; the insns and info arrays are already encoded."""
    prog_type: int
    insns: bytes
    license: str = "GPL"
    name: str = ""
    prog_flags: int = 0
    expected_attach_type: int = 0
    prog_btf_fd: int = 0
    func_info: bytes = b""
    func_info_cnt: int = 0
    line_info: bytes = b""
    line_info_cnt: int = 0
    attach_btf_id: int = 0
    attach_btf_obj_fd: int = 0
    fd_array: bytes = b""
    core_relos: bytes = b""
    core_relo_cnt: int = 0


FUNC_INFO_REC_SIZE = 8
LINE_INFO_REC_SIZE = 16
CORE_RELO_REC_SIZE = 16


def prog_load(req: ProgLoadRequest, log_level: int = 0, log_size: int = 1 << 16) -> LoadResult:
    """BPF_PROG_LOAD. Verifier rejections come back as a result with the log, so the caller can
    map the failing instruction to source. EPERM raises. A log that does not fit is retried with
    the size the kernel reports, up to MAX_LOG; beyond that we keep the tail the kernel kept (it
    holds the reason) and learn the outcome from one more load without a log."""
    bufs = _ProgBuffers(req)
    size = min(log_size, MAX_LOG) if log_level else 0
    eagain = 0
    while True:
        fd, err, log, true_size = _prog_load_once(req, bufs, log_level if size else 0, size)
        if fd >= 0:
            return LoadResult(fd, 0, log)
        if err == errno_mod.EAGAIN and eagain < PROG_LOAD_EAGAIN_RETRIES:
            # The verifier gives up with EAGAIN when a signal looks pending; on 7.x io_uring's
            # task work right after a ring closes does that (24 of 200 loads in the guest). libbpf
            # retries too.
            eagain += 1
            continue
        if err == errno_mod.EPERM:
            raise _error(PROG_LOAD, err, f"program {req.name!r}")
        if err != errno_mod.ENOSPC or not size:
            return LoadResult(-1, err, log)
        if size < MAX_LOG:
            size = min(MAX_LOG, _grow_log(true_size, size))
            continue
        fd, err, _, _ = _prog_load_once(req, bufs, 0, 0)
        note = f"[verifier log longer than {MAX_LOG >> 20} MiB: only its end is kept]\n"
        return LoadResult(fd, err if fd < 0 else 0, note + log)


class _ProgBuffers:
    """The C buffers a load points at, built once for all retries."""

    def __init__(self, req: ProgLoadRequest):
        self.insns = _cbuf(req.insns)
        self.license = ctypes.create_string_buffer(req.license.encode())
        self.func_info = _cbuf(req.func_info) if req.func_info_cnt else None
        self.line_info = _cbuf(req.line_info) if req.line_info_cnt else None
        self.fd_array = _cbuf(req.fd_array) if req.fd_array else None
        self.core_relos = _cbuf(req.core_relos) if req.core_relo_cnt else None


def _prog_load_once(req: ProgLoadRequest, b: _ProgBuffers, log_level: int,
                    size: int) -> tuple[int, int, str, int]:
    """One BPF_PROG_LOAD: (fd or -1, errno, log text, log_true_size)."""
    log = ctypes.create_string_buffer(size) if size else None
    attr = ProgLoadAttr(
        prog_type=req.prog_type, insn_cnt=len(req.insns) // 8, insns=_addr(b.insns),
        license=_addr(b.license), log_level=log_level, log_size=size, log_buf=_addr(log),
        prog_flags=req.prog_flags, prog_name=_prog_name(req.name),
        expected_attach_type=req.expected_attach_type, prog_btf_fd=req.prog_btf_fd,
        func_info_rec_size=FUNC_INFO_REC_SIZE if b.func_info is not None else 0,
        func_info=_addr(b.func_info), func_info_cnt=req.func_info_cnt,
        line_info_rec_size=LINE_INFO_REC_SIZE if b.line_info is not None else 0,
        line_info=_addr(b.line_info), line_info_cnt=req.line_info_cnt,
        attach_btf_id=req.attach_btf_id, attach_btf_obj_fd=req.attach_btf_obj_fd,
        fd_array=_addr(b.fd_array), core_relos=_addr(b.core_relos),
        core_relo_cnt=req.core_relo_cnt,
        core_relo_rec_size=CORE_RELO_REC_SIZE if b.core_relos is not None else 0)
    ret = _libc.syscall(_syscall_nr(), ctypes.c_int(PROG_LOAD), ctypes.byref(attr),
                        ctypes.c_uint(ctypes.sizeof(attr)))
    if ret >= 0:
        return ret, 0, _log_text(log), attr.log_true_size
    err = ctypes.get_errno()
    if err == errno_mod.EINTR:
        return _prog_load_once(req, b, log_level, size)
    return -1, err, _log_text(log), attr.log_true_size


def _prog_name(name: str) -> bytes:
    # The kernel accepts only [A-Za-z0-9_.] in object names, at most 15 bytes.
    clean = "".join(c if c.isalnum() or c in "_." else "_" for c in name)
    return clean.encode("ascii", "replace")[:15]


@dataclass
class TestRunResult:
    retval: int
    duration_ns: int
    ctx_out: bytes
    data_out: bytes


def prog_test_run(fd: int, *, ctx_in: bytes | None = None, ctx_out_size: int = 0,
                  data_in: bytes | None = None, data_out_size: int = 0,
                  repeat: int = 0, flags: int = 0, ctx_in_place: bool = False) -> TestRunResult:
    """BPF_PROG_TEST_RUN. `ctx_in_place`: the program type (SYSCALL) writes the context back into
    the ctx_in buffer and refuses ctx_out, data, repeat and flags; ctx_out is then that buffer."""
    cin = _cbuf(ctx_in) if ctx_in else None
    cout = ctypes.create_string_buffer(ctx_out_size) if ctx_out_size else None
    din = _cbuf(data_in) if data_in else None
    dout = ctypes.create_string_buffer(data_out_size) if data_out_size else None
    attr = TestRunAttr(prog_fd=fd, ctx_in=_addr(cin), ctx_size_in=len(ctx_in or b""),
                       ctx_out=_addr(cout), ctx_size_out=ctx_out_size,
                       data_in=_addr(din), data_size_in=len(data_in or b""),
                       data_out=_addr(dout), data_size_out=data_out_size,
                       repeat=repeat, flags=flags)
    bpf(PROG_TEST_RUN, attr)
    if ctx_in_place:
        ctx_out = cin.raw[:len(ctx_in)] if cin is not None and ctx_in else b""
    else:
        ctx_out = cout.raw[:attr.ctx_size_out] if cout is not None else b""
    return TestRunResult(retval=ctypes.c_int32(attr.retval).value, duration_ns=attr.duration,
                         ctx_out=ctx_out,
                         data_out=dout.raw[:attr.data_size_out] if dout is not None else b"")


# ---- links, info, BTF by id ---------------------------------------------------------------------

def link_create(prog_or_map_fd: int, attach_type: int, target_fd: int = 0, flags: int = 0,
                target_btf_id: int = 0) -> int:
    attr = LinkCreateAttr(prog_or_map_fd=prog_or_map_fd, target_fd=target_fd,
                          attach_type=attach_type, flags=flags, target_btf_id=target_btf_id)
    return bpf(LINK_CREATE, attr)


def link_detach(link_fd: int) -> None:
    bpf(LINK_DETACH, FdAttr(fd=link_fd))


def obj_get_info_by_fd(fd: int, info_size: int = 256) -> bytes:
    """The raw `bpf_{prog,map,btf,link}_info` of an fd (caller decodes the fields it needs)."""
    buf = ctypes.create_string_buffer(info_size)
    attr = InfoByFdAttr(bpf_fd=fd, info_len=info_size, info=_addr(buf))
    bpf(OBJ_GET_INFO_BY_FD, attr)
    return buf.raw[:attr.info_len]


def btf_get_fd_by_id(btf_id: int) -> int:
    return bpf(BTF_GET_FD_BY_ID, GetFdByIdAttr(id=btf_id))


def close_fd(fd: int) -> None:
    if fd >= 0:
        os.close(fd)
