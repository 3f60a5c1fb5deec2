/* C twin of `flows_prog` in bench/compile_programs.py. */
#include "common.h"

struct flow_key {
	__s32 fd;
	__u8 opcode;
};

struct flow_stats {
	__u64 ops;
	__u64 bytes;
	__u32 errors;
	__s32 last_res;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct flow_key);
	__type(value, struct flow_stats);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} totals SEC(".maps");

static __always_inline void count(__u32 key)
{
	__u64 *v = bpf_map_lookup_elem(&totals, &key);

	if (v)
		*v += 1;
}

SEC("iouring")
int flows_prog(struct io_uring_bpf_ctx *ctx)
{
	struct io_uring_cqe cqe = {};
	struct flow_key key = {};
	int n;

	for (n = 0; n < 8; n++) {
		struct flow_stats *st;

		if (iouring_reap_cqe(ctx, 1, &cqe, sizeof(cqe)) != 0)
			break;
		key.fd = cqe.user_data >> 32;
		key.opcode = cqe.user_data;
		st = bpf_map_lookup_elem(&flows, &key);
		if (st) {
			st->ops++;
			if (cqe.res < 0)
				st->errors++;
			else
				st->bytes += cqe.res;
			st->last_res = cqe.res;
			if (st->errors > 100) {
				bpf_map_delete_elem(&flows, &key);
				count(2);
			}
		} else {
			struct flow_stats fresh = {};

			fresh.ops = 1;
			fresh.last_res = cqe.res;
			if (cqe.res < 0)
				fresh.errors = 1;
			else
				fresh.bytes = cqe.res;
			bpf_map_update_elem(&flows, &key, &fresh, BPF_ANY);
			count(1);
		}
		count(0);
	}
	return IORING_BPF_OK;
}

char LICENSE[] SEC("license") = "GPL";
