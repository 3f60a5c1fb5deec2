/* The emulated backend's event loop and io_uring helpers as native code (docs/runtime.md,
 * "Native event loop"). Built by pybpfuring/runtime/native/build.py with the system C compiler and
 * loaded with ctypes; Python stays the control plane (setup, registration, link chains, faults).
 *
 * The loop owns: the extra CQs (and CQ 0) as CQE ring buffers, the waiters of each CQ, the ready
 * queue of BPF requests, the tag table that routes kernel CQEs back to CQs, and the real kernel SQ
 * and CQ rings while it runs. Whatever needs Python (a link chain to continue, pinned memory to
 * release, a program fault to describe, an SQE that starts a chain or a BPF request) is queued as an
 * event and the loop returns to Python, which handles it and calls back in.
 *
 * Helpers follow the JIT's native ABI (pybpfuring/runtime/engine/jit_abi.py): uint64_t fn(uint64_t
 * *ctx, r1..r5); every engine pointer is checked against ctx[CTX_REGIONS]; faults set ctx[CTX_STATUS].
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* --- the JIT's context (must match jit_abi.py; checked from Python at load) --- */
enum { CTX_STATUS = 0, CTX_PC, CTX_ADDR, CTX_SIZE, CTX_MODE, CTX_BUDGET, CTX_DEPTH, CTX_STACK_BASE,
       CTX_REGIONS, CTX_NREGIONS, CTX_PYHELPER, CTX_CONSTS, CTX_HOT_LO, CTX_HOT_SPAN, CTX_AUX };
enum { ST_OK = 0, ST_MEMORY = 1, ST_HELPER = 6 };
enum { MODE_READ = 0, MODE_WRITE = 1 };

/* --- io_uring uapi bits we use --- */
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

/* nl_run results */
enum { NL_DONE = 0, NL_NEED_PY = 1, NL_STALLED = 2, NL_TIMEOUT = 3, NL_ERROR = 4, NL_INTR = 5 };
/* events for Python */
enum { EV_CONT = 1, EV_RELEASE = 2, EV_RUN = 3 };
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

struct tag { uint64_t user_data; uint64_t cont; uint32_t cq_idx; uint32_t flags; uint32_t next_free; uint32_t live; };
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
    /* counters */
    uint64_t runs, insns;
    int err;                      /* errno of a failed io_uring_enter */
    pid_t pid;
    uint64_t rand_state;
};

static __thread struct loop *cur_loop;

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

/* ------------------------------------------------------------------------------------------ */
static void *grow(void *p, uint32_t *alloc, uint32_t need, size_t elem)
{
    uint32_t n = *alloc ? *alloc : 16;
    while (n < need)
        n *= 2;
    if (n == *alloc)
        return p;
    void *q = realloc(p, (size_t)n * elem);
    if (!q)
        abort(); /* out of memory in a bookkeeping array: nothing sensible remains */
    *alloc = n;
    return q;
}

static void push_event(struct loop *l, uint64_t kind, uint64_t a, uint64_t b, uint64_t c)
{
    if (l->ev_head + l->ev_len >= l->ev_alloc) {
        if (l->ev_head) {
            memmove(l->events, l->events + l->ev_head, l->ev_len * sizeof *l->events);
            l->ev_head = 0;
        }
        l->events = grow(l->events, &l->ev_alloc, l->ev_len + 1, sizeof *l->events);
    }
    struct event *e = &l->events[l->ev_head + l->ev_len++];
    e->kind = kind, e->a = a, e->b = b, e->c = c;
    l->need_py = 1;
}

/* --- region checks (the JIT's table: (start, end, writable) sorted by start) --- */
static int check(uint64_t *ctx, uint64_t addr, uint64_t size, int write)
{
    const uint64_t *tab = (const uint64_t *)ctx[CTX_REGIONS];
    uint64_t lo = 0, hi = ctx[CTX_NREGIONS];
    while (lo < hi) {
        uint64_t mid = (lo + hi) / 2;
        if (tab[3 * mid] <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo) {
        const uint64_t *r = tab + 3 * (lo - 1);
        uint64_t span = r[1] - r[0], off = addr - r[0];
        if (off <= span && span - off >= size && (r[2] || !write))
            return 1;
    }
    ctx[CTX_STATUS] = ST_MEMORY;
    ctx[CTX_ADDR] = addr;
    ctx[CTX_SIZE] = size;
    ctx[CTX_MODE] = write ? MODE_WRITE : MODE_READ;
    return 0;
}

/* --- CQs --- */
static uint64_t cq_ready(const struct cq *q) { return q->tail - q->head; }

static int heap_less(const struct waiter *a, const struct waiter *b)
{
    return a->wait_nr < b->wait_nr || (a->wait_nr == b->wait_nr && a->seq < b->seq);
}

static void heap_push(struct cq *q, uint32_t wait_nr, uint32_t req)
{
    q->heap = grow(q->heap, &q->heap_alloc, q->nwait + 1, sizeof *q->heap);
    uint32_t i = q->nwait++;
    struct waiter w = { wait_nr, req, ++q->seq };
    while (i) {
        uint32_t p = (i - 1) / 2;
        if (!heap_less(&w, &q->heap[p]))
            break;
        q->heap[i] = q->heap[p];
        i = p;
    }
    q->heap[i] = w;
}

static struct waiter heap_pop(struct cq *q)
{
    struct waiter top = q->heap[0], last = q->heap[--q->nwait];
    uint32_t i = 0, n = q->nwait;
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && heap_less(&q->heap[c + 1], &q->heap[c]))
            c++;
        if (!heap_less(&q->heap[c], &last))
            break;
        q->heap[i] = q->heap[c];
        i = c;
    }
    if (n)
        q->heap[i] = last;
    return top;
}

