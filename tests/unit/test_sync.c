/*
 * test_sync.c - unit tests of hasync's sync layer alone, against a small
 * in-memory store: frames, what it hands to apply and counts, batching,
 * coalescing, bulk in bounded slices, backpressure, lag, bad input,
 * may_preempt; then two nodes over real channels on loopback (127.0.0.1
 * and 127.0.0.2): convergence, a 1M-entry bulk and the lag at 10k updates/s.
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

#include "hasync.pb-c.h"
#include "hasync.h"
#include "testutil.h"
#include "testcap.h"

#define MS_SERVICE	"svc"		/* the mock store's one service */
#define MS_BACKENDS	4		/* its backends: b0..b3 */
#define MS_SCAN_SLOTS	65536		/* ids a scan call visits at most */
#define BIG_BULK	1000000		/* entries in the bulk timing */
#define LAG_RATE	10		/* updates per ms in the lag run (10k/s) */
#define LAG_RUN_MS	3000		/* its length */

/* One client in the mock store. */
struct mentry {
	uint64_t	 version;	/* last writer wins */
	uint32_t	 expires_in_ms;	/* as last set */
	uint8_t		 backend;	/* 0..MS_BACKENDS-1 */
	bool		 present;	/* set (or a tombstone) */
	bool		 deleted;	/* a tombstone */
	bool		 origin_peer;	/* the peer wrote version */
	bool		 dirty;		/* queued for sending */
};

/* A mock store: clients are ids 0..n-1, in a dirty FIFO when changed. */
struct mstore {
	const char	*name;		/* node name */
	int		 name_cmp;	/* sign of strcmp(peer, node) */
	uint32_t	 n;		/* ids */
	struct mentry	*e;		/* n entries */
	uint32_t	*dq;		/* dirty ring of ids, n slots */
	uint32_t	 dhead, ndirty;	/* ring start and fill */
	uint64_t	 clock;		/* version source */
	struct sync	*sync;		/* the layer under test */
	uint64_t	 clears;	/* clear callbacks */
	int		 peer_lost;	/* peer_lost callbacks */
	int		 bulk_starts;	/* bulk_start callbacks */
	char		 state[16];	/* last state_changed */
	bool		 scripted;	/* apply answers `verdict` and stores nothing */
	enum sync_apply	 verdict;	/* ... that answer */
	int		 applies;	/* apply callbacks */
	struct sync_entry last;		/* the last entry apply was given (names not kept) */
};

static struct event_base *base;
static uint16_t	 next_port;
static uint8_t	 cluster_key[HASYNC_KEY_LEN];

/* ---------------------------------------------------------------- mock store */

static void
ms_client(uint32_t id, uint8_t out[16])
{
	memset(out, 0, 16);
	out[0] = 0x20;
	out[1] = 0x01;
	out[2] = 0x0d;
	out[3] = 0xb8;
	out[12] = (uint8_t)(id >> 24);
	out[13] = (uint8_t)(id >> 16);
	out[14] = (uint8_t)(id >> 8);
	out[15] = (uint8_t)id;
}

static const char *ms_backend_names[MS_BACKENDS] = { "b0", "b1", "b2", "b3" };

static void
ms_mark(struct mstore *m, uint32_t id)
{
	if (m->e[id].dirty)
		return;
	m->e[id].dirty = true;
	m->dq[(m->dhead + m->ndirty++) % m->n] = id;
	if (m->ndirty == 1 && m->sync != NULL)
		sync_kick(m->sync);
}

static uint64_t
ms_version(struct mstore *m)
{
	return ++m->clock << 8;
}

/* A local create, refresh or re-pick. */
static void
ms_set(struct mstore *m, uint32_t id, uint8_t backend)
{
	struct mentry *e = &m->e[id];

	e->present = true;
	e->deleted = false;
	e->backend = backend;
	e->expires_in_ms = 60000;
	e->version = ms_version(m);
	e->origin_peer = false;
	ms_mark(m, id);
}

static void
ms_delete(struct mstore *m, uint32_t id)
{
	struct mentry *e = &m->e[id];

	e->deleted = true;
	e->version = ms_version(m);
	e->origin_peer = false;
	ms_mark(m, id);
}

static void
ms_fill(struct mstore *m, const struct mentry *e, uint32_t id, struct sync_entry *out)
{
	out->service = MS_SERVICE;
	ms_client(id, out->client);
	out->backend = e->deleted ? NULL : ms_backend_names[e->backend];
	out->expires_in_ms = e->expires_in_ms;
	out->version = e->version;
	out->origin_peer = e->origin_peer;
	out->deleted = e->deleted;
}

static size_t
ms_take_dirty(void *arg, struct sync_entry *out, size_t max)
{
	struct mstore	*m = arg;
	size_t		 n = 0;

	while (n < max && m->ndirty > 0) {
		uint32_t id = m->dq[m->dhead];

		m->dhead = (m->dhead + 1) % m->n;
		m->ndirty--;
		m->e[id].dirty = false;
		ms_fill(m, &m->e[id], id, &out[n++]);
	}
	return n;
}

static size_t
ms_scan(void *arg, uint64_t *cursor, struct sync_entry *out, size_t max, bool *done)
{
	struct mstore	*m = arg;
	uint64_t	 id = *cursor, visited = 0;
	size_t		 n = 0;

	for (; id < m->n && n < max && visited < MS_SCAN_SLOTS; id++, visited++)
		if (m->e[id].present)
			ms_fill(m, &m->e[id], (uint32_t)id, &out[n++]);
	*cursor = id;
	*done = id >= m->n;
	return n;
}

static void
ms_bulk_start(void *arg)
{
	struct mstore *m = arg;

	m->bulk_starts++;
	while (m->ndirty > 0) {
		m->e[m->dq[m->dhead]].dirty = false;
		m->dhead = (m->dhead + 1) % m->n;
		m->ndirty--;
	}
}

/*
 * The mock store's merge rule, so two mock stores converge. The real rule
 * is sticky.c's; test_sticky.c and test_replica.c test it.
 */
static bool
ms_newer(const struct mstore *m, uint64_t va, bool pa, uint64_t vb, bool pb)
{
	if (va != vb)
		return va > vb;
	if (pa == pb)
		return false;
	return pa ? m->name_cmp > 0 : m->name_cmp < 0;
}

