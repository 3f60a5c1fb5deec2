"""@loop_step programs compiled by pybpfuring, run by the kernel's io_uring loop (Linux >= 7.1).

Inside the guest (or on a real >= 7.1 machine: `PYBPFURING_IN_GUEST=1 pytest tests/guest`):
liburing's two bpf-ops tests, ported to Python, loaded by our loader and run with one
io_uring_enter(GETEVENTS) each.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from pathlib import Path

import pytest

from guest_tier import scratch_dir

pytestmark = pytest.mark.in_guest

ROOT = Path(__file__).resolve().parents[2]


def _example(name: str):
    spec = importlib.util.spec_from_file_location(f"pybpfuring_example_{name}", ROOT / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def nops():
    return _example("bpf_nops")


def test_nops_complete_1000_in_one_enter(nops):
    from pybpfuring.runtime.backends.bpf_ops import LoopRing
    with LoopRing(nops.nops_step, bss={"reqs_to_run": 1000}) as loop:
        assert loop.run() == 0
        assert nops.reqs_to_run.value == 0
        assert nops.reqs_inflight.value == 0


def test_nops_complete_one_at_a_time_too(nops):
    """depth = 1 (the loader sets the .rodata value): the QD1 floor row of `bench nops`."""
    from pybpfuring.runtime.backends.bpf_ops import LoopRing
    with LoopRing(nops.nops_step, bss={"reqs_to_run": 300}, rodata={"depth": 1}) as loop:
        assert loop.run() == 0
        assert nops.reqs_to_run.value == 0
        assert nops.reqs_inflight.value == 0


@pytest.mark.parametrize("size", [3 * 1024 * 1024 + 1234, 0])
def test_cp_copies_a_file_in_the_kernel_loop(tmp_path, size):
    cp = _example("bpf_cp")
    d = scratch_dir(tmp_path, "bpf_ops")
    src, dst = d / f"src-{size}", d / f"dst-{size}"
    src.write_bytes(os.urandom(size))
    try:
        assert cp.copy_file(str(src), str(dst)) == size
        assert dst.stat().st_size == size
        assert hashlib.sha256(dst.read_bytes()).digest() == hashlib.sha256(src.read_bytes()).digest()
    finally:
        src.unlink(missing_ok=True)
        dst.unlink(missing_ok=True)


def test_cp_reports_a_failed_read_as_its_errno(tmp_path):
    cp = _example("bpf_cp")
    d = scratch_dir(tmp_path, "bpf_ops")
    (d / "a_directory").mkdir(exist_ok=True)
    with pytest.raises(OSError) as err:     # read(2) of a directory: EISDIR, from the CQE
        cp.copy_file(str(d / "a_directory"), str(d / "dst-dir"))
    assert err.value.errno == 21
    (d / "dst-dir").unlink(missing_ok=True)


# A loop_step program of this file: region accesses at offsets the verifier cannot know.
from pybpfuring.lang import (IOU_LOOP_STOP, IOU_REGION_SQ, Global, IoRingCtx, LoopParams,  # noqa: E402
                             ReadOnly, get_region, loop_step, u32)

sq_bytes = ReadOnly(u32)        # the SQ region's size (8 SQEs of 64 bytes)
probe_off = Global(u32)         # set by the test: unknown to the verifier
read_back = Global(u32)
read_past = Global(u32)
too_big_given = Global(u32, 7)


@loop_step
def probe_step(ctx: IoRingCtx, lp: LoopParams) -> int:
    global read_back, read_past, too_big_given
    sq = get_region(ctx, IOU_REGION_SQ, sq_bytes)
    big = get_region(ctx, IOU_REGION_SQ, sq_bytes * 1024)     # larger than the region: NULL
    too_big_given = 1 if big else 0
    if not sq:
        return IOU_LOOP_STOP
    sq.store_u32(probe_off, 0xA5A5A5A5)
    sq.store_u32(probe_off + 4, 0x5A5A5A5A)                    # past the end when probe_off = size-4
    read_back = sq.load_u32(probe_off)
    read_past = sq.load_u32(probe_off + 2)                     # straddles the end: reads 0
    return IOU_LOOP_STOP


def test_region_accesses_are_checked_against_the_region_size():
    import ctypes

    from pybpfuring.runtime.backends.bpf_ops import LoopRing
    size = 8 * 64
    with LoopRing(probe_step, entries=8, rodata={"sq_bytes": size},
                  bss={"probe_off": size - 4}) as loop:
        assert loop.run() == 0
        assert read_back.value == 0xA5A5A5A5
        assert read_past.value == 0
        assert too_big_given.value == 0
        # The same memory seen from user space (the mapping is a whole page): the word past the
        # region's checked size was not written.
        sqes = ctypes.string_at(loop.ring.sqes_addr, size + 4)
        assert sqes[size - 4:size] == (0xA5A5A5A5).to_bytes(4, "little")
        assert sqes[size:] == bytes(4)


# ---- interoperability: our ELF loaded by stock libbpf (sid's 1.7) -------------------------------
# A small libbpf loader in C, like liburing's test/bpf_cp.c but setting variables by name through
# the object's BTF (our code): open, set ring_fd and the .rodata/.bss/.data variables, load,
# bpf_map__attach_struct_ops, one io_uring_enter(GETEVENTS), print the result variables.
LIBBPF_CP_LOADER = r"""
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SETUP_FLAGS ((1U << 12) | (1U << 13) | (1U << 16) | (1U << 3) | (1U << 20))

