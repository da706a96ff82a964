/*
 * test_sticky.c - unit tests of the sticky table: lookup, refresh, expiry,
 * LRU eviction, key families, delete, flush, iteration and a 100k fill; and
 * its replication side: versions, dirty-list coalescing, tombstones, merge
 * rules, clears, bulk scans and expiry order with carried lifetimes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "lbd.h"
#include "testlbd.h"

#define T0	1000	/* a monotonic "now" well past zero */

/* 2001:db8::<n> as a key, n in the low 32 bits. */
static struct lbd_ip
ip6(uint32_t n)
{
	struct lbd_ip ip;

	memset(&ip, 0, sizeof(ip));
	ip.bytes[0] = 0x20;
	ip.bytes[1] = 0x01;
	ip.bytes[2] = 0x0d;
	ip.bytes[3] = 0xb8;
	ip.bytes[12] = (uint8_t)(n >> 24);
	ip.bytes[13] = (uint8_t)(n >> 16);
	ip.bytes[14] = (uint8_t)(n >> 8);
	ip.bytes[15] = (uint8_t)n;
	return ip;
}

static void
test_entry_size(void **state)
{
	printf("sticky entry: %zu bytes\n", sticky_entry_size());
	assert_true(sticky_entry_size() <= 64);
	assert_int_equal(sticky_entry_size(), 56);
}

static void
test_new_bad_size(void **state)
{
	assert_null(sticky_new(0, 10));
	assert_null(sticky_new(UINT32_MAX, 10));
}

static void
test_insert_lookup(void **state)
{
	struct sticky_table *t = sticky_new(16, 60);
	struct lbd_ip	 a = tl_ip4(10, 0, 0, 1), b = tl_ip4(10, 0, 0, 2);

	assert_non_null(t);
	assert_int_equal(sticky_timeout(t), 60);
	assert_int_equal(sticky_lookup(t, &a, T0), -1);
	sticky_set(t, &a, 3, T0);
	sticky_set(t, &b, 0, T0);
	assert_int_equal(sticky_lookup(t, &a, T0), 3);
	assert_int_equal(sticky_lookup(t, &b, T0 + 1), 0);
	assert_int_equal(sticky_count(t), 2);
	/* Overwrite keeps one entry. */
	sticky_set(t, &a, 1, T0 + 2);
	assert_int_equal(sticky_lookup(t, &a, T0 + 2), 1);
	assert_int_equal(sticky_count(t), 2);
	sticky_free(t);
}

static void
test_refresh_moves_expiry(void **state)
{
	struct sticky_table *t = sticky_new(16, 10);
	struct lbd_ip	 a = tl_ip4(10, 0, 0, 1);

	sticky_set(t, &a, 2, T0);
	assert_int_equal(sticky_expires_in(t, &a, T0), 10);
	assert_int_equal(sticky_expires_in(t, &a, T0 + 4), 6);
	/* Lookup does not refresh. */
	assert_int_equal(sticky_lookup(t, &a, T0 + 8), 2);
	assert_int_equal(sticky_expires_in(t, &a, T0 + 8), 2);
	sticky_set(t, &a, 2, T0 + 8);
	assert_int_equal(sticky_expires_in(t, &a, T0 + 8), 10);
	/* Alive past the first deadline thanks to the refresh. */
	assert_int_equal(sticky_lookup(t, &a, T0 + 15), 2);
	assert_int_equal(sticky_lookup(t, &a, T0 + 18), -1);
	sticky_free(t);
}

static void
test_expiry_exact(void **state)
{
	struct sticky_table *t = sticky_new(16, 10);
	struct lbd_ip	 a = tl_ip4(10, 0, 0, 1);

	sticky_set(t, &a, 5, T0);
	assert_int_equal(sticky_lookup(t, &a, T0 + 9), 5);
	assert_int_equal(sticky_expires_in(t, &a, T0 + 9), 1);
	assert_int_equal(sticky_expires_in(t, &a, T0 + 10), -1);
	assert_int_equal(sticky_lookup(t, &a, T0 + 10), -1);
	/* The expired entry was removed by the lookup. */
	assert_int_equal(sticky_count(t), 0);
	sticky_free(t);
}

static void
test_expire_sweep(void **state)
{
	struct sticky_table *t = sticky_new(16, 10);
	struct lbd_ip	 a = tl_ip4(10, 0, 0, 1), b = tl_ip4(10, 0, 0, 2);
	struct lbd_ip	 c = tl_ip4(10, 0, 0, 3), d = tl_ip4(10, 0, 0, 4);

	sticky_set(t, &a, 0, T0);	/* dies at T0+10 */
	sticky_set(t, &b, 0, T0 + 1);	/* T0+11 */
	sticky_set(t, &c, 0, T0 + 2);	/* T0+12 */
	sticky_set(t, &d, 0, T0 + 5);	/* T0+15 */
	assert_int_equal(sticky_expire(t, T0 + 9), 0);
	assert_int_equal(sticky_count(t), 4);
	assert_int_equal(sticky_expire(t, T0 + 11), 2);
	assert_int_equal(sticky_count(t), 2);
	assert_int_equal(sticky_lookup(t, &a, T0 + 11), -1);
	assert_int_equal(sticky_lookup(t, &b, T0 + 11), -1);
	assert_int_equal(sticky_lookup(t, &c, T0 + 11), 0);
	assert_int_equal(sticky_lookup(t, &d, T0 + 11), 0);
	assert_int_equal(sticky_expire(t, T0 + 100), 2);
	assert_int_equal(sticky_count(t), 0);
	assert_int_equal(sticky_expire(t, T0 + 100), 0);
	/* Removals do not count as evictions. */
	assert_int_equal(sticky_evictions(t), 0);
	/* The freed slots are reusable. */
	sticky_set(t, &a, 1, T0 + 100);
	assert_int_equal(sticky_lookup(t, &a, T0 + 100), 1);
	sticky_free(t);
}