static enum sync_apply
ms_apply(void *arg, const struct sync_entry *se)
{
	struct mstore	*m = arg;
	struct mentry	*e;
	uint32_t	 id;
	int		 b = 0;

	m->applies++;
	m->last = *se;
	m->last.service = m->last.backend = NULL;
	if (m->scripted)
		return m->verdict;
	if (strcmp(se->service, MS_SERVICE) != 0)
		return SYNC_APPLY_UNKNOWN_SERVICE;
	if (!se->deleted) {
		for (b = 0; b < MS_BACKENDS; b++)
			if (strcmp(se->backend, ms_backend_names[b]) == 0)
				break;
		if (b == MS_BACKENDS)
			return SYNC_APPLY_UNKNOWN_BACKEND;
	}
	id = (uint32_t)se->client[12] << 24 | (uint32_t)se->client[13] << 16 |
	    (uint32_t)se->client[14] << 8 | se->client[15];
	if (id >= m->n)
		return SYNC_APPLY_UNKNOWN_SERVICE;
	e = &m->e[id];
	if (e->present && !ms_newer(m, se->version, se->origin_peer, e->version, e->origin_peer))
		return SYNC_APPLY_STALE;
	if (se->version >> 8 > m->clock)
		m->clock = se->version >> 8;
	e->present = true;
	e->deleted = se->deleted;
	e->backend = (uint8_t)b;
	e->expires_in_ms = se->expires_in_ms;
	e->version = se->version;
	e->origin_peer = se->origin_peer;
	return SYNC_APPLY_OK;
}

static int
ms_clear(void *arg, const char *service, uint64_t version, bool origin_peer)
{
	struct mstore	*m = arg;
	uint32_t	 i;

	if (service[0] != '\0' && strcmp(service, MS_SERVICE) != 0)
		return -1;
	m->clears++;
	for (i = 0; i < m->n; i++)
		if (m->e[i].present && m->e[i].version < version)
			memset(&m->e[i], 0, sizeof(m->e[i]));
	return 0;
}

static void
ms_state(void *arg, const char *state)
{
	struct mstore *m = arg;

	snprintf(m->state, sizeof(m->state), "%s", state);
}

static void
ms_peer_lost(void *arg, const char *reason)
{
	struct mstore *m = arg;

	m->peer_lost++;
}

static void
ms_log(void *arg, int level, const char *msg)
{
	struct mstore *m = arg;

	tu_log(m->name, level, msg);
}

static const struct sync_callbacks ms_cbs = {
	.take_dirty = ms_take_dirty,
	.scan = ms_scan,
	.bulk_start = ms_bulk_start,
	.apply = ms_apply,
	.clear = ms_clear,
	.state_changed = ms_state,
	.peer_lost = ms_peer_lost,
	.log = ms_log,
};

/* A store of n ids for node `name` (peer `peer`) with its sync layer. */
static struct mstore *
ms_new(const char *name, const char *peer, uint32_t n, const struct sync_config *over)
{
	struct mstore	*m = calloc(1, sizeof(*m));
	struct sync_config sc;
	char		 err[256] = "";

	assert_non_null(m);
	m->name = name;
	m->name_cmp = strcmp(peer, name) < 0 ? -1 : 1;
	m->n = n;
	m->e = calloc(n, sizeof(*m->e));
	m->dq = calloc(n, sizeof(*m->dq));
	assert_non_null(m->e);
	assert_non_null(m->dq);
	if (over != NULL)
		sc = *over;
	else
		memset(&sc, 0, sizeof(sc));
	snprintf(sc.node_name, sizeof(sc.node_name), "%s", name);
	snprintf(sc.peer_name, sizeof(sc.peer_name), "%s", peer);
	m->sync = sync_new(base, &sc, &ms_cbs, m, err, sizeof(err));
	if (m->sync == NULL)
		fail_msg("sync_new: %s", err);
	return m;
}

static void
ms_free(struct mstore *m)
{
	if (m == NULL)
		return;
	sync_free(m->sync);
	free(m->e);
	free(m->dq);
	free(m);
}

static uint32_t
ms_count(const struct mstore *m)
{
	uint32_t i, n = 0;

	for (i = 0; i < m->n; i++)
		n += m->e[i].present && !m->e[i].deleted;
	return n;
}

/* Both stores hold the same entries, versions and origins (seen from each side). */
static void
ms_assert_same(const struct mstore *a, const struct mstore *b)
{
	uint32_t i;

	assert_int_equal(a->n, b->n);
	for (i = 0; i < a->n; i++) {
		const struct mentry *x = &a->e[i], *y = &b->e[i];
		bool xl = x->present && !x->deleted, yl = y->present && !y->deleted;

		if (xl != yl)
			fail_msg("id %u: live on %s %d, on %s %d", i, a->name, xl, b->name, yl);
		if (!xl)
			continue;
		assert_int_equal(x->backend, y->backend);
		assert_true(x->version == y->version);
		assert_true(x->origin_peer != y->origin_peer);
	}
}

/* ---------------------------------------------------------------- capture transport */

static int
cap_body(const struct tc_cap *c, int i)
{
	Lbd__SyncFrame	*f = tc_frame(c, i);
	int		 b = (int)f->body_case;

	lbd__sync_frame__free_unpacked(f, NULL);
	return b;
}

static size_t
cap_batch_size(const struct tc_cap *c, int i)
{
	Lbd__SyncFrame	*f = tc_frame(c, i);
	size_t		 n;

	assert_int_equal(f->body_case, LBD__SYNC_FRAME__BODY_ENTRIES);
	n = f->entries->n_entries;
	lbd__sync_frame__free_unpacked(f, NULL);
	return n;
}

/* Hands every captured frame to `to`, then forgets them. */
static void
cap_deliver(struct tc_cap *c, struct mstore *to)
{
	for (int i = 0; i < c->n; i++)
		assert_int_equal(sync_on_bytes(to->sync, c->buf[i], c->len[i]), 0);
	tc_reset(c);
}

/* Packs f and feeds it to m. */
static void
feed(struct mstore *m, const Lbd__SyncFrame *f)
{
	uint8_t		 buf[8192];
	size_t		 len = lbd__sync_frame__get_packed_size(f);

	assert_true(len <= sizeof(buf));
	lbd__sync_frame__pack(f, buf);
	assert_int_equal(sync_on_bytes(m->sync, buf, len), 0);
}

