/* examples/splice_records.py's job as a C user would write it with liburing: read each record's
 * 8-byte header (type, length: little-endian u32s), and move the payload of a record whose type is
 * in MASK into the output with IORING_OP_SPLICE through a pipe (input -> pipe, pipe -> output), one
 * dependent request at a time, as the BPF program does; other payloads are skipped.
 *
 *   usecase_splice IN OUT MASK      OUT must not exist; prints "BYTES NS" (bytes written, elapsed) */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HEADER 8
#define MAX_PAYLOAD (1 << 16)

static struct io_uring ring;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

/* Submit the one prepared SQE and return its result. */
static int complete_one(void)
{
	struct io_uring_cqe *cqe;
	int rc = io_uring_submit_and_wait(&ring, 1);
	if (rc < 0)
		return rc;
	if ((rc = io_uring_wait_cqe(&ring, &cqe)) != 0)
		return rc;
	int res = cqe->res;
	io_uring_cqe_seen(&ring, cqe);
	return res;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s IN OUT MASK\n", argv[0]);
		return 2;
	}
	uint64_t mask = strtoull(argv[3], NULL, 0);
	int in = open(argv[1], O_RDONLY);
	int out = open(argv[2], O_WRONLY | O_CREAT | O_EXCL, 0600);	/* never over a file */
	int pipefd[2];
	struct stat st;
	if (in < 0 || out < 0 || fstat(in, &st) != 0 || pipe(pipefd) != 0 ||
	    io_uring_queue_init(8, &ring, 0) != 0) {
		perror("setup");
		return 1;
	}
	uint64_t end = st.st_size, pos = 0, written = 0;
	int res = 0;
	unsigned char hdr[HEADER];
	uint64_t t0 = now_ns();
	while (pos < end) {
		if (pos + HEADER > end)
			goto corrupt;
		io_uring_prep_read(io_uring_get_sqe(&ring), in, hdr, HEADER, pos);
		res = complete_one();
		if (res != HEADER)
			goto failed;
		uint32_t type, length;
		memcpy(&type, hdr, 4);
		memcpy(&length, hdr + 4, 4);
		if (length > MAX_PAYLOAD || pos + HEADER + length > end)
			goto corrupt;
		uint64_t src = pos + HEADER;
		pos = src + length;
		if (type >= 64 || !(mask >> type & 1))
			continue;
		uint32_t left = length;
		while (left) {	/* a payload not page-aligned may take more than one round */
			io_uring_prep_splice(io_uring_get_sqe(&ring), in, src, pipefd[1], -1, left, 0);
			if ((res = complete_one()) <= 0)
				goto failed;
			uint32_t moved = res;
			src += moved;
			left -= moved;
			while (moved) {	/* empty the pipe into the output */
				io_uring_prep_splice(io_uring_get_sqe(&ring), pipefd[0], -1, out, written,
						     moved, 0);
				if ((res = complete_one()) <= 0)
					goto failed;
				moved -= res;
				written += res;
			}
		}
	}
	printf("%llu %llu\n", (unsigned long long)written, (unsigned long long)(now_ns() - t0));
	return 0;
corrupt:
	fprintf(stderr, "a record past the end of the input at %llu\n", (unsigned long long)pos);
	return 1;
failed:
	fprintf(stderr, "a request failed: %s\n", res < 0 ? strerror(-res) : "short or empty");
	return 1;
}
