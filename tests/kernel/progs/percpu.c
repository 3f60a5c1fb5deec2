#include "bpf_mini.h"

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, __u32);     /* 4 bytes: the kernel pads each CPU's copy to 8 */
} hits SEC(".maps");

SEC("syscall")
int count(void *ctx)
{
    __u32 key = 1;
    __u32 *v = bpf_map_lookup_elem(&hits, &key);

    if (v)
        *v += 1;
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