static struct sync_status
status(struct mstore *m)
{
	struct sync_status st;

	sync_get_status(m->sync, &st);
	return st;
}

/* Runs the loop until m has no pending change or timeout_ms passed. Returns: none pending. */
static bool
wait_taken(struct mstore *m, int timeout_ms)
{
	uint64_t end = clock_now_us() + (uint64_t)timeout_ms * 1000;

	while (m->ndirty > 0 && clock_now_us() < end)
		event_base_loop(base, EVLOOP_NONBLOCK);
	return m->ndirty == 0;
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
	base = NULL;
	return 0;
}

/* ---------------------------------------------------------------- frames */

static void
test_encode_decode(void **state)
{
	Lbd__SyncFrame	 f = LBD__SYNC_FRAME__INIT, *g;
	Lbd__StickyEntry e = LBD__STICKY_ENTRY__INIT, *ep = &e;
	Lbd__EntryBatch	 b = LBD__ENTRY_BATCH__INIT;
	Lbd__Delete	 d = LBD__DELETE__INIT;
	Lbd__Clear	 c = LBD__CLEAR__INIT;
	Lbd__BulkBegin	 bb = LBD__BULK_BEGIN__INIT;
	Lbd__BulkEnd	 be = LBD__BULK_END__INIT;
	Lbd__Ack	 a = LBD__ACK__INIT;
	Lbd__Keepalive	 k = LBD__KEEPALIVE__INIT;
	Lbd__Hello	 h = LBD__HELLO__INIT;
	uint8_t		 client[16], buf[1024];
	size_t		 len;

	ms_client(77, client);
	e.service = (char *)"FTPS_VIP";
	e.client.data = client;
	e.client.len = 16;
	e.backend = (char *)"FTP_SVR2";
	e.expires_in_ms = 1799000;
	e.version = 0x0123456789abcdefULL;
	e.origin = (char *)"lb2";
	e.deleted = true;
	b.n_entries = 1;
	b.entries = &ep;
	b.sent_ms = 42;
	b.sequence = 7;
	f.body_case = LBD__SYNC_FRAME__BODY_ENTRIES;
	f.entries = &b;
	len = lbd__sync_frame__pack(&f, buf);
	g = lbd__sync_frame__unpack(NULL, len, buf);
	assert_non_null(g);
	assert_int_equal(g->body_case, LBD__SYNC_FRAME__BODY_ENTRIES);
	assert_int_equal(g->entries->n_entries, 1);
	assert_int_equal(g->entries->sequence, 7);
	assert_int_equal(g->entries->sent_ms, 42);
	assert_string_equal(g->entries->entries[0]->service, "FTPS_VIP");
	assert_memory_equal(g->entries->entries[0]->client.data, client, 16);
	assert_string_equal(g->entries->entries[0]->backend, "FTP_SVR2");
	assert_int_equal(g->entries->entries[0]->expires_in_ms, 1799000);
	assert_true(g->entries->entries[0]->version == 0x0123456789abcdefULL);
	assert_string_equal(g->entries->entries[0]->origin, "lb2");
	assert_true(g->entries->entries[0]->deleted);
	lbd__sync_frame__free_unpacked(g, NULL);

	d.service = (char *)"S";
	d.client.data = client;
	d.client.len = 16;
	d.version = 9;
	d.origin = (char *)"lb1";
	f.body_case = LBD__SYNC_FRAME__BODY_DELETE;
	f.delete_ = &d;
	len = lbd__sync_frame__pack(&f, buf);
	g = lbd__sync_frame__unpack(NULL, len, buf);
	assert_int_equal(g->body_case, LBD__SYNC_FRAME__BODY_DELETE);
	assert_string_equal(g->delete_->service, "S");
	assert_int_equal(g->delete_->version, 9);
	assert_string_equal(g->delete_->origin, "lb1");
	assert_int_equal(g->delete_->client.len, 16);
	lbd__sync_frame__free_unpacked(g, NULL);

	c.service = (char *)"";
	c.version = 11;
	c.origin = (char *)"lb2";
	f.body_case = LBD__SYNC_FRAME__BODY_CLEAR;
	f.clear = &c;
	len = lbd__sync_frame__pack(&f, buf);
	g = lbd__sync_frame__unpack(NULL, len, buf);
	assert_int_equal(g->body_case, LBD__SYNC_FRAME__BODY_CLEAR);
	assert_string_equal(g->clear->service, "");
	assert_int_equal(g->clear->version, 11);
	lbd__sync_frame__free_unpacked(g, NULL);

	bb.entries = 5;
	f.body_case = LBD__SYNC_FRAME__BODY_BULK_BEGIN;
	f.bulk_begin = &bb;
	len = lbd__sync_frame__pack(&f, buf);
	g = lbd__sync_frame__unpack(NULL, len, buf);
	assert_int_equal(g->body_case, LBD__SYNC_FRAME__BODY_BULK_BEGIN);
	assert_int_equal(g->bulk_begin->entries, 5);
	lbd__sync_frame__free_unpacked(g, NULL);

	be.entries = 6;
	f.body_case = LBD__SYNC_FRAME__BODY_BULK_END;
	f.bulk_end = &be;
	len = lbd__sync_frame__pack(&f, buf);
	g = lbd__sync_frame__unpack(NULL, len, buf);
	assert_int_equal(g->body_case, LBD__SYNC_FRAME__BODY_BULK_END);
	assert_int_equal(g->bulk_end->entries, 6);
	lbd__sync_frame__free_unpacked(g, NULL);

	a.sequence = 123456789;
	f.body_case = LBD__SYNC_FRAME__BODY_ACK;
	f.ack = &a;
	len = lbd__sync_frame__pack(&f, buf);
	g = lbd__sync_frame__unpack(NULL, len, buf);
	assert_int_equal(g->body_case, LBD__SYNC_FRAME__BODY_ACK);
	assert_int_equal(g->ack->sequence, 123456789);
	lbd__sync_frame__free_unpacked(g, NULL);

	k.sent_ms = 99;
	f.body_case = LBD__SYNC_FRAME__BODY_KEEPALIVE;
	f.keepalive = &k;
	len = lbd__sync_frame__pack(&f, buf);
	g = lbd__sync_frame__unpack(NULL, len, buf);
	assert_int_equal(g->body_case, LBD__SYNC_FRAME__BODY_KEEPALIVE);
	assert_int_equal(g->keepalive->sent_ms, 99);
	lbd__sync_frame__free_unpacked(g, NULL);

	h.protocol = 1;
	h.node = (char *)"lb1";
	f.body_case = LBD__SYNC_FRAME__BODY_HELLO;
	f.hello = &h;
	len = lbd__sync_frame__pack(&f, buf);
	g = lbd__sync_frame__unpack(NULL, len, buf);
	assert_int_equal(g->body_case, LBD__SYNC_FRAME__BODY_HELLO);
	assert_string_equal(g->hello->node, "lb1");
	lbd__sync_frame__free_unpacked(g, NULL);
}

