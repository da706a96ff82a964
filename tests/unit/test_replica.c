/*
 * test_replica.c - unit tests of the bridge between lbd's sticky tables
 * and the sync layer: a table change becomes a frame with the right names,
 * a remote entry lands in the right service and backend, the merge rule
 * (version, then the greater node name) end to end, bad names are
 * counted, flush and delete replicate, status; then two lbds over real
 * channels on loopback converge, with a 1M-entry bulk of real tables.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <sodium.h>

#include "lbd.h"
#include "hasync.pb-c.h"
#include "hasync.h"
#include "testutil.h"
#include "testlbd.h"
#include "testcap.h"

#define BIG		200000	/* entries in the loopback bulk (test_sync times 1M) */

/* A fake daemon: its config and two services. */
struct fake {
	struct lbd	 lbd;		/* the daemon */
	struct lbd_config conf;		/* its configuration */
};

static struct event_base *base;
static uint16_t	 next_port;

static void
svc_init(struct lbd *lbd, struct service *svc, const char *name, int nb, uint32_t size)
{
	int	 i;

	snprintf(svc->conf.name, sizeof(svc->conf.name), "%s", name);
	svc->conf.sticky_timeout_s = 1800;
	svc->conf.sticky_size = (int)size;
	svc->lbd = lbd;
	svc->nbackends = svc->conf.nbackends = nb;
	for (i = 0; i < nb; i++) {
		struct backend *b = &svc->backends[i];

		snprintf(b->conf.name, sizeof(b->conf.name), "%s_SVR%d", name, i + 1);
		b->service = svc;
		b->index = i;
		b->up = true;
		b->conf.weight = 1;
		svc->conf.backends[i] = b->conf;
	}
	svc->sticky = sticky_new(size, 1800);
	assert_non_null(svc->sticky);
}

/* Node `name` with peer `peer`: services FTPS (2 backends) and OTHER (1). */
static struct fake *
fake_new(const char *name, const char *peer, uint32_t size)
{
	struct fake	*f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->conf.node_name, sizeof(f->conf.node_name), "%s", name);
	snprintf(f->conf.peer_name, sizeof(f->conf.peer_name), "%s", peer);
	f->conf.has_peer = true;
	f->lbd.conf = &f->conf;
	f->lbd.base = base;
	f->lbd.nservices = 2;
	svc_init(&f->lbd, &f->lbd.services[0], "FTPS", 2, size);
	svc_init(&f->lbd, &f->lbd.services[1], "OTHER", 1, 64);
	return f;
}

static void
fake_free(struct fake *f)
{
	replica_close(&f->lbd);
	for (int i = 0; i < f->lbd.nservices; i++)
		sticky_free(f->lbd.services[i].sticky);
	free(f);
}

