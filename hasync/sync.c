/*
 * sync.c - the replication protocol on top of the channel: incremental
 * batches of coalesced changes, a bulk of the whole table on every
 * connect, clears, acks and lag, and the checks on what the peer sends.
 * The merge itself (last writer wins, ties by node name) is the store's
 * (lbd/sticky.c); the rule is written down in proto/README.md.
 */
#include <sys/timerfd.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "hasync.pb-c.h"
#include "hasync_int.h"

#define SYNC_INFLIGHT		4096	/* batches awaiting an ack we remember (power of two) */
#define SYNC_CLEARS_MAX		32	/* pending clears (one per service, coalesced) */
#define SYNC_RETRY_MS		2	/* queue over queue_high: look again after this long */
#define SYNC_LOG_INTERVAL_MS	1000	/* at most one bad-input line per second */

/* A batch sent and not yet acked. */
struct sync_inflight {
	uint64_t	 sequence;	/* its EntryBatch.sequence */
	uint64_t	 changed_us;	/* when its oldest change was made; 0: bulk, no lag */
};

/* A clear waiting for the channel. */
struct sync_clear {
	char		 service[HASYNC_NAME_MAX];	/* "" = every service */
	uint64_t	 version;	/* its version */
};

struct sync {
	struct event_base *base;	/* lbd's loop */
	struct sync_config conf;	/* copy, defaults applied */
	struct sync_callbacks cb;	/* copy */
	void		*arg;		/* for the callbacks */
	struct channel	*channel;	/* NULL until sync_start, or with a test transport */
	struct sync_transport tr;	/* where frames go */
	void		*tr_arg;	/* for tr */
	struct event	*ev_flush;	/* incremental flush: next turn or retry (libevent timer) */
	struct event	*ev_kick;	/* the same, at priority 0, right after a change's callback */
	int		 delay_fd;	/* timerfd: the rest of a SYNC_FLUSH_GAP_US gap */
	struct event	*ev_delay;	/* EV_READ on delay_fd */
	bool		 delay_armed;	/* delay_fd is counting */
	uint64_t	 last_batch_us;	/* when the last EntryBatch of changes left */
	struct event	*ev_bulk;	/* next bulk slice */
	uint64_t	 started_us;	/* sync_new */
	bool		 up;		/* the channel is up */
	bool		 ever_up;	/* it came up at least once */
	uint64_t	 up_us;		/* when it last came up */
	bool		 preempt_ok;	/* latched: may_preempt answers true */
	bool		 bulk_tx;	/* our bulk is being sent */
	uint64_t	 bulk_cursor;	/* the store's scan position */
	uint64_t	 bulk_count;	/* entries sent in this bulk */
	bool		 resync;	/* a send failed while up: bulk again */
	bool		 peer_bulk;	/* between the peer's BulkBegin and BulkEnd */
	bool		 peer_bulk_done; /* the peer's BulkEnd arrived on this connection */
	uint64_t	 peer_bulk_start_us; /* its BulkBegin */
	uint64_t	 peer_bulk_count; /* entries received since */
	uint64_t	 pending_since_us; /* oldest change not yet sent; 0: none */
	uint64_t	 sequence;	/* last EntryBatch.sequence sent */
	struct sync_inflight inflight[SYNC_INFLIGHT]; /* by sequence % SYNC_INFLIGHT */
	struct sync_clear clears[SYNC_CLEARS_MAX]; /* pending clears */
	int		 nclears;
	const char	*state;		/* last state reported */
	uint32_t	 lag_us[SYNC_LAG_WINDOW]; /* ring of lag samples */
	uint32_t	 nlag;		/* samples so far (ring index = nlag % window) */
	struct hasync_rlimit rl_bad;	/* log rate limit of bad-input lines */
	struct sync_status st;		/* counters */
	/* Scratch for one batch, out and in. */
	struct sync_entry out[SYNC_BATCH_MAX];	/* from the store */
	Lbd__StickyEntry pb[SYNC_BATCH_MAX];	/* as protobuf */
	Lbd__StickyEntry *pbp[SYNC_BATCH_MAX];	/* pointers to pb */
};

static void	sync_flush_cb(evutil_socket_t, short, void *);
static void	sync_bulk_cb(evutil_socket_t, short, void *);

/* ---------------------------------------------------------------- helpers */

