/* io_uring at queue depth 1 with liburing: submit a READ and wait for it, then a WRITE and wait for it,
 * one io_uring_enter(2) per request -- the talk's "io_uring QD1" row. MODE "dt" sets up the ring with
 * SINGLE_ISSUER | DEFER_TASKRUN (completions run in the submitter's context on GETEVENTS). */
#include <liburing.h>
#include "common.h"

static int one_request(struct io_uring *ring)
{
	struct io_uring_cqe *cqe;
	int ret = io_uring_submit_and_wait(ring, 1);

	if (ret < 0)
		die("io_uring_submit_and_wait", -ret);
	ret = io_uring_wait_cqe(ring, &cqe);
	if (ret < 0)
		die("io_uring_wait_cqe", -ret);
	ret = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	return ret;
}

int main(int argc, char **argv)
{
	int src, dst;
	long long size = open_ends(argc, argv, &src, &dst), done = 0;
	static char buf[BLOCK] __attribute__((aligned(BLOCK)));
	struct io_uring_params p = { 0 };
	struct io_uring ring;

	if (argc > 3 && strcmp(argv[3], "dt") == 0)
		p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	int ret = io_uring_queue_init_params(4, &ring, &p);
	if (ret < 0)
		die("io_uring_queue_init_params", -ret);
	long long start = now_ns();

	while (done < size) {
		io_uring_prep_read(io_uring_get_sqe(&ring), src, buf, BLOCK, done);
		int n = one_request(&ring);
		if (n <= 0)
			die("read", n < 0 ? -n : EIO);
		io_uring_prep_write(io_uring_get_sqe(&ring), dst, buf, n, 0);
		int w = one_request(&ring);
		if (w != n)
			die("write", w < 0 ? -w : EIO);
		done += n;
	}
	report(now_ns() - start, done);
	io_uring_queue_exit(&ring);
	return 0;
}
