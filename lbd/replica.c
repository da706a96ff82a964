/*
 * replica.c - lbd's sticky tables as the store of hasync's sync layer:
 * names on the wire, indices in the tables, clears swept a turn at a time.
 * cluster.c starts it; the fuzz harness links it with the sync layer alone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "lbd.h"
#include "hasync.h"

#define REPLICA_SCAN_CALLS	4	/* sticky_scan calls per bulk slice: bounds the work per turn */
#define REPLICA_CLEAR_SLOTS	2048	/* table slots a clear's sweep visits per loop turn (~3 ms at most) */

struct replica {
	struct lbd	*lbd;		/* owner */
	struct sync	*sync;		/* the protocol and channel */
	int		 name_cmp;	/* sign of strcmp(peer name, node name): tie-break */
	int		 next_svc;	/* service take_dirty starts with: round robin */
	struct service	*last_svc;	/* apply: service of the previous entry */
	struct backend	*last_be;	/* apply: backend of the previous entry */
	struct event	*ev_clear;	/* goes on with the tables' clear sweeps, a turn at a time */
	struct sticky_change changes[SYNC_BATCH_MAX]; /* scratch for one batch */
};

static int
replica_sign(int v)
{
	return v < 0 ? -1 : v > 0;
}

/* One table change as the sync layer sends it. Returns: false, skip it (bad index). */
static bool
replica_entry_of(struct service *svc, const struct sticky_change *c, struct sync_entry *e)
{
	if (c->backend >= svc->nbackends)
		return false;
	e->service = svc->conf.name;
	memcpy(e->client, c->ip.bytes, sizeof(e->client));
	e->backend = c->backend >= 0 ? svc->backends[c->backend].conf.name : NULL;
	e->deleted = c->backend < 0;
	e->expires_in_ms = c->expires_in_ms;
	e->version = c->version;
	e->origin_peer = c->origin == STICKY_ORIGIN_PEER;
	return true;
}

/* ---------------------------------------------------------------- store callbacks */

static size_t
replica_take_dirty(void *arg, struct sync_entry *out, size_t max)
{
	struct replica	*r = arg;
	struct lbd	*lbd = r->lbd;
	uint32_t	 now = now_s(), got, j;
	size_t		 n = 0;
	int		 k, i;

	for (k = 0; k < lbd->nservices && n < max; k++) {
		struct service *svc = &lbd->services[(r->next_svc + k) % lbd->nservices];

		if (svc->sticky == NULL)
			continue;
		got = sticky_take_dirty(svc->sticky, now, r->changes, (uint32_t)(max - n));
		for (j = 0; j < got; j++)
			if (replica_entry_of(svc, &r->changes[j], &out[n]))
				n++;
	}
	if (lbd->nservices > 0) {
		i = (r->next_svc + 1) % lbd->nservices;
		r->next_svc = i;
	}
	return n;
}

/* cursor: service index << 32 | slot in its table. */
static size_t
replica_scan(void *arg, uint64_t *cursor, struct sync_entry *out, size_t max, bool *done)
{
	struct replica	*r = arg;
	struct lbd	*lbd = r->lbd;
	uint32_t	 now = now_s(), si = (uint32_t)(*cursor >> 32), slot = (uint32_t)*cursor;
	uint32_t	 got, j;
	size_t		 n = 0;
	bool		 tdone;
	int		 calls;

	for (calls = 0; si < (uint32_t)lbd->nservices && n < max && calls < REPLICA_SCAN_CALLS;
	    calls++) {
		struct service *svc = &lbd->services[si];

		if (svc->sticky == NULL) {
			si++;
			slot = 0;
			continue;
		}
		got = sticky_scan(svc->sticky, &slot, now, r->changes, (uint32_t)(max - n), &tdone);
		for (j = 0; j < got; j++)
			if (replica_entry_of(svc, &r->changes[j], &out[n]))
				n++;
		if (tdone) {
			si++;
			slot = 0;
		}
	}
	*cursor = (uint64_t)si << 32 | slot;
	*done = si >= (uint32_t)lbd->nservices;
	return n;
}

static void
replica_bulk_start(void *arg)
{
	struct replica	*r = arg;
	int		 i;

	for (i = 0; i < r->lbd->nservices; i++)
		if (r->lbd->services[i].sticky != NULL)
			sticky_dirty_clear(r->lbd->services[i].sticky);
}