static struct bpf_map *map_of_section(struct bpf_object *obj, const char *sec)
{
    struct bpf_map *m;
    bpf_object__for_each_map(m, obj) {
        const char *n = bpf_map__name(m);
        size_t ln = strlen(n), ls = strlen(sec);
        if (ln >= ls && !strcmp(n + ln - ls, sec))
            return m;
    }
    return NULL;
}

/* The address of variable `name` in the data of `map` (section `sec`), found through BTF. */
static void *var(struct bpf_object *obj, const char *sec, const char *name)
{
    struct btf *btf = bpf_object__btf(obj);
    int id = btf__find_by_name_kind(btf, sec, BTF_KIND_DATASEC);
    struct bpf_map *m = map_of_section(obj, sec);
    if (id < 0 || !m) { fprintf(stderr, "no section %s\n", sec); exit(2); }
    const struct btf_type *t = btf__type_by_id(btf, id);
    const struct btf_var_secinfo *vs = btf_var_secinfos(t);
    size_t size;
    char *data = bpf_map__initial_value(m, &size);
    for (int i = 0; i < btf_vlen(t); i++) {
        const struct btf_type *v = btf__type_by_id(btf, vs[i].type);
        if (!strcmp(btf__name_by_offset(btf, v->name_off), name))
            return data + vs[i].offset;
    }
    fprintf(stderr, "no variable %s in %s\n", name, sec);
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc != 5) return 2;
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = SETUP_FLAGS;
    p.cq_entries = 8;
    int ring = syscall(__NR_io_uring_setup, 8, &p);
    if (ring < 0) { perror("io_uring_setup"); return 3; }
    int in = open(argv[3], O_RDONLY), out = open(argv[4], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    void *buf = aligned_alloc(4096, 4096);
    struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
    if (!obj) { fprintf(stderr, "libbpf cannot open the object\n"); return 4; }
    struct bpf_map *ops = bpf_object__find_map_by_name(obj, argv[2]);
    if (!ops) { fprintf(stderr, "no struct_ops map %s\n", argv[2]); return 4; }
    size_t sz;
    *(unsigned *)((char *)bpf_map__initial_value(ops, &sz) + 8) = ring;   /* ring_fd */
    *(unsigned *)var(obj, ".rodata", "cq_head_offset") = p.cq_off.head;
    *(unsigned *)var(obj, ".rodata", "cq_tail_offset") = p.cq_off.tail;
    *(unsigned *)var(obj, ".rodata", "cqes_offset") = p.cq_off.cqes;
    *(unsigned *)var(obj, ".rodata", "cq_entries") = p.cq_entries;
    *(unsigned *)var(obj, ".rodata", "sq_entries") = p.sq_entries;
    *(int *)var(obj, ".bss", "input_fd") = in;
    *(int *)var(obj, ".bss", "output_fd") = out;
    *(unsigned long long *)var(obj, ".bss", "buffer_uptr") = (unsigned long)buf;
    *(unsigned *)var(obj, ".bss", "buffer_size") = 4096;
    int err = bpf_object__load(obj);
    if (err) { fprintf(stderr, "libbpf load failed: %d\n", err); return 5; }
    struct bpf_link *link = bpf_map__attach_struct_ops(ops);
    if (!link) { fprintf(stderr, "attach failed\n"); return 6; }
    long ret = syscall(__NR_io_uring_enter, ring, 0, 0, IORING_ENTER_GETEVENTS, NULL, 0);
    printf("libbpf %u.%u enter=%ld cp_result=%d copied=%llu\n", libbpf_major_version(),
           libbpf_minor_version(), ret, *(int *)var(obj, ".data", "cp_result"),
           *(unsigned long long *)var(obj, ".bss", "cur_offset"));
    bpf_link__destroy(link);
    bpf_object__close(obj);
    return 0;
}
"""


def _sid_root() -> Path:
    from pybpfuring.vm.cache import cache_dir  # the same cache the host fetched into (runner passes its root)
    sid = cache_dir() / "sid"
    if not (sid / "usr" / "include" / "bpf" / "libbpf.h").is_file():
        pytest.skip("sid's libbpf is not in the pybpfuring cache (run `pybpfuring vm fetch`)")
    return sid


def test_stock_libbpf_loads_and_runs_our_cp_object(tmp_path):
    import shutil
    import subprocess

    from pybpfuring.compiler.driver import compile_functions
    from pybpfuring.vm import sid_command
    sid = _sid_root()
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed: it builds the small libbpf loader")
    cp = _example("bpf_cp")
    obj = tmp_path / "bpf_cp.o"
    obj.write_bytes(compile_functions([cp.cp_step], "bpf_ops"))
    src = tmp_path / "loader.c"
    src.write_text(LIBBPF_CP_LOADER)
    exe = tmp_path / "loader"
    libdir = sid / "usr" / "lib" / "x86_64-linux-gnu"
    subprocess.run(["gcc", "-O1", f"-I{sid / 'usr' / 'include'}", str(src), "-o", str(exe),
                    f"-L{libdir}", "-l:libbpf.so.1", "-Wl,--allow-shlib-undefined"],
                   check=True, capture_output=True, timeout=300)
    d = scratch_dir(tmp_path, "bpf_ops")
    data_in, data_out = d / "libbpf-src", d / "libbpf-dst"
    data_in.write_bytes(os.urandom(1024 * 1024 + 99))
    try:
        run = [*sid_command(sid, "usr/sbin/bpftool")[:3], str(exe), str(obj), "cp_step_ops",
               str(data_in), str(data_out)]
        proc = subprocess.run(run, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("libbpf 1.") and "enter=0 cp_result=0" in proc.stdout, proc.stdout
        assert f"copied={1024 * 1024 + 99}" in proc.stdout
        assert hashlib.sha256(data_out.read_bytes()).digest() == \
            hashlib.sha256(data_in.read_bytes()).digest()
    finally:
        data_in.unlink(missing_ok=True)
        data_out.unlink(missing_ok=True)


# Helpers the language offers on target bpf_ops (struct_ops programs get bpf_base_func_proto).
from pybpfuring.lang import copy_from_user, ktime_get_ns, u64  # noqa: E402

user_word = Global(u64)         # address of a u64 in user memory, set by the test
copied_word = Global(u64)
clock_ran = Global(u32)


@loop_step
def helpers_step(ctx: IoRingCtx, lp: LoopParams) -> int:
    global copied_word, clock_ran
    x: u64 = 0
    if copy_from_user(x, user_word) == 0:
        copied_word = x
    clock_ran = 1 if ktime_get_ns() > 0 else 0
    return IOU_LOOP_STOP


def test_helpers_run_in_a_loop_step_program():
    import ctypes

    from pybpfuring.runtime.backends.bpf_ops import LoopRing
    word = ctypes.c_uint64(0x1122334455667788)
    with LoopRing(helpers_step, bss={"user_word": ctypes.addressof(word)}) as loop:
        assert loop.run() == 0
        assert copied_word.value == 0x1122334455667788
        assert clock_ran.value == 1


# ---- step 2 (first version): @iouring_programs run by a generated loop_step scheduler ---------
from pybpfuring.lang import (OK, WAIT, ArrayMap, Cqe, Ctx, Sqe, emit_cqe, iouring_program,  # noqa: E402
                             prep_nop, reap_cqe, submit)

ticks = ArrayMap(u64, 4)


@iouring_program
def counting(ctx: Ctx) -> int:
    """The 2021 `counting` program's shape: 10 rounds of submit (to CQ 1), WAIT, reap."""
    n = ticks[0]
    if n > 0:
        cqe = Cqe()
        if reap_cqe(ctx, 1, cqe) == 0:
            ticks[1] = cqe.user_data
            ticks[2] += 1
    if n >= 10:
        return OK
    ticks[0] = n + 1
    sqe = Sqe()
    prep_nop(sqe)
    sqe.user_data = 100 + n
    sqe.cq_idx = 1
    if submit(ctx, sqe) != 0:
        ticks[3] += 1
        return OK
    ctx.wait_idx = 1
    ctx.wait_nr = 1
    return WAIT


