#include "bpf_mini.h"

struct args {
    __u64 x;
    __u64 out;
};

__u64 calls_made;

static __noinline __u64 square(__u64 v)
{
    calls_made += 1;
    return v * v;
}

__noinline __u64 cube(__u64 v)
{
    return square(v) * v;
}

static int add_index(__u32 index, void *data)
{
    __u64 *acc = data;
    *acc += index;
    return 0;
}

SEC("syscall")
int powers(struct args *ctx)
{
    ctx->out = square(ctx->x) + cube(ctx->x);
    return 0;
}

SEC("syscall")
int triangle(struct args *ctx)
{
    __u64 acc = 0;
    bpf_loop(ctx->x, add_index, &acc, 0);
    ctx->out = acc + cube(2);
    return 1;
}

char LICENSE[] SEC("license") = "GPL";
