/*
 * test_sched.c - unit tests of the scheduler: least connections with
 * weights and rotation, smooth weighted round robin, usability rules and
 * sticky selection.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lbd.h"
#include "testlbd.h"

#define T0	1000	/* a monotonic "now" well past zero */

/* A service with n backends named FTP_SVR1.., all up, enabled, weight 1. */
static struct service *
svc_new(enum sched_type sched, int n)
{
	struct service	*svc = calloc(1, sizeof(*svc));
	int		 i;

	assert_non_null(svc);
	snprintf(svc->conf.name, sizeof(svc->conf.name), "FTPS_VIP");
	svc->conf.sched = sched;
	svc->conf.sticky_timeout_s = 1800;
	svc->conf.sticky_size = 1024;
	svc->nbackends = svc->conf.nbackends = n;
	for (i = 0; i < n; i++) {
		struct backend *b = &svc->backends[i];

		snprintf(b->conf.name, sizeof(b->conf.name), "FTP_SVR%d", i + 1);
		b->conf.weight = 1;
		svc->conf.backends[i] = b->conf;
		b->service = svc;
		b->index = i;
		b->admin = BACKEND_ENABLED;
		b->up = true;
		b->checked = true;
	}
	svc->sticky = sticky_new((uint32_t)svc->conf.sticky_size,
	    (uint32_t)svc->conf.sticky_timeout_s);
	assert_non_null(svc->sticky);
	return svc;
}

static void
svc_free(struct service *svc)
{
	sticky_free(svc->sticky);
	free(svc);
}

/* Index of the picked backend, -1 for NULL. */
static int
pick(struct service *svc)
{
	struct backend *b = sched_pick(svc);

	return b == NULL ? -1 : b->index;
}

static void
test_usable(void **state)
{
	struct service	*svc = svc_new(SCHED_LEASTCONN, 1);
	struct backend	*b = &svc->backends[0];

	assert_true(backend_usable_new(b));
	assert_true(backend_usable_sticky(b));
	assert_string_equal(backend_state_str(b), "up");

	b->admin = BACKEND_DRAIN;
	assert_false(backend_usable_new(b));
	assert_true(backend_usable_sticky(b));
	assert_string_equal(backend_state_str(b), "drain");

	b->admin = BACKEND_DISABLED;
	assert_false(backend_usable_new(b));
	assert_false(backend_usable_sticky(b));
	assert_string_equal(backend_state_str(b), "disabled");

	b->admin = BACKEND_ENABLED;
	b->up = false;
	assert_false(backend_usable_new(b));
	assert_false(backend_usable_sticky(b));
	assert_string_equal(backend_state_str(b), "down");
	b->admin = BACKEND_DRAIN;
	assert_string_equal(backend_state_str(b), "down");
	b->admin = BACKEND_DISABLED;
	assert_string_equal(backend_state_str(b), "disabled");

	b->admin = BACKEND_ENABLED;
	b->up = true;
	b->conf.weight = 0;
	assert_false(backend_usable_new(b));

	assert_string_equal(backend_admin_str(BACKEND_ENABLED), "enabled");
	assert_string_equal(backend_admin_str(BACKEND_DRAIN), "drain");
	assert_string_equal(backend_admin_str(BACKEND_DISABLED), "disabled");
	svc_free(svc);
}

static void
test_leastconn_min(void **state)
{
	struct service *svc = svc_new(SCHED_LEASTCONN, 3);

	svc->backends[0].active = 5;
	svc->backends[1].active = 2;
	svc->backends[2].active = 7;
	for (int i = 0; i < 5; i++)
		assert_int_equal(pick(svc), 1);
	svc->backends[1].active = 9;
	assert_int_equal(pick(svc), 0);
	svc_free(svc);
}

