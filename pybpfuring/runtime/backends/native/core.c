/* The emulated backend's event loop and io_uring helpers as native code (docs/runtime.md,
 * "Native event loop"). Built by pybpfuring/runtime/backends/native/build.py with the system C compiler and
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

/* core.c: CQs, waiters, the ready queue, requests, the kernel rings, routing, runs, nl_run. */
#include "nl.h"

/* ------------------------------------------------------------------------------------------ */
NL_HIDDEN void *grow(void *p, uint32_t *alloc, uint32_t need, size_t elem)
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

NL_HIDDEN void push_event(struct loop *l, uint64_t kind, uint64_t a, uint64_t b, uint64_t c)
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

/* --- CQs --- */
NL_HIDDEN uint64_t cq_ready(const struct cq *q) { return q->tail - q->head; }

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

NL_HIDDEN void ready_push(struct loop *l, uint32_t req)
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

/* Before every ready request (release_late). */
static void ready_push_front(struct loop *l, uint32_t req)
{
    ready_push(l, req); /* makes room; then move it from the back to the front */
    l->ready_len--;
    l->ready_head = (l->ready_head - 1) & (l->ready_alloc - 1);
    l->ready[l->ready_head] = req;
    l->ready_len++;
}

NL_HIDDEN uint32_t ready_pop(struct loop *l)
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
        if (l->in_runs) { /* as the kernel scheduler: woken in the step after the run's */
            l->late = grow(l->late, &l->late_alloc, l->late_len + 1, sizeof *l->late);
            l->late[l->late_len++] = w.req;
        } else {
            ready_push(l, w.req);
        }
    }
}

NL_HIDDEN int post(struct loop *l, uint32_t idx, uint64_t user_data, int32_t res, uint32_t flags)
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

NL_HIDDEN int wake_idle(struct loop *l)
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
NL_HIDDEN void complete(struct loop *l, uint32_t r, int32_t res)
{
    struct req *q = &l->reqs[r];
    if (res < 0 || !(q->flags & SQE_SKIP_SUCCESS))
        post(l, q->cq_idx, q->user_data, res, 0);
    if (q->cont)
        push_event(l, EV_CONT, q->cont, (uint64_t)(int64_t)res, 0);
    free_req(l, r);
}

NL_HIDDEN void wait_req(struct loop *l, uint32_t r, uint32_t wait_nr, uint32_t wait_idx)
{
    l->waits++;
    if (wait_idx >= l->ncq || wait_nr == 0 || (wait_idx && wait_nr > l->cqs[wait_idx].capacity)) {
        /* for ring.explain(): the wait, and the line of the return (ctx.__line, at byte 28) */
        uint32_t line;
        memcpy(&line, (uint8_t *)l->bpf_ctx + 28, 4);
        push_event(l, EV_BADWAIT, l->reqs[r].user_data, (uint64_t)wait_nr << 32 | wait_idx,
                   (uint64_t)l->reqs[r].prog | (uint64_t)l->reqs[r].cq_idx << 8 | (uint64_t)line << 32);
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
NL_HIDDEN long enter(struct loop *l, uint32_t to_submit, uint32_t min_complete, uint32_t flags, void *arg,
                  size_t argsz)
{
    return syscall(__NR_io_uring_enter, l->fd, to_submit, min_complete, flags, arg, argsz);
}

/* Publish the SQEs written so far (release: their bytes before the tail); how many the kernel has
 * not taken yet. */
NL_HIDDEN uint32_t publish(struct loop *l)
{
    if (l->sq_local_tail != l->sq_flushed) {
        __atomic_store_n(l->sq_tail, l->sq_local_tail, __ATOMIC_RELEASE);
        l->sq_flushed = l->sq_local_tail;
    }
    return l->sq_local_tail - __atomic_load_n(l->sq_head, __ATOMIC_ACQUIRE);
}

/* Publish the SQEs written so far and let the kernel take them. 0 or -errno. */
NL_HIDDEN int flush(struct loop *l)
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
NL_HIDDEN int kernel_sqe(struct loop *l, const uint8_t *raw, uint32_t flags, uint64_t user_data,
                      uint32_t cq_idx, uint64_t cont, int pinned, int32_t fail, uint64_t *tag_out)
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
        g->user_data = user_data, g->cq_idx = cq_idx, g->cont = cont, g->fail = fail;
        g->flags = (pinned ? TAG_PINNED : 0);
        if (flags & SQE_SKIP_SUCCESS) { /* its completion starts the rest of a chain: we need it */
            flags &= ~SQE_SKIP_SUCCESS;
            g->flags |= TAG_SKIP;
        }
        tagval = (uint64_t)t + 1;
    }
    memcpy(s, raw, SQE_CQ_IDX_AT);          /* the kernel gets no cq_idx: zero from there on */
    memset(s + SQE_CQ_IDX_AT, 0, 64 - SQE_CQ_IDX_AT);
    memcpy(s + 32, &tagval, 8);
    s[1] = (uint8_t)flags;
    *tag_out = tagval;
    return 0;
}