static enum sync_apply
replica_apply(void *arg, const struct sync_entry *e)
{
	struct replica	*r = arg;
	struct service	*svc = r->last_svc;
	struct sticky_change c;
	int		 i;

	/* Batches name the same service and few backends over and over: cache them. */
	if (svc == NULL || strcmp(svc->conf.name, e->service) != 0) {
		if ((svc = lbd_service_by_name(r->lbd, e->service)) == NULL ||
		    svc->sticky == NULL)
			return SYNC_APPLY_UNKNOWN_SERVICE;
		r->last_svc = svc;
		r->last_be = NULL;
	}
	memset(&c, 0, sizeof(c));
	c.backend = -1;
	if (!e->deleted) {
		if (r->last_be == NULL || strcmp(r->last_be->conf.name, e->backend) != 0) {
			r->last_be = NULL;
			for (i = 0; i < svc->nbackends; i++)
				if (strcmp(svc->backends[i].conf.name, e->backend) == 0) {
					r->last_be = &svc->backends[i];
					break;
				}
			if (r->last_be == NULL)
				return SYNC_APPLY_UNKNOWN_BACKEND;
		}
		c.backend = r->last_be->index;
	}
	memcpy(c.ip.bytes, e->client, sizeof(c.ip.bytes));
	c.expires_in_ms = e->expires_in_ms;
	c.version = e->version;
	c.origin = e->origin_peer ? STICKY_ORIGIN_PEER : STICKY_ORIGIN_SELF;
	return sticky_apply(svc->sticky, &c, r->name_cmp, now_s()) == 1 ?
	    SYNC_APPLY_OK : SYNC_APPLY_STALE;
}

/* Finishes every clear's sweep now: without a loop to spread it over. */
static void
replica_clear_finish(struct replica *r)
{
	struct sticky_table *t;
	int		 i;

	for (i = 0; i < r->lbd->nservices; i++)
		while ((t = r->lbd->services[i].sticky) != NULL && sticky_clear_pending(t))
			sticky_clear_step(t, UINT32_MAX);
}

/* The sweeps left go on at the next loop turn, after everything else has been polled. */
static void
replica_clear_later(struct replica *r)
{
	static const struct timeval next_turn = { 0, 0 };

	if (r->ev_clear == NULL ||
	    (!evtimer_pending(r->ev_clear, NULL) && evtimer_add(r->ev_clear, &next_turn) == -1))
		replica_clear_finish(r);
}

/* Sweeps of clears that did not finish at once: a slice per table per loop turn. */
static void
replica_clear_more(evutil_socket_t fd, short what, void *arg)
{
	struct replica	*r = arg;
	struct sticky_table *t;
	bool		 more = false;
	int		 i;

	for (i = 0; i < r->lbd->nservices; i++) {
		if ((t = r->lbd->services[i].sticky) == NULL || !sticky_clear_pending(t))
			continue;
		sticky_clear_step(t, REPLICA_CLEAR_SLOTS);
		more = more || sticky_clear_pending(t);
	}
	if (more)
		replica_clear_later(r);
}

static int
replica_clear(void *arg, const char *service, uint64_t version, bool origin_peer)
{
	struct replica	*r = arg;
	struct service	*only = NULL;
	int		 i;

	if (service[0] != '\0' && (only = lbd_service_by_name(r->lbd, service)) == NULL)
		return -1;
	for (i = 0; i < r->lbd->nservices; i++) {
		struct service *svc = &r->lbd->services[i];

		if ((only != NULL && svc != only) || svc->sticky == NULL)
			continue;
		sticky_clear(svc->sticky, version,
		    origin_peer ? STICKY_ORIGIN_PEER : STICKY_ORIGIN_SELF, r->name_cmp);
	}
	replica_clear_later(r);
	return 0;
}

static void
replica_state_changed(void *arg, const char *state)
{
	struct replica	*r = arg;

	bus_publish(r->lbd, "sync", json_pack("{s:s, s:s}", "state", state,
	    "peer", r->lbd->conf->peer_name));
}

static void
replica_peer_lost(void *arg, const char *reason)
{
	struct replica	*r = arg;

	if (r->lbd->ha != NULL)
		hasync_peer_lost(r->lbd->ha, reason);
}

/* Connection mirroring rides on the same channel: mirror.c's, passed on. */
static void
replica_pairs_up(void *arg)
{
	struct replica	*r = arg;

	mirror_peer_up(r->lbd);	/* resyncs the workers through its ops */
}

static void
replica_pairs(void *arg, const struct Lbd__PairBatch *b)
{
	struct replica	*r = arg;

	mirror_rx(r->lbd, b);
}

