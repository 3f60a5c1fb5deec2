/* examples/tcp_echo.py's server as a C user would write it with liburing: one ring, one accept
 * armed at a time, and per connection recv -> send (the rest again after a short send) -> recv ...
 * until the peer closes. The load generator is the example's own (bench/usecases_c.py runs it).
 *
 *   usecase_tcp_echo LISTEN_FD CLIENTS SECONDS
 * serves on the listening socket it inherits until CLIENTS connections have closed (exit 0), or
 * fails after SECONDS (exit 1) so a broken client can never hang the benchmark. */
#include <errno.h>
#include <liburing.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BUF 4096
enum { OP_ACCEPT, OP_RECV, OP_SEND };

struct conn {
	int fd;
	unsigned len, sent;	/* bytes received, bytes of them sent back */
	char buf[BUF];
};

static struct io_uring ring;

/* user_data: the op in the top byte, the connection's index below it */
static struct io_uring_sqe *sqe_for(int op, uint64_t slot)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
	if (!sqe) {		/* the SQ is full: hand it to the kernel and take a fresh one */
		io_uring_submit(&ring);
		sqe = io_uring_get_sqe(&ring);
	}
	io_uring_sqe_set_data64(sqe, (uint64_t)op << 56 | slot);
	return sqe;
}

static void arm_recv(struct conn *c, uint64_t slot)
{
	c->len = c->sent = 0;
	io_uring_prep_recv(sqe_for(OP_RECV, slot), c->fd, c->buf, BUF, 0);
}

static void arm_send(struct conn *c, uint64_t slot)
{
	io_uring_prep_send(sqe_for(OP_SEND, slot), c->fd, c->buf + c->sent, c->len - c->sent, 0);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s LISTEN_FD CLIENTS SECONDS\n", argv[0]);
		return 2;
	}
	int lfd = atoi(argv[1]), clients = atoi(argv[2]), seconds = atoi(argv[3]);
	if (lfd < 0 || clients < 1 || seconds < 1)
		return 2;
	struct conn **conns = calloc(clients, sizeof(*conns));
	if (!conns || io_uring_queue_init(4096, &ring, 0) != 0) {
		fprintf(stderr, "cannot set up the ring\n");
		return 1;
	}
	int accepted = 0, closed = 0;
	io_uring_prep_accept(sqe_for(OP_ACCEPT, 0), lfd, NULL, NULL, 0);
	time_t end = time(NULL) + seconds;
	while (closed < clients) {
		struct __kernel_timespec ts = { .tv_sec = 1 };
		struct io_uring_cqe *cqe;
		int rc = io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, NULL);
		if (time(NULL) > end) {
			fprintf(stderr, "%d of %d connections closed after %d s\n", closed, clients, seconds);
			return 1;
		}
		if (rc == -ETIME || rc == -EINTR)
			continue;
		if (rc < 0) {
			fprintf(stderr, "io_uring_submit_and_wait_timeout: %s\n", strerror(-rc));
			return 1;
		}
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&ring, head, cqe) {
			seen++;
			uint64_t ud = io_uring_cqe_get_data64(cqe);
			int op = ud >> 56, res = cqe->res;
			uint64_t slot = ud & ((1ull << 56) - 1);
			struct conn *c = op == OP_ACCEPT ? NULL : conns[slot];
			if (op == OP_ACCEPT) {
				if (res < 0) {
					fprintf(stderr, "accept: %s\n", strerror(-res));
					return 1;
				}
				if (accepted == clients) {	/* more connections than announced */
					fprintf(stderr, "connection %d of %d\n", accepted + 1, clients);
					return 1;
				}
				c = conns[accepted] = malloc(sizeof(*c));
				if (!c)
					return 1;
				c->fd = res;
				arm_recv(c, accepted++);
				if (accepted < clients)
					io_uring_prep_accept(sqe_for(OP_ACCEPT, 0), lfd, NULL, NULL, 0);
			} else if (op == OP_RECV && res > 0) {
				c->len = res;
				arm_send(c, slot);
			} else if (op == OP_SEND && res > 0) {
				c->sent += res;
				if (c->sent < c->len)
					arm_send(c, slot);	/* a short send: the rest */
				else
					arm_recv(c, slot);
			} else {	/* the peer closed (0) or an error: this connection is done */
				close(c->fd);
				closed++;
			}
		}
		io_uring_cq_advance(&ring, seen);
	}
	io_uring_queue_exit(&ring);
	return 0;
}