def test_model_program_waits_reaps_and_completes_in_the_kernel_loop():
    from pybpfuring.runtime.backends.bpf_ops_model import ModelRing
    with ModelRing([counting]) as ring:
        ring.start(0, user_data=7, cq_idx=0)
        assert ring.run(min_complete=1) == 0
        assert ring.reap(0) == [(7, 0, 0)]          # the request completed on its CQ
        assert [ticks[i] for i in range(4)] == [10, 109, 10, 0]
        assert ring.reap(1) == []                   # every routed NOP CQE was reaped by the program


pong = ArrayMap(u64, 8)


@iouring_program
def pingpong(ctx: Ctx) -> int:
    """The 2021 `pingpong`'s shape: two instances pass a counter through CQs 1 and 2."""
    idx = u32(ctx.user_data & 1)
    if pong[idx] == 0:                    # first run: arm, wait on our CQ
        pong[idx] = 1
        ctx.wait_idx = idx + 1
        ctx.wait_nr = 1
        return WAIT
    cqe = Cqe()
    if reap_cqe(ctx, idx + 1, cqe) != 0:
        pong[7] += 1
        return OK
    it = cqe.user_data
    emit_cqe(ctx, (idx ^ 1) + 1, it + 1, 0, 0)
    if it >= 20:
        pong[5 + idx] = it
        return OK
    ctx.wait_idx = idx + 1
    ctx.wait_nr = 1
    return WAIT


