/* What every C twin of the 2021 reference programs shares: their array map `arr`, its constants
 * and the accessors (a missing slot reads as 0, as `arr[k]` does in Python). Included by
 * bench/c/reference.c (the programs with io_uring helpers) and bench/verifier_c/programs.c (their
 * generic-target logic, helpers replaced by map writes), so the two cannot drift apart. */
#ifndef BENCH_C_REFERENCE_ARR_H
#define BENCH_C_REFERENCE_ARR_H

#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u64);
} arr SEC(".maps");

#define MAIN_CQ 0
#define ARR_SLOT 0
#define REENTER_SLOT 10
#define FILL_QD 4
#define FILL_BLOCKS 16
#define FILL_BLOCK_SIZE (4096 * 4)
#define OFF_IDX 1
#define INFL_IDX 0

static __always_inline __u64 arr_get(__u32 key)
{
	__u64 *v = bpf_map_lookup_elem(&arr, &key);
	return v ? *v : 0;
}

static __always_inline void arr_set(__u32 key, __u64 value)
{
	__u64 *v = bpf_map_lookup_elem(&arr, &key);
	if (v)
		*v = value;
}

#endif