static void
sync_log(struct sync *s, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
sync_log(struct sync *s, int level, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	hasync_vlog(s->cb.log, s->arg, level, fmt, ap);
	va_end(ap);
}

/* Bad input from the peer: one line per SYNC_LOG_INTERVAL_MS, the rest counted. */
static void
sync_log_bad(struct sync *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
sync_log_bad(struct sync *s, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	hasync_vlog_limited(s->cb.log, s->arg, &s->rl_bad, SYNC_LOG_INTERVAL_MS, 0, fmt, ap);
	va_end(ap);
}

/* "down", "connecting", "bulk" or "synced". */
static const char *
sync_state(const struct sync *s)
{
	if (s->channel == NULL && s->tr.send == NULL)
		return "down";
	if (!s->up)
		return "connecting";
	if (s->bulk_tx || !s->peer_bulk_done)
		return "bulk";
	return "synced";
}

static void
sync_state_check(struct sync *s)
{
	const char *now = sync_state(s);

	if (now == s->state)
		return;
	s->state = now;
	sync_log(s, 1, "sync with %s: %s", s->conf.peer_name, now);
	if (s->cb.state_changed != NULL)
		s->cb.state_changed(s->arg, now);
}

/*
 * Runs ev after ms (0: on the next loop turn; a timer, not event_active,
 * which libevent would run again within the same turn).
 */
static void
sync_schedule(struct event *ev, int ms)
{
	struct timeval	 tv = { 0, ms * 1000 };

	if (!evtimer_pending(ev, NULL))
		evtimer_add(ev, &tv);
}

static int
sync_send(struct sync *s, const Lbd__SyncFrame *f)
{
	if (!s->up || s->tr.send == NULL)
		return -1;
	if (s->tr.send(s->tr_arg, f) == -1) {
		/* Up but refused (queue full): what it carried comes again in a bulk. */
		if (!s->resync)
			sync_log(s, 0, "sync: cannot queue a frame to %s; full resync follows",
			    s->conf.peer_name);
		s->resync = true;
		sync_schedule(s->ev_flush, SYNC_RETRY_MS);
		return -1;
	}
	return 0;
}

static bool
sync_congested(struct sync *s)
{
	if (s->tr.queued == NULL)
		return false;
	return s->tr.queued(s->tr_arg) > s->conf.queue_high;
}

/* ---------------------------------------------------------------- sending */

/* Sends n entries of s->out as one EntryBatch; changed_us 0 for a bulk batch. */
static int
sync_send_batch(struct sync *s, size_t n, uint64_t changed_us)
{
	Lbd__SyncFrame	 f = LBD__SYNC_FRAME__INIT;
	Lbd__EntryBatch	 b = LBD__ENTRY_BATCH__INIT;
	struct sync_inflight *fl;
	size_t		 i;

	for (i = 0; i < n; i++) {
		const struct sync_entry *e = &s->out[i];
		Lbd__StickyEntry *p = &s->pb[i];

		lbd__sticky_entry__init(p);
		/* protobuf-c wants char *; packing only reads. */
		p->service = (char *)e->service;
		p->client.data = (uint8_t *)e->client;
		p->client.len = sizeof(e->client);
		p->backend = e->deleted || e->backend == NULL ? (char *)"" : (char *)e->backend;
		p->expires_in_ms = e->expires_in_ms;
		p->version = e->version;
		p->origin = e->origin_peer ? s->conf.peer_name : s->conf.node_name;
		p->deleted = e->deleted;
		s->pbp[i] = p;
	}
	b.n_entries = n;
	b.entries = s->pbp;
	b.sent_ms = clock_now_us() / 1000;
	b.sequence = s->sequence + 1;
	f.body_case = LBD__SYNC_FRAME__BODY_ENTRIES;
	f.entries = &b;
	if (sync_send(s, &f) == -1)
		return -1;
	s->sequence++;
	fl = &s->inflight[s->sequence % SYNC_INFLIGHT];
	fl->sequence = s->sequence;
	fl->changed_us = changed_us;
	s->st.batches_sent++;
	s->st.entries_sent += n;
	/* On the wire now, not on the next loop turn: lag is the point. */
	if (s->channel != NULL && changed_us != 0)
		channel_flush(s->channel);
	return 0;
}

static void
sync_send_clears(struct sync *s)
{
	Lbd__SyncFrame	 f = LBD__SYNC_FRAME__INIT;
	Lbd__Clear	 c = LBD__CLEAR__INIT;

	while (s->nclears > 0 && s->up) {
		c.service = s->clears[0].service;
		c.version = s->clears[0].version;
		c.origin = s->conf.node_name;
		f.body_case = LBD__SYNC_FRAME__BODY_CLEAR;
		f.clear = &c;
		if (sync_send(s, &f) == -1)
			return;
		s->st.clears_sent++;
		memmove(&s->clears[0], &s->clears[1], (size_t)--s->nclears * sizeof(s->clears[0]));
	}
}

/* Starts our bulk: BulkBegin, the pending clears, then batches from sync_bulk_cb. */
static void
sync_bulk_begin(struct sync *s)
{
	Lbd__SyncFrame	 f = LBD__SYNC_FRAME__INIT;
	Lbd__BulkBegin	 b = LBD__BULK_BEGIN__INIT;

	s->resync = false;
	f.body_case = LBD__SYNC_FRAME__BODY_BULK_BEGIN;
	f.bulk_begin = &b;
	if (sync_send(s, &f) == -1)
		return;		/* resync is set again: retried from sync_flush_cb */
	if (s->cb.bulk_start != NULL)
		s->cb.bulk_start(s->arg);
	s->pending_since_us = 0;
	s->bulk_tx = true;
	s->bulk_cursor = 0;
	s->bulk_count = 0;
	sync_send_clears(s);
	sync_schedule(s->ev_bulk, 0);
}

static void
sync_bulk_end(struct sync *s)
{
	Lbd__SyncFrame	 f = LBD__SYNC_FRAME__INIT;
	Lbd__BulkEnd	 b = LBD__BULK_END__INIT;

	b.entries = s->bulk_count;
	f.body_case = LBD__SYNC_FRAME__BODY_BULK_END;
	f.bulk_end = &b;
	if (sync_send(s, &f) == -1)
		return;
	s->bulk_tx = false;
	s->st.bulks_sent++;
	sync_log(s, 1, "sync: bulk of %llu entries sent to %s",
	    (unsigned long long)s->bulk_count, s->conf.peer_name);
	sync_state_check(s);
}

/* One slice of our bulk: a few batches, then the loop runs other events. */
static void
sync_bulk_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sync	*s = arg;
	size_t		 n;
	bool		 done = false;
	int		 i;

	if (!s->up || !s->bulk_tx)
		return;
	for (i = 0; i < SYNC_BULK_PER_TURN && !done; i++) {
		if (sync_congested(s)) {
			s->st.held++;
			sync_schedule(s->ev_bulk, SYNC_RETRY_MS);
			return;
		}
		n = s->cb.scan(s->arg, &s->bulk_cursor, s->out, SYNC_BATCH_MAX, &done);
		if (n > 0) {
			if (sync_send_batch(s, n, 0) == -1)
				return;
			s->bulk_count += n;
		}
	}
	if (done)
		sync_bulk_end(s);
	else
		sync_schedule(s->ev_bulk, 0);	/* next turn: other events run between slices */
}

/* Incremental: pending changes in batches while the channel keeps up. */
static void
sync_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sync	*s = arg;
	size_t		 n;
	uint64_t	 since;
	int		 i;

	if (!s->up)
		return;
	if (s->resync && !sync_congested(s)) {
		sync_bulk_begin(s);
		if (!s->resync)
			s->st.resyncs++;
	}
	if (s->nclears > 0)
		sync_send_clears(s);
	for (i = 0; i < SYNC_BULK_PER_TURN; i++) {
		if (sync_congested(s)) {
			s->st.held++;
			sync_schedule(s->ev_flush, SYNC_RETRY_MS);
			return;
		}
		since = s->pending_since_us != 0 ? s->pending_since_us : clock_now_us();
		if ((n = s->cb.take_dirty(s->arg, s->out, SYNC_BATCH_MAX)) == 0) {
			s->pending_since_us = 0;
			return;
		}
		/* Drained: later changes start a new "oldest". Else keep the (older) mark. */
		if (n < SYNC_BATCH_MAX)
			s->pending_since_us = 0;
		if (sync_send_batch(s, n, since) == -1) {
			sync_schedule(s->ev_flush, SYNC_RETRY_MS);
			return;
		}
		s->last_batch_us = clock_now_us();
		if (n < SYNC_BATCH_MAX)
			return;
	}
	sync_schedule(s->ev_flush, 0);	/* more pending: next turn */
}

