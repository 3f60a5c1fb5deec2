/* Shared definitions of the native event loop (core.c, helpers.c, hmap.c, api.c). */
#ifndef PYBPFURING_NL_H
#define PYBPFURING_NL_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* --- the JIT's context (must match jit_abi.py; checked from Python at load) --- */
enum { CTX_STATUS = 0, CTX_PC, CTX_ADDR, CTX_SIZE, CTX_MODE, CTX_BUDGET, CTX_DEPTH, CTX_STACK_BASE,
       CTX_REGIONS, CTX_NREGIONS, CTX_PYHELPER, CTX_CONSTS, CTX_HOT_LO, CTX_HOT_SPAN, CTX_AUX,
       CTX_HINT, CTX_HOST, CTX_FIELDS };
enum { ST_OK = 0, ST_MEMORY = 1, ST_HELPER = 6 };
enum { MODE_READ = 0, MODE_WRITE = 1 };

/* --- io_uring uapi bits we use: copies of pybpfuring/abi (C cannot import it), checked equal by
 * tests/unit/test_native_abi.py --- */
#define OP_BPF_2021 37
#define SQE_LINK 4u
#define SQE_HARDLINK 8u
#define SQE_SKIP_SUCCESS 64u
#define CQE_F_MORE 2u
#define SQ_CQ_OVERFLOW 2u
#define SQ_TASKRUN 4u
#define ENTER_GETEVENTS 1u
#define ENTER_EXT_ARG 8u
#define RUN_OK 0
#define RUN_WAIT 1
#define SQE_CQ_IDX_AT 48   /* the 2021 __u16 cq_idx; abi/structs.py SQE_CQ_IDX_AT */

/* nl_run results */
enum { NL_DONE = 0, NL_NEED_PY = 1, NL_STALLED = 2, NL_TIMEOUT = 3, NL_ERROR = 4, NL_INTR = 5,
       NL_YIELD = 6 };
/* nl_run returns NL_YIELD after this long without returning, so Python can run its signal
 * handlers (Ctrl-C) and check a timed call's deadline even while programs never block. (An
 * untimed call checks it with the coarse clock after a blocking enter: up to a tick longer.) */
#define NL_SLICE_NS 5000000ll
/* events for Python */
enum { EV_CONT = 1, EV_RELEASE = 2, EV_RUN = 3, EV_LIVELOCK = 4, EV_BADWAIT = 5 };
/* tag flags */
enum { TAG_SKIP = 1, TAG_PINNED = 2 };

#define QUIET_BIT (1ull << 63)
#define QUIET_SLOTS (1u << 20)

typedef uint64_t (*helper_fn)(uint64_t *, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);
typedef uint64_t (*entry_fn)(uint64_t *, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t,
                             uint64_t, void *);
typedef uint64_t (*map_cb)(uint64_t *, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);

struct cqe { uint64_t user_data; int32_t res; uint32_t flags; };
struct waiter { uint32_t wait_nr; uint32_t req; uint64_t seq; };

struct cq {
    struct cqe *buf;
    uint32_t alloc;               /* power of two >= capacity (CQ 0 grows: it never drops) */
    uint32_t capacity;
    uint64_t head, tail;          /* free-running: ready = tail - head */
    uint64_t drops, overflowed;
    int64_t promised;             /* CQEs counted for woken waiters that have not run yet */
    struct waiter *heap;          /* min-heap by (wait_nr, seq) */
    uint32_t nwait, heap_alloc;
    uint64_t seq;
    int in_waiting_set;
};

/* fail < 0: a refusal's stand-in NOP (its CQE is posted with fail instead of its res) */
struct tag { uint64_t user_data; uint64_t cont; uint32_t cq_idx; uint32_t flags; uint32_t next_free; uint32_t live;
             int32_t fail; };
struct quiet { uint64_t seq; uint64_t user_data; uint32_t cq_idx; uint32_t live; };

