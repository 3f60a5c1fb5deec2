#include "bpf_mini.h"

struct args {
    __u64 a;
    __u64 b;
    __u64 sum;
    __u32 counter_key;
    __u32 pad;
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u64);
} counters SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 64);
    __type(key, __u32);
    __type(value, __u64);
} seen SEC(".maps");

struct stats {
    __u32 calls;
    __s32 last_key;
    __u64 sums[2];
    char tag[4];
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct stats);
} totals SEC(".maps");

const volatile __u64 scale = 1;
__u64 runs = 0;
__u64 bias = 1000;          /* .data: user space may change it between runs */
__u64 last_sum;

SEC("syscall")
int add(struct args *ctx)
{
    __u32 key = ctx->counter_key;
    __u64 *slot;
    __u64 sum = (ctx->a + ctx->b) * scale;

    ctx->sum = sum;
    slot = bpf_map_lookup_elem(&counters, &key);
    if (slot)
        *slot += 1;
    bpf_map_update_elem(&seen, &key, &sum, BPF_ANY);
    runs += 1;
    last_sum = sum;
    {
        __u32 zero = 0;
        struct stats *st = bpf_map_lookup_elem(&totals, &zero);
        if (st) {
            st->calls += 1;
            st->last_key = -(__s32)key;
            st->sums[st->calls & 1] += sum;
            st->tag[0] = 'o';
            st->tag[1] = 'k';
        }
    }
    ctx->pad = (__u32)bias;
    return (int)(sum & 0xff);
}

char LICENSE[] SEC("license") = "GPL";