static void
test_leastconn_weights(void **state)
{
	struct service	*svc = svc_new(SCHED_LEASTCONN, 2);
	int		 seen[2] = { 0, 0 };

	/* 2 active at weight 2 is the same load as 1 active at weight 1. */
	svc->backends[0].conf.weight = 2;
	svc->backends[0].active = 2;
	svc->backends[1].active = 1;
	for (int i = 0; i < 10; i++)
		seen[pick(svc)]++;
	assert_int_equal(seen[0], 5);
	assert_int_equal(seen[1], 5);

	/* 3 at weight 2 (1.5) loses to 1 at weight 1. */
	svc->backends[0].active = 3;
	assert_int_equal(pick(svc), 1);
	assert_int_equal(pick(svc), 1);
	/* 1 at weight 2 (0.5) wins over 1 at weight 1. */
	svc->backends[0].active = 1;
	assert_int_equal(pick(svc), 0);
	assert_int_equal(pick(svc), 0);

	/* With the relay counting, weight 2 gets two thirds of the connections. */
	svc->backends[0].active = svc->backends[1].active = 0;
	seen[0] = seen[1] = 0;
	for (int i = 0; i < 300; i++) {
		struct backend *b = sched_pick(svc);

		b->active++;
		seen[b->index]++;
	}
	assert_int_equal(seen[0], 200);
	assert_int_equal(seen[1], 100);
	svc_free(svc);
}

static void
test_leastconn_rotates(void **state)
{
	struct service *svc = svc_new(SCHED_LEASTCONN, 3);

	/* All idle: each pick moves on, FTP_SVR1, FTP_SVR2, FTP_SVR3, FTP_SVR1... */
	assert_int_equal(pick(svc), 0);
	assert_int_equal(pick(svc), 1);
	assert_int_equal(pick(svc), 2);
	assert_int_equal(pick(svc), 0);
	/* A down backend is skipped in the rotation. */
	svc->backends[2].up = false;
	assert_int_equal(pick(svc), 1);
	assert_int_equal(pick(svc), 0);
	assert_int_equal(pick(svc), 1);
	svc_free(svc);
}

static void
test_roundrobin_3_1(void **state)
{
	struct service	*svc = svc_new(SCHED_ROUNDROBIN, 2);
	int		 seen[2] = { 0, 0 }, first[4];

	svc->backends[0].conf.weight = 3;
	for (int i = 0; i < 400; i++) {
		int p = pick(svc);

		assert_true(p == 0 || p == 1);
		if (i < 4)
			first[i] = p;
		seen[p]++;
		/* Exact 3:1 at the end of every cycle of 4. */
		if (i % 4 == 3) {
			assert_int_equal(seen[0], 3 * (i + 1) / 4);
			assert_int_equal(seen[1], (i + 1) / 4);
		}
	}
	assert_int_equal(seen[0], 300);
	assert_int_equal(seen[1], 100);
	/* Interleaved (A A B A), not A A A B. */
	assert_int_equal(first[0], 0);
	assert_int_equal(first[1], 0);
	assert_int_equal(first[2], 1);
	assert_int_equal(first[3], 0);
	svc_free(svc);
}

static void
test_skips_unusable(void **state)
{
	enum sched_type	 types[] = { SCHED_LEASTCONN, SCHED_ROUNDROBIN };

	for (size_t k = 0; k < sizeof(types) / sizeof(types[0]); k++) {
		struct service *svc = svc_new(types[k], 4);

		svc->backends[0].up = false;
		svc->backends[1].admin = BACKEND_DISABLED;
		svc->backends[2].admin = BACKEND_DRAIN;
		for (int i = 0; i < 20; i++)
			assert_int_equal(pick(svc), 3);
		svc->backends[3].up = false;
		assert_int_equal(pick(svc), -1);
		assert_null(sched_pick(svc));
		svc_free(svc);
	}
}

static void
test_select_sticky(void **state)
{
	struct service	*svc = svc_new(SCHED_LEASTCONN, 2);
	struct lbd_ip	 c1 = tl_ip4(192, 168, 86, 100), c2 = tl_ip4(192, 168, 86, 101);
	struct backend	*b1, *b2;

	/* First client -> FTP_SVR1, the next new client -> FTP_SVR2. */
	b1 = sched_select(svc, &c1, T0);
	assert_non_null(b1);
	assert_string_equal(b1->conf.name, "FTP_SVR1");
	b2 = sched_select(svc, &c2, T0);
	assert_non_null(b2);
	assert_string_equal(b2->conf.name, "FTP_SVR2");
	/* Counters are the relay's business. */
	assert_int_equal(b1->active, 0);
	assert_int_equal(b1->total, 0);

	/* c1 keeps FTP_SVR1 on every port/connection, even when it is busier. */
	b1->active = 10;
	for (int i = 0; i < 5; i++)
		assert_ptr_equal(sched_select(svc, &c1, T0 + 100 + (uint32_t)i), b1);
	/* ... and each use refreshed the entry. */
	assert_int_equal(sticky_expires_in(svc->sticky, &c1, T0 + 104), 1800);
	assert_int_equal(sticky_lookup(svc->sticky, &c1, T0 + 1900), 0);
	assert_int_equal(sticky_count(svc->sticky), 2);
	svc_free(svc);
}

