/* C twins of examples/reference_generic.py (the generic-target variants of the 2021 reference
 * programs: io_uring helpers replaced by map writes) and of `histogram` in
 * bench/verifier_programs.py, written as a C programmer would, for `clang -O2 -g -target bpf
 * -mcpu=v3`. The map `arr` and its accessors are bench/c/reference_arr.h, shared with
 * bench/c/reference.c. */
#include "../c/reference_arr.h"

#define OK IORING_BPF_OK
#define WAIT IORING_BPF_WAIT

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, struct io_uring_sqe);
} submitted SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, struct io_uring_cqe);
} emitted SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, struct io_uring_cqe);
} reapable SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} counts SEC(".maps");

struct flow {
	__u64 bytes;
	__u32 packets;
	__u32 errors;
	__u32 hist[8];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct flow);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} budget SEC(".maps");

static __always_inline __u32 count_get(__u32 key)
{
	__u32 *v = bpf_map_lookup_elem(&counts, &key);
	return v ? *v : 0;
}

static __always_inline void count_set(__u32 key, __u32 value)
{
	__u32 *v = bpf_map_lookup_elem(&counts, &key);
	if (v)
		*v = value;
}

static __always_inline void record_sqe(__u32 slot, struct io_uring_sqe *sqe)
{
	struct io_uring_sqe *dst = bpf_map_lookup_elem(&submitted, &slot);
	if (dst)
		*dst = *sqe;
}

SEC("syscall")
int test(struct io_uring_bpf_ctx *ctx)
{
	struct io_uring_sqe sqe;
	struct io_uring_cqe *c;
	__u64 secret = 0;
	__u32 n;
	long r;

	if (arr_get(REENTER_SLOT))
		return OK;
	arr_set(REENTER_SLOT, 1);
	arr_set(ARR_SLOT, 11);
	n = count_get(2);
	c = bpf_map_lookup_elem(&reapable, &n);
	count_set(2, n + 1);
	arr_set(ARR_SLOT + 1, c ? c->user_data : 0);
	io_uring_prep_nop(&sqe);
	sqe.user_data = 2;
	record_sqe(count_get(0), &sqe);
	count_set(0, count_get(0) + 1);
	arr_set(ARR_SLOT + 3, 21);
	arr_set(ARR_SLOT + 4, ctx->user_data);
	r = bpf_copy_from_user(&secret, sizeof(secret), (void *)ctx->user_data);
	arr_set(ARR_SLOT + 5, secret);
	arr_set(ARR_SLOT + 6, (__u64)r);
	ctx->wait_idx = MAIN_CQ;
	ctx->wait_nr = 1;
	return WAIT;
}

SEC("syscall")
int counting(struct io_uring_bpf_ctx *ctx)
{
	struct io_uring_sqe sqe;
	__u64 v = arr_get(0);
	__u32 cq_idx = 1;

	if (v > 10)
		return OK;
	arr_set(0, v + 1);
	if (v != 0) {
		__u32 n = count_get(2);
		struct io_uring_cqe *c = bpf_map_lookup_elem(&reapable, &n);
		arr_set(1, c ? c->user_data : 0);
		count_set(2, n + 1);
	}
	io_uring_prep_timeout(&sqe, ctx->user_data, 0, 0);
	sqe.user_data = 5;
	sqe.cq_idx = cq_idx;
	record_sqe(count_get(0) & 7, &sqe);
	count_set(0, count_get(0) + 1);
	ctx->wait_idx = cq_idx;
	ctx->wait_nr = 1;
	return WAIT;
}

SEC("syscall")
int pingpong(struct io_uring_bpf_ctx *ctx)
{
	__s32 idx = 0;

	bpf_copy_from_user(&idx, sizeof(idx), (void *)ctx->user_data);
	if (arr_get(idx)) {
		__u32 n = count_get(2), slot = n & 7, e = count_get(1), eslot = e & 7;
		struct io_uring_cqe *c = bpf_map_lookup_elem(&reapable, &slot);
		struct io_uring_cqe *out = bpf_map_lookup_elem(&emitted, &eslot);
		__s32 it = c ? (__s32)c->user_data : 0;

		count_set(2, n + 1);
		if (out) {
			out->user_data = it + 1;
			out->flags = (idx ^ 1) + 1;
		}
		count_set(1, e + 1);
		if (it >= 20) {
			arr_set(5 + idx, it);
			return OK;
		}
	} else {
		arr_set(idx, 1);
	}
	ctx->wait_idx = idx + 1;
	ctx->wait_nr = 1;
	return WAIT;
}

SEC("syscall")
int write_file(struct io_uring_bpf_ctx *ctx)
{
	struct io_uring_sqe sqe;
	__u64 buf = ctx->user_data;
	__u64 inflight = arr_get(INFL_IDX);
	__u64 cur_off = arr_get(OFF_IDX);
	int i;

	for (i = 0; i < FILL_QD; i++) {
		if (inflight) {
			count_set(2, count_get(2) + 1);
			inflight--;
		}
	}
	for (i = 0; i < FILL_QD; i++) {
		if (inflight >= FILL_QD || cur_off >= FILL_BLOCKS)
			break;
		io_uring_prep_write(&sqe, 0, buf, FILL_BLOCK_SIZE, cur_off * FILL_BLOCK_SIZE);
		sqe.flags = IOSQE_FIXED_FILE;
		sqe.cq_idx = 1;
		record_sqe(count_get(0) & 7, &sqe);
		count_set(0, count_get(0) + 1);
		inflight++;
		cur_off++;
	}
	arr_set(OFF_IDX, cur_off);
	arr_set(INFL_IDX, inflight);
	if (!inflight)
		return OK;
	ctx->wait_idx = 1;
	ctx->wait_nr = inflight;
	return WAIT;
}

SEC("syscall")
int histogram(struct io_uring_bpf_ctx *ctx)
{
	__u32 done = 0, zero = 0, one = 1;
	__u64 *limit = bpf_map_lookup_elem(&budget, &zero);
	__u64 *total;
	int i;

	for (i = 0; i < 16; i++) {
		__u32 slot = i & 7;
		struct io_uring_cqe *c = bpf_map_lookup_elem(&reapable, &slot);
		struct flow f = {}, *old;
		__u32 key;

		if (!c)
			continue;
		key = c->user_data >> 32;
		old = bpf_map_lookup_elem(&flows, &key);
		if (old)
			f = *old;
		if (c->res < 0) {
			f.errors++;
		} else {
			__u32 bucket = 0, size = c->res;

			f.bytes += c->res;
			f.packets++;
			while (bucket < 7) {
				bucket++;
				size >>= 2;
				if (!size)
					break;
			}
			f.hist[bucket]++;
		}
		bpf_map_update_elem(&flows, &key, &f, BPF_ANY);
		done++;
		if (limit && *limit && done >= *limit)
			break;
	}
	total = bpf_map_lookup_elem(&budget, &one);
	if (total)
		*total += done;
	ctx->wait_nr = done;
	return OK;
}

char LICENSE[] SEC("license") = "GPL";
