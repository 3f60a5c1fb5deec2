"""struct_ops and kfuncs, the machinery of the Linux >= 7.1 io_uring target, tested for real on the
host with a struct_ops type it has (tcp_congestion_ops) and kfuncs it has (bpf_task_from_pid)."""
from __future__ import annotations

import ctypes
import os
import socket
import struct

import pytest

from pybpfuring.loader import BpfObject
from pybpfuring.loader.btf import STRUCT, vmlinux_btf
from pybpfuring.loader.externs import UnresolvedExtern
from pybpfuring.loader.sections import PROG_TYPE_STRUCT_OPS
from pybpfuring.loader.structops import StructOpsError

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("bpf_available")]

AVAILABLE_CC = "/proc/sys/net/ipv4/tcp_available_congestion_control"
# Unique per process, set as a data member before load: parallel test runs must not collide.
CC_NAME = f"pyb_cc{os.getpid() % 1000000}"


def _registered(name: str) -> bool:
    with open(AVAILABLE_CC) as f:
        return name in f.read().split()


def test_kfunc_calls_are_resolved_by_name(build):
    with BpfObject.open(build("kfunc")) as obj:
        prog = obj.programs["find_task"]
        assert [r.name for r in prog.linked.extern_refs] == ["bpf_task_from_pid", "bpf_task_release"]
        obj.load()
        retval, out = prog.test_run(struct.pack("<ii", os.getpid(), 0))
        assert retval == 1 and struct.unpack("<ii", out) == (os.getpid(), 1)
        retval, out = prog.test_run(struct.pack("<ii", 0x3FFFFFFF, 0))   # no such pid
        assert retval == 0 and struct.unpack("<ii", out)[1] == 0


def test_unknown_kfunc_is_named(build, tmp_path):
    raw = bytearray(build("kfunc").read_bytes())
    # Rename the kfunc in the ELF string tables (same length): the kernel has no such function.
    raw = raw.replace(b"bpf_task_from_pid\0", b"bpf_task_from_pix\0")
    obj = BpfObject.open(bytes(raw))
    with pytest.raises(UnresolvedExtern, match="kfunc 'bpf_task_from_pix'"):
        obj.load()
    obj.close()


def test_struct_ops_tcp_congestion_control_registers_runs_and_unregisters(build):
    if not vmlinux_btf().find("bpf_struct_ops_tcp_congestion_ops", STRUCT):
        pytest.skip("this kernel has no BPF TCP congestion control struct_ops (CONFIG_BPF_JIT/TCP_CA)")
    with BpfObject.open(build("tcp_cc")) as obj:
        ops = obj.struct_ops["pybpf_cc"]
        assert ops.type_name == "tcp_congestion_ops" and ops["name"].rstrip(b"\0") == b"pybpf_cc"
        ops["name"] = CC_NAME.encode()
        assert set(ops.programs) == {"init", "ssthresh", "cong_avoid", "undo_cwnd"}
        obj.load()
        kbtf = vmlinux_btf()
        members = [m.name for m in kbtf.members(kbtf.find_one("tcp_congestion_ops", STRUCT))]
        for member, prog_name in ops.programs.items():
            prog = obj.programs[prog_name]
            assert prog.prog_type == PROG_TYPE_STRUCT_OPS and prog.fd >= 0
            assert members[prog.expected_attach_type] == member
        assert not _registered(CC_NAME)
        ops.attach()
        assert _registered(CC_NAME)
        with pytest.raises(StructOpsError, match="already attached"):
            ops.attach()
        _use_congestion_control(CC_NAME)
        assert obj.bss["inits"] == 1 and obj.bss["avoids"] > 0   # the kernel ran our programs
        ops.detach()
        assert not _registered(CC_NAME)
    assert not _registered(CC_NAME)


def test_struct_ops_link_is_released_by_close(build):
    obj = BpfObject.open(build("tcp_cc"))
    obj.struct_ops["pybpf_cc"]["name"] = CC_NAME.encode()
    obj.load()
    obj.struct_ops["pybpf_cc"].attach()
    assert _registered(CC_NAME)
    obj.close()
    assert not _registered(CC_NAME)


def _use_congestion_control(name: str) -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        with socket.socket() as cli:
            cli.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, name.encode())
            cli.connect(srv.getsockname())
            peer, _ = srv.accept()
            with peer:
                got = cli.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16)
                assert got.rstrip(b"\0") == name.encode()
                for _ in range(40):
                    cli.sendall(b"x" * 65536)
                    left = 65536
                    while left:
                        left -= len(peer.recv(left))