static void
test_select_repick(void **state)
{
	struct service	*svc = svc_new(SCHED_LEASTCONN, 2);
	struct lbd_ip	 c = tl_ip4(192, 168, 86, 100);
	struct backend	*b;

	b = sched_select(svc, &c, T0);
	assert_int_equal(b->index, 0);

	/* Draining: keeps its sticky client. */
	svc->backends[0].admin = BACKEND_DRAIN;
	assert_int_equal(sched_select(svc, &c, T0 + 1)->index, 0);
	/* ... but a new client goes elsewhere. */
	{
		struct lbd_ip n = tl_ip4(192, 168, 86, 200);

		assert_int_equal(sched_select(svc, &n, T0 + 1)->index, 1);
	}

	/* Down: re-pick and overwrite. */
	svc->backends[0].admin = BACKEND_ENABLED;
	svc->backends[0].up = false;
	assert_int_equal(sched_select(svc, &c, T0 + 2)->index, 1);
	assert_int_equal(sticky_lookup(svc->sticky, &c, T0 + 2), 1);
	/* Back up: the client stays on its new backend. */
	svc->backends[0].up = true;
	assert_int_equal(sched_select(svc, &c, T0 + 3)->index, 1);

	/* Disabled: re-pick and overwrite. */
	svc->backends[1].admin = BACKEND_DISABLED;
	assert_int_equal(sched_select(svc, &c, T0 + 4)->index, 0);
	assert_int_equal(sticky_lookup(svc->sticky, &c, T0 + 4), 0);

	/* Expired entry: a fresh pick, which may differ. */
	svc->backends[1].admin = BACKEND_ENABLED;
	svc->backends[0].active = 5;
	assert_int_equal(sched_select(svc, &c, T0 + 4 + 1800)->index, 1);
	svc_free(svc);
}

static void
test_select_none(void **state)
{
	struct service	*svc = svc_new(SCHED_ROUNDROBIN, 2);
	struct lbd_ip	 c = tl_ip4(192, 168, 86, 100);

	assert_non_null(sched_select(svc, &c, T0));
	svc->backends[0].up = false;
	svc->backends[1].up = false;
	assert_null(sched_select(svc, &c, T0 + 1));
	/* The stale entry is not refreshed by a failed select. */
	assert_int_equal(sticky_expires_in(svc->sticky, &c, T0 + 1), 1799);

	/* A service with no backends at all. */
	svc->nbackends = 0;
	assert_null(sched_pick(svc));
	assert_null(sched_select(svc, &c, T0 + 2));
	svc_free(svc);
}

/* A sticky entry naming a backend index the service no longer has. */
static void
test_select_stale_index(void **state)
{
	struct service	*svc = svc_new(SCHED_LEASTCONN, 2);
	struct lbd_ip	 c = tl_ip4(192, 168, 86, 100);

	sticky_set(svc->sticky, &c, 40, T0);
	assert_int_equal(sched_select(svc, &c, T0 + 1)->index, 0);
	assert_int_equal(sticky_lookup(svc->sticky, &c, T0 + 1), 0);
	svc_free(svc);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_usable),
		cmocka_unit_test(test_leastconn_min),
		cmocka_unit_test(test_leastconn_weights),
		cmocka_unit_test(test_leastconn_rotates),
		cmocka_unit_test(test_roundrobin_3_1),
		cmocka_unit_test(test_skips_unusable),
		cmocka_unit_test(test_select_sticky),
		cmocka_unit_test(test_select_repick),
		cmocka_unit_test(test_select_none),
		cmocka_unit_test(test_select_stale_index),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
