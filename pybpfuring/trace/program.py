"""The bcc program `pybpfuring trace` attaches: io_uring tracepoints, counted per ring and opcode.

Which rings: every ring of the machine, or (with a pid) the rings that pid submits to or creates,
or (with a pid and a ring fd) the one ring whose fd it passes to io_uring_enter. Rings are named by
their kernel `ctx` pointer, learned from the pid's own events (io_uring_create, or a submission made
inside an io_uring_enter on that fd). Completions are then matched by ring, not by the current task:
they run in io-wq workers, interrupts and the kernel's task work, wherever the kernel finishes them.

Per opcode: SQEs submitted (io_uring_submit_req) and completed (io_uring_complete, the opcode found
through the request pointer recorded at submission), errors (res < 0); per-request latency
submit -> complete as a log2 histogram in microseconds per opcode; CQ overflows
(io_uring_cqe_overflow); task work queued (io_uring_task_add) and deferred work runs
(io_uring_local_work_run: runs, and the items they ran); io_uring_enter calls of the pid (or all).

Struct_ops run counts of programs that are unloaded while traced (UNLOAD_TEXT, attached where the
kernel has the two functions): a kprobe on bpf_prog_kallsyms_add, which bpf_prog_load calls in the
loading task once the program has its id, remembers the io_uring struct_ops programs of the pid; a
kprobe on bpf_prog_kallsyms_del_all, which the last bpf_prog_put calls before the program is freed,
sums its per-CPU run counters (the ones bpf_prog_info reports: the kernel counts while BPF_ENABLE_STATS
is held) into `unloaded`. A program that lives a few ms (a short ring) is counted this way, however
fast it comes and goes; user space no longer has to catch it alive.
"""
from __future__ import annotations

ALL = 0xFFFFFFFF

# Counter slots of the `counts` array (user space reads them per interval, then zeroes them).
ENTERS, OVERFLOWS, TASK_ADDS, WORK_RUNS, WORK_ITEMS, UNMATCHED = range(6)
COUNTERS = 6