static void
test_lru_eviction(void **state)
{
	struct sticky_table *t = sticky_new(3, 100);
	struct lbd_ip	 a = tl_ip4(10, 0, 0, 1), b = tl_ip4(10, 0, 0, 2);
	struct lbd_ip	 c = tl_ip4(10, 0, 0, 3), d = tl_ip4(10, 0, 0, 4);
	struct lbd_ip	 e = tl_ip4(10, 0, 0, 5);

	sticky_set(t, &a, 1, T0);
	sticky_set(t, &b, 2, T0 + 1);
	sticky_set(t, &c, 3, T0 + 2);
	/* a was inserted first but is used again: b is now the LRU. */
	sticky_set(t, &a, 1, T0 + 3);
	sticky_set(t, &d, 4, T0 + 4);
	assert_int_equal(sticky_count(t), 3);
	assert_int_equal(sticky_evictions(t), 1);
	assert_int_equal(sticky_lookup(t, &b, T0 + 4), -1);
	assert_int_equal(sticky_lookup(t, &a, T0 + 4), 1);
	assert_int_equal(sticky_lookup(t, &c, T0 + 4), 3);
	assert_int_equal(sticky_lookup(t, &d, T0 + 4), 4);
	/* Next to go is c (lookups do not count as use). */
	sticky_set(t, &e, 5, T0 + 5);
	assert_int_equal(sticky_evictions(t), 2);
	assert_int_equal(sticky_lookup(t, &c, T0 + 5), -1);
	assert_int_equal(sticky_lookup(t, &e, T0 + 5), 5);
	/* A full table whose LRU entry has expired reuses it without an eviction. */
	sticky_set(t, &b, 2, T0 + 200);
	assert_int_equal(sticky_evictions(t), 2);
	assert_int_equal(sticky_lookup(t, &b, T0 + 200), 2);
	sticky_free(t);
}

static void
test_families_distinct(void **state)
{
	struct sticky_table *t = sticky_new(16, 100);
	struct lbd_ip	 v4 = tl_ip4(1, 2, 3, 4), v6 = ip6(0x01020304), compat;

	/* ::1.2.3.4 (no ffff) shares the low 4 bytes too. */
	memset(&compat, 0, sizeof(compat));
	memcpy(&compat.bytes[12], &v4.bytes[12], 4);
	sticky_set(t, &v4, 1, T0);
	assert_int_equal(sticky_lookup(t, &v6, T0), -1);
	assert_int_equal(sticky_lookup(t, &compat, T0), -1);
	sticky_set(t, &v6, 2, T0);
	sticky_set(t, &compat, 3, T0);
	assert_int_equal(sticky_count(t), 3);
	assert_int_equal(sticky_lookup(t, &v4, T0), 1);
	assert_int_equal(sticky_lookup(t, &v6, T0), 2);
	assert_int_equal(sticky_lookup(t, &compat, T0), 3);
	sticky_free(t);
}

static void
test_delete(void **state)
{
	struct sticky_table *t = sticky_new(4, 100);
	struct lbd_ip	 a = tl_ip4(10, 0, 0, 1), b = ip6(7);

	sticky_set(t, &a, 1, T0);
	sticky_set(t, &b, 2, T0);
	assert_int_equal(sticky_delete(t, &a), 1);
	assert_int_equal(sticky_delete(t, &a), 0);
	assert_int_equal(sticky_lookup(t, &a, T0), -1);
	assert_int_equal(sticky_expires_in(t, &a, T0), -1);
	assert_int_equal(sticky_lookup(t, &b, T0), 2);
	assert_int_equal(sticky_count(t), 1);
	assert_int_equal(sticky_delete(t, &b), 1);
	assert_int_equal(sticky_count(t), 0);
	/* Deleted slots are reused: fill to capacity with no eviction. */
	for (uint8_t i = 0; i < 4; i++) {
		struct lbd_ip ip = tl_ip4(10, 1, 0, i);

		sticky_set(t, &ip, i, T0);
	}
	assert_int_equal(sticky_count(t), 4);
	assert_int_equal(sticky_evictions(t), 0);
	sticky_free(t);
}

static void
test_flush(void **state)
{
	struct sticky_table *t = sticky_new(8, 100);

	for (uint8_t i = 0; i < 8; i++) {
		struct lbd_ip ip = tl_ip4(10, 2, 0, i);

		sticky_set(t, &ip, i, T0);
	}
	assert_int_equal(sticky_count(t), 8);
	sticky_flush(t);
	assert_int_equal(sticky_count(t), 0);
	for (uint8_t i = 0; i < 8; i++) {
		struct lbd_ip ip = tl_ip4(10, 2, 0, i);

		assert_int_equal(sticky_lookup(t, &ip, T0), -1);
	}
	/* Usable after a flush, to full capacity, no eviction. */
	for (uint8_t i = 0; i < 8; i++) {
		struct lbd_ip ip = tl_ip4(10, 3, 0, i);

		sticky_set(t, &ip, 1, T0);
	}
	assert_int_equal(sticky_count(t), 8);
	assert_int_equal(sticky_evictions(t), 0);
	sticky_free(t);
}

/* What sticky_foreach reported. */
struct seen {
	struct lbd_ip	 ip[8];		/* clients, in call order */
	int		 backend[8];	/* their backends */
	uint32_t	 expires_in[8];	/* their remaining seconds */
	int		 n;		/* calls */
};

static void
collect(const struct lbd_ip *ip, int backend, uint32_t expires_in_s, void *arg)
{
	struct seen *s = arg;

	assert_true(s->n < 8);
	s->ip[s->n] = *ip;
	s->backend[s->n] = backend;
	s->expires_in[s->n] = expires_in_s;
	s->n++;
}