static void ready_push(struct loop *l, uint32_t req)
{
    if (l->ready_len == l->ready_alloc) { /* full (or unallocated): a bigger ring, oldest first */
        uint32_t alloc = l->ready_alloc ? 2 * l->ready_alloc : 64;
        uint32_t *ring = malloc((size_t)alloc * sizeof *ring);
        if (!ring)
            abort();
        for (uint32_t i = 0; i < l->ready_len; i++)
            ring[i] = l->ready[(l->ready_head + i) & (l->ready_alloc - 1)];
        free(l->ready);
        l->ready = ring, l->ready_alloc = alloc, l->ready_head = 0;
    }
    l->ready[(l->ready_head + l->ready_len++) & (l->ready_alloc - 1)] = req;
}

static uint32_t ready_pop(struct loop *l)
{
    uint32_t r = l->ready[l->ready_head];
    l->ready_head = (l->ready_head + 1) & (l->ready_alloc - 1);
    l->ready_len--;
    return r;
}

/* Wake waiters while the CQEs not promised to an earlier one cover their wait_nr (cqs.py). */
static void wake(struct loop *l, uint32_t idx)
{
    struct cq *q = &l->cqs[idx];
    int64_t available = (int64_t)cq_ready(q) - q->promised;
    while (q->nwait && (int64_t)q->heap[0].wait_nr <= available) {
        struct waiter w = heap_pop(q);
        available -= w.wait_nr;
        q->promised += w.wait_nr;
        l->reqs[w.req].claim_cq = (int32_t)idx;
        l->reqs[w.req].claim_nr = w.wait_nr;
        ready_push(l, w.req);
    }
}

static int post(struct loop *l, uint32_t idx, uint64_t user_data, int32_t res, uint32_t flags)
{
    struct cq *q = &l->cqs[idx];
    uint64_t n = cq_ready(q);
    if (n >= q->capacity) {
        if (idx) {
            q->drops++;
            return 0;
        }
        q->overflowed++;
        if (n >= q->alloc) { /* CQ 0's backlog: double the buffer, keeping FIFO order */
            uint32_t alloc = q->alloc * 2;
            struct cqe *buf = malloc((size_t)alloc * sizeof *buf);
            if (!buf)
                abort();
            for (uint64_t i = 0; i < n; i++)
                buf[i] = q->buf[(q->head + i) & (q->alloc - 1)];
            free(q->buf);
            q->buf = buf, q->alloc = alloc, q->head = 0, q->tail = n;
        }
    }
    struct cqe *c = &q->buf[q->tail & (q->alloc - 1)];
    c->user_data = user_data, c->res = res, c->flags = flags;
    q->tail++;
    if (q->nwait)
        wake(l, idx);
    return 1;
}

static int wake_idle(struct loop *l)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < l->nwaiting_cqs; i++) {
        uint32_t idx = l->waiting_cqs[i];
        struct cq *q = &l->cqs[idx];
        if (!q->nwait) {
            q->in_waiting_set = 0;
            continue;
        }
        l->waiting_cqs[k++] = idx;
        if (cq_ready(q))
            wake(l, idx);
    }
    l->nwaiting_cqs = k;
    return l->ready_len != 0;
}

/* --- requests --- */
static void free_req(struct loop *l, uint32_t r)
{
    l->reqs[r].live = 0;
    l->reqs[r].next_free = l->req_free;
    l->req_free = r;
}

/* Complete a request: its CQE (unless skipped on success), and its chain goes on in Python. */
static void complete(struct loop *l, uint32_t r, int32_t res)
{
    struct req *q = &l->reqs[r];
    if (res < 0 || !(q->flags & SQE_SKIP_SUCCESS))
        post(l, q->cq_idx, q->user_data, res, 0);
    if (q->cont)
        push_event(l, EV_CONT, q->cont, (uint64_t)(int64_t)res, 0);
    free_req(l, r);
}

static void wait_req(struct loop *l, uint32_t r, uint32_t wait_nr, uint32_t wait_idx)
{
    if (wait_idx >= l->ncq || wait_nr == 0 || (wait_idx && wait_nr > l->cqs[wait_idx].capacity)) {
        complete(l, r, -EINVAL);
        return;
    }
    struct cq *q = &l->cqs[wait_idx];
    if (cq_ready(q) >= wait_nr) {
        ready_push(l, r);
        return;
    }
    heap_push(q, wait_nr, r);
    if (!q->in_waiting_set) {
        q->in_waiting_set = 1;
        l->waiting_cqs[l->nwaiting_cqs++] = wait_idx;
    }
}

/* --- the kernel rings --- */
static long enter(struct loop *l, uint32_t to_submit, uint32_t min_complete, uint32_t flags, void *arg,
                  size_t argsz)
{
    return syscall(__NR_io_uring_enter, l->fd, to_submit, min_complete, flags, arg, argsz);
}

/* Publish the SQEs written so far (release: their bytes before the tail); how many the kernel has
 * not taken yet. */
static uint32_t publish(struct loop *l)
{
    if (l->sq_local_tail != l->sq_flushed) {
        __atomic_store_n(l->sq_tail, l->sq_local_tail, __ATOMIC_RELEASE);
        l->sq_flushed = l->sq_local_tail;
    }
    return l->sq_local_tail - __atomic_load_n(l->sq_head, __ATOMIC_ACQUIRE);
}

