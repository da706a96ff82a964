/*
 * stickyapply.c - times sticky_apply, the merge of the peer's entries, with
 * long remaining lifetimes in either order: a bulk sync or a burst of the
 * peer's changes arrives in any order, and the cost of one apply must not
 * depend on it (issue 13, point 9).
 *
 *   stickyapply [-n APPLIES] [-t TIMEOUT_S] [-d | -a]
 *
 * Apply i carries a lifetime of TIMEOUT_S - i s (-d, descending, the
 * default) or TIMEOUT_S - APPLIES + i s (-a, ascending), so every one dies
 * at a second of its own. Prints one line: "apply: n=N timeout_s=T
 * order=descending|ascending total_ms=T per_apply_us=T", and fails when the
 * table does not hold every entry with its exact lifetime afterwards.
 * Built by `make bench-tools` against lbd's own sticky.o.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lbd.h"
#include "benchutil.h"

#define APPLY_DEFAULT_N		100		/* applies when -n is not given */
#define APPLY_MAX_N		(1u << 20)	/* largest -n */
#define APPLY_DEFAULT_TIMEOUT_S	604800		/* the largest sticky_timeout_s lbd accepts */
#define APPLY_NOW		1000		/* a monotonic second well past zero */

int
main(int argc, char *argv[])
{
	struct sticky_table *t;
	struct sticky_change c;
	long		 n = APPLY_DEFAULT_N, timeout = APPLY_DEFAULT_TIMEOUT_S;
	uint64_t	 v;
	uint32_t	 i, life, bad = 0;
	double		 t0, ms;
	bool		 desc = true;
	int		 ch;

	while ((ch = getopt(argc, argv, "n:t:da")) != -1) {
		switch (ch) {
		case 'n':
			n = strtol(optarg, NULL, 10);
			break;
		case 't':
			timeout = strtol(optarg, NULL, 10);
			break;
		case 'd':
			desc = true;
			break;
		case 'a':
			desc = false;
			break;
		default:
			fprintf(stderr, "usage: stickyapply [-n APPLIES] [-t TIMEOUT_S] [-d | -a]\n");
			return 2;
		}
	}
	if (n < 1 || n > (long)APPLY_MAX_N || timeout <= n || timeout > 604800) {
		fprintf(stderr, "stickyapply: -n must be 1-%u and -t above -n, at most 604800\n",
		    APPLY_MAX_N);
		return 2;
	}
	if ((t = sticky_new((uint32_t)n, (uint32_t)timeout)) == NULL)
		return 1;
	sticky_replicate(t, NULL, NULL);
	v = sticky_version_next() + 1;
	t0 = bench_now_ms();
	for (i = 0; i < (uint32_t)n; i++) {
		life = desc ? (uint32_t)timeout - i : (uint32_t)(timeout - n) + i;
		memset(&c, 0, sizeof(c));
		bench_client_ip(&c.ip, i);
		c.backend = (int)(i & 1);
		c.expires_in_ms = life * 1000;
		c.version = v++;
		c.origin = STICKY_ORIGIN_PEER;
		if (sticky_apply(t, &c, 1, APPLY_NOW) != 1)
			bad++;
	}
	ms = bench_now_ms() - t0;
	for (i = 0; i < (uint32_t)n; i++) {
		life = desc ? (uint32_t)timeout - i : (uint32_t)(timeout - n) + i;
		bench_client_ip(&c.ip, i);
		if (sticky_expires_in(t, &c.ip, APPLY_NOW) != life)
			bad++;
	}
	if (bad > 0 || sticky_count(t) != (uint32_t)n) {
		fprintf(stderr, "stickyapply: %u entries wrong, %u counted of %ld\n", bad,
		    sticky_count(t), n);
		sticky_free(t);
		return 1;
	}
	printf("apply: n=%ld timeout_s=%ld order=%s total_ms=%.3f per_apply_us=%.3f\n", n,
	    timeout, desc ? "descending" : "ascending", ms, ms * 1e3 / (double)n);
	sticky_free(t);
	return 0;
}