def test_model_programs_talk_through_cqs_in_the_kernel_loop():
    from pybpfuring.runtime.backends.bpf_ops_model import ModelRing
    with ModelRing([pingpong]) as ring:
        ring.start(0, user_data=0x100, cq_idx=0)     # instance 0 waits on CQ 1
        ring.start(0, user_data=0x101, cq_idx=0)     # instance 1 waits on CQ 2
        ring.submit_nop(user_data=0, cq_idx=1)       # a user NOP starts the game on CQ 1
        assert ring.run(min_complete=2) == 0
        assert sorted(ud for ud, _res, _fl in ring.reap(0)) == [0x100, 0x101]
        assert (pong[5], pong[6], pong[7]) == (20, 21, 0)
        assert ring.reap(1) == [(22, 0, 0)]          # the last emit, to a finished instance


def test_model_gives_the_emulated_backends_results():
    """One model, two backends: the same pingpong source on the emulated engine and in the kernel
    (each ring creates its maps afresh, zeroed)."""
    from pybpfuring.runtime import Ring
    from pybpfuring.runtime import prep_nop as user_prep_nop
    from pybpfuring.runtime.backends.bpf_ops_model import ModelRing

    def emulated():
        with Ring(8, cqs=[128, 128], backend="emulated") as ring:
            ring.register_programs([pingpong])
            ring.prep_bpf(pingpong, user_data=0x100)
            ring.prep_bpf(pingpong, user_data=0x101)
            sqe = ring.get_sqe(1)
            user_prep_nop(sqe)
            sqe.user_data = 0
            ring.submit_and_wait(2)
            done = sorted(ring.wait_cqe(0).user_data for _ in range(2))
            state = (pong[5], pong[6], pong[7])
            orphan = [(c.user_data, c.res, c.flags) for c in ring.cqes(1)]
            return done, state, orphan

    def kernel():
        with ModelRing([pingpong]) as ring:
            ring.start(0, user_data=0x100)
            ring.start(0, user_data=0x101)
            ring.submit_nop(user_data=0, cq_idx=1)
            ring.run(min_complete=2)
            done = sorted(ud for ud, _r, _f in ring.reap(0))
            return done, (pong[5], pong[6], pong[7]), ring.reap(1)

    assert emulated() == kernel() == ([0x100, 0x101], (20, 21, 0), [(22, 0, 0)])


