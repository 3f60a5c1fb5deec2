/* Shared by the cp baselines: argument parsing, the clock, and the one-line result the harness reads.
 * Each program copies BYTES of SRC to /dev/zero, 4 KiB at a time, and prints
 *     ns=<elapsed nanoseconds of the copy loop> bytes=<bytes copied>
 * Only the loop is timed: process start-up, open() and ring setup are not part of the talk's numbers. */
#ifndef PBU_CP_COMMON_H
#define PBU_CP_COMMON_H
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 4096
#define SINK "/dev/zero"

static inline long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline void die(const char *what, int err)
{
	fprintf(stderr, "error: %s: %s\n", what, strerror(err));
	exit(1);
}

/* argv: SRC BYTES [MODE]; opens both ends and hands back the byte count. */
static inline long long open_ends(int argc, char **argv, int *src, int *dst)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s SRC BYTES [MODE]\n", argv[0]);
		exit(2);
	}
	*src = open(argv[1], O_RDONLY);
	if (*src < 0)
		die(argv[1], errno);
	*dst = open(SINK, O_WRONLY);
	if (*dst < 0)
		die(SINK, errno);
	return atoll(argv[2]);
}

static inline void report(long long ns, long long bytes)
{
	printf("ns=%lld bytes=%lld\n", ns, bytes);
}
#endif
