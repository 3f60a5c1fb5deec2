/* helpers.c: the io_uring and map helpers as JIT NativeHelpers (ABI: pybpfuring/runtime/engine/jit_abi.py). */
#include "nl.h"

/* --- region checks (the JIT's table: (start, end, writable) sorted by start) --- */
/* in_table's binary search (nl.h); the entry found becomes the hint. */
NL_HIDDEN int table_search(const uint64_t *tab, uint64_t n, uint64_t addr, uint64_t size, int write,
                           uint64_t *hint)
{
    uint64_t lo = 0, hi = n;
    while (lo < hi) {
        uint64_t mid = (lo + hi) / 2;
        if (tab[3 * mid] <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (!lo)
        return 0;
    const uint64_t *r = tab + 3 * (lo - 1);
    uint64_t span = r[1] - r[0], off = addr - r[0];
    if (!(off <= span && span - off >= size && (r[2] || !write)))
        return 0;
    *hint = lo - 1;
    return 1;
}

NL_HIDDEN int check_failed(uint64_t *ctx, uint64_t addr, uint64_t size, int write)
{
    ctx[CTX_STATUS] = ST_MEMORY;
    ctx[CTX_ADDR] = addr;
    ctx[CTX_SIZE] = size;
    ctx[CTX_MODE] = write ? MODE_WRITE : MODE_READ;
    return 0;
}

/* --- helpers --- */
static int32_t s32(uint64_t v) { return (int32_t)(uint32_t)v; }

static uint64_t h_submit(uint64_t *ctx, uint64_t bctx, uint64_t sqe, uint64_t len, uint64_t r4, uint64_t r5)
{
    struct loop *l = ctx_loop(ctx);
    NEED_LOOP(l, ctx);
    (void)bctx, (void)r4, (void)r5;
    if (len != 64)
        return (uint64_t)-EINVAL;
    if (!check(ctx, sqe, 64, 0))
        return 0;
    l->prog_sqes++;
    const uint8_t *raw = (const uint8_t *)sqe;
    uint8_t opcode = raw[0], flags = raw[1];
    uint16_t cq_idx;
    uint64_t user_data;
    memcpy(&cq_idx, raw + SQE_CQ_IDX_AT, 2);
    memcpy(&user_data, raw + 32, 8);
    if (!l->run_defers && opcode != OP_BPF_2021 && !(flags & (SQE_LINK | SQE_HARDLINK)) && cq_idx < l->ncq) {
        uint64_t tag;
        return (uint64_t)(int64_t)kernel_sqe(l, raw, flags, user_data, cq_idx, 0, 0, 0, &tag);
    }
    /* a chain, a BPF request or a bad cq_idx (`cq_idx < l->ncq` is the Python bad_cq_idx of
       backends/cqs.py, which the dispatch then applies): Python's dispatch, in submission order */
    l->run_defers = 1;
    l->deferred = grow(l->deferred, &l->deferred_alloc, (l->ndeferred + 1) * 64, 1);
    memcpy(l->deferred + (size_t)l->ndeferred++ * 64, raw, 64);
    return 0;
}

static uint64_t h_emit_cqe(uint64_t *ctx, uint64_t bctx, uint64_t cq_idx, uint64_t user_data, uint64_t res,
                           uint64_t flags)
{
    struct loop *l = ctx_loop(ctx);
    NEED_LOOP(l, ctx);
    (void)bctx;
    cq_idx &= 0xffffffffu;
    if (cq_idx >= l->ncq)
        return (uint64_t)-EINVAL;
    return post(l, (uint32_t)cq_idx, user_data, s32(res), (uint32_t)flags) ? 0 : (uint64_t)-ENOMEM;
}

static uint64_t h_reap_cqe(uint64_t *ctx, uint64_t bctx, uint64_t cq_idx, uint64_t out, uint64_t len, uint64_t r5)
{
    struct loop *l = ctx_loop(ctx);
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

/* Our pid for process_vm_{readv,writev}: read once at load and again in a forked child (the
 * pthread_atfork handler), not with a getpid system call per copy. */
pid_t nl_pid;
static void refresh_pid(void) { nl_pid = getpid(); }
__attribute__((constructor)) static void init_pid(void)
{
    refresh_pid();
    pthread_atfork(NULL, NULL, refresh_pid);
}

/* A copy between engine memory (`local`, already checked) and a user address. Memory the ring
 * knows is valid (its user-memory arenas, registered buffers, the engine's own regions: all kept
 * alive by the ring while it is open) is copied with memcpy; any other address goes through
 * process_vm_*, which reports EFAULT for an unmapped range instead of delivering SIGSEGV. */
static int user_copy(struct loop *l, uint64_t *ctx, uint64_t local, uint64_t remote, uint64_t size, int to_user)
{
    if (remote == 0 || remote + size < remote)
        return 0;
    if (in_table(l->known, l->nknown, remote, size, to_user, &l->known_hint) ||
        in_table((const uint64_t *)ctx[CTX_REGIONS], ctx[CTX_NREGIONS], remote, size, to_user, &ctx[CTX_HINT])) {
        l->fast_copies++;
        memmove(to_user ? (void *)remote : (void *)local, to_user ? (void *)local : (void *)remote, size);
        return 1;
    }
    l->checked_copies++;
    struct iovec li = { (void *)local, size }, ri = { (void *)remote, size };
    ssize_t done = to_user ? process_vm_writev(nl_pid, &li, 1, &ri, 1, 0)
                           : process_vm_readv(nl_pid, &li, 1, &ri, 1, 0);
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
    NEED_LOOP(ctx_loop(ctx), ctx);
    if (!user_copy(ctx_loop(ctx), ctx, dst, uptr, size, 0)) {
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
    NEED_LOOP(ctx_loop(ctx), ctx);
    return user_copy(ctx_loop(ctx), ctx, src, uptr, size, 1) ? 0 : (uint64_t)-EFAULT;
}

static struct emap *find_map(struct loop *l, uint64_t handle)
{
    for (uint32_t i = 0; i < l->nmaps; i++)
        if (l->maps[i].base == handle)
            return &l->maps[i];
    return NULL;
}

static uint64_t array_elem(const struct emap *m, uint64_t key)
{
    uint32_t idx;
    memcpy(&idx, (void *)key, 4);
    return idx < m->max_entries ? m->base + idx * m->stride : 0;
}

/* h_map_lookup past its fast path; out of line, so that the fast path makes no call and saves no
 * registers. */
__attribute__((noinline)) static uint64_t map_lookup_rest(uint64_t *ctx, struct emap *m, uint64_t handle,
                                                          uint64_t key, uint64_t r3, uint64_t r4)
{
    struct loop *l = ctx_loop(ctx);
    if (m && m->kind == 1) {
        if (!check(ctx, key, 4, 0))
            return 0;
        return array_elem(m, key);
    }
    if (m && m->kind == 3) {
        if (!check(ctx, key, m->key_size, 0))
            return 0;
        return nl_hmap_lookup(m->hash, (const uint8_t *)key);
    }
    return l->py_map(ctx, 1, handle, key, r3, r4);
}

/* Maps: arrays natively; other kinds (hash maps live in Python) through the Python callback. The
 * common case first: an array (program state) whose key lies in the hinted region. */
static uint64_t h_map_lookup(uint64_t *ctx, uint64_t handle, uint64_t key, uint64_t r3, uint64_t r4, uint64_t r5)
{
    struct loop *l = ctx_loop(ctx);
    NEED_LOOP(l, ctx);
    (void)r5;
    struct emap *m = find_map(l, handle);
    if (m && m->kind == 1 &&
        in_hinted((const uint64_t *)ctx[CTX_REGIONS], ctx[CTX_NREGIONS], key, 4, 0, ctx[CTX_HINT]))
        return array_elem(m, key);
    return map_lookup_rest(ctx, m, handle, key, r3, r4);
}

static uint64_t h_map_update(uint64_t *ctx, uint64_t handle, uint64_t key, uint64_t value, uint64_t flags, uint64_t r5)
{
    struct loop *l = ctx_loop(ctx);
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
    struct loop *l = ctx_loop(ctx);
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

NL_HIDDEN uint64_t h_ktime(uint64_t *ctx, uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e)
{
    (void)ctx, (void)a, (void)b, (void)c, (void)d, (void)e;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t h_prandom(uint64_t *ctx, uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e)
{
    (void)a, (void)b, (void)c, (void)d, (void)e;
    struct loop *l = ctx_loop(ctx);
    NEED_LOOP(l, ctx);
    uint64_t x = l->rand_state; /* xorshift64*: not cryptographic, as bpf_get_prandom_u32 */
    x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
    l->rand_state = x;
    return (x * 0x2545F4914F6CDD1Dull) >> 32;
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
