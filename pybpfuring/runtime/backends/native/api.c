/* api.c: what Python calls (set-up, events, the CQs seen from user space, counters). */
#include "nl.h"

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
    free(l->progs), free(l->maps), free(l->deferred), free(l->events), free(l->late), free(l->known);
    free(l);
}

void nl_set_engine(struct loop *l, uint64_t *vctx, uint64_t bpf_ctx, uint64_t budget, map_cb py_map)
{
    l->vctx = vctx, l->bpf_ctx = bpf_ctx, l->budget = budget, l->py_map = py_map;
}

/* The user memory copy_{from,to}_user may reach with plain copies: (start, end, writable) triples
 * sorted by start, not overlapping (Python builds the table; the ring keeps the memory alive). */
void nl_set_known(struct loop *l, const uint64_t *tab, uint32_t n)
{
    uint64_t *copy = n ? malloc((size_t)n * 3 * sizeof *copy) : NULL;
    if (n && !copy)
        abort();
    if (n)
        memcpy(copy, tab, (size_t)n * 3 * sizeof *copy);
    free(l->known);
    l->known = copy, l->nknown = n;
}

/* (copies served from known memory, copies through process_vm_*) */
void nl_copy_counts(struct loop *l, uint64_t *out) { out[0] = l->fast_copies, out[1] = l->checked_copies; }

void nl_set_run_budget(struct loop *l, uint64_t run_budget) { l->run_budget = run_budget; }

uint64_t nl_attempts(struct loop *l) { return l->attempts; }

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
                  uint64_t cont, int pinned, int32_t fail, uint64_t *tag_out)
{
    return kernel_sqe(l, raw, flags, user_data, cq_idx, cont, pinned, fail, tag_out);
}

int nl_post(struct loop *l, uint32_t cq, uint64_t user_data, int32_t res, uint32_t flags)
{
    return post(l, cq, user_data, res, flags);
}

/* A new BPF request, ready to run (or, with fail < 0, to be refused in queue order). */
static uint32_t new_request(struct loop *l, uint32_t prog, uint64_t user_data, uint32_t cq_idx,
                            uint32_t flags, uint64_t cont, int32_t fail)
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
    return r;
}

uint32_t nl_add_request(struct loop *l, uint32_t prog, uint64_t user_data, uint32_t cq_idx, uint32_t flags,
                        uint64_t cont, int32_t fail)
{
    uint32_t r = new_request(l, prog, user_data, cq_idx, flags, cont, fail);
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

/* (drops, overflowed, waiting, promised, CQEs posted so far) */
void nl_cq_info(struct loop *l, uint32_t cq, uint64_t *out)
{
    struct cq *q = &l->cqs[cq];
    out[0] = q->drops, out[1] = q->overflowed, out[2] = q->nwait, out[3] = (uint64_t)q->promised;
    out[4] = q->tail;
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

/* (tags in flight, ready, waiting, runs, insns, SQ local tail, waits, program SQEs) */
void nl_counters(struct loop *l, uint64_t *out)
{
    uint64_t waiting = 0;
    for (uint32_t i = 0; i < l->ncq; i++)
        waiting += l->cqs[i].nwait;
    out[0] = l->tags_live, out[1] = l->ready_len + l->late_len, out[2] = waiting, out[3] = l->runs, out[4] = l->insns;
    out[5] = l->sq_local_tail;
    out[6] = l->waits, out[7] = l->prog_sqes;
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

/* The hash of the sources this library was built from (setup.py passes it; build.py compares it
 * with the package's sources, so a stale extension in a checkout is not loaded). */
#ifndef NL_SOURCE_HASH
#define NL_SOURCE_HASH ""
#endif
const char *nl_source_hash(void) { return NL_SOURCE_HASH; }