/* A one-entry batch frame for feeding; the caller owns nothing. */
struct one {
	Lbd__SyncFrame	 f;		/* the frame */
	Lbd__EntryBatch	 b;		/* its batch */
	Lbd__StickyEntry e;		/* its entry */
	Lbd__StickyEntry *ep;		/* &e */
	uint8_t		 client[16];	/* e.client */
};

static void
one_init(struct one *o, uint32_t id, const char *backend, uint64_t version, const char *origin)
{
	memset(o, 0, sizeof(*o));
	lbd__sync_frame__init(&o->f);
	lbd__entry_batch__init(&o->b);
	lbd__sticky_entry__init(&o->e);
	ms_client(id, o->client);
	o->e.service = (char *)MS_SERVICE;
	o->e.client.data = o->client;
	o->e.client.len = 16;
	o->e.backend = (char *)backend;
	o->e.expires_in_ms = 30000;
	o->e.version = version;
	o->e.origin = (char *)origin;
	o->ep = &o->e;
	o->b.n_entries = 1;
	o->b.entries = &o->ep;
	o->b.sequence = 1;
	o->f.body_case = LBD__SYNC_FRAME__BODY_ENTRIES;
	o->f.entries = &o->b;
}

/* Feeds one entry to m whose apply answers verdict; asserts apply got it. */
static void
feed_verdict(struct mstore *m, struct one *o, enum sync_apply verdict)
{
	int	 applies = m->applies;

	m->verdict = verdict;
	feed(m, &o->f);
	assert_int_equal(m->applies, applies + 1);
	assert_true(m->last.version == o->e.version);
	assert_int_equal(m->last.expires_in_ms, o->e.expires_in_ms);
	assert_memory_equal(m->last.client, o->client, 16);
	assert_int_equal(m->last.deleted, o->e.deleted);
}

/*
 * What the sync layer does with a received entry: hands it to the store's
 * apply with the origin as "the peer wrote it", counts apply's verdict,
 * acks every batch and echoes nothing. Which entry wins is the store's
 * merge rule (tested in test_sticky.c and test_replica.c), not sync.c's.
 */
static void
test_apply_verdicts(void **state)
{
	struct mstore	*m = ms_new("lb1", "lb2", 16, NULL);
	struct tc_cap	 c = { 0 };
	struct one	 o;
	struct sync_status st;

	tc_attach(m->sync, &c);
	sync_on_up(m->sync);
	/* The empty store's bulk: BulkBegin, BulkEnd. */
	assert_true(tc_wait(base, &c, 2, 1000));
	assert_int_equal(cap_body(&c, 1), LBD__SYNC_FRAME__BODY_BULK_END);
	tc_reset(&c);
	m->scripted = true;
	/* The peer's name: origin_peer. */
	one_init(&o, 1, "b2", 1000, "lb2");
	feed_verdict(m, &o, SYNC_APPLY_OK);
	assert_true(m->last.origin_peer);
	/* Our own name comes back as "not the peer". */
	one_init(&o, 1, "b3", 1000, "lb1");
	feed_verdict(m, &o, SYNC_APPLY_STALE);
	assert_false(m->last.origin_peer);
	/* A delete is handed on as one, whatever the verdict. */
	one_init(&o, 1, "", 1001, "lb2");
	o.e.deleted = true;
	feed_verdict(m, &o, SYNC_APPLY_OK);
	assert_true(m->last.origin_peer);
	one_init(&o, 1, "", 999, "lb2");
	o.e.deleted = true;
	feed_verdict(m, &o, SYNC_APPLY_STALE);
	one_init(&o, 1, "b0", 998, "lb2");
	feed_verdict(m, &o, SYNC_APPLY_STALE);
	/* Nothing in the mock store changed: the verdicts were the script's. */
	assert_int_equal(ms_count(m), 0);
	st = status(m);
	assert_int_equal(st.entries_received, 5);
	assert_int_equal(st.entries_applied, 2);
	assert_int_equal(st.entries_stale, 3);
	assert_int_equal(st.batches_received, 5);
	assert_int_equal(st.bad_entries, 0);
	/* Every batch was acked with its sequence. */
	assert_int_equal(c.n, 5);
	for (int i = 0; i < c.n; i++)
		assert_int_equal(cap_body(&c, i), LBD__SYNC_FRAME__BODY_ACK);
	/* Applying is not a local change: nothing is echoed. */
	tu_pump(base, 5, EVLOOP_NONBLOCK);
	assert_int_equal(c.n, 5);
	tc_free(&c);
	ms_free(m);
}

static void
test_batching(void **state)
{
	struct mstore	*m = ms_new("lb1", "lb2", 4096, NULL);
	struct tc_cap	 c = { 0 };
	struct sync_status st;

	tc_attach(m->sync, &c);
	sync_on_up(m->sync);
	tu_pump(base, 5, EVLOOP_NONBLOCK);	/* empty bulk: BulkBegin, BulkEnd */
	assert_int_equal(c.n, 2);
	assert_int_equal(cap_body(&c, 0), LBD__SYNC_FRAME__BODY_BULK_BEGIN);
	assert_int_equal(cap_body(&c, 1), LBD__SYNC_FRAME__BODY_BULK_END);
	tc_reset(&c);
	for (uint32_t i = 0; i < 2500; i++)
		ms_set(m, i, (uint8_t)(i % MS_BACKENDS));
	assert_int_equal(c.n, 0);	/* not in the same turn */
	tu_pump(base, 10, EVLOOP_NONBLOCK);
	assert_int_equal(c.n, 3);
	assert_int_equal(cap_batch_size(&c, 0), 1000);
	assert_int_equal(cap_batch_size(&c, 1), 1000);
	assert_int_equal(cap_batch_size(&c, 2), 500);
	st = status(m);
	assert_int_equal(st.batches_sent, 3);
	assert_int_equal(st.entries_sent, 2500);
	/* Sequences 1, 2, 3; origin is our name. */
	for (int i = 0; i < 3; i++) {
		Lbd__SyncFrame *f = tc_frame(&c, i);

		assert_int_equal(f->entries->sequence, i + 1);
		assert_string_equal(f->entries->entries[0]->origin, "lb1");
		assert_string_equal(f->entries->entries[0]->service, MS_SERVICE);
		lbd__sync_frame__free_unpacked(f, NULL);
	}
	tc_free(&c);
	ms_free(m);
}

