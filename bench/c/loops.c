/* C twin of `loops` in bench/compile_programs.py. */
#include "common.h"

#define NR_CQS 4
#define BATCH 16
#define BUCKETS 16

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BUCKETS);
	__type(key, __u32);
	__type(value, __u64);
} hist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NR_CQS);
	__type(key, __u32);
	__type(value, __u32);
} budget SEC(".maps");

SEC("iouring")
int loops(struct io_uring_bpf_ctx *ctx)
{
	struct io_uring_cqe cqe = {};
	struct io_uring_sqe sqe = {};
	__u32 reaped[NR_CQS] = {};
	__u32 total = 0;
	int q, n;

	for (q = 0; q < NR_CQS; q++) {
		for (n = 0; n < BATCH; n++) {
			__u32 v, b = 0;
			__u64 *count;

			if (iouring_reap_cqe(ctx, q + 1, &cqe, sizeof(cqe)) != 0)
				break;
			if (cqe.res < 0)
				continue;
			v = cqe.res;
			while (b < BUCKETS - 1) {
				if (v <= 1)
					break;
				v >>= 1;
				b++;
			}
			count = bpf_map_lookup_elem(&hist, &b);
			if (count)
				*count += 1;
			reaped[q]++;
		}
	}
	for (q = 0; q < NR_CQS; q++) {
		__u32 key = q, want = reaped[q];
		__u32 *limit = bpf_map_lookup_elem(&budget, &key);

		total += reaped[q];
		if (!limit)
			want = 0;
		else if (*limit < want)
			want = *limit;
		for (n = 0; n < BATCH; n++) {
			if (n >= want)
				break;
			io_uring_prep_nop(&sqe);
			sqe.user_data = q;
			sqe.cq_idx = q + 1;
			iouring_queue_sqe(ctx, &sqe, sizeof(sqe));
		}
	}
	if (total == 0)
		return IORING_BPF_OK;
	ctx->wait_idx = 1;
	ctx->wait_nr = 1;
	return IORING_BPF_WAIT;
}

char LICENSE[] SEC("license") = "GPL";
