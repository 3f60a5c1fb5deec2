/* User space drives a chain of N NOP requests at queue depth 1: submit one NOP, wait for its
 * completion, reap it, submit the next -- the loop that liburing's bpf_nops test moves into a BPF
 * loop_step program. Prints  ns=<elapsed ns of the chain> count=<NOPs completed>. */
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	struct io_uring ring;
	struct io_uring_cqe *cqe;
	long long n, i;
	int ret;

	if (argc < 2) {
		fprintf(stderr, "usage: %s COUNT\n", argv[0]);
		return 2;
	}
	n = atoll(argv[1]);
	ret = io_uring_queue_init(4, &ring, 0);
	if (ret < 0) {
		fprintf(stderr, "error: io_uring_queue_init: %s\n", strerror(-ret));
		return 1;
	}
	long long start = now_ns();
	for (i = 0; i < n; i++) {
		io_uring_prep_nop(io_uring_get_sqe(&ring));
		ret = io_uring_submit_and_wait(&ring, 1);
		if (ret >= 0)
			ret = io_uring_wait_cqe(&ring, &cqe);
		if (ret < 0 || cqe->res < 0) {
			fprintf(stderr, "error: nop %lld: %s\n", i, strerror(ret < 0 ? -ret : -cqe->res));
			return 1;
		}
		io_uring_cqe_seen(&ring, cqe);
	}
	printf("ns=%lld count=%lld\n", now_ns() - start, i);
	io_uring_queue_exit(&ring);
	return 0;
}