static void
test_coalescing(void **state)
{
	struct mstore	*m = ms_new("lb1", "lb2", 64, NULL);
	struct tc_cap	 c = { 0 };
	Lbd__SyncFrame	*f;

	tc_attach(m->sync, &c);
	sync_on_up(m->sync);
	tu_pump(base, 5, EVLOOP_NONBLOCK);
	tc_reset(&c);
	for (int i = 0; i < 100; i++)
		ms_set(m, 5, (uint8_t)(i % MS_BACKENDS));
	tu_pump(base, 10, EVLOOP_NONBLOCK);
	assert_int_equal(c.n, 1);
	f = tc_frame(&c, 0);
	assert_int_equal(f->entries->n_entries, 1);
	/* The last write is what goes. */
	assert_string_equal(f->entries->entries[0]->backend, ms_backend_names[99 % MS_BACKENDS]);
	lbd__sync_frame__free_unpacked(f, NULL);
	tc_free(&c);
	ms_free(m);
}

static void
test_bulk_bounded(void **state)
{
	struct mstore	*m = ms_new("lb1", "lb2", 20000, NULL);
	struct tc_cap	 c = { 0 };
	size_t		 total = 0;
	int		 turns = 0, prev = 0, batches;
	Lbd__SyncFrame	*f;

	for (uint32_t i = 0; i < 20000; i++)
		ms_set(m, i, 1);
	for (uint32_t i = 0; i < 20000; i += 100)
		ms_delete(m, i);	/* tombstones go in the bulk too */
	tc_attach(m->sync, &c);
	sync_on_up(m->sync);
	assert_int_equal(m->bulk_starts, 1);
	assert_int_equal(m->ndirty, 0);	/* the bulk carries them */
	assert_string_equal(m->state, "bulk");
	/* One loop turn sends at most SYNC_BULK_PER_TURN batches. */
	while (c.n == 0 || cap_body(&c, c.n - 1) != LBD__SYNC_FRAME__BODY_BULK_END) {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		batches = c.n - prev - (prev == 0);	/* BulkBegin came first */
		assert_true(batches <= SYNC_BULK_PER_TURN + 1);
		prev = c.n;
		assert_true(++turns < 1000);
	}
	assert_true(turns >= 20000 / (SYNC_BATCH_MAX * SYNC_BULK_PER_TURN));
	assert_int_equal(cap_body(&c, 0), LBD__SYNC_FRAME__BODY_BULK_BEGIN);
	for (int i = 1; i < c.n - 1; i++) {
		size_t n = cap_batch_size(&c, i);

		assert_true(n <= SYNC_BATCH_MAX);
		total += n;
	}
	assert_int_equal(total, 20000);
	f = tc_frame(&c, c.n - 1);
	assert_int_equal(f->bulk_end->entries, 20000);
	lbd__sync_frame__free_unpacked(f, NULL);
	/* Our bulk is out, the peer's is not in: still "bulk". */
	assert_string_equal(m->state, "bulk");
	assert_false(sync_may_preempt(m->sync));
	tc_free(&c);
	ms_free(m);
}

static void
test_backpressure(void **state)
{
	struct mstore	*m = ms_new("lb1", "lb2", 1000, NULL);
	struct tc_cap	 c = { 0 };
	struct sync_status st;

	tc_attach(m->sync, &c);
	sync_on_up(m->sync);
	tu_pump(base, 5, EVLOOP_NONBLOCK);
	tc_reset(&c);
	c.queued = SYNC_QUEUE_HIGH + 1;	/* a slow peer */
	for (uint32_t i = 0; i < 100000; i++) {
		ms_set(m, i % 1000, (uint8_t)(i % MS_BACKENDS));
		assert_true(m->ndirty <= 1000);	/* pending stays bounded by the keys */
	}
	tu_pump(base, 20, EVLOOP_NONBLOCK);
	assert_int_equal(c.n, 0);
	st = status(m);
	assert_true(st.held > 0);
	assert_int_equal(m->ndirty, 1000);
	/* The queue drains: everything goes, once per key. */
	c.queued = 0;
	assert_true(wait_taken(m, 1000));
	st = status(m);
	assert_int_equal(st.entries_sent, 1000);
	/* A bulk also waits for the queue. */
	c.queued = SYNC_QUEUE_HIGH + 1;
	sync_on_down(m->sync, "test", false);
	tc_reset(&c);
	sync_on_up(m->sync);
	tu_pump(base, 10, EVLOOP_NONBLOCK);
	assert_int_equal(c.n, 1);	/* BulkBegin only */
	c.queued = 0;
	tu_pump(base, 10, EVLOOP_NONBLOCK);
	assert_int_equal(cap_body(&c, c.n - 1), LBD__SYNC_FRAME__BODY_BULK_END);
	tc_free(&c);
	ms_free(m);
}

static void
test_send_failure_resync(void **state)
{
	struct mstore	*m = ms_new("lb1", "lb2", 100, NULL);
	struct tc_cap	 c = { 0 };
	struct sync_status st;

	tc_attach(m->sync, &c);
	sync_on_up(m->sync);
	assert_true(tc_wait(base, &c, 2, 1000));	/* the empty bulk */
	tc_reset(&c);
	c.fail = true;		/* queue full */
	ms_set(m, 3, 1);
	assert_true(wait_taken(m, 1000));	/* taken, and the send failed... */
	assert_int_equal(c.n, 0);
	c.fail = false;
	/* ... so a full resync carries it: BulkBegin, its one entry, BulkEnd. */
	assert_true(tc_wait(base, &c, 3, 1000));
	st = status(m);
	assert_int_equal(st.resyncs, 1);
	assert_int_equal(m->bulk_starts, 2);
	assert_int_equal(cap_body(&c, 0), LBD__SYNC_FRAME__BODY_BULK_BEGIN);
	assert_int_equal(cap_batch_size(&c, 1), 1);
	assert_int_equal(cap_body(&c, 2), LBD__SYNC_FRAME__BODY_BULK_END);
	tc_free(&c);
	ms_free(m);
}

