/*
 * test_clients.c - unit tests of clients.c: per-client connection counts
 * stay exact through growth, shrinking and backward-shift deletes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lbd.h"

#define NCLIENTS	5000	/* distinct addresses in the random test */
#define NSTEPS		200000	/* random adds and deletes */

static void
ip_n(struct lbd_ip *ip, uint32_t n)
{
	char	 buf[32];

	snprintf(buf, sizeof(buf), "10.%u.%u.%u", (n >> 16) & 255, (n >> 8) & 255, n & 255);
	assert_int_equal(ip_parse(buf, ip), 0);
}

static void
test_basic(void **state)
{
	struct client_table	*t;
	struct lbd_ip		 a = { { 0 } }, b, v6;

	assert_int_equal(clients_count(NULL, &a), 0);	/* no table yet: nobody */
	assert_int_equal(clients_size(NULL), 0);
	assert_non_null(t = clients_new());
	assert_int_equal(ip_parse("192.168.86.100", &a), 0);
	assert_int_equal(ip_parse("192.168.86.101", &b), 0);
	assert_int_equal(ip_parse("2001:db8::100", &v6), 0);
	assert_int_equal(clients_add(t, &a), 0);
	assert_int_equal(clients_add(t, &a), 0);
	assert_int_equal(clients_add(t, &v6), 0);
	assert_int_equal(clients_count(t, &a), 2);
	assert_int_equal(clients_count(t, &b), 0);
	assert_int_equal(clients_count(t, &v6), 1);
	assert_int_equal(clients_size(t), 2);
	clients_del(t, &a);
	assert_int_equal(clients_count(t, &a), 1);
	clients_del(t, &a);
	clients_del(t, &v6);
	assert_int_equal(clients_count(t, &a), 0);
	assert_int_equal(clients_size(t), 0);
	clients_free(t);
}

/* Random adds and deletes against a plain array: every count stays exact. */
static void
test_random(void **state)
{
	struct client_table	*t;
	struct lbd_ip		 ip;
	uint32_t		*ref, n, i, distinct = 0;
	size_t			 peak = 0;

	assert_non_null(ref = calloc(NCLIENTS, sizeof(*ref)));
	assert_non_null(t = clients_new());
	srandom(13);
	for (i = 0; i < NSTEPS; i++) {
		n = (uint32_t)random() % NCLIENTS;
		ip_n(&ip, n);
		/* Mostly adds in the first half, mostly deletes in the second. */
		if (ref[n] == 0 || (random() % 100) < (i < NSTEPS / 2 ? 70 : 20)) {
			assert_int_equal(clients_add(t, &ip), 0);
			if (ref[n]++ == 0)
				distinct++;
		} else {
			clients_del(t, &ip);
			if (--ref[n] == 0)
				distinct--;
		}
		assert_int_equal(clients_count(t, &ip), ref[n]);
		assert_int_equal(clients_size(t), distinct);
		if (clients_memory(t) > peak)
			peak = clients_memory(t);
	}
	for (n = 0; n < NCLIENTS; n++) {
		ip_n(&ip, n);
		assert_int_equal(clients_count(t, &ip), ref[n]);
		while (ref[n]-- > 0)
			clients_del(t, &ip);
	}
	assert_int_equal(clients_size(t), 0);
	/* Emptied, the table is back near its start size. */
	printf("clients: peak %zu bytes for %d clients, %zu once empty\n", peak,
	    NCLIENTS, clients_memory(t));
	assert_true(peak <= (size_t)NCLIENTS * 4 * 20 + 1024);
	assert_true(clients_memory(t) <= 64 * 20 + 128);
	clients_free(t);
	free(ref);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_random),
	};

	log_init(1, "test_clients");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