/* The coalescing delay is over. */
static void
sync_delay_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sync	*s = arg;
	uint64_t	 expirations;

	while (read(fd, &expirations, sizeof(expirations)) == -1 && errno == EINTR)
		;
	s->delay_armed = false;
	sync_flush_cb(-1, EV_TIMEOUT, s);
}

/*
 * A change goes out once the callback that made it returns (ev_kick and
 * ev_delay run at priority 0, before the turn's other events, e.g. the
 * next control connections; a backlog goes on through ev_flush at the
 * default priority, so that it cannot hold the relay back), unless a batch left less than
 * SYNC_FLUSH_GAP_US ago: then it waits for the rest of the gap, with the
 * changes that come meanwhile. So a lone change (a new client) costs
 * no wait, and a burst of them at most one frame per gap. The gap is
 * kept below the spacing of a steady stream (10000/s: 100 us), else every
 * other change of it waits out the gap (BENCH.md). A timerfd, not a libevent timer: libevent reads
 * CLOCK_MONOTONIC_COARSE unless the base was made with
 * EVENT_BASE_FLAG_PRECISE_TIMER, so its short timers fire a jiffy (4-10
 * ms) late, and lag is the point here.
 */
void
sync_peer_heard(struct sync *s)
{
	if (s != NULL)
		channel_kick(s->channel);
}