static void
test_foreach(void **state)
{
	struct sticky_table *t = sticky_new(8, 10);
	struct lbd_ip	 a = tl_ip4(10, 0, 0, 1), b = tl_ip4(10, 0, 0, 2);
	struct lbd_ip	 c = ip6(3), d = tl_ip4(10, 0, 0, 4);
	struct seen	 s;

	sticky_set(t, &d, 9, T0 - 20);	/* expired by T0 */
	sticky_set(t, &a, 1, T0);
	sticky_set(t, &b, 2, T0 + 1);
	sticky_set(t, &c, 3, T0 + 2);
	sticky_set(t, &a, 1, T0 + 3);	/* a becomes most recent */

	memset(&s, 0, sizeof(s));
	sticky_foreach(t, T0 + 4, collect, &s);
	assert_int_equal(s.n, 3);
	assert_memory_equal(&s.ip[0], &a, sizeof(a));
	assert_memory_equal(&s.ip[1], &c, sizeof(c));
	assert_memory_equal(&s.ip[2], &b, sizeof(b));
	assert_int_equal(s.backend[0], 1);
	assert_int_equal(s.backend[1], 3);
	assert_int_equal(s.backend[2], 2);
	assert_int_equal(s.expires_in[0], 9);
	assert_int_equal(s.expires_in[1], 8);
	assert_int_equal(s.expires_in[2], 7);

	/* Later, b has expired and is skipped. */
	memset(&s, 0, sizeof(s));
	sticky_foreach(t, T0 + 11, collect, &s);
	assert_int_equal(s.n, 2);
	assert_memory_equal(&s.ip[0], &a, sizeof(a));
	assert_memory_equal(&s.ip[1], &c, sizeof(c));
	assert_int_equal(s.expires_in[0], 2);
	assert_int_equal(s.expires_in[1], 1);
	sticky_free(t);
}

static uint64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

#define BIG	100000	/* entries in the fill test */
#define ROUNDS	10	/* lookups of every entry when timing */

