#include "bpf_mini.h"

/* The smallest io_uring loop for Linux >= 7.1 (struct_ops io_uring_bpf_ops): count the steps, call
 * the sleepable kfunc bpf_io_uring_submit_sqes (nothing to submit) and stop at once.
 * Kernel types are opaque or re-declared in part (members matched by name). */
#define __ksym __attribute__((section(".ksyms")))
struct io_ring_ctx;
struct iou_loop_params;

enum { IOU_LOOP_CONTINUE = 0, IOU_LOOP_STOP = 1 };

struct io_uring_bpf_ops {
    int (*loop_step)(struct io_ring_ctx *ctx, struct iou_loop_params *lp);
    __u32 ring_fd;
};

extern int bpf_io_uring_submit_sqes(struct io_ring_ctx *ctx, __u32 nr) __ksym;

__u64 steps;
__s64 submitted = -1;

SEC("struct_ops.s/loop_step")
int loop_step(unsigned long long *ctx)
{
    steps += 1;
    submitted = bpf_io_uring_submit_sqes((struct io_ring_ctx *)ctx[0], 0);
    return IOU_LOOP_STOP;
}

SEC(".struct_ops.link")
struct io_uring_bpf_ops pyb_loop = {
    .loop_step = (void *)loop_step,
};

char LICENSE[] SEC("license") = "GPL";