void
sync_kick(struct sync *s)
{
	struct itimerspec it;
	uint64_t	 now = clock_now_us(), since;

	if (s->pending_since_us == 0)
		s->pending_since_us = now;
	if (!s->up || s->delay_armed || evtimer_pending(s->ev_flush, NULL) ||
	    event_pending(s->ev_kick, EV_TIMEOUT, NULL))
		return;
	since = now - s->last_batch_us;
	if (since >= SYNC_FLUSH_GAP_US) {
		/* Right after the callback that made the change (priority 0), not after the turn's others. */
		event_active(s->ev_kick, EV_TIMEOUT, 1);
		return;
	}
	memset(&it, 0, sizeof(it));
	it.it_value.tv_nsec = (long)(SYNC_FLUSH_GAP_US - since) * 1000L;
	if (timerfd_settime(s->delay_fd, 0, &it, NULL) == -1) {
		sync_schedule(s->ev_flush, 1);	/* coarse, but it goes */
		return;
	}
	s->delay_armed = true;
}

void
sync_send_clear(struct sync *s, const char *service, uint64_t version)
{
	int	 i;

	if (service == NULL)
		service = "";
	if (service[0] == '\0')
		s->nclears = 0;		/* "every service" covers the others */
	for (i = 0; i < s->nclears; i++)
		if (strcmp(s->clears[i].service, service) == 0)
			break;
	if (i == s->nclears) {
		if (s->nclears == SYNC_CLEARS_MAX) {
			sync_log(s, 0, "sync: too many clears pending; the oldest is dropped");
			memmove(&s->clears[0], &s->clears[1],
			    (size_t)--s->nclears * sizeof(s->clears[0]));
		}
		i = s->nclears++;
		snprintf(s->clears[i].service, sizeof(s->clears[i].service), "%s", service);
		s->clears[i].version = 0;
	}
	if (version > s->clears[i].version)
		s->clears[i].version = version;
	if (s->up)
		sync_send_clears(s);
}

/* ---------------------------------------------------------------- receiving */

static void
sync_send_ack(struct sync *s, uint64_t sequence)
{
	Lbd__SyncFrame	 f = LBD__SYNC_FRAME__INIT;
	Lbd__Ack	 a = LBD__ACK__INIT;

	a.sequence = sequence;
	f.body_case = LBD__SYNC_FRAME__BODY_ACK;
	f.ack = &a;
	if (sync_send(s, &f) == 0 && s->channel != NULL)
		channel_flush(s->channel);	/* the peer's lag figure waits on it */
}

/*
 * The origin name as "the peer wrote it".
 * Returns: 1 peer, 0 us, -1 neither (bad).
 */
static int
sync_origin(const struct sync *s, const char *origin)
{
	if (origin == NULL)
		return -1;
	if (strcmp(origin, s->conf.peer_name) == 0)
		return 1;
	if (strcmp(origin, s->conf.node_name) == 0)
		return 0;
	return -1;
}

static bool
sync_name_ok(const char *name)
{
	return name != NULL && name[0] != '\0' && strnlen(name, HASYNC_NAME_MAX) < HASYNC_NAME_MAX;
}