static void route(struct loop *l, const struct cqe *c)
{
    uint64_t tv = c->user_data;
    l->spin = 0; /* a kernel completion: the programs are doing I/O, not spinning */
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
    int32_t res = g.fail && c->res >= 0 ? g.fail : c->res; /* a cancelled stand-in stays cancelled */
    if (!((g.flags & TAG_SKIP) && res >= 0))
        post(l, g.cq_idx, g.user_data, res, c->flags);
    if (!more && (g.flags & TAG_PINNED))
        push_event(l, EV_RELEASE, tv, 0, 0);
    if (!more && g.cont) {
        push_event(l, EV_CONT, g.cont, (uint64_t)(int64_t)res, 0);
        l->route_conts = 1;
    }
}

static int kernel_cq_idle(struct loop *l)
{
    return *l->cq_head == __atomic_load_n(l->cq_tail, __ATOMIC_ACQUIRE) &&
           !(__atomic_load_n(l->sq_flags, __ATOMIC_RELAXED) & (SQ_CQ_OVERFLOW | SQ_TASKRUN));
}

/* Route every kernel CQE that is ready (stops early when Python has work). 0 or -errno. */
__attribute__((noinline)) static int drain_cqes(struct loop *l)
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
        if (l->need_py) {
            /* Python finishes this CQE's work; the CQEs behind it are routed before any program
             * runs (nl_run resumes the drain first), as the Python loop routes a whole batch. */
            l->drain_cut = 1;
            return 0;
        }
    }
}

/* Half of the drains find nothing (the one after each pass of runs): that answer before the
 * routing loop's register saves. */
NL_HIDDEN int drain(struct loop *l) { return kernel_cq_idle(l) ? 0 : drain_cqes(l); }

/* --- running programs --- */

NL_HIDDEN void run(struct loop *l, uint32_t r)
{
    struct req *q = &l->reqs[r];
    l->attempts++;
    if (q->fail) {
        complete(l, r, q->fail);
        return;
    }
    if (q->claim_cq >= 0) {
        l->cqs[q->claim_cq].promised -= q->claim_nr;
        q->claim_cq = -1;
    }
    if (++l->spin > l->run_budget) { /* a live-lock: end this request (Python logs the fault) */
        l->spin = 0;
        push_event(l, EV_LIVELOCK, q->prog, q->user_data, 0);
        complete(l, r, -EDEADLK);
        return;
    }
    uint8_t *ctx = (uint8_t *)l->bpf_ctx;
    /* io_uring_bpf_ctx (lang/structs.py): user_data, wait_nr, wait_idx, then res, req (the
     * request's slot: r, unique among live requests), runs (before this one) */
    uint32_t ext[4] = { 0, r, q->runs, 0 };
    memcpy(ctx, &q->user_data, 8);
    memset(ctx + 8, 0, 8);
    memcpy(ctx + 16, ext, sizeof(ext));
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
        int32_t res;
        memcpy(&res, ctx + 16, 4);
        complete(l, r, res);
    } else {
        uint32_t wait_nr, wait_idx;
        memcpy(&wait_nr, ctx + 8, 4);
        memcpy(&wait_idx, ctx + 12, 4);
        wait_req(l, r, wait_nr, wait_idx);
    }
}

/* The event loop: run ready requests, submit, route kernel CQEs, wake waiters; return when CQ
 * `cond_cq` holds >= cond_n CQEs (cond_cq -1: when idle; -2: when idle after one blocking wait),
 * on timeout (deadline_ns of CLOCK_MONOTONIC, -1 for none), when stalled, or when Python has work. */
static int64_t clock_ns(clockid_t id)
{
    struct timespec now;
    clock_gettime(id, &now);
    return (int64_t)now.tv_sec * 1000000000ll + now.tv_nsec;
}

static int64_t now_ns(void) { return clock_ns(CLOCK_MONOTONIC); }

