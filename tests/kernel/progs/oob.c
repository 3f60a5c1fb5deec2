#include "bpf_mini.h"

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} vals SEC(".maps");

SEC("syscall")
int overrun(void *ctx)
{
    __u32 key = 0;
    __u64 *v = bpf_map_lookup_elem(&vals, &key);
    if (!v)
        return 0;
    return (int)v[1]; /* one past the 8-byte value: the verifier must refuse */
}

char LICENSE[] SEC("license") = "GPL";