static void
sync_rx_entry(struct sync *s, const Lbd__StickyEntry *p)
{
	struct sync_entry e;
	int		 origin;

	s->st.entries_received++;
	if (s->peer_bulk)
		s->peer_bulk_count++;
	if (!sync_name_ok(p->service)) {
		s->st.bad_entries++;
		sync_log_bad(s, "sync: entry with a bad service name dropped");
		return;
	}
	if (p->client.len != sizeof(e.client) || p->client.data == NULL) {
		s->st.bad_entries++;
		sync_log_bad(s, "sync: entry for service %s with a %zu-byte client dropped",
		    p->service, p->client.len);
		return;
	}
	if (!p->deleted && !sync_name_ok(p->backend)) {
		s->st.bad_entries++;
		sync_log_bad(s, "sync: entry for service %s with a bad backend name dropped", p->service);
		return;
	}
	if ((!p->deleted && p->expires_in_ms == 0) || p->expires_in_ms > SYNC_LIFETIME_MAX_MS) {
		s->st.bad_entries++;
		sync_log_bad(s, "sync: entry for service %s with an absurd lifetime (%u ms) dropped",
		    p->service, p->expires_in_ms);
		return;
	}
	if (p->version == 0 || (origin = sync_origin(s, p->origin)) == -1) {
		s->st.bad_entries++;
		sync_log_bad(s, "sync: entry for service %s with a bad version or origin dropped",
		    p->service);
		return;
	}
	e.service = p->service;
	memcpy(e.client, p->client.data, sizeof(e.client));
	e.backend = p->deleted ? NULL : p->backend;
	e.expires_in_ms = p->expires_in_ms;
	e.version = p->version;
	e.origin_peer = origin == 1;
	e.deleted = p->deleted;
	switch (s->cb.apply(s->arg, &e)) {
	case SYNC_APPLY_OK:
		s->st.entries_applied++;
		break;
	case SYNC_APPLY_STALE:
		s->st.entries_stale++;
		break;
	case SYNC_APPLY_UNKNOWN_SERVICE:
		s->st.bad_entries++;
		sync_log_bad(s, "sync: entry for unknown service \"%s\" dropped", p->service);
		break;
	case SYNC_APPLY_UNKNOWN_BACKEND:
		s->st.bad_entries++;
		sync_log_bad(s, "sync: entry naming unknown backend \"%s\" of service %s dropped",
		    p->backend, p->service);
		break;
	}
}

static void
sync_rx_batch(struct sync *s, const Lbd__EntryBatch *b)
{
	size_t	 i;

	s->st.batches_received++;
	for (i = 0; i < b->n_entries; i++)
		if (b->entries[i] != NULL)
			sync_rx_entry(s, b->entries[i]);
	if (b->sequence != 0)
		sync_send_ack(s, b->sequence);
}

/* A Delete frame: what an entry with deleted = true says, without a lifetime. */
static void
sync_rx_delete(struct sync *s, const Lbd__Delete *d)
{
	Lbd__StickyEntry p = LBD__STICKY_ENTRY__INIT;

	p.service = d->service;
	p.client = d->client;
	p.version = d->version;
	p.origin = d->origin;
	p.deleted = true;
	sync_rx_entry(s, &p);
}

static void
sync_rx_clear(struct sync *s, const Lbd__Clear *c)
{
	int	 origin;

	s->st.clears_received++;
	if (c->service == NULL || strnlen(c->service, HASYNC_NAME_MAX) >= HASYNC_NAME_MAX ||
	    c->version == 0 || (origin = sync_origin(s, c->origin)) == -1) {
		s->st.malformed++;
		sync_log_bad(s, "sync: clear with a bad service, version or origin dropped");
		return;
	}
	if (s->cb.clear(s->arg, c->service, c->version, origin == 1) == -1) {
		s->st.bad_entries++;
		sync_log_bad(s, "sync: clear of unknown service \"%s\" dropped", c->service);
		return;
	}
	sync_log(s, 1, "sync: %s cleared the sticky table of %s", s->conf.peer_name,
	    c->service[0] != '\0' ? c->service : "every service");
}