struct req {
    uint64_t user_data, cont;
    uint32_t prog, cq_idx, flags, runs;
    int32_t claim_cq, fail;       /* fail < 0: complete with it instead of running (refused at start) */
    uint32_t claim_nr, next_free, live;
};

struct prog { entry_fn fn; void *consts; };
struct hmap;
struct emap { uint64_t base, stride, max_entries, key_size, value_size; int kind; /* 1 array, 2 Python, 3 hash */
              struct hmap *hash; };
struct event { uint64_t kind, a, b, c; };

struct loop {
    /* kernel ring */
    int fd;
    uint32_t *sq_head, *sq_tail, *sq_flags, sq_mask, sq_entries;
    uint8_t *sqes;
    uint32_t sq_local_tail, sq_flushed;
    uint32_t *cq_head, *cq_tail, cq_mask;
    struct cqe *kcqes;
    /* CQs */
    struct cq *cqs;
    uint32_t ncq;
    uint32_t *waiting_cqs, nwaiting_cqs;
    /* tags */
    struct tag *tags;
    uint32_t ntag_alloc, tag_free, tags_live;
    struct quiet *quiet;
    uint64_t quiet_seq;
    /* requests and the ready queue */
    struct req *reqs;
    uint32_t nreq_alloc, req_free;
    uint32_t *ready;
    uint32_t ready_alloc, ready_head, ready_len;
    /* programs */
    struct prog *progs;
    uint32_t nprogs;
    uint64_t *vctx;               /* the JitVm's context */
    uint64_t bpf_ctx;             /* address of io_uring_bpf_ctx {u64 user_data; u32 wait_nr, wait_idx} */
    uint64_t budget;
    uint32_t cur_prog;
    /* live-lock guard (Ring run_budget): runs since the last kernel completion, and requests
     * taken from the ready queue so far (a non-blocking call stops after its share) */
    uint64_t run_budget, spin, attempts;
    /* maps */
    struct emap *maps;
    uint32_t nmaps;
    map_cb py_map;
    /* SQEs a run handed to Python (chains, BPF requests, bad cq_idx), in order */
    uint8_t *deferred;
    uint32_t ndeferred, deferred_alloc;
    int run_defers;
    /* events for Python */
    struct event *events;
    uint32_t ev_head, ev_len, ev_alloc;
    int need_py;
    int drain_cut;                /* drain() stopped for Python with kernel CQEs left */
    int route_conts;              /* routing handed Python a chain to continue (EV_CONT) */
    int in_runs;                  /* a pass over the ready requests is on (Python's part too) */
    uint32_t *late;               /* woken by a CQE a run posted: run after the next routing */
    uint32_t late_len, late_alloc;
    /* counters */
    uint64_t runs, insns;
    uint64_t waits, prog_sqes;    /* WAIT returns, SQEs programs submitted (Ring.stats) */
    int err;                      /* errno of a failed io_uring_enter */
    uint64_t rand_state;
    /* user memory the ring knows valid while it is open ((start, end, writable) sorted by start:
     * Ring.user_memory arenas, registered buffers): copy_{from,to}_user there are plain copies */
    uint64_t *known;
    uint32_t nknown;
    uint64_t known_hint;          /* in_table's hint for `known` */
    uint64_t fast_copies, checked_copies;
};

/* --- shared between the files (hidden: not part of the library's API) --- */
#define NL_HIDDEN __attribute__((visibility("hidden")))
NL_HIDDEN void *grow(void *p, uint32_t *alloc, uint32_t need, size_t elem);
NL_HIDDEN void push_event(struct loop *l, uint64_t kind, uint64_t a, uint64_t b, uint64_t c);
NL_HIDDEN int table_search(const uint64_t *tab, uint64_t n, uint64_t addr, uint64_t size, int write,
                           uint64_t *hint);
NL_HIDDEN int check_failed(uint64_t *ctx, uint64_t addr, uint64_t size, int write);

