/* The four 2021 reference programs as examples/reference.py has them, in plain C. */
#include "reference_arr.h"

SEC("iouring")
int test(struct io_uring_bpf_ctx *ctx)
{
	struct io_uring_sqe sqe;
	struct io_uring_cqe cqe = {};
	__u32 cq_idx = 1;
	__u64 secret = 0;
	long ret;

	if (arr_get(REENTER_SLOT))
		return IORING_BPF_OK;
	arr_set(REENTER_SLOT, 1);
	arr_set(ARR_SLOT, 11);

	iouring_emit_cqe(ctx, MAIN_CQ, 3, 13, 0);
	iouring_emit_cqe(ctx, cq_idx, 4, 17, 0);
	iouring_emit_cqe(ctx, cq_idx, 5, 19, 0);

	ret = iouring_reap_cqe(ctx, cq_idx, &cqe, sizeof(cqe));
	arr_set(ARR_SLOT + 1, ret ? ret : cqe.user_data);
	ret = iouring_reap_cqe(ctx, cq_idx, &cqe, sizeof(cqe));
	arr_set(ARR_SLOT + 2, ret ? ret : cqe.user_data);

	io_uring_prep_nop(&sqe);
	sqe.user_data = 2;
	ret = iouring_queue_sqe(ctx, &sqe, sizeof(sqe));
	arr_set(ARR_SLOT + 3, ret < 0 ? ret : 21);

	arr_set(ARR_SLOT + 4, ctx->user_data);

	bpf_copy_from_user(&secret, sizeof(secret), (void *)ctx->user_data);
	arr_set(ARR_SLOT + 5, secret);
	secret = 31;
	bpf_copy_to_user((void *)ctx->user_data, &secret, sizeof(secret));

	ctx->wait_idx = MAIN_CQ;
	ctx->wait_nr = 1;
	return IORING_BPF_WAIT;
}

SEC("iouring")
int counting(struct io_uring_bpf_ctx *ctx)
{
	struct io_uring_sqe sqe;
	__u32 cq_idx = 1;
	__u64 v = arr_get(0);

	if (v > 10)
		return IORING_BPF_OK;
	arr_set(0, v + 1);

	if (v != 0) {
		struct io_uring_cqe cqe = {};
		long ret = iouring_reap_cqe(ctx, cq_idx, &cqe, sizeof(cqe));

		arr_set(1, ret ? ret : cqe.user_data);
	}

	io_uring_prep_timeout(&sqe, ctx->user_data, 0, 0);
	sqe.user_data = 5;
	sqe.cq_idx = cq_idx;
	iouring_queue_sqe(ctx, &sqe, sizeof(sqe));

	ctx->wait_idx = cq_idx;
	ctx->wait_nr = 1;
	return IORING_BPF_WAIT;
}

SEC("iouring")
int pingpong(struct io_uring_bpf_ctx *ctx)
{
	int idx = 0;

	bpf_copy_from_user(&idx, sizeof(idx), (void *)ctx->user_data);
	if (arr_get(idx)) {
		struct io_uring_cqe cqe = {};
		int it;

		iouring_reap_cqe(ctx, idx + 1, &cqe, sizeof(cqe));
		it = (int)cqe.user_data;
		iouring_emit_cqe(ctx, (idx ^ 1) + 1, it + 1, 0, 0);
		if (it >= 20) {
			arr_set(5 + idx, it);
			return IORING_BPF_OK;
		}
	} else {
		arr_set(idx, 1);
	}
	ctx->wait_idx = idx + 1;
	ctx->wait_nr = 1;
	return IORING_BPF_WAIT;
}

SEC("iouring")
int write_file(struct io_uring_bpf_ctx *ctx)
{
	struct io_uring_cqe cqe = {};
	struct io_uring_sqe sqe;
	__u64 buf = ctx->user_data;
	__u64 inflight = arr_get(INFL_IDX);
	__u64 cur_off = arr_get(OFF_IDX);
	int i;

	for (i = 0; i < FILL_QD; i++) {
		if (inflight) {
			iouring_reap_cqe(ctx, 1, &cqe, sizeof(cqe));
			inflight--;
		}
	}

	for (i = 0; i < FILL_QD; i++) {
		if (inflight >= FILL_QD || cur_off >= FILL_BLOCKS)
			break;
		io_uring_prep_write(&sqe, 0, buf, FILL_BLOCK_SIZE, cur_off * FILL_BLOCK_SIZE);
		sqe.flags = IOSQE_FIXED_FILE;
		sqe.cq_idx = 1;
		iouring_queue_sqe(ctx, &sqe, sizeof(sqe));
		inflight++;
		cur_off++;
	}

	arr_set(OFF_IDX, cur_off);
	arr_set(INFL_IDX, inflight);
	if (!inflight)
		return IORING_BPF_OK;
	ctx->wait_idx = 1;
	ctx->wait_nr = inflight;
	return IORING_BPF_WAIT;
}

char LICENSE[] SEC("license") = "GPL";