/* The requests runs woke go before those the routing woke (the scheduler's dirty-CQ order). */
static void release_late(struct loop *l)
{
    for (uint32_t i = l->late_len; i-- > 0;)
        ready_push_front(l, l->late[i]);
    l->late_len = 0;
}

/* attempt_limit: a non-blocking call returns (NL_DONE) once l->attempts reaches it (0: none). */
int nl_run(struct loop *l, int32_t cond_cq, uint64_t cond_n, int64_t deadline_ns, uint64_t attempt_limit)
{
    uint64_t saved = l->vctx[CTX_HOST];
    int blocked = 0, rc;
    int64_t slice_end = now_ns() + NL_SLICE_NS;
    uint64_t n = 0;
    l->vctx[CTX_HOST] = (uint64_t)(uintptr_t)l;
    for (;;) {
        if (l->need_py) { rc = NL_NEED_PY; break; }
        if (l->drain_cut) {
            l->drain_cut = 0;
            int err = drain(l);
            if (err) { l->err = -err; rc = NL_ERROR; break; }
            if (l->need_py) { rc = NL_NEED_PY; break; }
            if (l->late_len)
                release_late(l);
            if (l->route_conts) {
                /* The kernel SQEs Python queued to continue those chains (a refusal's stand-in
                 * NOP after a hard link) are part of this routing batch, as in the Python loop:
                 * submitted and routed before any run. */
                l->route_conts = 0;
                if ((err = flush(l))) { l->err = -err; rc = NL_ERROR; break; }
                l->drain_cut = 1;
                continue;
            }
        }
        int out_of_time = 0, out_of_runs = 0;
        if (l->ready_len)
            l->in_runs = 1; /* until the routing after the runs (Python finishing one included) */
        while (l->ready_len && !l->need_py) {
            run(l, ready_pop(l));
            if (attempt_limit && l->attempts >= attempt_limit) { out_of_runs = 1; break; }
            if (!(++n & 63) && now_ns() >= slice_end) { out_of_time = 1; break; }
        }
        if (l->need_py) { rc = NL_NEED_PY; break; }
        if (out_of_runs) { rc = NL_DONE; break; }
        if (out_of_time) { rc = NL_YIELD; break; }
        /* The SQEs the runs queued reach the kernel with the next blocking wait (one io_uring_enter
         * submits and waits, as liburing's submit_and_wait), or before returning. */
        l->in_runs = 0;
        /* A request a run woke runs after the SQEs queued before it reached the kernel and their
         * inline completions were routed: submit now (else they wait for the blocking enter). */
        int err = l->late_len ? flush(l) : 0;
        if (!err)
            err = drain(l);
        if (err) { l->err = -err; rc = NL_ERROR; break; }
        if (l->need_py) { rc = NL_NEED_PY; break; }
        if (l->late_len)
            release_late(l);
        if (l->ready_len || wake_idle(l))
            continue;
        if (cond_cq == -1 || (cond_cq == -2 && blocked) ||
            (cond_cq >= 0 && cq_ready(&l->cqs[cond_cq]) >= cond_n)) {
            if (publish(l)) {
                /* Not waiting: submit now and route what completed inline before returning, as the
                 * Python loop does (a user's submit() then sees those CQEs). */
                err = flush(l);
                if (err) { l->err = -err; rc = NL_ERROR; break; }
                continue;
            }
            rc = NL_DONE;
            break;
        }
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
        /* Busy with I/O: let Python look once the slice is over. Without a deadline the coarse
         * clock does (a few ns, against ~40 for a precise read in a VM, twice per QD1 block): it
         * never runs ahead of CLOCK_MONOTONIC, so the slice never ends early, at most a tick
         * (1-10 ms) late. A timed call reads the precise clock, so its deadline is seen as before. */
        if (clock_ns(deadline_ns < 0 ? CLOCK_MONOTONIC_COARSE : CLOCK_MONOTONIC) >= slice_end) {
            rc = NL_YIELD;
            break;
        }
    }
    /* Not when Python has work: it may add SQEs of the same run (a run's deferred ones) and calls
     * back in; flushing now would split one run's SQEs over two kernel batches, and the next drain
     * would route (and wake waiters on) the first half's completions alone. */
    int err = rc == NL_NEED_PY ? 0 : flush(l);
    if (err && rc != NL_ERROR) {
        l->err = -err;
        rc = NL_ERROR;
    }
    l->vctx[CTX_HOST] = saved;
    return rc;
}