/* Publish the SQEs written so far and let the kernel take them. 0 or -errno. */
static int flush(struct loop *l)
{
    if (!publish(l))
        return 0;
    for (;;) {
        uint32_t pending = l->sq_local_tail - __atomic_load_n(l->sq_head, __ATOMIC_ACQUIRE);
        if (!pending)
            return 0;
        long ret = enter(l, pending, 0, 0, NULL, 0);
        if (ret >= 0)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

static uint8_t *sq_slot(struct loop *l)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        uint32_t head = __atomic_load_n(l->sq_head, __ATOMIC_ACQUIRE);
        if (l->sq_local_tail - head < l->sq_entries) {
            uint8_t *s = l->sqes + (size_t)(l->sq_local_tail & l->sq_mask) * 64;
            l->sq_local_tail++;
            return s;
        }
        if (flush(l) < 0)
            return NULL;
    }
    return NULL;
}

static uint32_t new_tag(struct loop *l)
{
    if (l->tag_free == UINT32_MAX) {
        uint32_t old = l->ntag_alloc;
        l->tags = grow(l->tags, &l->ntag_alloc, old + 1, sizeof *l->tags);
        for (uint32_t i = l->ntag_alloc; i-- > old;) {
            l->tags[i].live = 0;
            l->tags[i].next_free = l->tag_free;
            l->tag_free = i;
        }
    }
    uint32_t t = l->tag_free;
    l->tag_free = l->tags[t].next_free;
    l->tags[t].live = 1;
    l->tags_live++;
    return t;
}

/* A plain SQE to the kernel: cq_idx and padding stripped, user_data replaced by a routing tag
 * (stored in *tag_out). Returns 0 or -errno (-EBUSY: the SQ stays full). */
static int kernel_sqe(struct loop *l, const uint8_t *raw, uint32_t flags, uint64_t user_data,
                      uint32_t cq_idx, uint64_t cont, int pinned, uint64_t *tag_out)
{
    uint8_t *s = sq_slot(l);
    if (!s)
        return -EBUSY;
    uint64_t tagval;
    if ((flags & SQE_SKIP_SUCCESS) && !cont) {
        if (!l->quiet) {
            l->quiet = calloc(QUIET_SLOTS, sizeof *l->quiet);
            if (!l->quiet)
                abort();
        }
        uint64_t seq = ++l->quiet_seq;
        struct quiet *q = &l->quiet[seq & (QUIET_SLOTS - 1)]; /* the oldest is forgotten */
        q->seq = seq, q->user_data = user_data, q->cq_idx = cq_idx, q->live = 1;
        tagval = QUIET_BIT | seq;
    } else {
        uint32_t t = new_tag(l);
        struct tag *g = &l->tags[t];
        g->user_data = user_data, g->cq_idx = cq_idx, g->cont = cont;
        g->flags = (pinned ? TAG_PINNED : 0);
        if (flags & SQE_SKIP_SUCCESS) { /* its completion starts the rest of a chain: we need it */
            flags &= ~SQE_SKIP_SUCCESS;
            g->flags |= TAG_SKIP;
        }
        tagval = (uint64_t)t + 1;
    }
    memcpy(s, raw, 48);
    memset(s + 48, 0, 16);
    memcpy(s + 32, &tagval, 8);
    s[1] = (uint8_t)flags;
    *tag_out = tagval;
    return 0;
}

static void route(struct loop *l, const struct cqe *c)
{
    uint64_t tv = c->user_data;
    if (tv & QUIET_BIT) {
        if (l->quiet) {
            struct quiet *q = &l->quiet[tv & (QUIET_SLOTS - 1)];
            if (q->live && q->seq == (tv & ~QUIET_BIT)) { /* a skip-success request that failed */
                q->live = 0;
                post(l, q->cq_idx, q->user_data, c->res, c->flags);
            }
        }
        return;
    }
    if (tv == 0 || tv > l->ntag_alloc || !l->tags[tv - 1].live)
        return; /* e.g. the ring's own quiesce cancel */
    uint32_t t = (uint32_t)(tv - 1);
    struct tag g = l->tags[t];
    int more = c->flags & CQE_F_MORE;
    if (!more) {
        l->tags[t].live = 0;
        l->tags[t].next_free = l->tag_free;
        l->tag_free = t;
        l->tags_live--;
    }
    if (!((g.flags & TAG_SKIP) && c->res >= 0))
        post(l, g.cq_idx, g.user_data, c->res, c->flags);
    if (!more && (g.flags & TAG_PINNED))
        push_event(l, EV_RELEASE, tv, 0, 0);
    if (!more && g.cont)
        push_event(l, EV_CONT, g.cont, (uint64_t)(int64_t)c->res, 0);
}

/* Route every kernel CQE that is ready (stops early when Python has work). 0 or -errno. */
static int drain(struct loop *l)
{
    for (int entered = 0;;) {
        uint32_t head = *l->cq_head;
        uint32_t tail = __atomic_load_n(l->cq_tail, __ATOMIC_ACQUIRE);
        if (head == tail) {
            if (entered || !(__atomic_load_n(l->sq_flags, __ATOMIC_RELAXED) & (SQ_CQ_OVERFLOW | SQ_TASKRUN)))
                return 0;
            entered = 1; /* let the kernel flush its overflow list / task work */
            if (enter(l, 0, 0, ENTER_GETEVENTS, NULL, 0) < 0 && errno != EINTR)
                return -errno;
            continue;
        }
        struct cqe c = l->kcqes[head & l->cq_mask];
        __atomic_store_n(l->cq_head, head + 1, __ATOMIC_RELEASE);
        route(l, &c);
        if (l->need_py)
            return 0;
    }
}

/* --- running programs --- */
static void complete(struct loop *l, uint32_t r, int32_t res);