BPF_TEXT = r"""
#define TRACE_PID   @PID@
#define TRACE_FD    @FD@
#define ANY         0xFFFFFFFF

struct start_t { u64 ts; u32 op; };
struct hist_key { u64 op; u64 slot; };
struct op_count { u64 submitted; u64 completed; u64 errors; };

BPF_HASH(rings, u64, u8, 4096);             // ctx pointers of the rings traced
BPF_HASH(in_enter, u32, u8, 4096);          // threads inside io_uring_enter(TRACE_FD)
BPF_HASH(start, u64, struct start_t, 65536); // req pointer -> submission time and opcode
BPF_ARRAY(per_op, struct op_count, 256);
BPF_ARRAY(counts, u64, @COUNTERS@);
BPF_HISTOGRAM(latency, struct hist_key, 256 * 64);

static inline int pid_matches(void) {
    return TRACE_PID == ANY || (bpf_get_current_pid_tgid() >> 32) == TRACE_PID;
}

static inline int ring_traced(void *ctx) {
    if (TRACE_PID == ANY)
        return 1;
    u64 key = (u64)ctx;
    return rings.lookup(&key) != NULL;
}

static inline void count(int slot, u64 n) {
    u64 *v = counts.lookup(&slot);
    if (v)
        __sync_fetch_and_add(v, n);
}

TRACEPOINT_PROBE(io_uring, io_uring_create) {
    if (TRACE_PID != ANY && pid_matches() && (TRACE_FD == ANY || args->fd == TRACE_FD)) {
        u64 key = (u64)args->ctx;
        u8 one = 1;
        rings.update(&key, &one);
    }
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_io_uring_enter) {
    if (!pid_matches() || (TRACE_FD != ANY && args->fd != TRACE_FD))
        return 0;
    count(@ENTERS@, 1);
    if (TRACE_FD != ANY) {
        u32 tid = (u32)bpf_get_current_pid_tgid();
        u8 one = 1;
        in_enter.update(&tid, &one);
    }
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_io_uring_enter) {
    if (TRACE_FD != ANY) {
        u32 tid = (u32)bpf_get_current_pid_tgid();
        in_enter.delete(&tid);
    }
    return 0;
}

TRACEPOINT_PROBE(io_uring, io_uring_submit_req) {
    u64 key = (u64)args->ctx;
    if (TRACE_PID != ANY && pid_matches()) {
        u32 tid = (u32)bpf_get_current_pid_tgid();
        if (TRACE_FD == ANY || in_enter.lookup(&tid)) {
            u8 one = 1;
            rings.update(&key, &one);
        }
    }
    if (!ring_traced(args->ctx))
        return 0;
    u32 op = args->opcode;
    struct op_count *c = per_op.lookup(&op);
    if (c)
        __sync_fetch_and_add(&c->submitted, 1);
    struct start_t s = { bpf_ktime_get_ns(), op };
    u64 req = (u64)args->req;
    start.update(&req, &s);
    return 0;
}

TRACEPOINT_PROBE(io_uring, io_uring_complete) {
    if (!ring_traced(args->ctx))
        return 0;
    u64 req = (u64)args->req;
    struct start_t *s = start.lookup(&req);
    if (!s) {                       // a CQE without a traced submission (posted by a program, or
        count(@UNMATCHED@, 1);      // submitted before the trace began)
        return 0;
    }
    u32 op = s->op;
    struct op_count *c = per_op.lookup(&op);
    if (c) {
        __sync_fetch_and_add(&c->completed, 1);
        if (args->res < 0)
            __sync_fetch_and_add(&c->errors, 1);
    }
    // A multishot request posts several CQEs (IORING_CQE_F_MORE): the last one ends it.
    struct hist_key hk = { op, bpf_log2l((bpf_ktime_get_ns() - s->ts) / 1000) };
    latency.increment(hk);
    if (!(args->cflags & 2))
        start.delete(&req);
    return 0;
}

TRACEPOINT_PROBE(io_uring, io_uring_cqe_overflow) {
    if (ring_traced(args->ctx))
        count(@OVERFLOWS@, 1);
    return 0;
}

TRACEPOINT_PROBE(io_uring, io_uring_task_add) {
    if (ring_traced(args->ctx))
        count(@TASK_ADDS@, 1);
    return 0;
}

TRACEPOINT_PROBE(io_uring, io_uring_local_work_run) {
    if (ring_traced(args->ctx)) {
        count(@WORK_RUNS@, 1);
        if (args->count > 0)
            count(@WORK_ITEMS@, args->count);
    }
    return 0;
}
"""


# Kernel functions the unload probe attaches to (kernel/bpf/core.c, global, called from syscall.c,
# so not inlined there): bpf_prog_load calls the first once the program has its id; the last put
# calls the second before anything of the program is freed. (bpf_prog_kallsyms_del itself is inlined
# into bpf_prog_kallsyms_del_all in the 7.2 guest's kernel, and bpf_prog_free_id into its caller:
# kprobes on them never fire for a program's unload.)
LOAD_FN, UNLOAD_FN = "bpf_prog_kallsyms_add", "bpf_prog_kallsyms_del_all"
MAX_CPUS = 64               # per-CPU counters summed (the unrolled loop's bound)