static struct lbd_ip
ipn(uint32_t n)
{
	return tl_ip4(10, (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n);
}

/* replica_init with frames going to c, channel "up". */
static void
attach(struct fake *f, struct tc_cap *c)
{
	assert_int_equal(replica_init(&f->lbd), 0);
	assert_non_null(replica_sync(&f->lbd));
	tc_attach(replica_sync(&f->lbd), c);
	sync_on_up(replica_sync(&f->lbd));
	tu_pump(base, 5, EVLOOP_NONBLOCK);
	tc_reset(c);
}

/* Feeds one entry written by origin (a node name), as the peer sends it. */
static void
feed_origin(struct fake *f, const char *service, const char *backend, uint32_t n,
    uint64_t version, bool deleted, const char *origin)
{
	Lbd__SyncFrame	 fr = LBD__SYNC_FRAME__INIT;
	Lbd__EntryBatch	 b = LBD__ENTRY_BATCH__INIT;
	Lbd__StickyEntry e = LBD__STICKY_ENTRY__INIT, *ep = &e;
	struct lbd_ip	 ip = ipn(n);
	uint8_t		 buf[1024];
	size_t		 len;

	e.service = (char *)service;
	e.client.data = ip.bytes;
	e.client.len = 16;
	e.backend = (char *)backend;
	e.expires_in_ms = 600000;
	e.version = version;
	e.origin = (char *)origin;
	e.deleted = deleted;
	b.n_entries = 1;
	b.entries = &ep;
	b.sequence = 1;
	fr.body_case = LBD__SYNC_FRAME__BODY_ENTRIES;
	fr.entries = &b;
	len = lbd__sync_frame__pack(&fr, buf);
	assert_int_equal(sync_on_bytes(replica_sync(&f->lbd), buf, len), 0);
}

/* Feeds one entry the peer wrote. */
static void
feed_entry(struct fake *f, const char *service, const char *backend, uint32_t n,
    uint64_t version, bool deleted)
{
	feed_origin(f, service, backend, n, version, deleted, f->conf.peer_name);
}

static struct sync_status
status(struct fake *f)
{
	struct sync_status st;

	sync_get_status(replica_sync(&f->lbd), &st);
	return st;
}

static int
setup(void **state)
{
	base = event_base_new();
	assert_non_null(base);
	return 0;
}

static int
teardown(void **state)
{
	event_base_free(base);
	return 0;
}

static void
test_change_replicated(void **state)
{
	struct fake	*f = fake_new("lb1", "lb2", 1024);
	struct service	*svc = &f->lbd.services[0];
	struct tc_cap	 c = { 0 };
	struct lbd_ip	 ip = ipn(7);
	Lbd__SyncFrame	*fr;
	Lbd__StickyEntry *e;

	attach(f, &c);
	/* What sched_select does for a new client. */
	assert_non_null(sched_select(svc, &ip, now_s()));
	tu_pump(base, 10, EVLOOP_NONBLOCK);
	assert_int_equal(c.n, 1);
	fr = tc_frame(&c, 0);
	assert_int_equal(fr->body_case, LBD__SYNC_FRAME__BODY_ENTRIES);
	assert_int_equal(fr->entries->n_entries, 1);
	e = fr->entries->entries[0];
	assert_string_equal(e->service, "FTPS");
	assert_string_equal(e->backend, svc->backends[sticky_lookup(svc->sticky, &ip,
	    now_s())].conf.name);
	assert_memory_equal(e->client.data, ip.bytes, 16);
	assert_string_equal(e->origin, "lb1");
	assert_false(e->deleted);
	assert_true(e->expires_in_ms > 1790000 && e->expires_in_ms <= 1800000);
	lbd__sync_frame__free_unpacked(fr, NULL);
	tc_reset(&c);
	/* A refresh at once is coalesced away; a delete goes. */
	assert_non_null(sched_select(svc, &ip, now_s()));
	tu_pump(base, 10, EVLOOP_NONBLOCK);
	assert_int_equal(c.n, 0);
	assert_int_equal(sticky_delete(svc->sticky, &ip), 1);
	tu_pump(base, 10, EVLOOP_NONBLOCK);
	assert_int_equal(c.n, 1);
	fr = tc_frame(&c, 0);
	assert_true(fr->entries->entries[0]->deleted);
	lbd__sync_frame__free_unpacked(fr, NULL);
	tc_reset(&c);
	/* A flush goes as a Clear of that service. */
	sticky_set(svc->sticky, &ip, 0, now_s());
	assert_int_equal(replica_flush(&f->lbd, svc), 1);
	assert_int_equal(sticky_count(svc->sticky), 0);
	tu_pump(base, 10, EVLOOP_NONBLOCK);
	assert_int_equal(c.n, 1);	/* the cleared entry is not sent */
	fr = tc_frame(&c, 0);
	assert_int_equal(fr->body_case, LBD__SYNC_FRAME__BODY_CLEAR);
	assert_string_equal(fr->clear->service, "FTPS");
	assert_string_equal(fr->clear->origin, "lb1");
	lbd__sync_frame__free_unpacked(fr, NULL);
	tc_reset(&c);
	/* Flush of everything: service "". */
	assert_int_equal(replica_flush(&f->lbd, NULL), 0);
	fr = tc_frame(&c, 0);
	assert_string_equal(fr->clear->service, "");
	lbd__sync_frame__free_unpacked(fr, NULL);
	tc_free(&c);
	fake_free(f);
}

static void
test_remote_apply(void **state)
{
	struct fake	*f = fake_new("lb1", "lb2", 1024);
	struct tc_cap	 c = { 0 };
	struct lbd_ip	 ip = ipn(9);
	uint64_t	 v = sticky_version_next() + 100;
	struct sync_status st;

	attach(f, &c);
	feed_entry(f, "OTHER", "OTHER_SVR1", 9, v, false);
	feed_entry(f, "FTPS", "FTPS_SVR2", 9, v, false);
	assert_int_equal(sticky_lookup(f->lbd.services[1].sticky, &ip, now_s()), 0);
	assert_int_equal(sticky_lookup(f->lbd.services[0].sticky, &ip, now_s()), 1);
	assert_int_equal(sticky_expires_in(f->lbd.services[0].sticky, &ip, now_s()), 600);
	/* Not echoed. */
	tu_pump(base, 10, EVLOOP_NONBLOCK);
	for (int i = 0; i < c.n; i++) {
		Lbd__SyncFrame *fr = tc_frame(&c, i);

		assert_int_equal(fr->body_case, LBD__SYNC_FRAME__BODY_ACK);
		lbd__sync_frame__free_unpacked(fr, NULL);
	}
	/* Unknown names are counted and change nothing. */
	feed_entry(f, "FTPS", "NOPE", 10, v + 1, false);
	feed_entry(f, "NOPE", "FTPS_SVR1", 10, v + 1, false);
	st = status(f);
	assert_int_equal(st.bad_entries, 2);
	assert_int_equal(st.entries_applied, 2);
	assert_int_equal(sticky_count(f->lbd.services[0].sticky), 1);
	/* A local use of a remote entry is ours now, and goes back with a newer version. */
	tc_reset(&c);
	sticky_set(f->lbd.services[0].sticky, &ip, 0, now_s());
	tu_pump(base, 10, EVLOOP_NONBLOCK);
	assert_int_equal(c.n, 1);
	{
		Lbd__SyncFrame *fr = tc_frame(&c, 0);

		assert_true(fr->entries->entries[0]->version > v);
		assert_string_equal(fr->entries->entries[0]->backend, "FTPS_SVR1");
		lbd__sync_frame__free_unpacked(fr, NULL);
	}
	/* A remote delete and a remote clear. */
	feed_entry(f, "OTHER", "", 9, sticky_version_next(), true);
	assert_int_equal(sticky_lookup(f->lbd.services[1].sticky, &ip, now_s()), -1);
	{
		Lbd__SyncFrame	 fr = LBD__SYNC_FRAME__INIT;
		Lbd__Clear	 cl = LBD__CLEAR__INIT;
		uint8_t		 buf[256];
		size_t		 len;

		cl.service = (char *)"FTPS";
		cl.version = sticky_version_next();
		cl.origin = (char *)"lb2";
		fr.body_case = LBD__SYNC_FRAME__BODY_CLEAR;
		fr.clear = &cl;
		len = lbd__sync_frame__pack(&fr, buf);
		assert_int_equal(sync_on_bytes(replica_sync(&f->lbd), buf, len), 0);
	}
	assert_int_equal(sticky_count(f->lbd.services[0].sticky), 0);
	tc_free(&c);
	fake_free(f);
}

/* A local set of client n in FTPS to backend be; returns the version it went out with. */
static uint64_t
local_set(struct fake *f, struct tc_cap *c, uint32_t n, int be)
{
	struct lbd_ip	 ip = ipn(n);
	Lbd__SyncFrame	*fr;
	uint64_t	 v;

	tc_reset(c);	/* acks of what was fed before */
	sticky_set(f->lbd.services[0].sticky, &ip, be, now_s());
	assert_true(tc_wait(base, c, 1, 1000));
	fr = tc_frame(c, 0);
	assert_int_equal(fr->body_case, LBD__SYNC_FRAME__BODY_ENTRIES);
	v = fr->entries->entries[0]->version;
	lbd__sync_frame__free_unpacked(fr, NULL);
	tc_reset(c);
	return v;
}

/* FTPS's backend for client n: its index, -1 for none. */
static int
ftps_backend(struct fake *f, uint32_t n)
{
	struct lbd_ip	 ip = ipn(n);

	return sticky_lookup(f->lbd.services[0].sticky, &ip, now_s());
}

/*
 * The merge rule end to end, through the real sync layer, replica.c and
 * sticky.c: the newer version wins; on equal versions the greater node
 * name wins (whichever side it is); a delete is a version like any other.
 */
static void
test_merge_rules(void **state)
{
	struct fake	*lo = fake_new("lb1", "lb2", 64);	/* the peer's name is greater */
	struct fake	*hi = fake_new("lb2", "lb1", 64);	/* ... smaller */
	struct tc_cap	 c = { 0 };
	struct sync_status st;
	uint64_t	 v;

	attach(lo, &c);
	v = local_set(lo, &c, 1, 0);
	/* Older loses. */
	feed_entry(lo, "FTPS", "FTPS_SVR2", 1, v - 1, false);
	assert_int_equal(ftps_backend(lo, 1), 0);
	/* Equal version: the peer lb2 > lb1 wins. */
	feed_entry(lo, "FTPS", "FTPS_SVR2", 1, v, false);
	assert_int_equal(ftps_backend(lo, 1), 1);
	/* Our own name at that version: the change we sent, come back; ignored. */
	feed_origin(lo, "FTPS", "FTPS_SVR1", 1, v, false, "lb1");
	assert_int_equal(ftps_backend(lo, 1), 1);
	/* Newer wins. */
	feed_entry(lo, "FTPS", "FTPS_SVR1", 1, v + 1, false);
	assert_int_equal(ftps_backend(lo, 1), 0);
	/* A delete loses to a newer set, beats an older one; an older set then loses. */
	feed_entry(lo, "FTPS", "", 1, v - 5, true);
	assert_int_equal(ftps_backend(lo, 1), 0);
	feed_entry(lo, "FTPS", "", 1, v + 2, true);
	assert_int_equal(ftps_backend(lo, 1), -1);
	feed_entry(lo, "FTPS", "FTPS_SVR2", 1, v + 1, false);
	assert_int_equal(ftps_backend(lo, 1), -1);
	st = status(lo);
	assert_int_equal(st.entries_received, 7);
	assert_int_equal(st.entries_applied, 3);
	assert_int_equal(st.entries_stale, 4);
	tc_reset(&c);

	attach(hi, &c);
	v = local_set(hi, &c, 1, 0);
	/* Equal version: ours, lb2 > lb1, stays. */
	feed_entry(hi, "FTPS", "FTPS_SVR2", 1, v, false);
	assert_int_equal(ftps_backend(hi, 1), 0);
	/* Newer from the smaller name still wins. */
	feed_entry(hi, "FTPS", "FTPS_SVR2", 1, v + 1, false);
	assert_int_equal(ftps_backend(hi, 1), 1);
	/* A local change after it gets a newer version, and wins a tie the same way. */
	v = local_set(hi, &c, 1, 0);
	feed_entry(hi, "FTPS", "FTPS_SVR2", 1, v, false);
	assert_int_equal(ftps_backend(hi, 1), 0);
	st = status(hi);
	assert_int_equal(st.entries_applied, 1);
	assert_int_equal(st.entries_stale, 2);
	tc_free(&c);
	fake_free(lo);
	fake_free(hi);
}

static void
test_bulk_and_status(void **state)
{
	struct fake	*f = fake_new("lb1", "lb2", 4096);
	struct tc_cap	 c = { 0 };
	size_t		 total = 0;
	json_t		*js, *bulk;
	uint32_t	 now = now_s();

	/* Standalone: a heartbeat but no replica, "none", may preempt. */
	f->conf.has_peer = false;
	assert_int_equal(addr_parse("127.0.0.1", &f->conf.node_addr), 0);
	f->conf.node_priority = 100;
	f->conf.advert_interval_ms = 100;
	assert_int_equal(cluster_open(&f->lbd), 0);
	assert_non_null(f->lbd.ha);
	assert_null(f->lbd.replica);
	cluster_close(&f->lbd);
	assert_true(replica_may_preempt(&f->lbd));
	js = cluster_sync_json(&f->lbd);
	assert_string_equal(json_string_value(json_object_get(js, "state")), "none");
	json_decref(js);
	f->conf.has_peer = true;
	assert_false(replica_may_preempt(&f->lbd));	/* not started yet */

	for (uint32_t i = 0; i < 3000; i++) {
		struct lbd_ip ip = ipn(i);

		sticky_set(f->lbd.services[0].sticky, &ip, (int)(i % 2), now);
	}
	for (uint32_t i = 0; i < 10; i++) {
		struct lbd_ip ip = ipn(i);

		sticky_set(f->lbd.services[1].sticky, &ip, 0, now);
	}
	attach(f, &c);	/* up: the bulk went during its pump */
	/* attach() reset the capture; bulk again by reconnecting. */
	sync_on_down(replica_sync(&f->lbd), "test", false);
	sync_on_up(replica_sync(&f->lbd));
	tu_pump(base, 20, EVLOOP_NONBLOCK);
	for (int i = 0; i < c.n; i++) {
		Lbd__SyncFrame *fr = tc_frame(&c, i);

		if (fr->body_case == LBD__SYNC_FRAME__BODY_ENTRIES) {
			assert_true(fr->entries->n_entries <= SYNC_BATCH_MAX);
			total += fr->entries->n_entries;
		}
		if (i == c.n - 1) {
			assert_int_equal(fr->body_case, LBD__SYNC_FRAME__BODY_BULK_END);
			assert_int_equal(fr->bulk_end->entries, 3010);
		}
		lbd__sync_frame__free_unpacked(fr, NULL);
	}
	assert_int_equal(total, 3010);
	assert_false(replica_may_preempt(&f->lbd));

	js = cluster_sync_json(&f->lbd);
	assert_non_null(js);
	assert_string_equal(json_string_value(json_object_get(js, "state")), "bulk");
	assert_int_equal(json_integer_value(json_object_get(js, "entries")), 3010);
	assert_true(json_is_null(json_object_get(js, "lag_ms")));
	assert_true(json_is_null(json_object_get(js, "lag_p99_ms")));
	assert_int_equal(json_integer_value(json_object_get(js, "entries_sent")), 6020);
	assert_int_equal(json_integer_value(json_object_get(js, "entries_received")), 0);
	bulk = json_object_get(js, "bulk");
	assert_true(json_is_object(bulk));
	assert_int_equal(json_integer_value(json_object_get(bulk, "sent")), 2);
	assert_true(json_is_false(json_object_get(bulk, "done")));
	json_decref(js);
	tc_free(&c);
	fake_free(f);
}

/* ---------------------------------------------------------------- loopback */

static void
node_start(struct fake *f, const char *addr, const char *peer_addr, uint16_t port,
    const uint8_t *key)
{
	struct channel_config cc;
	char		 err[256] = "";

	assert_int_equal(replica_init(&f->lbd), 0);
	memset(&cc, 0, sizeof(cc));
	snprintf(cc.node_name, sizeof(cc.node_name), "%s", f->conf.node_name);
	tu_set_addr(&cc.node_addr, addr, 0);
	snprintf(cc.peer_name, sizeof(cc.peer_name), "%s", f->conf.peer_name);
	tu_set_addr(&cc.peer_addr[0], peer_addr, 0);
	cc.npeer_addr = 1;
	cc.sync_port = port;
	memcpy(cc.key, key, HASYNC_KEY_LEN);
	if (sync_start(replica_sync(&f->lbd), &cc, err, sizeof(err)) == -1)
		fail_msg("sync_start: %s", err);
}

static bool
synced(struct fake *f)
{
	return strcmp(status(f).state, "synced") == 0;
}

/* Every live entry of a is in b with the same backend. */
static void
same_tables(struct fake *a, struct fake *b)
{
	for (int s = 0; s < a->lbd.nservices; s++) {
		struct sticky_table *ta = a->lbd.services[s].sticky;
		struct sticky_table *tb = b->lbd.services[s].sticky;

		assert_int_equal(sticky_count(ta), sticky_count(tb));
	}
}

static void
test_loopback_lbd_pair(void **state)
{
	struct fake	*a = fake_new("lb1", "lb2", BIG);
	struct fake	*b = fake_new("lb2", "lb1", BIG);
	uint8_t		 key[HASYNC_KEY_LEN];
	uint16_t	 port = next_port++;
	uint32_t	 now = now_s();
	uint64_t	 t0;
	struct sync_status sb;

	randombytes_buf(key, sizeof(key));
	for (uint32_t i = 0; i < BIG; i++) {
		struct lbd_ip ip = ipn(i);

		sticky_set(a->lbd.services[0].sticky, &ip, (int)(i % 2), now);
	}
	node_start(b, "127.0.0.2", "127.0.0.1", port, key);
	node_start(a, "127.0.0.1", "127.0.0.2", port, key);
	t0 = clock_now_us();
	while (!(synced(a) && synced(b)) && clock_now_us() - t0 < 60000000)
		event_base_loop(base, EVLOOP_NONBLOCK);
	sb = status(b);
	printf("replica: bulk of %llu sticky entries (real tables): %.3f s at the receiver, "
	    "%.3f s from start\n", (unsigned long long)sb.last_bulk_entries,
	    sb.last_bulk_ms / 1000.0, (double)(clock_now_us() - t0) / 1e6);
	assert_true(synced(a) && synced(b));
	assert_int_equal(sticky_count(b->lbd.services[0].sticky), BIG);
	same_tables(a, b);
	assert_true(replica_may_preempt(&a->lbd));
	assert_true(replica_may_preempt(&b->lbd));
	/* Spot checks: same backend, lifetime carried. */
	for (uint32_t i = 0; i < BIG; i += 9973) {
		struct lbd_ip ip = ipn(i);

		assert_int_equal(sticky_lookup(b->lbd.services[0].sticky, &ip, now_s()),
		    (int)(i % 2));
		/* Carried: what was left on a when sent (a second of rounding). */
		assert_true(sticky_expires_in(b->lbd.services[0].sticky, &ip, now_s()) >=
		    1800 - (int64_t)(now_s() - now) - 1);
	}
	/* Incremental both ways, then a delete and a flush. */
	{
		struct lbd_ip x = ipn(BIG + 1), y = ipn(5);

		sticky_set(b->lbd.services[1].sticky, &x, 0, now_s());
		sticky_set(a->lbd.services[0].sticky, &y, 0, now_s());	/* re-pick: 5 % 2 was 1 */
		tu_pump(base, 100, EVLOOP_NONBLOCK);
		assert_int_equal(sticky_lookup(a->lbd.services[1].sticky, &x, now_s()), 0);
		assert_int_equal(sticky_lookup(b->lbd.services[0].sticky, &y, now_s()), 0);
		assert_int_equal(sticky_delete(b->lbd.services[0].sticky, &y), 1);
		tu_pump(base, 100, EVLOOP_NONBLOCK);
		assert_int_equal(sticky_lookup(a->lbd.services[0].sticky, &y, now_s()), -1);
		replica_flush(&a->lbd, &a->lbd.services[0]);
		tu_pump(base, 300, EVLOOP_NONBLOCK);
		assert_int_equal(sticky_count(b->lbd.services[0].sticky), 0);
		assert_int_equal(sticky_count(b->lbd.services[1].sticky), 1);
	}
	{
		json_t *js = cluster_sync_json(&a->lbd);

		assert_string_equal(json_string_value(json_object_get(js, "state")), "synced");
		assert_true(json_is_object(json_object_get(js, "channel")));
		json_decref(js);
	}
	fake_free(a);
	fake_free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_change_replicated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remote_apply, setup, teardown),
		cmocka_unit_test_setup_teardown(test_merge_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bulk_and_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loopback_lbd_pair, setup, teardown),
	};

	log_init(0, "test_replica");
	if (sodium_init() == -1)
		return 1;
	next_port = (uint16_t)(26000 + getpid() % 1500);	/* below the ephemeral range */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