static void
sync_rx_ack(struct sync *s, const Lbd__Ack *a)
{
	struct sync_inflight *fl = &s->inflight[a->sequence % SYNC_INFLIGHT];
	uint64_t	 now = clock_now_us(), lag;

	if (a->sequence == 0 || fl->sequence != a->sequence)
		return;		/* too old to remember, or never sent */
	s->st.acks++;
	fl->sequence = 0;
	if (fl->changed_us == 0)
		return;		/* a bulk batch */
	lag = now > fl->changed_us ? now - fl->changed_us : 0;
	s->lag_us[s->nlag++ % SYNC_LAG_WINDOW] = lag > UINT32_MAX ? UINT32_MAX : (uint32_t)lag;
}

/* A mirror batch from the peer: to the store, then acked (the peer's lag figure). */
static void
sync_rx_pairs(struct sync *s, const Lbd__PairBatch *b)
{
	Lbd__SyncFrame	 f = LBD__SYNC_FRAME__INIT;
	Lbd__PairBatchAck a = LBD__PAIR_BATCH_ACK__INIT;

	if (s->cb.pairs == NULL) {
		s->st.malformed++;
		sync_log_bad(s, "sync: connection mirror batch from %s ignored: mirroring is "
		    "off here (set cluster.mirror the same on both nodes)", s->conf.peer_name);
		return;
	}
	s->cb.pairs(s->arg, b);
	a.sequence = b->sequence;
	f.body_case = LBD__SYNC_FRAME__BODY_PAIRS_ACK;
	f.pairs_ack = &a;
	if (sync_send(s, &f) == 0 && s->channel != NULL)
		channel_flush(s->channel);	/* the peer's lag figure */
}

void
sync_on_frame(struct sync *s, const Lbd__SyncFrame *f)
{
	if (f == NULL)
		return;
	switch (f->body_case) {
	case LBD__SYNC_FRAME__BODY_ENTRIES:
		if (f->entries != NULL)
			sync_rx_batch(s, f->entries);
		break;
	case LBD__SYNC_FRAME__BODY_DELETE:
		if (f->delete_ != NULL)
			sync_rx_delete(s, f->delete_);
		break;
	case LBD__SYNC_FRAME__BODY_CLEAR:
		if (f->clear != NULL)
			sync_rx_clear(s, f->clear);
		break;
	case LBD__SYNC_FRAME__BODY_BULK_BEGIN:
		s->peer_bulk = true;
		s->peer_bulk_start_us = clock_now_us();
		s->peer_bulk_count = 0;
		sync_log(s, 2, "sync: bulk from %s begins", s->conf.peer_name);
		break;
	case LBD__SYNC_FRAME__BODY_BULK_END:
		if (!s->peer_bulk) {
			s->st.malformed++;
			sync_log_bad(s, "sync: BulkEnd without BulkBegin ignored");
			break;
		}
		s->peer_bulk = false;
		s->peer_bulk_done = true;
		s->preempt_ok = true;
		s->st.bulks_received++;
		s->st.last_bulk_entries = s->peer_bulk_count;
		s->st.last_bulk_ms = (int64_t)((clock_now_us() - s->peer_bulk_start_us) / 1000);
		sync_log(s, 1, "sync: bulk of %llu entries from %s applied in %lld ms",
		    (unsigned long long)s->peer_bulk_count, s->conf.peer_name,
		    (long long)s->st.last_bulk_ms);
		sync_state_check(s);
		break;
	case LBD__SYNC_FRAME__BODY_ACK:
		if (f->ack != NULL)
			sync_rx_ack(s, f->ack);
		break;
	case LBD__SYNC_FRAME__BODY_PAIRS:
		if (f->pairs != NULL)
			sync_rx_pairs(s, f->pairs);
		break;
	case LBD__SYNC_FRAME__BODY_PAIRS_ACK:
		if (f->pairs_ack != NULL && s->cb.pairs_acked != NULL)
			s->cb.pairs_acked(s->arg, f->pairs_ack->sequence);
		break;
	case LBD__SYNC_FRAME__BODY_HELLO:
	case LBD__SYNC_FRAME__BODY_KEEPALIVE:
	case LBD__SYNC_FRAME__BODY_BYE:
		break;		/* the channel's business */
	default:
		s->st.malformed++;
		sync_log_bad(s, "sync: frame with no known body ignored");
		break;
	}
}

int
sync_on_bytes(struct sync *s, const uint8_t *buf, size_t len)
{
	Lbd__SyncFrame	*f;

	if ((f = lbd__sync_frame__unpack(NULL, len, buf)) == NULL) {
		s->st.malformed++;
		sync_log_bad(s, "sync: frame of %zu bytes does not decode", len);
		return -1;
	}
	sync_on_frame(s, f);
	lbd__sync_frame__free_unpacked(f, NULL);
	return 0;
}