UNLOAD_TEXT = r"""
#include <uapi/linux/ptrace.h>

// Offsets in struct bpf_prog, bpf_prog_aux and bpf_prog_stats, from the running kernel's BTF
// (the kernel's own headers do not compile under bcc's clang for every kernel: 7.2's do not).
#define STRUCT_OPS_TYPE 27          // BPF_PROG_TYPE_STRUCT_OPS
#define OPS_BTF_ID      @OPS_ID@    // BTF id of io_uring_bpf_ops (0: any struct_ops program)
#define PCPU_OFFSETS    @PCPU@ULL   // address of __per_cpu_offset[] (/proc/kallsyms)
#define NCPUS           @NCPUS@

struct unloaded_t { u64 runs; u64 run_time_ns; char name[16]; };
BPF_HASH(loaded, u64, u32, 1024);                // struct bpf_prog * -> its id
BPF_HASH(unloaded, u32, struct unloaded_t, 1024); // id -> its final counts

static inline u64 read_u64(u64 addr) {
    u64 v = 0;
    bpf_probe_read_kernel(&v, sizeof(v), (void *)addr);
    return v;
}

static inline u32 read_u32(u64 addr) {
    u32 v = 0;
    bpf_probe_read_kernel(&v, sizeof(v), (void *)addr);
    return v;
}

int trace_prog_load(struct pt_regs *ctx) {
    u64 fp = PT_REGS_PARM1(ctx);
    if (!pid_matches() || read_u32(fp + @PROG_TYPE@) != STRUCT_OPS_TYPE)
        return 0;
    u64 aux = read_u64(fp + @PROG_AUX@);
    if (!aux)
        return 0;
    u32 id = read_u32(aux + @AUX_ID@);
    if (id == 0 || (OPS_BTF_ID && read_u32(aux + @AUX_ATTACH@) != OPS_BTF_ID))
        return 0;                   // id 0: a subprogram, not the program
    loaded.update(&fp, &id);
    return 0;
}

int trace_prog_unload(struct pt_regs *ctx) {
    u64 fp = PT_REGS_PARM1(ctx);
    u32 *idp = loaded.lookup(&fp);
    if (!idp)
        return 0;
    u32 id = *idp;
    loaded.delete(&fp);
    struct unloaded_t out = {};
    u64 stats = read_u64(fp + @PROG_STATS@);
    u64 aux = read_u64(fp + @PROG_AUX@);
    if (aux)
        bpf_probe_read_kernel(&out.name, sizeof(out.name), (void *)(aux + @AUX_NAME@));
    #pragma unroll
    for (int cpu = 0; cpu < NCPUS; cpu++) {
        u64 mine = stats + read_u64(PCPU_OFFSETS + cpu * 8);
        out.runs += read_u64(mine + @STATS_CNT@);
        out.run_time_ns += read_u64(mine + @STATS_NSECS@);
    }
    unloaded.update(&id, &out);
    return 0;
}
"""

# (struct, member) -> the placeholder its byte offset fills in UNLOAD_TEXT
LAYOUT = {("bpf_prog", "type"): "PROG_TYPE", ("bpf_prog", "aux"): "PROG_AUX",
          ("bpf_prog", "stats"): "PROG_STATS", ("bpf_prog_aux", "id"): "AUX_ID",
          ("bpf_prog_aux", "attach_btf_id"): "AUX_ATTACH", ("bpf_prog_aux", "name"): "AUX_NAME",
          ("bpf_prog_stats", "cnt"): "STATS_CNT", ("bpf_prog_stats", "nsecs"): "STATS_NSECS"}


def unload_text(ops_btf_id: int | None, pcpu_offsets: int, ncpus: int, offsets: dict[str, int]) -> str:
    """The unload probe's C (appended to bpf_text's), for the kernel's io_uring_bpf_ops BTF id, the
    address of its __per_cpu_offset array, its number of possible CPUs and the LAYOUT offsets."""
    values = {"OPS_ID": ops_btf_id or 0, "PCPU": pcpu_offsets, "NCPUS": min(ncpus, MAX_CPUS), **offsets}
    text = UNLOAD_TEXT
    for name, value in values.items():
        text = text.replace(f"@{name}@", str(value))
    return text


def bpf_text(pid: int | None, ring_fd: int | None) -> str:
    """The program for a pid (None: every process) and a ring fd of that pid (None: all its rings)."""
    values = {"PID": ALL if pid is None else pid, "FD": ALL if ring_fd is None else ring_fd,
              "COUNTERS": COUNTERS, "ENTERS": ENTERS, "OVERFLOWS": OVERFLOWS, "TASK_ADDS": TASK_ADDS,
              "WORK_RUNS": WORK_RUNS, "WORK_ITEMS": WORK_ITEMS, "UNMATCHED": UNMATCHED}
    text = BPF_TEXT
    for name, value in values.items():
        text = text.replace(f"@{name}@", str(value))
    return text
