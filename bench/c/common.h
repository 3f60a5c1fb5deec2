/* What the C twins of bench/compile_programs.py and examples/reference.py need: the 2021 io_uring BPF
 * ABI (reference/io_uring-bpf-abi.md: struct io_uring_bpf_ctx, the SQE with cq_idx at byte 48, helper
 * IDs 164..167) and libbpf-style declarations (helpers as constant function pointers, BTF-defined
 * maps), written out so no libbpf headers are needed. */
#ifndef BENCH_C_COMMON_H
#define BENCH_C_COMMON_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef int __s32;
typedef long long __s64;

#define SEC(name) __attribute__((section(name), used))
#define __always_inline inline __attribute__((always_inline))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

#define BPF_MAP_TYPE_HASH 1
#define BPF_MAP_TYPE_ARRAY 2
#define BPF_ANY 0

#define IORING_OP_NOP 0
#define IORING_OP_TIMEOUT 11
#define IORING_OP_READ 22
#define IORING_OP_WRITE 23
#define IOSQE_FIXED_FILE (1U << 0)

#define IORING_BPF_OK 0
#define IORING_BPF_WAIT 1

struct io_uring_bpf_ctx {
	__u64 user_data;
	__u32 wait_nr;
	__u32 wait_idx;
};

struct io_uring_sqe {
	__u8 opcode;
	__u8 flags;
	__u16 ioprio;
	__s32 fd;
	__u64 off;
	__u64 addr;
	__u32 len;
	__u32 rw_flags;
	__u64 user_data;
	__u16 buf_index;
	__u16 personality;
	__s32 splice_fd_in;
	__u16 cq_idx;
	__u16 __pad1;
	__u32 __pad2;
	__u64 __pad3;
};

struct io_uring_cqe {
	__u64 user_data;
	__s32 res;
	__u32 flags;
};

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, __u64 flags) = (void *)2;
static long (*bpf_map_delete_elem)(void *map, const void *key) = (void *)3;
static long (*bpf_copy_from_user)(void *dst, __u32 size, const void *user_ptr) = (void *)148;
static long (*iouring_queue_sqe)(void *ctx, struct io_uring_sqe *sqe, __u32 len) = (void *)164;
static long (*iouring_emit_cqe)(void *ctx, __u32 cq_idx, __u64 user_data, __s32 res, __u32 flags) = (void *)165;
static long (*iouring_reap_cqe)(void *ctx, __u32 cq_idx, struct io_uring_cqe *cqe, __u32 len) = (void *)166;
static long (*bpf_copy_to_user)(void *user_ptr, const void *src, __u32 size) = (void *)167;

/* liburing's io_uring_prep_rw, filling every field (the kernel copies all 64 bytes). */
static __always_inline void io_uring_prep_rw(struct io_uring_sqe *sqe, __u8 op, int fd, __u64 addr,
					     __u32 len, __u64 off)
{
	sqe->opcode = op;
	sqe->flags = 0;
	sqe->ioprio = 0;
	sqe->fd = fd;
	sqe->off = off;
	sqe->addr = addr;
	sqe->len = len;
	sqe->rw_flags = 0;
	sqe->buf_index = 0;
	sqe->personality = 0;
	sqe->splice_fd_in = 0;
	sqe->cq_idx = 0;
	sqe->__pad1 = 0;
	sqe->__pad2 = 0;
	sqe->__pad3 = 0;
}

static __always_inline void io_uring_prep_nop(struct io_uring_sqe *sqe)
{
	io_uring_prep_rw(sqe, IORING_OP_NOP, -1, 0, 0, 0);
}

static __always_inline void io_uring_prep_read(struct io_uring_sqe *sqe, int fd, __u64 buf, __u32 n, __u64 off)
{
	io_uring_prep_rw(sqe, IORING_OP_READ, fd, buf, n, off);
}

static __always_inline void io_uring_prep_write(struct io_uring_sqe *sqe, int fd, __u64 buf, __u32 n, __u64 off)
{
	io_uring_prep_rw(sqe, IORING_OP_WRITE, fd, buf, n, off);
}

static __always_inline void io_uring_prep_timeout(struct io_uring_sqe *sqe, __u64 ts, __u32 count, __u32 flags)
{
	io_uring_prep_rw(sqe, IORING_OP_TIMEOUT, -1, ts, 1, count);
	sqe->rw_flags = flags;
}

#endif