/* ---------------------------------------------------------------- channel */

void
sync_on_up(struct sync *s)
{
	s->up = true;
	s->ever_up = true;
	s->up_us = clock_now_us();
	s->peer_bulk = false;
	s->peer_bulk_done = false;
	s->sequence = 0;
	memset(s->inflight, 0, sizeof(s->inflight));
	sync_bulk_begin(s);
	sync_state_check(s);
	if (s->cb.pairs_up != NULL)
		s->cb.pairs_up(s->arg);
}

static void
sync_disarm(struct sync *s)
{
	struct itimerspec it;

	if (!s->delay_armed)
		return;
	memset(&it, 0, sizeof(it));
	(void)timerfd_settime(s->delay_fd, 0, &it, NULL);
	s->delay_armed = false;
}

void
sync_on_down(struct sync *s, const char *reason, bool peer_died)
{
	bool	 was_up = s->up;

	s->up = false;
	s->bulk_tx = false;
	s->peer_bulk = false;
	s->peer_bulk_done = false;
	s->resync = false;
	evtimer_del(s->ev_flush);
	event_del(s->ev_kick);
	sync_disarm(s);
	event_del(s->ev_bulk);
	if (was_up)
		sync_log(s, 0, "sync: channel to %s down: %s", s->conf.peer_name,
		    reason != NULL ? reason : "?");
	if (peer_died && s->cb.peer_lost != NULL)
		s->cb.peer_lost(s->arg, reason != NULL ? reason : "sync channel closed");
	sync_state_check(s);
}

static void
sync_ch_up(void *arg)
{
	sync_on_up(arg);
}

static void
sync_ch_down(void *arg, const char *reason, bool peer_died)
{
	sync_on_down(arg, reason, peer_died);
}

static void
sync_ch_frame(void *arg, const Lbd__SyncFrame *f)
{
	sync_on_frame(arg, f);
}

static void
sync_ch_log(void *arg, int level, const char *msg)
{
	struct sync *s = arg;

	if (s->cb.log != NULL)
		s->cb.log(s->arg, level, msg);
}

static int
sync_tr_send(void *arg, const Lbd__SyncFrame *f)
{
	return channel_send(arg, f);
}

static size_t
sync_tr_queued(void *arg)
{
	return channel_queued(arg);
}

/* ---------------------------------------------------------------- life */

struct sync *
sync_new(struct event_base *base, const struct sync_config *conf,
    const struct sync_callbacks *cb, void *arg, char *err, size_t errlen)
{
	struct sync	*s;

	if (base == NULL || conf == NULL || cb == NULL || cb->take_dirty == NULL ||
	    cb->scan == NULL || cb->apply == NULL || cb->clear == NULL) {
		hasync_errf(err, errlen, "sync_new: no event base, config or store");
		return NULL;
	}
	if (!sync_name_ok(conf->node_name) || !sync_name_ok(conf->peer_name) ||
	    strcmp(conf->node_name, conf->peer_name) == 0) {
		hasync_errf(err, errlen, "sync: node and peer need two different names");
		return NULL;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		hasync_errf(err, errlen, "sync: out of memory");
		return NULL;
	}
	s->base = base;
	s->conf = *conf;
	s->cb = *cb;
	s->arg = arg;
	if (s->conf.queue_high == 0)
		s->conf.queue_high = SYNC_QUEUE_HIGH;
	if (s->conf.connect_wait_ms <= 0)
		s->conf.connect_wait_ms = SYNC_CONNECT_WAIT_MS;
	if (s->conf.bulk_wait_ms <= 0)
		s->conf.bulk_wait_ms = SYNC_BULK_WAIT_MS;
	s->started_us = clock_now_us();
	s->st.last_bulk_ms = -1;
	if ((s->delay_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) == -1) {
		hasync_errf(err, errlen, "sync: timerfd_create: %s", strerror(errno));
		free(s);
		return NULL;
	}
	if ((s->ev_flush = evtimer_new(base, sync_flush_cb, s)) == NULL ||
	    (s->ev_kick = event_new(base, -1, 0, sync_flush_cb, s)) == NULL ||
	    (s->ev_bulk = evtimer_new(base, sync_bulk_cb, s)) == NULL ||
	    (s->ev_delay = event_new(base, s->delay_fd, EV_READ | EV_PERSIST, sync_delay_cb,
	    s)) == NULL || event_priority_set(s->ev_kick, 0) == -1 ||
	    event_priority_set(s->ev_delay, 0) == -1 || event_add(s->ev_delay, NULL) == -1) {
		hasync_errf(err, errlen, "sync: out of memory (events)");
		sync_free(s);
		return NULL;
	}
	s->state = sync_state(s);
	return s;
}

