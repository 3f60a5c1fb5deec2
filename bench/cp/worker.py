"""Run one Python row of the cp table in this (fresh) process and print `ns=<loop ns> bytes=<n>`.

    python -m bench.cp.worker ROW SRC BYTES      # copy BYTES of SRC (the whole file for program rows)
    python -m bench.cp.worker ROW --check        # print "ok" or "unavailable: <reason>"

Like the C baselines, only the copy is timed. The program rows (emulated, kernel) copy to end of
file, so the harness gives them a source file of their own size; their one-time costs (compiling,
loading, registering, creating the ring) come before the clock starts, and a copy of an empty source
(/dev/null) runs first to warm every cache.
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
from pybpfuring.uring import IoUring, prep_read, prep_write

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


CP_NAMES = ("cp", "state", "BUF", "IN_FD", "OUT_FD", "OFFSET", "ERROR")
Copier = Callable[[str], tuple[int, int]]   # source path -> (ns of the copy, bytes copied)


def _cp_module() -> ModuleType:
    module = _example("cp")
    missing = [n for n in CP_NAMES if not hasattr(module, n)]
    if missing:
        raise LookupError(f"examples/cp.py lacks {', '.join(missing)} (the harness drives its program)")
    return module


def _with_fds(src_path: str, body: Callable[[int, int, int], tuple[int, int]]) -> tuple[int, int]:
    """Open the source and the sink, give `body` them and a 4 KiB buffer's address, close them."""
    import ctypes
    buf = ctypes.create_string_buffer(BLOCK)   # user memory the kernel reads into: alive until the end
    src, dst = os.open(src_path, os.O_RDONLY), os.open(SINK, os.O_WRONLY)
    try:
        return body(src, dst, ctypes.addressof(buf))
    finally:
        os.close(src)
        os.close(dst)


def _cp_on_ring(backend: str, engine: str) -> Copier:
    """examples/cp.py's program on a Ring, timed from the IORING_OP_BPF submission to its completion
    (what copy_fds does, minus the ring's setup and the program's registration)."""
    from pybpfuring.runtime import Ring
    m = _cp_module()

    def body(src: int, dst: int, buf: int) -> tuple[int, int]:
        with Ring(8, cqs=[8], backend=backend, engine=engine) as ring:
            ring.register_programs([m.cp])   # fresh, zeroed maps for every ring
            m.state[m.BUF], m.state[m.IN_FD], m.state[m.OUT_FD] = buf, src, dst
            start = time.perf_counter_ns()
            ring.prep_bpf(m.cp, user_data=0xC0)
            ring.submit()
            done = ring.wait_cqe(0)
            elapsed = time.perf_counter_ns() - start
            if done.res < 0 or m.state[m.ERROR]:
                raise OSError(f"the cp request failed: res {done.res}, I/O error {m.state[m.ERROR]}")
            return elapsed, int(m.state[m.OFFSET])
    return lambda src_path: _with_fds(src_path, body)


def _cp_in_kernel_loop() -> Copier:
    """examples/cp.py's program in the kernel (Linux >= 7.1): through a registered in-kernel Ring
    backend if there is one, else the generated loop_step scheduler (bpf_ops_model.ModelRing).
    Timed from starting the request to its completion; compiling, verifying, attaching come first."""
    from pybpfuring.runtime.backends.bpf_ops import kernel_has_loop_ops
    try:
        return _cp_on_ring(_kernel_backend(), "auto")
    except LookupError:
        pass
    if not kernel_has_loop_ops():
        raise LookupError("this kernel has no io_uring_bpf_ops (needs Linux >= 7.1, CONFIG_IO_URING_BPF_OPS)")
    from pybpfuring.runtime.backends.bpf_ops_model import ModelRing
    m = _cp_module()

    def body(src: int, dst: int, buf: int) -> tuple[int, int]:
        with ModelRing([m.cp]) as ring:
            m.state[m.BUF], m.state[m.IN_FD], m.state[m.OUT_FD] = buf, src, dst
            start = time.perf_counter_ns()
            ring.start(0, user_data=0xC0)
            ring.run(min_complete=1)
            elapsed = time.perf_counter_ns() - start
            done = ring.reap(0)
            if len(done) != 1 or done[0][1] < 0 or m.state[m.ERROR]:
                raise OSError(f"the cp request failed: {done}, I/O error {m.state[m.ERROR]}")
            return elapsed, int(m.state[m.OFFSET])
    return lambda src_path: _with_fds(src_path, body)


def _loop_step_copier() -> Copier:
    """examples/bpf_cp.py's cp_step on a LoopRing; only the io_uring_enter that runs the loop is timed
    (loading, verifying and attaching happen before, in LoopRing())."""
    from pybpfuring.runtime.backends.bpf_ops import LoopRing, kernel_has_loop_ops
    module = _example("bpf_cp")
    if not kernel_has_loop_ops():
        raise LookupError("this kernel has no io_uring_bpf_ops (needs Linux >= 7.1, CONFIG_IO_URING_BPF_OPS)")

    def body(src: int, dst: int, buf: int) -> tuple[int, int]:
        bss = {"input_fd": src, "output_fd": dst, "buffer_uptr": buf, "buffer_size": BLOCK}
        with LoopRing(module.cp_step, bss=bss) as loop:
            start = time.perf_counter_ns()
            loop.run()
            elapsed = time.perf_counter_ns() - start
            result, copied = module.cp_result.value, module.cur_offset.value
        if result != 0:
            raise OSError(-result, f"the in-kernel copy failed: {os.strerror(-result)}")
        return elapsed, int(copied)
    return lambda src_path: _with_fds(src_path, body)


def _emulated(engine: str) -> Callable[[], Copier]:
    def make() -> Copier:
        if engine == "native":
            from pybpfuring.runtime.backends.native import unavailable_reason
            reason = unavailable_reason()
            if reason is not None:
                raise LookupError(f"the native event loop cannot be built here: {reason}")
        return _cp_on_ring("emulated", engine)
    return make


# Program rows: id -> a factory of the copier (raises LookupError with the reason it cannot run).
PROGRAM_ROWS: dict[str, Callable[[], Copier]] = {
    "emulated_native": _emulated("native"),
    "emulated_jit": _emulated("jit"),
    "emulated_interp": _emulated("interp"),
    "kernel_program": _cp_in_kernel_loop,
    "kernel_loop_step": _loop_step_copier,
}
PLAIN_ROWS: dict[str, Callable[[int, int, int], int]] = {
    "py_rw": copy_pread_write,
    "py_ring": copy_ring_qd1,
}


def check(row: str) -> str:
    """"ok", or why the row cannot run here."""
    try:
        if row in PLAIN_ROWS:
            if row == "py_ring":
                IoUring(2).close()
            return "ok"
        PROGRAM_ROWS[row]()(os.devnull)   # compile, load and run it on an empty source
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
    copy = PROGRAM_ROWS[row]()
    copy(os.devnull)                       # compile and warm every cache
    return copy(src_path)


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
