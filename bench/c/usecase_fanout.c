/* examples/fanout_collect.py's broadcast as a C user would write it with liburing: per round, N
 * writes of one buffer (one per file, at the round's offset), one io_uring_submit_and_wait for all
 * N, every CQE checked (a short write is -EIO; the lowest-numbered failure is reported).
 *
 *   fanout DIR N SIZE ROUNDS      writes the existing DIR/fan0..fan{N-1}; prints the elapsed ns */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: %s DIR N SIZE ROUNDS\n", argv[0]);
		return 2;
	}
	int n = atoi(argv[2]), size = atoi(argv[3]), rounds = atoi(argv[4]);
	if (n < 1 || n > 64 || size < 1 || size > (1 << 20) || rounds < 1)
		return 2;
	int fds[64];
	char path[4096];
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/fan%d", argv[1], i);
		fds[i] = open(path, O_RDWR);
		if (fds[i] < 0) {
			perror(path);
			return 1;
		}
	}
	char *buf = malloc(size);
	memset(buf, 'c', size);
	struct io_uring ring;
	if (!buf || io_uring_queue_init(64, &ring, 0) != 0)
		return 1;
	uint64_t t0 = now_ns();
	for (int r = 0; r < rounds; r++) {
		for (int i = 0; i < n; i++) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
			io_uring_prep_write(sqe, fds[i], buf, size, (uint64_t)r * size);
			sqe->user_data = i;
		}
		if (io_uring_submit_and_wait(&ring, n) < 0)
			return 1;
		int err = 0, err_idx = 64, got = 0;
		long total = 0;
		while (got < n) {
			struct io_uring_cqe *cqe;
			if (io_uring_wait_cqe(&ring, &cqe) != 0)
				return 1;
			int res = cqe->res < 0 || cqe->res == size ? cqe->res : -EIO;
			if (res < 0 && (int)cqe->user_data < err_idx) {
				err = res;
				err_idx = cqe->user_data;
			} else if (res > 0) {
				total += res;
			}
			io_uring_cqe_seen(&ring, cqe);
			got++;
		}
		if (err || total != (long)n * size) {
			fprintf(stderr, "round %d: %d\n", r, err);
			return 1;
		}
	}
	printf("%llu\n", (unsigned long long)(now_ns() - t0));
	return 0;
}
