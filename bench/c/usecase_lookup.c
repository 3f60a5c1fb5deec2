/* The B+tree lookup of examples/lookup.py as a C user would write it with liburing: `inflight`
 * lookups at once, each a chain of page reads driven from user space (one CQE -> parse the page ->
 * submit the next read), all ready completions handled per io_uring_submit_and_wait.
 *
 *   lookup INDEX KEYS OUT INFLIGHT    KEYS: n little-endian u64; OUT: n int32 results
 * Prints the elapsed nanoseconds of the lookups. */
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

#define PAGE 4096
#define FENCES 16
#define HEAD (8 + 8 * FENCES)
#define MAX_ENTRIES ((PAGE - HEAD) / 16)
#define KEYS_AT HEAD
#define VALUES_AT (HEAD + 8 * MAX_ENTRIES)
#define MAX_DEPTH 8
#define LEAF 1
#define INNER 2

struct slot {
	uint8_t buf[PAGE] __attribute__((aligned(64)));
	long key_index;
	int level;
};

static int fd;

static void submit_read(struct io_uring *ring, struct slot *s, uint64_t page)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	if (!sqe) {
		io_uring_submit(ring);
		sqe = io_uring_get_sqe(ring);
	}
	io_uring_prep_read(sqe, fd, s->buf, PAGE, page * PAGE);
	io_uring_sqe_set_data(sqe, s);
}

/* 1 and *result set when the lookup ended; 0 and *next set when another page is needed.
 * The page is searched where the kernel put it (bisection over the keys: C needs no copies). */
static int step(const uint8_t *p, uint64_t key, int32_t *result, uint64_t *next)
{
	uint32_t kind, count, lo = 0, hi;
	uint64_t k, v;
	memcpy(&kind, p, 4);
	memcpy(&count, p + 4, 4);
	if (count == 0 || count > MAX_ENTRIES || (kind != LEAF && kind != INNER)) {
		*result = -EIO;
		return 1;
	}
	memcpy(&k, p + KEYS_AT, 8);
	if (k > key) {
		*result = -ENOENT;
		return 1;
	}
	hi = count;
	while (hi - lo > 1) {
		uint32_t mid = (lo + hi) / 2;
		memcpy(&k, p + KEYS_AT + 8 * mid, 8);
		if (k <= key)
			lo = mid;
		else
			hi = mid;
	}
	memcpy(&k, p + KEYS_AT + 8 * lo, 8);
	memcpy(&v, p + VALUES_AT + 8 * lo, 8);
	if (kind == LEAF) {
		*result = k == key ? (int32_t)v : -ENOENT;
		return 1;
	}
	*next = v;
	return 0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: %s INDEX KEYS OUT INFLIGHT\n", argv[0]);
		return 2;
	}
	fd = open(argv[1], O_RDONLY);
	int kfd = open(argv[2], O_RDONLY);
	long inflight = atol(argv[4]);
	struct stat st;
	if (fd < 0 || kfd < 0 || fstat(kfd, &st) != 0 || inflight < 1 || inflight > 4096) {
		perror("open");
		return 1;
	}
	long n = st.st_size / 8;
	uint64_t *keys = malloc(n * 8 + 8);
	int32_t *results = malloc(n * 4 + 4);
	if (!keys || !results || read(kfd, keys, n * 8) != n * 8)
		return 1;
	struct slot *slots = aligned_alloc(64, sizeof(struct slot) * inflight);
	struct io_uring ring;
	if (!slots || io_uring_queue_init(inflight < 8 ? 8 : inflight, &ring, 0) != 0)
		return 1;
	uint64_t t0 = now_ns();
	long next_key = 0, done = 0;
	for (long i = 0; i < inflight && next_key < n; i++) {
		slots[i].key_index = next_key++;
		slots[i].level = 0;
		submit_read(&ring, &slots[i], 0);
	}
	while (done < n) {
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		if (io_uring_submit_and_wait(&ring, 1) < 0)
			return 1;
		io_uring_for_each_cqe(&ring, head, cqe) {
			struct slot *s = io_uring_cqe_get_data(cqe);
			int32_t result = 0;
			uint64_t page = 0;
			int ended = 1;
			if (cqe->res != PAGE)
				result = cqe->res < 0 ? cqe->res : -EIO;
			else if (++s->level > MAX_DEPTH)
				result = -EIO;
			else
				ended = step(s->buf, keys[s->key_index], &result, &page);
			seen++;
			if (!ended) {
				submit_read(&ring, s, page);
				continue;
			}
			results[s->key_index] = result;
			done++;
			if (next_key < n) {
				s->key_index = next_key++;
				s->level = 0;
				submit_read(&ring, s, 0);
			}
		}
		io_uring_cq_advance(&ring, seen);
	}
	uint64_t t1 = now_ns();
	FILE *out = fopen(argv[3], "wb");
	if (!out || fwrite(results, 4, n, out) != (size_t)n || fclose(out) != 0)
		return 1;
	printf("%llu\n", (unsigned long long)(t1 - t0));
	io_uring_queue_exit(&ring);
	return 0;
}
