/* The baseline of the talk's table: a read/write loop, one pread(2) and one write(2) per 4 KiB block. */
#include "common.h"

int main(int argc, char **argv)
{
	int src, dst;
	long long size = open_ends(argc, argv, &src, &dst), done = 0;
	static char buf[BLOCK] __attribute__((aligned(BLOCK)));
	long long start = now_ns();

	while (done < size) {
		ssize_t n = pread(src, buf, BLOCK, done);
		if (n <= 0)
			die("pread", n < 0 ? errno : EIO);
		if (write(dst, buf, n) != n)
			die("write", errno);
		done += n;
	}
	report(now_ns() - start, done);
	return 0;
}
