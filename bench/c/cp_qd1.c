/* C twin of `cp_qd1` in bench/compile_programs.py: copy a file one block in flight at a time. */
#include "common.h"

struct cp_args {
	__s32 in_fd;
	__s32 out_fd;
	__u64 buf;
	__u64 size;
	__u32 block;
};

struct cp_state {
	__u64 off;
	__u32 phase;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cp_state);
} cp_state SEC(".maps");

enum { IDLE, READING, WRITING };
#define CP_CQ 1

SEC("iouring")
int cp_qd1(struct io_uring_bpf_ctx *ctx)
{
	struct cp_args args;
	struct io_uring_sqe sqe;
	__u32 key = 0;
	struct cp_state *st = bpf_map_lookup_elem(&cp_state, &key);
	__s32 res = 0;

	if (!st)
		return IORING_BPF_OK;
	bpf_copy_from_user(&args, sizeof(args), (void *)ctx->user_data);
	if (st->phase != IDLE) {
		struct io_uring_cqe cqe;

		if (iouring_reap_cqe(ctx, CP_CQ, &cqe, sizeof(cqe)) != 0) {
			ctx->wait_idx = CP_CQ;
			ctx->wait_nr = 1;
			return IORING_BPF_WAIT;
		}
		res = cqe.res;
		if (res <= 0) {
			iouring_emit_cqe(ctx, 0, ctx->user_data, res, 0);
			return IORING_BPF_OK;
		}
	}
	if (st->phase == READING) {
		io_uring_prep_write(&sqe, args.out_fd, args.buf, res, st->off);
		st->phase = WRITING;
	} else {
		__u64 left;

		if (st->phase == WRITING)
			st->off += res;
		if (st->off >= args.size) {
			iouring_emit_cqe(ctx, 0, ctx->user_data, 0, 0);
			return IORING_BPF_OK;
		}
		left = args.size - st->off;
		io_uring_prep_read(&sqe, args.in_fd, args.buf, left < args.block ? left : args.block, st->off);
		st->phase = READING;
	}
	sqe.cq_idx = CP_CQ;
	iouring_queue_sqe(ctx, &sqe, sizeof(sqe));
	ctx->wait_idx = CP_CQ;
	ctx->wait_nr = 1;
	return IORING_BPF_WAIT;
}

char LICENSE[] SEC("license") = "GPL";
