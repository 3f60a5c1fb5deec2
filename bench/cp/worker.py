"""Run one Python row of the cp table in this (fresh) process and print `ns=<loop ns> bytes=<n>`.

    python -m bench.cp.worker ROW SRC BYTES      # copy BYTES of SRC (the whole file for program rows)
    python -m bench.cp.worker ROW --check        # print "ok" or "unavailable: <reason>"

Like the C baselines, only the copy is timed. The program rows (emulated, kernel) copy to end of
file, so the harness gives them a source file of their own size; their one-time costs (compiling,
loading, registering) are taken out by timing the same call on an empty source (/dev/null) first.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

# Imported before any clock starts: importing pybpfuring is not part of a copy.
from pybpfuring.runtime.ring import IoUring, prep_read, prep_write

BLOCK = 4096
SINK = "/dev/zero"
REPO = Path(__file__).resolve().parents[2]


def copy_pread_write(src: int, dst: int, size: int) -> int:
    pread, write = os.pread, os.write
    done = 0
    while done < size:
        data = pread(src, BLOCK, done)
        if not data:
            raise OSError(f"short source: {done} of {size} bytes")
        write(dst, data)
        done += len(data)
    return done


def copy_ring_qd1(src: int, dst: int, size: int) -> int:
    """QD1 through pybpfuring's io_uring binding: READ, wait, WRITE, wait (the C uring.c loop)."""
    buf = bytearray(BLOCK)
    done = 0
    with IoUring(4) as ring:
        while done < size:
            prep_read(ring.get_sqe(), src, buf, done)
            ring.submit_and_wait(1)
            n = ring.wait_cqe().res
            if n <= 0:
                raise OSError(-n if n < 0 else 0, f"read at {done} returned {n}")
            prep_write(ring.get_sqe(), dst, buf, nbytes=n)
            ring.submit_and_wait(1)
            if ring.wait_cqe().res != n:
                raise OSError(f"short write at {done}")
            done += n
    return done


def _example(name: str) -> ModuleType:
    path = REPO / "examples" / f"{name}.py"
    if not path.is_file():
        raise LookupError(f"examples/{name}.py does not exist yet")
    spec = importlib.util.spec_from_file_location(f"pbu_example_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses in the example look their module up here
    spec.loader.exec_module(module)
    return module


def _kernel_backend() -> str:
    """The name of a Ring backend that runs @iouring_programs in the kernel, if one works here."""
    from pybpfuring.runtime.backends import BACKENDS
    reasons = []
    for name, (probe, _factory) in BACKENDS.items():
        if name == "emulated":
            continue
        reason = probe()
        if reason is None:
            return name
        reasons.append(f"{name}: {reason}")
    raise LookupError("; ".join(reasons) or "no in-kernel Ring backend is registered in "
                      "pybpfuring.runtime.backends.BACKENDS yet")


def _program_copier(example: str, backend: Callable[[], str] | None) -> Callable[[int, int], object]:
    module = _example(example)
    copy_fds = getattr(module, "copy_fds", None)
    if copy_fds is None:
        raise LookupError(f"examples/{example}.py has no copy_fds(src_fd, dst_fd)")
    if backend is None:
        return copy_fds
    name = backend()
    return lambda src, dst: copy_fds(src, dst, backend=name)


def _loop_step_copier() -> Callable[[str], tuple[int, int]]:
    """examples/bpf_cp.py's cp_step on a LoopRing; only the io_uring_enter that runs the loop is timed
    (loading, verifying and attaching happen before, in LoopRing())."""
    import ctypes

    from pybpfuring.runtime.backends.bpf_ops import LoopRing, kernel_has_loop_ops
    module = _example("bpf_cp")
    if not kernel_has_loop_ops():
        raise LookupError("this kernel has no io_uring_bpf_ops (needs Linux >= 7.1, CONFIG_IO_URING_BPF_OPS)")

    def copy(src_path: str) -> tuple[int, int]:
        buf = ctypes.create_string_buffer(BLOCK)
        src, dst = os.open(src_path, os.O_RDONLY), os.open(SINK, os.O_WRONLY)
        try:
            bss = {"input_fd": src, "output_fd": dst, "buffer_uptr": ctypes.addressof(buf),
                   "buffer_size": BLOCK}
            with LoopRing(module.cp_step, bss=bss) as loop:
                start = time.perf_counter_ns()
                loop.run()
                elapsed = time.perf_counter_ns() - start
                result, copied = module.cp_result.value, module.cur_offset.value
        finally:
            os.close(src)
            os.close(dst)
        if result != 0:
            raise OSError(-result, f"the in-kernel copy failed: {os.strerror(-result)}")
        return elapsed, int(copied)
    return copy


# Program rows driven through examples/cp.py's copy_fds: (example, how to pick the Ring backend).
PROGRAM_ROWS: dict[str, tuple[str, Callable[[], str] | None]] = {
    "emulated": ("cp", lambda: "emulated"),
    "kernel_program": ("cp", _kernel_backend),
}
PLAIN_ROWS: dict[str, Callable[[int, int, int], int]] = {
    "py_rw": copy_pread_write,
    "py_ring": copy_ring_qd1,
}


def _timed_program_copy(copier: Callable[[int, int], object], src_path: str) -> tuple[int, int]:
    def once(path: str) -> tuple[int, object]:
        src, dst = os.open(path, os.O_RDONLY), os.open(SINK, os.O_WRONLY)
        try:
            start = time.perf_counter_ns()
            stats = copier(src, dst)
            return time.perf_counter_ns() - start, stats
        finally:
            os.close(src)
            os.close(dst)

    once(os.devnull)                       # compile and warm every cache
    fixed, _ = once(os.devnull)            # what a copy of nothing costs: setup and teardown
    elapsed, stats = once(src_path)
    copied = getattr(stats, "bytes_copied", None)
    if copied is None:
        copied = os.path.getsize(src_path)
    return max(elapsed - fixed, 1), int(copied)


def check(row: str) -> str:
    """"ok", or why the row cannot run here."""
    try:
        if row in PLAIN_ROWS:
            if row == "py_ring":
                IoUring(2).close()
            return "ok"
        if row == "kernel_loop_step":
            _loop_step_copier()(os.devnull)
            return "ok"
        example, backend = PROGRAM_ROWS[row]
        _program_copier(example, backend)
        return "ok"
    except KeyError:
        return f"unavailable: unknown row {row!r}"
    except Exception as exc:  # anything that stops the row is its reason, shown in the table
        return f"unavailable: {type(exc).__name__}: {exc}".replace("\n", " ")


def run(row: str, src_path: str, size: int) -> tuple[int, int]:
    if row in PLAIN_ROWS:
        src, dst = os.open(src_path, os.O_RDONLY), os.open(SINK, os.O_WRONLY)
        try:
            start = time.perf_counter_ns()
            copied = PLAIN_ROWS[row](src, dst, size)
            return time.perf_counter_ns() - start, copied
        finally:
            os.close(src)
            os.close(dst)
    if row == "kernel_loop_step":
        copy = _loop_step_copier()
        copy(os.devnull)                   # compile and warm every cache
        return copy(src_path)
    example, backend = PROGRAM_ROWS[row]
    return _timed_program_copy(_program_copier(example, backend), src_path)


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[1] == "--check":
        print(check(argv[0]))
        return 0
    if len(argv) != 3:
        print("usage: python -m bench.cp.worker ROW SRC BYTES | ROW --check", file=sys.stderr)
        return 2
    ns, copied = run(argv[0], argv[1], int(argv[2]))
    print(f"ns={ns} bytes={copied}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
