/*
 * stickysize.c - measures lbd's sticky table the way lbd uses it: the
 * resident memory one entry costs (RSS delta over a full table of N
 * entries, buckets included) and the time to fill it.
 *
 *   stickysize [-n ENTRIES]          (default 1000000)
 *
 * Prints one line: "sticky: entries=N struct_bytes=B rss_bytes_per_entry=B
 * fill_ms=T lookup_ns=T".  Built by `make bench-tools` against lbd's own
 * sticky.o.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lbd.h"
#include "benchutil.h"

#define STICKYSIZE_DEFAULT	1000000		/* entries when -n is not given */
#define STICKYSIZE_MAX		(64u << 20)	/* largest -n */
#define STICKYSIZE_TIMEOUT_S	1800		/* entry lifetime, as in the seed config */

static long
rss_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f;

	if ((f = fopen("/proc/self/status", "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "VmRSS:", 6) == 0)
			kb = strtol(line + 6, NULL, 10);
	fclose(f);
	return kb;
}

int
main(int argc, char *argv[])
{
	struct sticky_table *t;
	struct lbd_ip ip;
	long before, after, n = STICKYSIZE_DEFAULT;
	double t0, fill, look;
	uint32_t i, hits = 0;
	int c;

	while ((c = getopt(argc, argv, "n:")) != -1) {
		if (c != 'n') {
			fprintf(stderr, "usage: stickysize [-n ENTRIES]\n");
			return 2;
		}
		n = strtol(optarg, NULL, 10);
	}
	if (n < 1 || n > (long)STICKYSIZE_MAX) {
		fprintf(stderr, "stickysize: -n must be 1-%u\n", STICKYSIZE_MAX);
		return 2;
	}
	before = rss_kb();
	if ((t = sticky_new((uint32_t)n, STICKYSIZE_TIMEOUT_S)) == NULL)
		return 1;
	t0 = bench_now_ms();
	for (i = 0; i < (uint32_t)n; i++) {
		bench_client_ip(&ip, i);
		sticky_set(t, &ip, (int)(i & 1), 1);
	}
	fill = bench_now_ms() - t0;
	after = rss_kb();
	t0 = bench_now_ms();
	for (i = 0; i < (uint32_t)n; i++) {
		bench_client_ip(&ip, i);
		hits += sticky_lookup(t, &ip, 2) >= 0;
	}
	look = bench_now_ms() - t0;
	if (hits != (uint32_t)n || sticky_count(t) != (uint32_t)n) {
		fprintf(stderr, "stickysize: %u of %ld entries found, %u counted\n", hits, n,
		    sticky_count(t));
		sticky_free(t);
		return 1;
	}
	printf("sticky: entries=%ld struct_bytes=%zu rss_bytes_per_entry=%.1f fill_ms=%.0f lookup_ns=%.0f\n",
	    n, sticky_entry_size(), (double)(after - before) * 1024.0 / (double)n, fill,
	    look * 1e6 / (double)n);
	sticky_free(t);
	return 0;
}
