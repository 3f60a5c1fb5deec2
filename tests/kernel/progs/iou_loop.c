#include "bpf_mini.h"

/* The smallest io_uring loop for Linux >= 7.1 (struct_ops io_uring_bpf_ops): count the steps and
 * stop at once. Kernel types are opaque or re-declared in part (members matched by name). */
struct io_ring_ctx;
struct iou_loop_params;

enum { IOU_LOOP_CONTINUE = 0, IOU_LOOP_STOP = 1 };

struct io_uring_bpf_ops {
    int (*loop_step)(struct io_ring_ctx *ctx, struct iou_loop_params *lp);
    __u32 ring_fd;
};

__u64 steps;

SEC("struct_ops.s/loop_step")
int loop_step(unsigned long long *ctx)
{
    steps += 1;
    return IOU_LOOP_STOP;
}

SEC(".struct_ops.link")
struct io_uring_bpf_ops pyb_loop = {
    .loop_step = (void *)loop_step,
};

char LICENSE[] SEC("license") = "GPL";