int
sync_start(struct sync *s, const struct channel_config *cc, char *err, size_t errlen)
{
	static const struct channel_callbacks ccb = {
		.up = sync_ch_up,
		.down = sync_ch_down,
		.frame = sync_ch_frame,
		.log = sync_ch_log,
	};
	struct sync_transport tr = { sync_tr_send, sync_tr_queued };

	if ((s->channel = channel_new(s->base, cc, &ccb, s, err, errlen)) == NULL)
		return -1;
	s->tr = tr;
	s->tr_arg = s->channel;
	s->started_us = clock_now_us();
	if (channel_start(s->channel) == -1) {
		hasync_errf(err, errlen, "sync channel cannot start (see above)");
		return -1;
	}
	sync_state_check(s);
	return 0;
}

void
sync_set_transport(struct sync *s, const struct sync_transport *t, void *arg)
{
	s->tr = *t;
	s->tr_arg = arg;
	s->started_us = clock_now_us();
	sync_state_check(s);
}

bool
sync_may_preempt(struct sync *s)
{
	uint64_t	 now = clock_now_us();

	if (s->preempt_ok)
		return true;
	if (!s->ever_up && now - s->started_us >= (uint64_t)s->conf.connect_wait_ms * 1000) {
		sync_log(s, 1, "sync: no channel to %s after %d ms; preemption allowed",
		    s->conf.peer_name, s->conf.connect_wait_ms);
		s->preempt_ok = true;
	} else if (s->ever_up && now - s->up_us >= (uint64_t)s->conf.bulk_wait_ms * 1000) {
		sync_log(s, 0, "sync: no bulk from %s after %d ms; preemption allowed",
		    s->conf.peer_name, s->conf.bulk_wait_ms);
		s->preempt_ok = true;
	}
	return s->preempt_ok;
}

static int
sync_cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

void
sync_get_status(struct sync *s, struct sync_status *st)
{
	uint32_t	 sorted[SYNC_LAG_WINDOW];
	uint32_t	 n = s->nlag < SYNC_LAG_WINDOW ? s->nlag : SYNC_LAG_WINDOW;

	*st = s->st;
	st->state = sync_state(s);
	st->bulk_done = s->preempt_ok;
	st->lag_ms = st->lag_p50_ms = st->lag_p99_ms = -1;
	if (n == 0)
		return;
	st->lag_ms = s->lag_us[(s->nlag - 1) % SYNC_LAG_WINDOW] / 1000.0;
	memcpy(sorted, s->lag_us, n * sizeof(sorted[0]));
	qsort(sorted, n, sizeof(sorted[0]), sync_cmp_u32);
	st->lag_p50_ms = sorted[(n - 1) / 2] / 1000.0;
	st->lag_p99_ms = sorted[(n - 1) * 99 / 100] / 1000.0;
}

int
sync_send_pairs(struct sync *s, const Lbd__PairBatch *b)
{
	Lbd__SyncFrame	 f = LBD__SYNC_FRAME__INIT;

	if (!s->up)
		return -1;
	f.body_case = LBD__SYNC_FRAME__BODY_PAIRS;
	f.pairs = (Lbd__PairBatch *)(uintptr_t)b;
	if (s->tr.send(s->tr_arg, &f) == -1)
		return -1;
	if (s->channel != NULL)
		channel_flush(s->channel);
	return 0;
}

bool
sync_up(const struct sync *s)
{
	return s->up;
}

struct channel *
sync_channel(struct sync *s)
{
	return s->channel;
}

void
sync_free(struct sync *s)
{
	if (s == NULL)
		return;
	if (s->channel != NULL)
		channel_free(s->channel);
	if (s->ev_flush != NULL)
		event_free(s->ev_flush);
	if (s->ev_kick != NULL)
		event_free(s->ev_kick);
	if (s->ev_bulk != NULL)
		event_free(s->ev_bulk);
	if (s->ev_delay != NULL)
		event_free(s->ev_delay);
	close(s->delay_fd);
	free(s);
}