static void
replica_pairs_acked(void *arg, uint64_t sequence)
{
	mirror_acked_batch(sequence);
}

/* A table has new pending changes. */
static void
replica_notify(void *arg)
{
	struct replica	*r = arg;

	sync_kick(r->sync);
}

/* ---------------------------------------------------------------- life */

int
replica_init(struct lbd *lbd)
{
	static const struct sync_callbacks cbs = {
		.take_dirty = replica_take_dirty,
		.scan = replica_scan,
		.bulk_start = replica_bulk_start,
		.apply = replica_apply,
		.clear = replica_clear,
		.state_changed = replica_state_changed,
		.peer_lost = replica_peer_lost,
		.log = log_hasync,
	};
	struct lbd_config *conf = lbd->conf;
	struct sync_callbacks cb = cbs;
	struct sync_config sc;
	struct replica	*r;
	char		 err[256];
	int		 i;

	if (conf->mirror) {
		cb.pairs_up = replica_pairs_up;
		cb.pairs = replica_pairs;
		cb.pairs_acked = replica_pairs_acked;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		log_warn("%s: calloc", __func__);
		return -1;
	}
	r->lbd = lbd;
	r->name_cmp = replica_sign(strcmp(conf->peer_name, conf->node_name));
	/* Without a loop (some tests) a clear's sweep finishes at once. */
	if (lbd->base != NULL && (r->ev_clear = evtimer_new(lbd->base, replica_clear_more, r)) == NULL) {
		log_warnx("%s: evtimer_new failed", __func__);
		free(r);
		return -1;
	}
	memset(&sc, 0, sizeof(sc));
	snprintf(sc.node_name, sizeof(sc.node_name), "%s", conf->node_name);
	snprintf(sc.peer_name, sizeof(sc.peer_name), "%s", conf->peer_name);
	if ((r->sync = sync_new(lbd->base, &sc, &cb, r, err, sizeof(err))) == NULL) {
		log_warnx("%s", err);
		if (r->ev_clear != NULL)
			event_free(r->ev_clear);
		free(r);
		return -1;
	}
	for (i = 0; i < lbd->nservices; i++)
		if (lbd->services[i].sticky != NULL)
			sticky_replicate(lbd->services[i].sticky, replica_notify, r);
	lbd->replica = r;
	return 0;
}

void
replica_close(struct lbd *lbd)
{
	struct replica	*r = lbd->replica;
	int		 i;

	if (r == NULL)
		return;
	/* The tables may outlive us: no more notifications. */
	for (i = 0; i < lbd->nservices; i++)
		if (lbd->services[i].sticky != NULL)
			sticky_replicate(lbd->services[i].sticky, NULL, NULL);
	sync_free(r->sync);
	if (r->ev_clear != NULL)
		event_free(r->ev_clear);
	free(r);
	lbd->replica = NULL;
}

struct sync *
replica_sync(struct lbd *lbd)
{
	return lbd->replica != NULL ? lbd->replica->sync : NULL;
}

int
replica_send_pairs(struct lbd *lbd, const struct Lbd__PairBatch *b)
{
	return lbd->replica != NULL ? sync_send_pairs(lbd->replica->sync, b) : -1;
}

bool
replica_sync_up(struct lbd *lbd)
{
	return lbd->replica != NULL && sync_up(lbd->replica->sync);
}

bool
replica_may_preempt(struct lbd *lbd)
{
	if (!lbd->conf->has_peer)
		return true;
	if (lbd->replica == NULL)
		return false;	/* not started yet */
	return sync_may_preempt(lbd->replica->sync);
}

uint64_t
replica_flush(struct lbd *lbd, struct service *only)
{
	struct replica	*r = lbd->replica;
	uint64_t	 n = 0, version = 0;
	int		 i;

	if (r != NULL)
		version = sticky_version_next();
	for (i = 0; i < lbd->nservices; i++) {
		struct service *svc = &lbd->services[i];

		if ((only != NULL && svc != only) || svc->sticky == NULL)
			continue;
		n += sticky_count(svc->sticky);
		if (r != NULL)
			sticky_clear(svc->sticky, version, STICKY_ORIGIN_SELF, r->name_cmp);
		else
			sticky_flush(svc->sticky);
	}
	if (r != NULL)
		replica_clear_later(r);
	if (r != NULL)
		sync_send_clear(r->sync, only != NULL ? only->conf.name : "", version);
	return n;
}