static void
test_fill_100k(void **state)
{
	struct sticky_table *t = sticky_new(BIG, 1800);
	uint64_t	 t0, t1;
	long		 hits = 0;

	assert_non_null(t);
	t0 = mono_ns();
	for (uint32_t i = 0; i < BIG; i++) {
		struct lbd_ip ip = i % 2 ? ip6(i) : tl_ip4(10, (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i);

		sticky_set(t, &ip, (int)(i % 64), T0);
	}
	t1 = mono_ns();
	printf("sticky: %d inserts, %.1f ns/insert\n", BIG, (double)(t1 - t0) / BIG);
	assert_int_equal(sticky_count(t), BIG);
	assert_int_equal(sticky_evictions(t), 0);

	t0 = mono_ns();
	for (int r = 0; r < ROUNDS; r++)
		for (uint32_t i = 0; i < BIG; i++) {
			struct lbd_ip ip = i % 2 ? ip6(i) : tl_ip4(10, (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i);

			if (sticky_lookup(t, &ip, T0 + 1) == (int)(i % 64))
				hits++;
		}
	t1 = mono_ns();
	printf("sticky: %d lookups in a %d-entry table, %.1f ns/lookup (ASan build)\n",
	    BIG * ROUNDS, BIG, (double)(t1 - t0) / (BIG * ROUNDS));
	assert_int_equal(hits, (long)BIG * ROUNDS);

	/* Misses. */
	for (uint32_t i = 0; i < 1000; i++) {
		struct lbd_ip ip = tl_ip4(172, 16, (uint8_t)(i >> 8), (uint8_t)i);

		assert_int_equal(sticky_lookup(t, &ip, T0 + 1), -1);
	}

	/* One more evicts exactly one, the oldest (i == 0). */
	{
		struct lbd_ip extra = ip6(0xffffffff), first = tl_ip4(10, 0, 0, 0);

		sticky_set(t, &extra, 7, T0 + 2);
		assert_int_equal(sticky_count(t), BIG);
		assert_int_equal(sticky_evictions(t), 1);
		assert_int_equal(sticky_lookup(t, &first, T0 + 2), -1);
		assert_int_equal(sticky_lookup(t, &extra, T0 + 2), 7);
	}

	/* All but the newest expire in one sweep. */
	assert_int_equal(sticky_expire(t, T0 + 1800), BIG - 1);
	assert_int_equal(sticky_count(t), 1);
	sticky_free(t);
}

/* ---------------------------------------------------------------- replication */

/* How often the dirty notifier ran. */
static int notified;

static void
count_notify(void *arg)
{
	notified++;
	assert_ptr_equal(arg, &notified);
}

/* A replicating table with the counting notifier. */
static struct sticky_table *
repl_new(uint32_t size, uint32_t timeout)
{
	struct sticky_table *t = sticky_new(size, timeout);

	assert_non_null(t);
	notified = 0;
	sticky_replicate(t, count_notify, &notified);
	return t;
}

/* A change from the peer. */
static struct sticky_change
remote(struct lbd_ip ip, int backend, uint32_t ms, uint64_t version, int origin)
{
	struct sticky_change c;

	memset(&c, 0, sizeof(c));
	c.ip = ip;
	c.backend = backend;
	c.expires_in_ms = ms;
	c.version = version;
	c.origin = origin;
	return c;
}

static void
test_version_origin_stored(void **state)
{
	struct sticky_table *t = repl_new(16, 100);
	struct lbd_ip	 a = tl_ip4(10, 0, 0, 1), b = tl_ip4(10, 0, 0, 2);
	struct sticky_change out[4];
	struct timespec	 ts;
	uint64_t	 v0;

	clock_gettime(CLOCK_REALTIME, &ts);
	v0 = ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000) << 16;
	sticky_set(t, &a, 3, T0);
	sticky_set(t, &b, 4, T0);
	assert_int_equal(notified, 1);	/* empty -> non-empty once */
	assert_int_equal(sticky_dirty_count(t), 2);
	assert_int_equal(sticky_take_dirty(t, T0, out, 4), 2);
	assert_memory_equal(&out[0].ip, &a, sizeof(a));	/* oldest first */
	assert_int_equal(out[0].backend, 3);
	assert_int_equal(out[0].origin, STICKY_ORIGIN_SELF);
	assert_int_equal(out[0].expires_in_ms, 100000);
	assert_true(out[0].version >= v0);
	/* Versions are unique and grow even within one millisecond. */
	assert_true(out[1].version > out[0].version);
	assert_int_equal(sticky_dirty_count(t), 0);
	/* The clock moves past any version received. */
	sticky_version_seen(out[1].version + 1000000);
	assert_true(sticky_version_next() > out[1].version + 1000000);
	sticky_free(t);
}

static void
test_dirty_coalescing(void **state)
{
	struct sticky_table *t = repl_new(16, 1800);
	struct lbd_ip	 a = tl_ip4(10, 0, 0, 1);
	struct sticky_change out[4];
	uint64_t	 v;

	for (int i = 0; i < 100; i++)
		sticky_set(t, &a, 1, T0 + (uint32_t)i);
	assert_int_equal(sticky_dirty_count(t), 1);
	assert_int_equal(notified, 1);
	assert_int_equal(sticky_take_dirty(t, T0 + 100, out, 4), 1);
	v = out[0].version;
	/* Refreshes moving the expiry less than 1% of the timeout (18 s) wait. */
	sticky_set(t, &a, 1, T0 + 110);
	sticky_set(t, &a, 1, T0 + 116);
	assert_int_equal(sticky_dirty_count(t), 0);
	/* 18 s past what the peer has: sent. */
	sticky_set(t, &a, 1, T0 + 117);
	assert_int_equal(sticky_dirty_count(t), 1);
	assert_int_equal(sticky_take_dirty(t, T0 + 117, out, 4), 1);
	assert_true(out[0].version > v);
	assert_int_equal(out[0].expires_in_ms, 1800000);
	/* A re-pick is sent at once. */
	sticky_set(t, &a, 2, T0 + 118);
	assert_int_equal(sticky_dirty_count(t), 1);
	assert_int_equal(sticky_take_dirty(t, T0 + 118, out, 4), 1);
	assert_int_equal(out[0].backend, 2);
	/* An expired dirty entry is not sent. */
	sticky_set(t, &a, 3, T0 + 119);
	assert_int_equal(sticky_take_dirty(t, T0 + 119 + 1800, out, 4), 0);
	assert_int_equal(notified, 4);
	sticky_free(t);
}

static void
test_dirty_bounded(void **state)
{
	struct sticky_table *t = repl_new(64, 100);
	struct sticky_change out[64];

	/* 1000 clients through a 64-slot table: never more than 64 pending. */
	for (uint32_t i = 0; i < 1000; i++) {
		struct lbd_ip ip = ip6(i);

		sticky_set(t, &ip, 1, T0);
		assert_true(sticky_dirty_count(t) <= 64);
	}
	assert_int_equal(sticky_dirty_count(t), 64);
	assert_int_equal(sticky_take_dirty(t, T0, out, 10), 10);
	assert_int_equal(sticky_dirty_count(t), 54);
	sticky_dirty_clear(t);
	assert_int_equal(sticky_dirty_count(t), 0);
	/* Cleared marks count as sent: a small refresh stays quiet. */
	{
		struct lbd_ip ip = ip6(999);

		sticky_set(t, &ip, 1, T0);
		assert_int_equal(sticky_dirty_count(t), 0);
	}
	sticky_free(t);
}

static void
test_no_tracking_by_default(void **state)
{
	struct sticky_table *t = sticky_new(16, 100);
	struct lbd_ip	 a = tl_ip4(10, 0, 0, 1);

	sticky_set(t, &a, 1, T0);
	assert_int_equal(sticky_dirty_count(t), 0);
	assert_int_equal(sticky_delete(t, &a), 1);
	assert_int_equal(sticky_count(t), 0);
	sticky_free(t);
}

static void
test_delete_tombstone(void **state)
{
	struct sticky_table *t = repl_new(4, 100);
	struct lbd_ip	 a = tl_ip4(10, 0, 0, 1);
	struct sticky_change out[4], c;
	uint64_t	 vset;

	sticky_set(t, &a, 2, T0);
	assert_int_equal(sticky_take_dirty(t, T0, out, 4), 1);
	vset = out[0].version;
	assert_int_equal(sticky_delete(t, &a), 1);
	assert_int_equal(sticky_delete(t, &a), 0);
	assert_int_equal(sticky_count(t), 0);
	assert_int_equal(sticky_lookup(t, &a, T0 + 1), -1);
	assert_int_equal(sticky_expires_in(t, &a, T0 + 1), -1);
	assert_int_equal(sticky_take_dirty(t, T0 + 1, out, 4), 1);
	assert_int_equal(out[0].backend, -1);
	assert_true(out[0].version > vset);
	assert_int_equal(out[0].expires_in_ms, 99000);
	/* The peer's older copy (say, from its bulk) does not come back. */
	c = remote(a, 2, 50000, vset, STICKY_ORIGIN_PEER);
	assert_int_equal(sticky_apply(t, &c, 1, T0 + 2), 0);
	assert_int_equal(sticky_lookup(t, &a, T0 + 2), -1);
	/* A newer set does. */
	c = remote(a, 3, 50000, out[0].version + 1, STICKY_ORIGIN_PEER);
	assert_int_equal(sticky_apply(t, &c, 1, T0 + 2), 1);
	assert_int_equal(sticky_lookup(t, &a, T0 + 2), 3);
	assert_int_equal(sticky_count(t), 1);
	/* A local set over a tombstone is a create. */
	assert_int_equal(sticky_delete(t, &a), 1);
	sticky_set(t, &a, 1, T0 + 3);
	assert_int_equal(sticky_lookup(t, &a, T0 + 3), 1);
	assert_int_equal(sticky_count(t), 1);
	/* The tombstone of a dead entry is swept without counting. */
	assert_int_equal(sticky_delete(t, &a), 1);
	assert_int_equal(sticky_expire(t, T0 + 1000), 0);
	assert_int_equal(sticky_dirty_count(t), 0);
	sticky_free(t);
}

/* A full table keeps a delete it has not sent: eviction takes the next entry. */
static void
test_evict_spares_unsent(void **state)
{
	struct sticky_table *t = repl_new(4, 100);
	struct sticky_change out[8];
	struct lbd_ip	 ip[6];
	int		 i;

	(void)state;
	for (i = 0; i < 6; i++)
		ip[i] = tl_ip4(10, 0, 1, (uint8_t)i);
	for (i = 0; i < 4; i++)
		sticky_set(t, &ip[i], 1, T0 + (uint32_t)i);
	assert_int_equal(sticky_take_dirty(t, T0 + 4, out, 8), 4);
	/* The oldest entry, the LRU tail, is deleted: its tombstone is pending. */
	assert_int_equal(sticky_delete(t, &ip[0]), 1);
	sticky_set(t, &ip[4], 1, T0 + 5);
	assert_int_equal(sticky_evictions(t), 1);
	assert_int_equal(sticky_lookup(t, &ip[1], T0 + 5), -1);	/* the one given up */
	assert_int_equal(sticky_take_dirty(t, T0 + 5, out, 8), 2);
	assert_memory_equal(out[0].ip.bytes, ip[0].bytes, sizeof(ip[0].bytes));
	assert_int_equal(out[0].backend, -1);				/* the delete goes out */
	assert_memory_equal(out[1].ip.bytes, ip[4].bytes, sizeof(ip[4].bytes));
	/* With every entry pending, the tail goes after all. */
	for (i = 0; i < 4; i++)
		sticky_set(t, &ip[i], 2, T0 + 6);
	sticky_set(t, &ip[5], 2, T0 + 7);
	assert_int_equal(sticky_count(t), 4);
	assert_int_equal(sticky_lookup(t, &ip[5], T0 + 7), 2);
	sticky_free(t);
}

static void
test_merge_rules(void **state)
{
	struct sticky_table *t = repl_new(16, 100);
	struct lbd_ip	 a = tl_ip4(10, 0, 0, 1), b = tl_ip4(10, 0, 0, 2);
	struct sticky_change out[4], c;
	uint64_t	 v;

	sticky_set(t, &a, 1, T0);
	assert_int_equal(sticky_take_dirty(t, T0, out, 4), 1);
	v = out[0].version;
	/* Older loses. */
	c = remote(a, 2, 10000, v - 1, STICKY_ORIGIN_PEER);
	assert_int_equal(sticky_apply(t, &c, 1, T0), 0);
	assert_int_equal(sticky_lookup(t, &a, T0), 1);
	/* Equal version: the greater node name wins; the peer's is smaller here. */
	c = remote(a, 2, 10000, v, STICKY_ORIGIN_PEER);
	assert_int_equal(sticky_apply(t, &c, -1, T0), 0);
	assert_int_equal(sticky_lookup(t, &a, T0), 1);
	/* ... and greater here. */
	assert_int_equal(sticky_apply(t, &c, 1, T0), 1);
	assert_int_equal(sticky_lookup(t, &a, T0), 2);
	assert_int_equal(sticky_expires_in(t, &a, T0), 10);
	/* The same change again is a no-op (same version, same origin). */
	assert_int_equal(sticky_apply(t, &c, 1, T0), 0);
	/* Applying is not a local change: nothing to echo back. */
	assert_int_equal(sticky_dirty_count(t), 0);
	/* Newer wins; a lifetime longer than our timeout is cut to it. */
	c = remote(a, 4, 500000, v + 5, STICKY_ORIGIN_PEER);
	assert_int_equal(sticky_apply(t, &c, 1, T0 + 1), 1);
	assert_int_equal(sticky_lookup(t, &a, T0 + 1), 4);
	assert_int_equal(sticky_expires_in(t, &a, T0 + 1), 100);
	/* A newer delete removes, an older one does not. */
	c = remote(a, -1, 0, v + 4, STICKY_ORIGIN_PEER);
	assert_int_equal(sticky_apply(t, &c, 1, T0 + 1), 0);
	assert_int_equal(sticky_lookup(t, &a, T0 + 1), 4);
	c = remote(a, -1, 0, v + 6, STICKY_ORIGIN_PEER);
	assert_int_equal(sticky_apply(t, &c, 1, T0 + 1), 1);
	assert_int_equal(sticky_lookup(t, &a, T0 + 1), -1);
	assert_int_equal(sticky_count(t), 0);
	/* A delete of an unknown client with no lifetime leaves nothing. */
	c = remote(b, -1, 0, v + 7, STICKY_ORIGIN_PEER);
	assert_int_equal(sticky_apply(t, &c, 1, T0 + 1), 1);
	/* With a lifetime it leaves a tombstone that blocks older sets. */
	c = remote(b, -1, 30000, v + 8, STICKY_ORIGIN_PEER);
	assert_int_equal(sticky_apply(t, &c, 1, T0 + 1), 1);
	c = remote(b, 1, 30000, v + 7, STICKY_ORIGIN_PEER);
	assert_int_equal(sticky_apply(t, &c, 1, T0 + 1), 0);
	assert_int_equal(sticky_lookup(t, &b, T0 + 1), -1);
	assert_int_equal(sticky_count(t), 0);
	/* A local change after applying a remote one gets a newer version. */
	sticky_set(t, &a, 5, T0 + 2);
	assert_int_equal(sticky_take_dirty(t, T0 + 2, out, 4), 1);
	assert_true(out[0].version > v + 8);
	sticky_free(t);
}

static void
test_clear_floor(void **state)
{
	struct sticky_table *t = repl_new(16, 100);
	struct lbd_ip	 a = tl_ip4(10, 0, 0, 1), b = tl_ip4(10, 0, 0, 2);
	struct sticky_change c;
	uint64_t	 v;

	sticky_set(t, &a, 1, T0);
	v = sticky_version_next();
	sticky_set(t, &b, 2, T0);	/* newer than the clear */
	assert_int_equal(sticky_clear(t, v, STICKY_ORIGIN_PEER, 1), 1);
	assert_int_equal(sticky_lookup(t, &a, T0), -1);
	assert_int_equal(sticky_lookup(t, &b, T0), 2);
	/* An older entry arriving after the clear stays out. */
	c = remote(a, 1, 10000, v - 1, STICKY_ORIGIN_PEER);
	assert_int_equal(sticky_apply(t, &c, 1, T0), 0);
	assert_int_equal(sticky_count(t), 1);
	c = remote(a, 1, 10000, v + 1, STICKY_ORIGIN_PEER);
	assert_int_equal(sticky_apply(t, &c, 1, T0), 1);
	assert_int_equal(sticky_count(t), 2);
	/* A local clear takes everything (fresh version) and the slots are free. */
	assert_int_equal(sticky_clear(t, sticky_version_next(), STICKY_ORIGIN_SELF, 1), 2);
	assert_int_equal(sticky_count(t), 0);
	for (uint32_t i = 0; i < 16; i++) {
		struct lbd_ip ip = ip6(i);

		sticky_set(t, &ip, 1, T0);
	}
	assert_int_equal(sticky_evictions(t), 0);
	sticky_free(t);
}

static void
test_scan(void **state)
{
	struct sticky_table *t = repl_new(200000, 100);
	struct sticky_change *out = calloc(1000, sizeof(*out));
	uint32_t	 cursor = 0, n, total = 0, calls = 0;
	bool		 done = false;

	assert_non_null(out);
	/* 150000 entries dead by scan time, then 1500 live ones after them. */
	for (uint32_t i = 0; i < 150000; i++) {
		struct lbd_ip ip = ip6(100000 + i);

		sticky_set(t, &ip, 1, T0 - 200);
	}
	for (uint32_t i = 0; i < 1500; i++) {
		struct lbd_ip ip = ip6(i);

		sticky_set(t, &ip, 1, T0);
	}
	{
		struct lbd_ip ip = ip6(7);

		assert_int_equal(sticky_delete(t, &ip), 1);	/* scanned as a tombstone */
	}
	while (!done) {
		n = sticky_scan(t, &cursor, T0 + 1, out, 1000, &done);
		assert_true(n <= 1000);
		for (uint32_t i = 0; i < n; i++)
			assert_int_equal(out[i].expires_in_ms, 99000);
		total += n;
		calls++;
		assert_true(calls < 100);
	}
	assert_int_equal(total, 1500);
	/* Slots visited per call are bounded: 151500 used slots take several calls. */
	assert_true(calls >= 151500 / 65536);
	free(out);
	sticky_free(t);
}

/* Reference model of one client for the mixed-lifetime test. */
struct model {
	bool		 present;	/* set and not deleted */
	uint32_t	 expires;	/* when it dies */
};

#define MIX_CLIENTS	500	/* clients in the mixed-lifetime test */
#define MIX_STEPS	20000	/* operations in it */

static void
test_expiry_mixed_lifetimes(void **state)
{
	struct sticky_table *t = repl_new(MIX_CLIENTS, 60);
	struct model	*m = calloc(MIX_CLIENTS, sizeof(*m));
	uint32_t	 now = T0, live, expected;
	uint64_t	 v = sticky_version_next() + 1000000;

	assert_non_null(m);
	/* A small hand-made case first: remote entries sorted in by expiry. */
	{
		struct lbd_ip	 a = tl_ip4(1, 0, 0, 1), b = tl_ip4(1, 0, 0, 2), c = tl_ip4(1, 0, 0, 3);
		struct sticky_change ch;

		sticky_set(t, &a, 0, now);		/* dies at now+60 */
		ch = remote(b, 1, 5000, v++, STICKY_ORIGIN_PEER);	/* now+5 */
		assert_int_equal(sticky_apply(t, &ch, 1, now), 1);
		ch = remote(c, 1, 30000, v++, STICKY_ORIGIN_PEER);	/* now+30 */
		assert_int_equal(sticky_apply(t, &ch, 1, now), 1);
		assert_int_equal(sticky_expire(t, now + 4), 0);
		assert_int_equal(sticky_expire(t, now + 5), 1);
		assert_int_equal(sticky_lookup(t, &c, now + 5), 1);
		assert_int_equal(sticky_expire(t, now + 30), 1);
		assert_int_equal(sticky_count(t), 1);
		assert_int_equal(sticky_lookup(t, &a, now + 30), 0);
		sticky_flush(t);
	}
	srandom(42);
	for (int step = 0; step < MIX_STEPS; step++) {
		uint32_t	 i = (uint32_t)random() % MIX_CLIENTS;
		struct lbd_ip	 ip = ip6(i);
		int		 op = (int)(random() % 10);

		if (random() % 8 == 0)
			now++;
		if (op < 4) {
			sticky_set(t, &ip, 1, now);
			m[i].present = true;
			m[i].expires = now + 60;
		} else if (op < 9) {
			uint32_t ms = 1 + (uint32_t)(random() % 60000);
			struct sticky_change c = remote(ip, 2, ms, sticky_version_next(),
			    STICKY_ORIGIN_PEER);

			assert_int_equal(sticky_apply(t, &c, 1, now), 1);
			m[i].present = true;
			m[i].expires = now + (ms + 999) / 1000;
		} else {
			sticky_delete(t, &ip);
			m[i].present = false;
		}
		if (step % 16 == 0) {
			sticky_expire(t, now);
			/* After a sweep, the table holds exactly the live entries. */
			for (i = 0, expected = 0; i < MIX_CLIENTS; i++) {
				if (m[i].present && m[i].expires <= now)
					m[i].present = false;
				if (m[i].present)
					expected++;
			}
			assert_int_equal(sticky_count(t), expected);
		}
	}
	/* Every survivor is found with its exact lifetime. */
	sticky_expire(t, now);
	for (uint32_t i = 0, n = 0; i < MIX_CLIENTS; i++) {
		struct lbd_ip ip = ip6(i);

		if (m[i].present && m[i].expires > now) {
			assert_int_equal(sticky_expires_in(t, &ip, now), m[i].expires - now);
			n++;
		} else
			assert_int_equal(sticky_expires_in(t, &ip, now), -1);
		(void)n;
	}
	/* One sweep far ahead empties it. */
	live = sticky_count(t);
	assert_int_equal(sticky_expire(t, now + 61), live);
	assert_int_equal(sticky_count(t), 0);
	free(m);
	sticky_free(t);
}

#define SWEEP_N		50000	/* entries older than the clear in the sweep test */
#define SWEEP_SLOTS	2048	/* STICKY_CLEAR_SLOTS: slots sticky_clear sweeps itself */

/* Counts what a walk reports, for the sweep test. */
static void
count_one(const struct lbd_ip *ip, int backend, uint32_t expires_in_s, void *arg)
{
	(*(uint32_t *)arg)++;
}

/*
 * A clear that some entries outlive (written after it) does not remove
 * 50000 entries in one go: one bounded step now, the rest by
 * sticky_clear_step; meanwhile the entries it covers are gone to every
 * lookup, walk, replication and merge. A clear newer than everything
 * empties the table at once.
 */
static void
test_clear_sweep(void **state)
{
	struct sticky_table *t = repl_new(SWEEP_N + 10, 100);
	struct lbd_ip	 late = tl_ip4(10, 9, 9, 9), old = ip6(40000);
	struct sticky_change c, out[16];
	uint32_t	 i, n, seen = 0, cursor = 0, steps = 0, removed;
	uint64_t	 v, v_old;
	bool		 done;

	for (i = 0; i < SWEEP_N; i++) {
		struct lbd_ip ip = ip6(i);

		sticky_set(t, &ip, 1, T0);
	}
	v_old = sticky_version_next();
	v = sticky_version_next();
	sticky_set(t, &late, 2, T0);		/* newer than the clear: stays */
	removed = sticky_clear(t, v, STICKY_ORIGIN_PEER, 1);
	assert_true(removed <= SWEEP_SLOTS);
	assert_true(sticky_clear_pending(t));

	/* Not swept yet, gone all the same. */
	assert_int_equal(sticky_lookup(t, &old, T0), -1);
	old = ip6(40001);
	assert_int_equal(sticky_expires_in(t, &old, T0), -1);
	sticky_foreach(t, T0, count_one, &seen);
	assert_int_equal(seen, 1);
	seen = 0;
	done = sticky_foreach_slots(t, &cursor, T0, UINT32_MAX, UINT32_MAX, count_one, &seen);
	assert_true(done);
	assert_int_equal(seen, 1);
	n = sticky_take_dirty(t, T0, out, 16);
	assert_int_equal(n, 1);
	assert_memory_equal(out[0].ip.bytes, late.bytes, sizeof(late.bytes));
	/* The peer's copy older than the clear stays out; a newer one goes in. */
	old = ip6(40002);
	c = remote(old, 1, 10000, v_old, STICKY_ORIGIN_PEER);
	assert_int_equal(sticky_apply(t, &c, 1, T0), 0);
	old = ip6(40003);
	c = remote(old, 1, 10000, v + 1, STICKY_ORIGIN_PEER);
	assert_int_equal(sticky_apply(t, &c, 1, T0), 1);
	/* A local set brings a covered client back as a new entry. */
	old = ip6(40004);
	sticky_set(t, &old, 0, T0);
	assert_int_equal(sticky_lookup(t, &old, T0), 0);

	while (sticky_clear_pending(t)) {
		removed += sticky_clear_step(t, SWEEP_SLOTS);
		assert_true(++steps < 100);	/* 50000 / 2048: 25 */
	}
	/* The rest in bounded steps; the 5 met above had gone already. */
	assert_true(steps >= (SWEEP_N - SWEEP_SLOTS) / SWEEP_SLOTS);
	assert_int_equal(removed, SWEEP_N - 5);
	assert_int_equal(sticky_count(t), 3);	/* late, ip6(40003), ip6(40004) */
	assert_int_equal(sticky_lookup(t, &late, T0), 2);
	assert_int_equal(sticky_evictions(t), 0);

	/* Newer than every entry: all at once, nothing left to sweep. */
	assert_int_equal(sticky_clear(t, sticky_version_next(), STICKY_ORIGIN_SELF, 1), 3);
	assert_false(sticky_clear_pending(t));
	assert_int_equal(sticky_count(t), 0);
	sticky_free(t);
}

#define LONG_TIMEOUT_S	604800	/* the largest sticky_timeout_s: a week */
#define LONG_N		2000	/* applies in the long-lifetime test */
#define LONG_WALL_NS	1000000000ULL	/* generous: about 10 ms now, seconds before */

/*
 * The peer's entries with a week to live, latest first: each one dies
 * before all the others, so each was sorted in past every second of its
 * lifetime (one step per second: 2000 x 604800). Now a few steps each,
 * and expiry and LRU eviction still go by the exact second.
 */
static void
test_apply_long_lifetimes(void **state)
{
	struct sticky_table *t = repl_new(LONG_N, LONG_TIMEOUT_S);
	uint64_t	 v = sticky_version_next() + 1, t0, ns;
	uint32_t	 i, first_death = T0 + LONG_TIMEOUT_S - LONG_N + 1;

	t0 = mono_ns();
	for (i = 0; i < LONG_N; i++) {
		struct sticky_change c = remote(ip6(i), 1, (LONG_TIMEOUT_S - i) * 1000, v++,
		    STICKY_ORIGIN_PEER);

		assert_int_equal(sticky_apply(t, &c, 1, T0), 1);
	}
	ns = mono_ns() - t0;
	printf("sticky: %d descending applies at %d s: %.1f ms, %llu insert steps\n", LONG_N,
	    LONG_TIMEOUT_S, (double)ns / 1e6, (unsigned long long)sticky_insert_steps(t));
	assert_true(sticky_insert_steps(t) <= 2 * LONG_N);
	assert_true(ns < LONG_WALL_NS);
	assert_int_equal(sticky_count(t), LONG_N);
	for (i = 0; i < LONG_N; i += 97) {
		struct lbd_ip ip = ip6(i);

		assert_int_equal(sticky_expires_in(t, &ip, T0), LONG_TIMEOUT_S - i);
	}

	/* Each dies at its second: the last applied first, one per second. */
	assert_int_equal(sticky_expire(t, first_death - 1), 0);
	assert_int_equal(sticky_expire(t, first_death), 1);
	assert_int_equal(sticky_expire(t, first_death + 9), 9);
	{
		struct lbd_ip gone = ip6(LONG_N - 10), kept = ip6(LONG_N - 11);

		assert_int_equal(sticky_lookup(t, &gone, first_death + 9), -1);
		assert_int_equal(sticky_expires_in(t, &kept, first_death + 9), 1);
	}

	/* Full again with local sets; one more evicts the entry closest to its end. */
	for (i = 0; i < 10; i++) {
		struct lbd_ip ip = tl_ip4(10, 9, 0, (uint8_t)i);

		sticky_set(t, &ip, 2, first_death + 9);
	}
	sticky_dirty_clear(t);		/* sent: no longer spared by eviction */
	assert_int_equal(sticky_count(t), LONG_N);
	assert_int_equal(sticky_evictions(t), 0);
	{
		struct lbd_ip extra = tl_ip4(10, 9, 1, 0), next = ip6(LONG_N - 11);
		struct lbd_ip after = ip6(LONG_N - 12);

		sticky_set(t, &extra, 3, first_death + 9);
		assert_int_equal(sticky_evictions(t), 1);
		assert_int_equal(sticky_lookup(t, &next, first_death + 9), -1);
		assert_int_equal(sticky_lookup(t, &after, first_death + 9), 1);
		assert_int_equal(sticky_lookup(t, &extra, first_death + 9), 3);
	}
	sticky_free(t);
}

#define WRAP_N		3000	/* entries in the wrap-around test */
#define WRAP_TIMEOUT_S	100000	/* its timeout */
#define WRAP_STEP_S	50	/* now moves this much per apply: 1.5 timeouts in all */

/* The model's expiry seconds, for qsort. */
static int
cmp_u32(const void *a, const void *b)
{
	uint32_t	 x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Applies with random lifetimes while now moves far ahead, so expiry
 * seconds wrap around the run slots many times; then every second that
 * holds an expiry is swept in turn: the table must give up exactly the
 * entries the model says die by then, so the list was sorted throughout.
 */
static void
test_apply_random_order(void **state)
{
	struct sticky_table *t = repl_new(WRAP_N, WRAP_TIMEOUT_S);
	uint32_t	*exp = calloc(WRAP_N, sizeof(*exp));
	uint32_t	 now = T0, i, k, n, live = 0;
	uint64_t	 v = sticky_version_next() + 1;

	assert_non_null(exp);
	srandom(13);
	for (i = 0; i < WRAP_N; i++) {
		uint32_t	 life = 1 + (uint32_t)random() % WRAP_TIMEOUT_S;
		struct sticky_change c = remote(ip6(i), 1, life * 1000, v++, STICKY_ORIGIN_PEER);

		now += WRAP_STEP_S;
		assert_int_equal(sticky_apply(t, &c, 1, now), 1);
		exp[i] = now + life;
	}
	assert_true(now - T0 > WRAP_TIMEOUT_S + 2);	/* the run slots wrapped */
	assert_true(sticky_insert_steps(t) <= 2 * WRAP_N);
	/* Entries applied before a jump may be dead already (applies sweep them). */
	qsort(exp, WRAP_N, sizeof(*exp), cmp_u32);
	for (i = 0; i < WRAP_N && exp[i] <= now; i++)
		;
	sticky_expire(t, now);
	live = WRAP_N - i;
	assert_true(live > WRAP_N / 4);
	assert_int_equal(sticky_count(t), live);
	while (i < WRAP_N) {
		for (k = i; k < WRAP_N && exp[k] == exp[i]; k++)
			;
		n = sticky_expire(t, exp[i]);
		assert_int_equal(n, k - i);
		i = k;
	}
	assert_int_equal(sticky_count(t), 0);
	free(exp);
	sticky_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_entry_size),
		cmocka_unit_test(test_new_bad_size),
		cmocka_unit_test(test_insert_lookup),
		cmocka_unit_test(test_refresh_moves_expiry),
		cmocka_unit_test(test_expiry_exact),
		cmocka_unit_test(test_expire_sweep),
		cmocka_unit_test(test_lru_eviction),
		cmocka_unit_test(test_families_distinct),
		cmocka_unit_test(test_delete),
		cmocka_unit_test(test_flush),
		cmocka_unit_test(test_foreach),
		cmocka_unit_test(test_fill_100k),
		cmocka_unit_test(test_version_origin_stored),
		cmocka_unit_test(test_dirty_coalescing),
		cmocka_unit_test(test_dirty_bounded),
		cmocka_unit_test(test_no_tracking_by_default),
		cmocka_unit_test(test_delete_tombstone),
		cmocka_unit_test(test_evict_spares_unsent),
		cmocka_unit_test(test_merge_rules),
		cmocka_unit_test(test_clear_floor),
		cmocka_unit_test(test_scan),
		cmocka_unit_test(test_expiry_mixed_lifetimes),
		cmocka_unit_test(test_apply_long_lifetimes),
		cmocka_unit_test(test_clear_sweep),
		cmocka_unit_test(test_apply_random_order),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
