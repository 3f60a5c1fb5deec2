#include "bpf_mini.h"

/* A TCP congestion control written as a struct_ops map, to exercise the struct_ops machinery
 * (the same as io_uring_bpf_ops on Linux >= 7.1) on a kernel that has tcp_congestion_ops.
 * Only the members we set are declared: the loader matches members by name, as libbpf does. */
struct sock;

struct tcp_congestion_ops {
    __u32 (*ssthresh)(struct sock *sk);
    void (*cong_avoid)(struct sock *sk, __u32 ack, __u32 acked);
    __u32 (*undo_cwnd)(struct sock *sk);
    void (*init)(struct sock *sk);
    char name[16];
};

__u64 inits;
__u64 avoids;

SEC("struct_ops/pyb_init")
void pyb_init(unsigned long long *ctx)
{
    inits += 1;
}

SEC("struct_ops/pyb_ssthresh")
__u32 pyb_ssthresh(unsigned long long *ctx)
{
    return 10;
}

SEC("struct_ops/pyb_cong_avoid")
void pyb_cong_avoid(unsigned long long *ctx)
{
    avoids += 1;
}

SEC("struct_ops/pyb_undo_cwnd")
__u32 pyb_undo_cwnd(unsigned long long *ctx)
{
    return 10;
}

SEC(".struct_ops.link")
struct tcp_congestion_ops pybpf_cc = {
    .init = (void *)pyb_init,
    .ssthresh = (void *)pyb_ssthresh,
    .cong_avoid = (void *)pyb_cong_avoid,
    .undo_cwnd = (void *)pyb_undo_cwnd,
    .name = "pybpf_cc",
};

char LICENSE[] SEC("license") = "GPL";