static void
test_lag(void **state)
{
	struct mstore	*a = ms_new("lb1", "lb2", 100, NULL);
	struct mstore	*b = ms_new("lb2", "lb1", 100, NULL);
	struct tc_cap	 ca = { 0 }, cb = { 0 };
	struct sync_status st;
	Lbd__SyncFrame	 f = LBD__SYNC_FRAME__INIT;
	Lbd__Ack	 ack = LBD__ACK__INIT;

	tc_attach(a->sync, &ca);
	tc_attach(b->sync, &cb);
	sync_on_up(a->sync);
	sync_on_up(b->sync);
	tu_pump(base, 5, EVLOOP_NONBLOCK);
	cap_deliver(&ca, b);
	cap_deliver(&cb, a);
	cap_deliver(&ca, b);	/* acks of bulk batches: no lag sample */
	st = status(a);
	assert_true(st.lag_ms < 0);
	assert_string_equal(a->state, "synced");
	assert_true(sync_may_preempt(a->sync));
	for (int round = 0; round < 10; round++) {
		uint64_t t0 = clock_now_us();

		ms_set(a, (uint32_t)round, 1);
		while (ca.n == 0 && clock_now_us() - t0 < 1000000)
			event_base_loop(base, EVLOOP_NONBLOCK);
		assert_int_equal(ca.n, 1);
		usleep(2000);
		cap_deliver(&ca, b);	/* b applies and acks */
		cap_deliver(&cb, a);
	}
	st = status(a);
	assert_int_equal(st.acks, 10);
	assert_true(st.lag_ms >= 2.0);
	assert_true(st.lag_p50_ms >= 2.0);
	assert_true(st.lag_p99_ms >= st.lag_p50_ms);
	assert_true(st.lag_p99_ms < 1000);
	assert_int_equal(status(b).entries_applied, 10);
	/* Unknown or repeated acks change nothing. */
	ack.sequence = 999;
	f.body_case = LBD__SYNC_FRAME__BODY_ACK;
	f.ack = &ack;
	feed(a, &f);
	ack.sequence = 1;
	feed(a, &f);
	assert_int_equal(status(a).acks, 10);
	ms_assert_same(a, b);
	tc_free(&ca);
	tc_free(&cb);
	ms_free(a);
	ms_free(b);
}

static void
test_bad_input(void **state)
{
	struct mstore	*m = ms_new("lb1", "lb2", 16, NULL);
	struct tc_cap	 c = { 0 };
	struct one	 o;
	struct sync_status st;
	Lbd__SyncFrame	 f = LBD__SYNC_FRAME__INIT;
	Lbd__Clear	 cl = LBD__CLEAR__INIT;
	const uint8_t	 garbage[] = { 0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x80 };

	tc_attach(m->sync, &c);
	sync_on_up(m->sync);
	one_init(&o, 1, "b9", 100, "lb2");		/* unknown backend */
	feed(m, &o.f);
	one_init(&o, 1, "b1", 100, "lb2");
	o.e.service = (char *)"nope";			/* unknown service */
	feed(m, &o.f);
	one_init(&o, 1, "b1", 100, "lb2");
	o.e.client.len = 15;				/* client not 16 bytes */
	feed(m, &o.f);
	one_init(&o, 1, "b1", 100, "lb2");
	o.e.expires_in_ms = 0;				/* a set that is already dead */
	feed(m, &o.f);
	one_init(&o, 1, "b1", 100, "lb2");
	o.e.expires_in_ms = UINT32_MAX;			/* absurd */
	feed(m, &o.f);
	one_init(&o, 1, "b1", 100, "mallory");		/* not a node of ours */
	feed(m, &o.f);
	one_init(&o, 1, "b1", 0, "lb2");		/* no version */
	feed(m, &o.f);
	one_init(&o, 1, "", 100, "lb2");		/* a set with no backend */
	feed(m, &o.f);
	one_init(&o, 1, "b1", 100, "lb2");
	o.e.service = (char *)"";
	feed(m, &o.f);
	st = status(m);
	assert_int_equal(st.bad_entries, 9);
	assert_int_equal(st.entries_applied, 0);
	assert_int_equal(ms_count(m), 0);
	/* Garbage does not decode; an empty frame carries nothing. */
	assert_int_equal(sync_on_bytes(m->sync, garbage, sizeof(garbage)), -1);
	assert_int_equal(sync_on_bytes(m->sync, (const uint8_t *)"", 0), 0);
	cl.service = (char *)"nope";
	cl.version = 5;
	cl.origin = (char *)"lb2";
	f.body_case = LBD__SYNC_FRAME__BODY_CLEAR;
	f.clear = &cl;
	feed(m, &f);				/* unknown service */
	cl.service = (char *)MS_SERVICE;
	cl.origin = (char *)"mallory";
	feed(m, &f);				/* bad origin */
	{
		Lbd__BulkEnd be = LBD__BULK_END__INIT;

		f.body_case = LBD__SYNC_FRAME__BODY_BULK_END;	/* no BulkBegin */
		f.bulk_end = &be;
		feed(m, &f);
	}
	st = status(m);
	assert_int_equal(st.malformed, 4);
	assert_int_equal(st.bad_entries, 10);
	assert_int_equal(m->clears, 0);
	assert_false(st.bulk_done);
	/* The good one still goes in. */
	one_init(&o, 1, "b1", 100, "lb2");
	feed(m, &o.f);
	assert_int_equal(ms_count(m), 1);
	tc_free(&c);
	ms_free(m);
}