def _kernel_has_iouring_ops() -> bool:
    return bool(vmlinux_btf().find("bpf_struct_ops_io_uring_bpf_ops", STRUCT))


def test_iouring_loop_object_on_a_kernel_without_it_says_so(build):
    if _kernel_has_iouring_ops():
        pytest.skip("this kernel has io_uring_bpf_ops: the next test runs the loop for real")
    obj = BpfObject.open(build("iou_loop"))
    ops = obj.struct_ops["pyb_loop"]
    prog = obj.programs["loop_step"]
    assert ops.type_name == "io_uring_bpf_ops" and ops.programs == {"loop_step": "loop_step"}
    assert prog.prog_type == PROG_TYPE_STRUCT_OPS and prog.sleepable
    assert [r.name for r in prog.linked.extern_refs] == ["bpf_io_uring_submit_sqes"]
    ops["ring_fd"] = 7
    assert ops["ring_fd"] == 7
    with pytest.raises(StructOpsError, match="no struct_ops type 'struct io_uring_bpf_ops'"):
        obj.load()
    assert obj.btf_fd == -1                      # everything opened so far was closed again


def test_iouring_loop_runs_in_the_kernel(build):
    if not _kernel_has_iouring_ops():
        pytest.skip("the kernel has no io_uring_bpf_ops struct_ops (needs Linux >= 7.1 built with "
                    "CONFIG_IO_URING_BPF_OPS); run this tier inside such a guest")
    ring_fd = _io_uring_setup(8, (1 << 12) | (1 << 13))   # SINGLE_ISSUER | DEFER_TASKRUN
    try:
        with BpfObject.open(build("iou_loop")) as obj:
            obj.struct_ops["pyb_loop"]["ring_fd"] = ring_fd
            obj.load()
            obj.struct_ops["pyb_loop"].attach()
            assert _io_uring_enter(ring_fd, 0, 0, 1) == 0       # GETEVENTS: the loop runs, STOPs
            assert obj.bss["steps"] == 1
            assert obj.data["submitted"] == 0                   # the kfunc ran: nothing to submit
    finally:
        os.close(ring_fd)


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


_NR = {"x86_64": (425, 426), "aarch64": (425, 426)}


def _io_uring_setup(entries: int, flags: int) -> int:
    params = (ctypes.c_uint32 * 30)()
    params[2] = flags
    ret = _libc().syscall(_NR[os.uname().machine][0], entries, ctypes.byref(params))
    if ret < 0:
        raise OSError(ctypes.get_errno(), "io_uring_setup failed")
    return ret


def _io_uring_enter(fd: int, to_submit: int, min_complete: int, flags: int) -> int:
    ret = _libc().syscall(_NR[os.uname().machine][1], fd, to_submit, min_complete, flags, None, 0)
    if ret < 0:
        raise OSError(ctypes.get_errno(), "io_uring_enter failed")
    return ret


def test_struct_ops_cycles_leak_no_fds(build):
    path = build("tcp_cc")
    warm = BpfObject.open(path)                    # warm-up: vmlinux BTF parsed, modules imported
    warm.struct_ops["pybpf_cc"]["name"] = CC_NAME.encode()
    warm.load().close()
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(10):
        with BpfObject.open(path) as obj:
            obj.struct_ops["pybpf_cc"]["name"] = CC_NAME.encode()
            obj.load()
            obj.struct_ops["pybpf_cc"].attach()
    assert len(os.listdir("/proc/self/fd")) == before
    assert not _registered(CC_NAME)


def test_core_relocations_are_applied_by_the_kernel(build):
    """core.c reads task_struct.pid/.tgid through a 2-member local struct (offsets 0 and 4);
    the kernel moves them to the real offsets from the CO-RE records we pass along."""
    import threading
    ready, done = threading.Event(), threading.Event()
    tid: list[int] = []

    def worker() -> None:
        tid.append(threading.get_native_id())
        ready.set()
        done.wait(10)

    thread = threading.Thread(target=worker)
    thread.start()
    ready.wait(10)
    try:
        with BpfObject.open(build("core")) as obj:
            prog = obj.programs["read_pid"]
            assert len(prog.linked.core_relos) == 2
            obj.load()
            retval, out = prog.test_run(struct.pack("<iii", tid[0], 0, 0))
            assert retval == 0 and struct.unpack("<iii", out) == (tid[0], tid[0], os.getpid())
    finally:
        done.set()
        thread.join()
