/* hmap.c: hash maps with their key index here (pybpfuring/runtime/backends/native/maps.py). */
#include "nl.h"

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