static void
test_clear(void **state)
{
	struct mstore	*a = ms_new("lb1", "lb2", 100, NULL);
	struct mstore	*b = ms_new("lb2", "lb1", 100, NULL);
	struct tc_cap	 ca = { 0 }, cb = { 0 };
	Lbd__SyncFrame	*f;

	tc_attach(a->sync, &ca);
	tc_attach(b->sync, &cb);
	for (uint32_t i = 0; i < 10; i++)
		ms_set(b, i, 1);
	/* Down: the clear waits, coalesced per service, the latest version. */
	sync_send_clear(a->sync, MS_SERVICE, 100);
	sync_send_clear(a->sync, MS_SERVICE, ms_version(b) + 1000);
	assert_int_equal(ca.n, 0);
	sync_on_up(a->sync);
	/* BulkBegin, then the clear. */
	assert_true(ca.n >= 2);
	assert_int_equal(cap_body(&ca, 0), LBD__SYNC_FRAME__BODY_BULK_BEGIN);
	f = tc_frame(&ca, 1);
	assert_int_equal(f->body_case, LBD__SYNC_FRAME__BODY_CLEAR);
	assert_string_equal(f->clear->service, MS_SERVICE);
	assert_string_equal(f->clear->origin, "lb1");
	lbd__sync_frame__free_unpacked(f, NULL);
	sync_on_up(b->sync);
	tc_reset(&cb);
	cap_deliver(&ca, b);
	assert_int_equal(b->clears, 1);
	assert_int_equal(ms_count(b), 0);
	assert_int_equal(status(a).clears_sent, 1);
	assert_int_equal(status(b).clears_received, 1);
	/* Up: at once. "" covers every service. */
	sync_send_clear(a->sync, "", 5);
	assert_int_equal(ca.n, 1);
	f = tc_frame(&ca, 0);
	assert_string_equal(f->clear->service, "");
	lbd__sync_frame__free_unpacked(f, NULL);
	tc_free(&ca);
	tc_free(&cb);
	ms_free(a);
	ms_free(b);
}

static void
test_may_preempt(void **state)
{
	struct sync_config sc;
	struct mstore	*m;
	struct tc_cap	 c = { 0 };

	memset(&sc, 0, sizeof(sc));
	sc.connect_wait_ms = 50;
	sc.bulk_wait_ms = 400;
	/* Never connected: stop waiting after connect_wait_ms. */
	m = ms_new("lb1", "lb2", 16, &sc);
	tc_attach(m->sync, &c);
	assert_false(sync_may_preempt(m->sync));
	usleep(60000);
	assert_true(sync_may_preempt(m->sync));
	ms_free(m);
	/* Connected, but the bulk does not end: after bulk_wait_ms. */
	m = ms_new("lb1", "lb2", 16, &sc);
	tc_attach(m->sync, &c);
	sync_on_up(m->sync);
	usleep(60000);
	assert_false(sync_may_preempt(m->sync));
	usleep(400000);
	assert_true(sync_may_preempt(m->sync));
	ms_free(m);
	/* Peer's BulkEnd: at once, and it stays so after a reconnect. */
	m = ms_new("lb1", "lb2", 16, NULL);
	tc_attach(m->sync, &c);
	sync_on_up(m->sync);
	{
		Lbd__SyncFrame	 f = LBD__SYNC_FRAME__INIT;
		Lbd__BulkBegin	 bb = LBD__BULK_BEGIN__INIT;
		Lbd__BulkEnd	 be = LBD__BULK_END__INIT;

		f.body_case = LBD__SYNC_FRAME__BODY_BULK_BEGIN;
		f.bulk_begin = &bb;
		feed(m, &f);
		assert_false(sync_may_preempt(m->sync));
		f.body_case = LBD__SYNC_FRAME__BODY_BULK_END;
		f.bulk_end = &be;
		feed(m, &f);
	}
	assert_true(sync_may_preempt(m->sync));
	sync_on_down(m->sync, "peer went away", true);
	assert_int_equal(m->peer_lost, 1);
	assert_string_equal(m->state, "connecting");
	assert_true(sync_may_preempt(m->sync));
	tc_free(&c);
	ms_free(m);
}

/* ---------------------------------------------------------------- loopback */

static void
node_start(struct mstore *m, const char *addr, const char *peer, const char *peer_addr,
    uint16_t port)
{
	struct channel_config cc;
	char		 err[256] = "";

	memset(&cc, 0, sizeof(cc));
	snprintf(cc.node_name, sizeof(cc.node_name), "%s", m->name);
	tu_set_addr(&cc.node_addr, addr, 0);
	snprintf(cc.peer_name, sizeof(cc.peer_name), "%s", peer);
	tu_set_addr(&cc.peer_addr[0], peer_addr, 0);
	cc.npeer_addr = 1;
	cc.sync_port = port;
	memcpy(cc.key, cluster_key, sizeof(cc.key));
	if (sync_start(m->sync, &cc, err, sizeof(err)) == -1)
		fail_msg("sync_start %s: %s", m->name, err);
	assert_non_null(sync_channel(m->sync));
}

/* Pumps until both report "synced". Returns: ms it took, -1 timeout. */
static int64_t
wait_synced(struct mstore *a, struct mstore *b, int timeout_ms)
{
	uint64_t start = clock_now_us();

	while (strcmp(a->state, "synced") != 0 || strcmp(b->state, "synced") != 0) {
		if (clock_now_us() - start > (uint64_t)timeout_ms * 1000)
			return -1;
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	}
	return (int64_t)(clock_now_us() - start) / 1000;
}

/* Pumps until neither side has anything pending or unacked, then a bit more. */
static void
settle(struct mstore *a, struct mstore *b)
{
	uint64_t start = clock_now_us();

	do {
		tu_pump(base, 20, EVLOOP_NONBLOCK);
	} while ((a->ndirty > 0 || b->ndirty > 0 ||
	    status(a).acks < status(a).batches_sent || status(b).acks < status(b).batches_sent) &&
	    clock_now_us() - start < 5000000);
}