@iouring_program
def waits_forever(ctx: Ctx) -> int:
    ctx.wait_idx = 3                       # nothing ever posts to CQ 3
    ctx.wait_nr = 1
    return WAIT


def test_model_reports_a_stall_instead_of_sleeping_forever():
    from pybpfuring.runtime.backends.bpf_ops_model import ModelRing, ModelStalled
    with ModelRing([waits_forever]) as ring:
        ring.start(0, user_data=1)
        with pytest.raises(ModelStalled, match="1 program instance"):
            ring.run(min_complete=1)


def test_ring_backend_bpf_ops_runs_the_model_in_the_kernel():
    """The public Ring API on backend bpf_ops, written exactly as for the emulated backend."""
    from pybpfuring.runtime import Ring
    from pybpfuring.runtime import prep_nop as user_prep_nop
    from pybpfuring.runtime.backends.bpf_ops_ring import BpfOpsBackend
    with Ring(8, cqs=[128, 128], backend="bpf_ops") as ring:
        assert ring.backend == "bpf_ops"
        assert ring.register_programs([pingpong]) == ["pingpong"]
        ring.prep_bpf(pingpong, user_data=0x100)
        ring.prep_bpf(pingpong, user_data=0x101)
        sqe = ring.get_sqe(1)
        user_prep_nop(sqe)
        sqe.user_data = 0
        ring.submit_and_wait(2)
        assert sorted(ring.wait_cqe(0).user_data for _ in range(2)) == [0x100, 0x101]
        assert (pong[5], pong[6]) == (20, 21)
        assert isinstance(ring._backend(), BpfOpsBackend)
    with Ring(8, cqs=[16, 16], backend="bpf_ops") as ring:   # counting's NOPs use CQ 1
        ring.register_programs([counting])
        ring.prep_bpf(counting, user_data=7, cq_idx=2)
        ring.submit()
        assert ring.wait_cqe(2).user_data == 7                # completed on its own CQ
        assert ticks[0] == 10 and ring.cq_ready(1) == 0


# ---- the 2021 reference programs (examples/reference.py) on both backends ------------------------
def _reference():
    sys.path.insert(0, str(ROOT / "examples"))
    import reference
    return reference


# counting, pingpong, write_file and test through the public Ring API on both backends, and
# examples/cp.py: tests/guest/test_parity.py.


def test_reference_test_program_writes_user_memory_in_the_kernel():
    """The 2021 `test` program (emit, reap, submit, copy_from_user, copy_to_user, WAIT on CQ 0),
    its user memory inside the ring's MEM region."""
    from pybpfuring.runtime.backends.bpf_ops_model import ModelRing
    ref = _reference()
    with ModelRing([ref.test], mem_size=4096) as ring:
        ring.memory[0:8] = (29).to_bytes(8, "little")
        addr = ring.memory_addr
        ring.start(0, user_data=addr)
        ring.run(min_complete=3)
        assert sorted(ring.reap(0)) == sorted([(3, 13, 0), (addr, 0, 0), (2, 0, 0)])
        assert [ref.arr[i] for i in (0, 1, 2, 3, 4, 5, 10)] == [11, 4, 5, 21, addr, 29, 1]
        assert int.from_bytes(ring.memory[0:8], "little") == 31      # the new secret