/* 1 if [addr, addr+size) lies inside one entry of `tab` ((start, end, writable) sorted by start, never
 * overlapping), and a writable one for a write. The entry at *hint (the last one found) is tried
 * before the binary search: a helper's pointers mostly land in the region the previous one did (the
 * program's stack). An entry that holds the range with addr before its end is the one the search
 * would find, so the answer is the same; a stale or out-of-range hint only costs the search. */
static inline int in_hinted(const uint64_t *tab, uint64_t n, uint64_t addr, uint64_t size, int write,
                            uint64_t hint)
{
    if (hint >= n)
        return 0;
    const uint64_t *r = tab + 3 * hint;
    uint64_t span = r[1] - r[0], off = addr - r[0];
    return off < span && span - off >= size && (r[2] || !write);
}

static inline int in_table(const uint64_t *tab, uint64_t n, uint64_t addr, uint64_t size, int write,
                           uint64_t *hint)
{
    return in_hinted(tab, n, addr, size, write, *hint) || table_search(tab, n, addr, size, write, hint);
}

/* A helper's pointer against the run's region table; a miss records the memory fault in ctx. */
static inline int check(uint64_t *ctx, uint64_t addr, uint64_t size, int write)
{
    if (in_table((const uint64_t *)ctx[CTX_REGIONS], ctx[CTX_NREGIONS], addr, size, write, &ctx[CTX_HINT]))
        return 1;
    return check_failed(ctx, addr, size, write);
}

/* The loop a helper serves: nl_run stores it in the context of the programs it runs (and puts back
 * what was there when it returns), so a helper called outside a run, or with a scratch context from
 * Python, finds none (NEED_LOOP). Read from ctx, not a thread-local: one load instead of a TLS
 * lookup call per helper in a shared library. */
static inline struct loop *ctx_loop(const uint64_t *ctx) { return (struct loop *)(uintptr_t)ctx[CTX_HOST]; }
extern pid_t nl_pid;
NL_HIDDEN uint64_t cq_ready(const struct cq *q);
NL_HIDDEN int post(struct loop *l, uint32_t idx, uint64_t user_data, int32_t res, uint32_t flags);
NL_HIDDEN int wake_idle(struct loop *l);
NL_HIDDEN uint32_t ready_pop(struct loop *l);
NL_HIDDEN void ready_push(struct loop *l, uint32_t req);
NL_HIDDEN void complete(struct loop *l, uint32_t r, int32_t res);
NL_HIDDEN void wait_req(struct loop *l, uint32_t r, uint32_t wait_nr, uint32_t wait_idx);
NL_HIDDEN long enter(struct loop *l, uint32_t to_submit, uint32_t min_complete, uint32_t flags, void *arg,
                     size_t argsz);
NL_HIDDEN uint32_t publish(struct loop *l);
NL_HIDDEN int flush(struct loop *l);
NL_HIDDEN int kernel_sqe(struct loop *l, const uint8_t *raw, uint32_t flags, uint64_t user_data,
                         uint32_t cq_idx, uint64_t cont, int pinned, int32_t fail, uint64_t *tag_out);
NL_HIDDEN int drain(struct loop *l);
NL_HIDDEN void run(struct loop *l, uint32_t r);
NL_HIDDEN uint64_t h_ktime(uint64_t *ctx, uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e);

/* hash maps (hmap.c; also called from Python) */
uint64_t nl_hmap_lookup(const struct hmap *m, const uint8_t *key);
int64_t nl_hmap_update(struct hmap *m, const uint8_t *key, const uint8_t *value, uint64_t flags);
int64_t nl_hmap_delete(struct hmap *m, const uint8_t *key);

/* Helpers that reach the loop run only inside nl_run; called elsewhere (a scratch context from
 * Python), they refuse instead of dereferencing nothing. */
#define NEED_LOOP(l, ctx)                      \
    do {                                       \
        if (!(l)) {                            \
            (ctx)[CTX_STATUS] = ST_HELPER;     \
            (ctx)[CTX_AUX] = EINVAL;           \
            return 0;                          \
        }                                      \
    } while (0)

#endif