static void
test_loopback_converge(void **state)
{
	struct mstore	*a = ms_new("lb1", "lb2", 20000, NULL);
	struct mstore	*b = ms_new("lb2", "lb1", 20000, NULL);
	uint16_t	 port = next_port++;
	int64_t		 ms;

	for (uint32_t i = 0; i < 5000; i++)
		ms_set(a, i, 1);
	for (uint32_t i = 4000; i < 7000; i++)
		ms_set(b, i, 2);	/* 4000-4999 on both: the higher version wins */
	for (uint32_t i = 4500; i < 4600; i++)
		ms_set(a, i, 3);	/* these change again on a */
	node_start(b, "127.0.0.2", "lb1", "127.0.0.1", port);
	node_start(a, "127.0.0.1", "lb2", "127.0.0.2", port);
	ms = wait_synced(a, b, 5000);
	assert_true(ms >= 0);
	settle(a, b);
	assert_int_equal(ms_count(a), 7000);
	ms_assert_same(a, b);
	assert_true(sync_may_preempt(a->sync));
	assert_true(sync_may_preempt(b->sync));

	/* Incremental both ways: creates, re-picks, deletes. */
	for (uint32_t i = 7000; i < 7100; i++)
		ms_set(a, i, 0);
	for (uint32_t i = 0; i < 50; i++)
		ms_set(b, i, 3);
	for (uint32_t i = 6000; i < 6010; i++)
		ms_delete(a, i);
	settle(a, b);
	assert_int_equal(ms_count(b), 7090);
	ms_assert_same(a, b);

	/* The peer process dies: its kernel closes the channel, we are told. */
	sync_free(b->sync);
	b->sync = NULL;
	tu_pump(base, 200, EVLOOP_NONBLOCK);
	assert_int_equal(a->peer_lost, 1);
	assert_string_equal(a->state, "connecting");
	ms_free(a);
	ms_free(b);
}

static void
test_loopback_bulk_1m(void **state)
{
	struct mstore	*a = ms_new("lb1", "lb2", BIG_BULK, NULL);
	struct mstore	*b = ms_new("lb2", "lb1", BIG_BULK, NULL);
	uint16_t	 port = next_port++;
	struct sync_status sa, sb;
	uint64_t	 t0;
	int64_t		 ms;

	for (uint32_t i = 0; i < BIG_BULK; i++)
		ms_set(a, i, (uint8_t)(i % MS_BACKENDS));
	node_start(b, "127.0.0.2", "lb1", "127.0.0.1", port);
	node_start(a, "127.0.0.1", "lb2", "127.0.0.2", port);
	t0 = clock_now_us();
	ms = wait_synced(a, b, 60000);
	assert_true(ms >= 0);
	sa = status(a);
	sb = status(b);
	printf("sync: bulk of %llu entries: %.3f s BulkBegin..BulkEnd at the receiver, "
	    "%.3f s from start (connect included); %llu batches, %.0f entries/frame\n",
	    (unsigned long long)sb.last_bulk_entries, sb.last_bulk_ms / 1000.0,
	    (double)(clock_now_us() - t0) / 1e6, (unsigned long long)sa.batches_sent,
	    (double)sa.entries_sent / (double)sa.batches_sent);
	assert_int_equal(sb.last_bulk_entries, BIG_BULK);
	assert_int_equal(ms_count(b), BIG_BULK);
	/* Generous under ASan; the -O2 figure is what SPEC 10 measures. */
	assert_true(sb.last_bulk_ms < 30000);
	ms_assert_same(a, b);
	ms_free(a);
	ms_free(b);
}

/* The lag run: LAG_RATE updates per ms on a, from a 1 ms timer. */
struct lagrun {
	struct mstore	*m;		/* where updates happen */
	uint64_t	 start_us;	/* run start */
	uint64_t	 done;		/* updates made */
	uint32_t	 rnd;		/* xorshift state */
};

static void
lag_tick(evutil_socket_t fd, short what, void *arg)
{
	struct lagrun	*r = arg;
	uint64_t	 due = (clock_now_us() - r->start_us) * LAG_RATE / 1000;

	while (r->done < due) {
		r->rnd ^= r->rnd << 13;
		r->rnd ^= r->rnd >> 17;
		r->rnd ^= r->rnd << 5;
		ms_set(r->m, r->rnd % r->m->n, (uint8_t)(r->done % MS_BACKENDS));
		r->done++;
	}
}

static void
test_loopback_lag(void **state)
{
	struct mstore	*a = ms_new("lb1", "lb2", 100000, NULL);
	struct mstore	*b = ms_new("lb2", "lb1", 100000, NULL);
	uint16_t	 port = next_port++;
	struct lagrun	 run = { .m = a, .rnd = 2463534242u };
	struct timeval	 tv = { 0, 1000 };
	struct sync_status st;
	struct event	*ev;

	node_start(b, "127.0.0.2", "lb1", "127.0.0.1", port);
	node_start(a, "127.0.0.1", "lb2", "127.0.0.2", port);
	assert_true(wait_synced(a, b, 5000) >= 0);
	ev = event_new(base, -1, EV_PERSIST, lag_tick, &run);
	run.start_us = clock_now_us();
	evtimer_add(ev, &tv);
	tu_pump(base, LAG_RUN_MS, EVLOOP_NONBLOCK);
	event_free(ev);
	settle(a, b);
	st = status(a);
	printf("sync: %llu updates in %d ms (%.0f/s): lag p50 %.2f ms, p99 %.2f ms "
	    "(last %u acks); %llu frames, %.1f entries/frame\n",
	    (unsigned long long)run.done, LAG_RUN_MS, run.done * 1000.0 / LAG_RUN_MS,
	    st.lag_p50_ms, st.lag_p99_ms, SYNC_LAG_WINDOW, (unsigned long long)st.batches_sent,
	    (double)st.entries_sent / (double)st.batches_sent);
	assert_true(st.lag_p50_ms >= 0);
	/* Generous under ASan; the -O2 build is what SPEC 10 measures. */
	assert_true(st.lag_p99_ms < 100);
	/* Coalescing: far fewer frames than updates. */
	assert_true(st.batches_sent < run.done / 3);
	ms_assert_same(a, b);
	ms_free(a);
	ms_free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_decode),
		cmocka_unit_test_setup_teardown(test_apply_verdicts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batching, setup, teardown),
		cmocka_unit_test_setup_teardown(test_coalescing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bulk_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backpressure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_send_failure_resync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lag, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clear, setup, teardown),
		cmocka_unit_test_setup_teardown(test_may_preempt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loopback_converge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loopback_bulk_1m, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loopback_lag, setup, teardown),
	};

	if (sodium_init() == -1)
		return 1;
	randombytes_buf(cluster_key, sizeof(cluster_key));
	next_port = (uint16_t)(28000 + getpid() % 1500);	/* below the ephemeral range */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