static void run(struct loop *l, uint32_t r)
{
    struct req *q = &l->reqs[r];
    if (q->fail) {
        complete(l, r, q->fail);
        return;
    }
    if (q->claim_cq >= 0) {
        l->cqs[q->claim_cq].promised -= q->claim_nr;
        q->claim_cq = -1;
    }
    uint8_t *ctx = (uint8_t *)l->bpf_ctx;
    memcpy(ctx, &q->user_data, 8);
    memset(ctx + 8, 0, 8);
    q->runs++;
    l->runs++;
    l->cur_prog = q->prog;
    l->ndeferred = 0;
    l->run_defers = 0;
    struct prog *p = &l->progs[q->prog];
    uint64_t *v = l->vctx;
    uint64_t r0 = p->fn(v, l->bpf_ctx, 0, 0, 0, 0, l->budget, 0, p->consts);
    l->insns += l->budget - v[CTX_BUDGET];
    uint32_t ret = (uint32_t)r0;
    if (v[CTX_STATUS] || l->run_defers || (ret != RUN_OK && ret != RUN_WAIT)) {
        /* a fault, SQEs for Python to dispatch, or a bad return value: Python finishes the run */
        push_event(l, EV_RUN, r, r0, v[CTX_STATUS]);
        return;
    }
    if (ret == RUN_OK) {
        complete(l, r, 0);
    } else {
        uint32_t wait_nr, wait_idx;
        memcpy(&wait_nr, ctx + 8, 4);
        memcpy(&wait_idx, ctx + 12, 4);
        wait_req(l, r, wait_nr, wait_idx);
    }
}

/* --- hash maps: the kernel's BPF_MAP_TYPE_HASH semantics over preallocated value slots ---
 * Values live in the engine region at base + slot * stride (so programs get real pointers); keys and
 * the index are here. Slots are handed out as EngineHashMap does (a stack: slot 0 first, the last
 * freed reused first) and each remembers when its key was inserted, so user space iterates in
 * insertion order, as over the Python dict. */
struct hmap {
    uint32_t max_entries, key_size, value_size, count;
    uint64_t base, stride, next_seq;
    uint8_t *keys;                /* max_entries * key_size */
    uint64_t *seq;                /* per slot: insertion number, 0 = free */
    uint32_t *free_stack, nfree;
    int32_t *index;               /* open addressing: slot, -1 empty, -2 deleted */
    uint32_t index_mask, tombstones;
};

static uint64_t hm_hash(const uint8_t *key, uint32_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (uint32_t i = 0; i < n; i++)
        h = (h ^ key[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

/* The index position holding `key`, or where it would go (*found says which). */
static uint32_t hm_find(const struct hmap *m, const uint8_t *key, int *found)
{
    uint32_t pos = (uint32_t)hm_hash(key, m->key_size) & m->index_mask, first_free = UINT32_MAX;
    for (;;) {
        int32_t e = m->index[pos];
        if (e == -1) {
            *found = 0;
            return first_free != UINT32_MAX ? first_free : pos;
        }
        if (e == -2) {
            if (first_free == UINT32_MAX)
                first_free = pos;
        } else if (!memcmp(m->keys + (size_t)e * m->key_size, key, m->key_size)) {
            *found = 1;
            return pos;
        }
        pos = (pos + 1) & m->index_mask;
    }
}

static void hm_rebuild(struct hmap *m)
{
    for (uint32_t i = 0; i <= m->index_mask; i++)
        m->index[i] = -1;
    for (uint32_t slot = 0; slot < m->max_entries; slot++) {
        if (!m->seq[slot])
            continue;
        uint32_t pos = (uint32_t)hm_hash(m->keys + (size_t)slot * m->key_size, m->key_size) & m->index_mask;
        while (m->index[pos] != -1)
            pos = (pos + 1) & m->index_mask;
        m->index[pos] = (int32_t)slot;
    }
    m->tombstones = 0;
}

struct hmap *nl_hmap_new(uint32_t max_entries, uint32_t key_size, uint32_t value_size, uint64_t base,
                         uint64_t stride)
{
    struct hmap *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->max_entries = max_entries, m->key_size = key_size, m->value_size = value_size;
    m->base = base, m->stride = stride;
    uint32_t cap = 8;
    while (cap < 2 * (uint64_t)max_entries)
        cap *= 2;
    m->index_mask = cap - 1;
    m->keys = calloc((size_t)max_entries ? max_entries : 1, key_size ? key_size : 1);
    m->seq = calloc((size_t)max_entries ? max_entries : 1, sizeof *m->seq);
    m->free_stack = malloc(((size_t)max_entries ? max_entries : 1) * sizeof *m->free_stack);
    m->index = malloc((size_t)cap * sizeof *m->index);
    if (!m->keys || !m->seq || !m->free_stack || !m->index) {
        free(m->keys), free(m->seq), free(m->free_stack), free(m->index), free(m);
        return NULL;
    }
    for (uint32_t i = 0; i < max_entries; i++)
        m->free_stack[i] = max_entries - 1 - i; /* popped from the end: slot 0 first */
    m->nfree = max_entries;
    hm_rebuild(m);
    return m;
}

void nl_hmap_free(struct hmap *m)
{
    if (m) {
        free(m->keys), free(m->seq), free(m->free_stack), free(m->index);
        free(m);
    }
}

/* The value address of `key`, or 0. */
uint64_t nl_hmap_lookup(const struct hmap *m, const uint8_t *key)
{
    int found;
    uint32_t pos = hm_find(m, key, &found);
    return found ? m->base + (uint64_t)m->index[pos] * m->stride : 0;
}

/* BPF_ANY/NOEXIST/EXIST as the kernel: 0 or -errno. */
int64_t nl_hmap_update(struct hmap *m, const uint8_t *key, const uint8_t *value, uint64_t flags)
{
    if (flags > 2)
        return -EINVAL;
    int found;
    uint32_t pos = hm_find(m, key, &found);
    uint32_t slot;
    if (found) {
        if (flags == 1)
            return -EEXIST;
        slot = (uint32_t)m->index[pos];
    } else {
        if (flags == 2)
            return -ENOENT;
        if (!m->nfree)
            return -E2BIG;
        slot = m->free_stack[--m->nfree];
        if (m->index[pos] == -2)
            m->tombstones--;
        m->index[pos] = (int32_t)slot;
        memcpy(m->keys + (size_t)slot * m->key_size, key, m->key_size);
        m->seq[slot] = ++m->next_seq;
        m->count++;
    }
    memmove((void *)(m->base + slot * m->stride), value, m->value_size);
    return 0;
}

int64_t nl_hmap_delete(struct hmap *m, const uint8_t *key)
{
    int found;
    uint32_t pos = hm_find(m, key, &found);
    if (!found)
        return -ENOENT;
    uint32_t slot = (uint32_t)m->index[pos];
    m->index[pos] = -2;
    m->seq[slot] = 0;
    memset((void *)(m->base + slot * m->stride), 0, m->value_size);
    m->free_stack[m->nfree++] = slot;
    m->count--;
    if (++m->tombstones > (m->index_mask + 1) / 4)
        hm_rebuild(m);
    return 0;
}

/* The live slots in insertion order (at most max); their keys are at keys + slot * key_size. */
uint32_t nl_hmap_slots(const struct hmap *m, uint32_t *out, uint32_t max)
{
    uint32_t n = 0;
    for (uint32_t slot = 0; slot < m->max_entries && n < max; slot++)
        if (m->seq[slot])
            out[n++] = slot;
    /* insertion order: a simple insertion sort by seq (user-space iteration only) */
    for (uint32_t i = 1; i < n; i++) {
        uint32_t v = out[i], j = i;
        while (j && m->seq[out[j - 1]] > m->seq[v]) {
            out[j] = out[j - 1];
            j--;
        }
        out[j] = v;
    }
    return n;
}

const uint8_t *nl_hmap_key(const struct hmap *m, uint32_t slot) { return m->keys + (size_t)slot * m->key_size; }
uint32_t nl_hmap_count(const struct hmap *m) { return m->count; }

/* --- helpers --- */
static int32_t s32(uint64_t v) { return (int32_t)(uint32_t)v; }

static uint64_t h_submit(uint64_t *ctx, uint64_t bctx, uint64_t sqe, uint64_t len, uint64_t r4, uint64_t r5)
{
    struct loop *l = cur_loop;
    NEED_LOOP(l, ctx);
    (void)bctx, (void)r4, (void)r5;
    if (len != 64)
        return (uint64_t)-EINVAL;
    if (!check(ctx, sqe, 64, 0))
        return 0;
    const uint8_t *raw = (const uint8_t *)sqe;
    uint8_t opcode = raw[0], flags = raw[1];
    uint16_t cq_idx;
    uint64_t user_data;
    memcpy(&cq_idx, raw + 48, 2);
    memcpy(&user_data, raw + 32, 8);
    if (!l->run_defers && opcode != OP_BPF_2021 && !(flags & (SQE_LINK | SQE_HARDLINK)) && cq_idx < l->ncq) {
        uint64_t tag;
        return (uint64_t)(int64_t)kernel_sqe(l, raw, flags, user_data, cq_idx, 0, 0, &tag);
    }
    /* a chain, a BPF request or a bad cq_idx: Python's dispatch, in submission order */
    l->run_defers = 1;
    l->deferred = grow(l->deferred, &l->deferred_alloc, (l->ndeferred + 1) * 64, 1);
    memcpy(l->deferred + (size_t)l->ndeferred++ * 64, raw, 64);
    return 0;
}

static uint64_t h_emit_cqe(uint64_t *ctx, uint64_t bctx, uint64_t cq_idx, uint64_t user_data, uint64_t res,
                           uint64_t flags)
{
    struct loop *l = cur_loop;
    NEED_LOOP(l, ctx);
    (void)bctx;
    cq_idx &= 0xffffffffu;
    if (cq_idx >= l->ncq)
        return (uint64_t)-EINVAL;
    return post(l, (uint32_t)cq_idx, user_data, s32(res), (uint32_t)flags) ? 0 : (uint64_t)-ENOMEM;
}

static uint64_t h_reap_cqe(uint64_t *ctx, uint64_t bctx, uint64_t cq_idx, uint64_t out, uint64_t len, uint64_t r5)
{
    struct loop *l = cur_loop;
    NEED_LOOP(l, ctx);
    (void)bctx, (void)r5;
    cq_idx &= 0xffffffffu;
    if (len != 16 || cq_idx >= l->ncq) {
        if (len) {
            uint64_t n = len & 0xffffffffu;
            n = n < 16 ? n : 16;
            if (!check(ctx, out, n, 1))
                return 0;
            memset((void *)out, 0, n);
        }
        return (uint64_t)-EINVAL;
    }
    if (!check(ctx, out, 16, 1))
        return 0;
    struct cq *q = &l->cqs[cq_idx];
    if (!cq_ready(q)) {
        memset((void *)out, 0, 16);
        return (uint64_t)-ENOENT;
    }
    memcpy((void *)out, &q->buf[q->head & (q->alloc - 1)], 16);
    q->head++;
    return 0;
}

static int user_copy(struct loop *l, uint64_t local, uint64_t remote, uint64_t size, int to_user)
{
    if (remote == 0 || remote + size < remote)
        return 0;
    struct iovec li = { (void *)local, size }, ri = { (void *)remote, size };
    if (l->pid != getpid())
        l->pid = getpid();
    ssize_t done = to_user ? process_vm_writev(l->pid, &li, 1, &ri, 1, 0)
                           : process_vm_readv(l->pid, &li, 1, &ri, 1, 0);
    return done == (ssize_t)size;
}

static uint64_t h_copy_from_user(uint64_t *ctx, uint64_t dst, uint64_t size, uint64_t uptr, uint64_t r4, uint64_t r5)
{
    (void)r4, (void)r5;
    size &= 0xffffffffu;
    if (!size)
        return 0;
    if (!check(ctx, dst, size, 1))
        return 0;
    NEED_LOOP(cur_loop, ctx);
    if (!user_copy(cur_loop, dst, uptr, size, 0)) {
        memset((void *)dst, 0, size);
        return (uint64_t)-EFAULT;
    }
    return 0;
}

static uint64_t h_copy_to_user(uint64_t *ctx, uint64_t uptr, uint64_t src, uint64_t size, uint64_t r4, uint64_t r5)
{
    (void)r4, (void)r5;
    size &= 0xffffffffu;
    if (!size)
        return 0;
    if (!check(ctx, src, size, 0))
        return 0;
    NEED_LOOP(cur_loop, ctx);
    return user_copy(cur_loop, src, uptr, size, 1) ? 0 : (uint64_t)-EFAULT;
}

static struct emap *find_map(struct loop *l, uint64_t handle)
{
    for (uint32_t i = 0; i < l->nmaps; i++)
        if (l->maps[i].base == handle)
            return &l->maps[i];
    return NULL;
}

/* Maps: arrays natively; other kinds (hash maps live in Python) through the Python callback. */
static uint64_t h_map_lookup(uint64_t *ctx, uint64_t handle, uint64_t key, uint64_t r3, uint64_t r4, uint64_t r5)
{
    struct loop *l = cur_loop;
    NEED_LOOP(l, ctx);
    struct emap *m = find_map(l, handle);
    if (m && m->kind == 3) {
        if (!check(ctx, key, m->key_size, 0))
            return 0;
        return nl_hmap_lookup(m->hash, (const uint8_t *)key);
    }
    if (!m || m->kind != 1)
        return l->py_map(ctx, 1, handle, key, r3, r4);
    (void)r5;
    if (!check(ctx, key, 4, 0))
        return 0;
    uint32_t idx;
    memcpy(&idx, (void *)key, 4);
    return idx < m->max_entries ? m->base + idx * m->stride : 0;
}

static uint64_t h_map_update(uint64_t *ctx, uint64_t handle, uint64_t key, uint64_t value, uint64_t flags, uint64_t r5)
{
    struct loop *l = cur_loop;
    NEED_LOOP(l, ctx);
    struct emap *m = find_map(l, handle);
    if (!m || (m->kind != 1 && m->kind != 3))
        return l->py_map(ctx, 2, handle, key, value, flags);
    (void)r5;
    if (!check(ctx, key, m->key_size, 0) || !check(ctx, value, m->value_size, 0))
        return 0;
    if (m->kind == 3)
        return (uint64_t)nl_hmap_update(m->hash, (const uint8_t *)key, (const uint8_t *)value, flags);
    uint32_t idx;
    memcpy(&idx, (void *)key, 4);
    if (flags > 2)
        return (uint64_t)-EINVAL;
    if (idx >= m->max_entries)
        return (uint64_t)-E2BIG;
    if (flags == 1)
        return (uint64_t)-EEXIST; /* BPF_NOEXIST: every element of an array exists */
    memmove((void *)(m->base + idx * m->stride), (void *)value, m->value_size);
    return 0;
}

static uint64_t h_map_delete(uint64_t *ctx, uint64_t handle, uint64_t key, uint64_t r3, uint64_t r4, uint64_t r5)
{
    struct loop *l = cur_loop;
    NEED_LOOP(l, ctx);
    struct emap *m = find_map(l, handle);
    if (!m || (m->kind != 1 && m->kind != 3))
        return l->py_map(ctx, 3, handle, key, r3, r4);
    (void)r5;
    if (!check(ctx, key, m->key_size, 0))
        return 0;
    if (m->kind == 3)
        return (uint64_t)nl_hmap_delete(m->hash, (const uint8_t *)key);
    return (uint64_t)-EINVAL;
}

static uint64_t h_ktime(uint64_t *ctx, uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e)
{
    (void)ctx, (void)a, (void)b, (void)c, (void)d, (void)e;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t h_prandom(uint64_t *ctx, uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e)
{
    (void)a, (void)b, (void)c, (void)d, (void)e;
    struct loop *l = cur_loop;
    NEED_LOOP(l, ctx);
    uint64_t x = l->rand_state; /* xorshift64*: not cryptographic, as bpf_get_prandom_u32 */
    x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
    l->rand_state = x;
    return (x * 0x2545F4914F6CDD1Dull) >> 32;
}

/* ============================== the API Python calls ============================== */
struct loop *nl_new(int fd, uint64_t sq_head, uint64_t sq_tail, uint64_t sq_flags, uint32_t sq_mask,
                    uint32_t sq_entries, uint64_t sqes, uint64_t cq_head, uint64_t cq_tail, uint32_t cq_mask,
                    uint64_t kcqes, const uint32_t *capacities, uint32_t ncq)
{
    struct loop *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->fd = fd;
    l->sq_head = (uint32_t *)sq_head, l->sq_tail = (uint32_t *)sq_tail, l->sq_flags = (uint32_t *)sq_flags;
    l->sq_mask = sq_mask, l->sq_entries = sq_entries, l->sqes = (uint8_t *)sqes;
    l->sq_local_tail = l->sq_flushed = *l->sq_tail;
    l->cq_head = (uint32_t *)cq_head, l->cq_tail = (uint32_t *)cq_tail, l->cq_mask = cq_mask;
    l->kcqes = (struct cqe *)kcqes;
    l->ncq = ncq;
    l->cqs = calloc(ncq, sizeof *l->cqs);
    l->waiting_cqs = calloc(ncq, sizeof *l->waiting_cqs);
    if (!l->cqs || !l->waiting_cqs)
        abort();
    for (uint32_t i = 0; i < ncq; i++) {
        struct cq *q = &l->cqs[i];
        q->capacity = capacities[i];
        q->alloc = 1;
        while (q->alloc < q->capacity)
            q->alloc *= 2;
        q->buf = malloc((size_t)q->alloc * sizeof *q->buf);
        if (!q->buf)
            abort();
    }
    l->tag_free = UINT32_MAX;
    l->req_free = UINT32_MAX;
    l->pid = getpid();
    l->rand_state = (uint64_t)(uintptr_t)l ^ h_ktime(0, 0, 0, 0, 0, 0) ^ 0x9E3779B97F4A7C15ull;
    if (!l->rand_state)
        l->rand_state = 1;
    return l;
}

void nl_free(struct loop *l)
{
    if (!l)
        return;
    for (uint32_t i = 0; i < l->ncq; i++) {
        free(l->cqs[i].buf);
        free(l->cqs[i].heap);
    }
    free(l->cqs), free(l->waiting_cqs), free(l->tags), free(l->quiet), free(l->reqs), free(l->ready);
    free(l->progs), free(l->maps), free(l->deferred), free(l->events);
    free(l);
}

void nl_set_engine(struct loop *l, uint64_t *vctx, uint64_t bpf_ctx, uint64_t budget, map_cb py_map)
{
    l->vctx = vctx, l->bpf_ctx = bpf_ctx, l->budget = budget, l->py_map = py_map;
}

void nl_set_programs(struct loop *l, const uint64_t *fns, const uint64_t *consts, uint32_t n)
{
    l->progs = calloc(n ? n : 1, sizeof *l->progs);
    if (!l->progs)
        abort();
    for (uint32_t i = 0; i < n; i++)
        l->progs[i].fn = (entry_fn)fns[i], l->progs[i].consts = (void *)consts[i];
    l->nprogs = n;
}

/* (base, stride, max_entries, key_size, value_size, kind, hash table) per map */
void nl_set_maps(struct loop *l, const uint64_t *desc, uint32_t n)
{
    l->maps = calloc(n ? n : 1, sizeof *l->maps);
    if (!l->maps)
        abort();
    for (uint32_t i = 0; i < n; i++) {
        const uint64_t *d = desc + 7 * i;
        struct emap *m = &l->maps[i];
        m->base = d[0], m->stride = d[1], m->max_entries = d[2], m->key_size = d[3], m->value_size = d[4];
        m->kind = (int)d[5];
        m->hash = (struct hmap *)d[6];
    }
    l->nmaps = n;
}

/* The helpers' addresses, by id, for the JIT's NativeHelper table. */
uint64_t nl_helper(uint32_t id)
{
    switch (id) {
    case 1: return (uint64_t)h_map_lookup;
    case 2: return (uint64_t)h_map_update;
    case 3: return (uint64_t)h_map_delete;
    case 5: return (uint64_t)h_ktime;
    case 7: return (uint64_t)h_prandom;
    case 148: return (uint64_t)h_copy_from_user;
    case 164: return (uint64_t)h_submit;
    case 165: return (uint64_t)h_emit_cqe;
    case 166: return (uint64_t)h_reap_cqe;
    case 167: return (uint64_t)h_copy_to_user;
    default: return 0;
    }
}

/* The event loop: run ready requests, submit, route kernel CQEs, wake waiters; return when CQ
 * `cond_cq` holds >= cond_n CQEs (cond_cq -1: when idle; -2: when idle after one blocking wait),
 * on timeout (deadline_ns of CLOCK_MONOTONIC, -1 for none), when stalled, or when Python has work. */
int nl_run(struct loop *l, int32_t cond_cq, uint64_t cond_n, int64_t deadline_ns)
{
    struct loop *saved = cur_loop;
    int blocked = 0, rc;
    cur_loop = l;
    for (;;) {
        if (l->need_py) { rc = NL_NEED_PY; break; }
        while (l->ready_len && !l->need_py)
            run(l, ready_pop(l));
        if (l->need_py) { rc = NL_NEED_PY; break; }
        /* The SQEs the runs queued reach the kernel with the next blocking wait (one io_uring_enter
         * submits and waits, as liburing's submit_and_wait), or before returning. */
        int err = drain(l);
        if (err) { l->err = -err; rc = NL_ERROR; break; }
        if (l->need_py) { rc = NL_NEED_PY; break; }
        if (l->ready_len || wake_idle(l))
            continue;
        if (cond_cq == -1 || (cond_cq == -2 && blocked) ||
            (cond_cq >= 0 && cq_ready(&l->cqs[cond_cq]) >= cond_n)) { rc = NL_DONE; break; }
        if (!l->tags_live) { rc = NL_STALLED; break; }
        long ret;
        uint32_t to_submit = publish(l);
        if (deadline_ns < 0) {
            ret = enter(l, to_submit, 1, ENTER_GETEVENTS, NULL, 0);
        } else {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            int64_t left = deadline_ns - ((int64_t)now.tv_sec * 1000000000ll + now.tv_nsec);
            if (left < 0)
                left = 0;
            struct { uint64_t ts_sec; int64_t ts_nsec; } ts = { (uint64_t)left / 1000000000ull, left % 1000000000ll };
            struct { uint64_t sigmask; uint32_t sigmask_sz, min_wait_usec; uint64_t ts; } arg =
                { 0, 0, 0, (uint64_t)(uintptr_t)&ts };
            ret = enter(l, to_submit, 1, ENTER_GETEVENTS | ENTER_EXT_ARG, &arg, sizeof arg);
            if (ret < 0 && errno == ETIME && *l->cq_head == __atomic_load_n(l->cq_tail, __ATOMIC_ACQUIRE)) {
                rc = NL_TIMEOUT;
                break;
            }
        }
        if (ret < 0 && errno == EINTR) { rc = NL_INTR; break; } /* let Python run its signal handlers */
        if (ret < 0 && errno != ETIME) { l->err = errno; rc = NL_ERROR; break; }
        blocked = 1;
    }
    int err = flush(l);
    if (err && rc != NL_ERROR) {
        l->err = -err;
        rc = NL_ERROR;
    }
    cur_loop = saved;
    return rc;
}

/* --- what Python's control plane calls --- */
int nl_pop_event(struct loop *l, uint64_t *out)
{
    if (!l->ev_len) {
        l->need_py = 0;
        return 0;
    }
    struct event *e = &l->events[l->ev_head++];
    l->ev_len--;
    out[0] = e->kind, out[1] = e->a, out[2] = e->b, out[3] = e->c;
    if (!l->ev_len)
        l->ev_head = 0;
    return 1;
}

uint32_t nl_deferred(struct loop *l, uint8_t **out) { *out = l->deferred; return l->ndeferred; }
int nl_error(struct loop *l) { return l->err; }

int nl_kernel_sqe(struct loop *l, const uint8_t *raw, uint32_t flags, uint64_t user_data, uint32_t cq_idx,
                  uint64_t cont, int pinned, uint64_t *tag_out)
{
    return kernel_sqe(l, raw, flags, user_data, cq_idx, cont, pinned, tag_out);
}

int nl_post(struct loop *l, uint32_t cq, uint64_t user_data, int32_t res, uint32_t flags)
{
    return post(l, cq, user_data, res, flags);
}

/* A new BPF request, ready to run (or, with fail < 0, to be refused in queue order). */
uint32_t nl_add_request(struct loop *l, uint32_t prog, uint64_t user_data, uint32_t cq_idx, uint32_t flags,
                        uint64_t cont, int32_t fail)
{
    if (l->req_free == UINT32_MAX) {
        uint32_t old = l->nreq_alloc;
        l->reqs = grow(l->reqs, &l->nreq_alloc, old + 1, sizeof *l->reqs);
        for (uint32_t i = l->nreq_alloc; i-- > old;) {
            l->reqs[i].live = 0;
            l->reqs[i].next_free = l->req_free;
            l->req_free = i;
        }
    }
    uint32_t r = l->req_free;
    struct req *q = &l->reqs[r];
    l->req_free = q->next_free;
    q->live = 1, q->prog = prog, q->user_data = user_data, q->cq_idx = cq_idx, q->flags = flags;
    q->cont = cont, q->runs = 0, q->claim_cq = -1, q->claim_nr = 0, q->fail = fail;
    ready_push(l, r);
    return r;
}

void nl_complete(struct loop *l, uint32_t r, int32_t res) { complete(l, r, res); }
void nl_wait(struct loop *l, uint32_t r, uint32_t wait_nr, uint32_t wait_idx) { wait_req(l, r, wait_nr, wait_idx); }

/* A request's (prog, user_data, cq_idx) for messages. */
void nl_request(struct loop *l, uint32_t r, uint64_t *out)
{
    out[0] = l->reqs[r].prog, out[1] = l->reqs[r].user_data, out[2] = l->reqs[r].cq_idx;
}

uint64_t nl_cq_ready(struct loop *l, uint32_t cq) { return cq_ready(&l->cqs[cq]); }

/* Copy the oldest CQE out; consume it if `consume`. 0 if the CQ is empty. */
int nl_cq_take(struct loop *l, uint32_t cq, struct cqe *out, int consume)
{
    struct cq *q = &l->cqs[cq];
    if (!cq_ready(q))
        return 0;
    *out = q->buf[q->head & (q->alloc - 1)];
    if (consume)
        q->head++;
    return 1;
}

/* (drops, overflowed, waiting, promised) */
void nl_cq_info(struct loop *l, uint32_t cq, uint64_t *out)
{
    struct cq *q = &l->cqs[cq];
    out[0] = q->drops, out[1] = q->overflowed, out[2] = q->nwait, out[3] = (uint64_t)q->promised;
}

/* The requests waiting on a CQ, in wake order (ids into out, at most max). */
uint32_t nl_cq_waiters(struct loop *l, uint32_t cq, uint32_t *out, uint32_t max)
{
    struct cq *q = &l->cqs[cq];
    uint32_t n = q->nwait < max ? q->nwait : max;
    for (uint32_t i = 0; i < n; i++)
        out[i] = q->heap[i].req; /* heap order: good enough for a diagnostic */
    return n;
}

/* (tags in flight, ready, waiting, runs, insns, SQ local tail) */
void nl_counters(struct loop *l, uint64_t *out)
{
    uint64_t waiting = 0;
    for (uint32_t i = 0; i < l->ncq; i++)
        waiting += l->cqs[i].nwait;
    out[0] = l->tags_live, out[1] = l->ready_len, out[2] = waiting, out[3] = l->runs, out[4] = l->insns;
    out[5] = l->sq_local_tail;
}

/* Tags of requests still in the kernel whose memory Python pins (ids into out, at most max). */
uint32_t nl_pinned_tags(struct loop *l, uint64_t *out, uint32_t max)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < l->ntag_alloc && n < max; i++)
        if (l->tags[i].live && (l->tags[i].flags & TAG_PINNED))
            out[n++] = (uint64_t)i + 1;
    return n;
}

uint32_t nl_current_prog(struct loop *l) { return l->cur_prog; }

/* Flush the SQ (Python's submit path outside a run). 0 or -errno. */
int nl_flush(struct loop *l) { return flush(l); }
