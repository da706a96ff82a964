/*
 * mirror_peer.c - connection mirroring, the BACKUP's side: the MASTER's
 * pairs as its records describe them (mirror.c sends them), held until it
 * dies; then, becoming MASTER and before the VIP is announced, each pair's
 * two sockets are rebuilt with TCP_REPAIR (repair.c) and handed to the
 * relay, which goes on where the dead node stopped.
 *
 * - Per pair: both snapshots, the bytes read each way, and the bytes each
 *   destination may not have yet (from its last acknowledged offset to
 *   what was read). A rebuilt socket starts sending at that acknowledged
 *   offset; the far end drops what it already had by sequence number.
 * - Everything from the wire is checked: sizes, ports, directions,
 *   offsets. A record that does not fit (unknown pair, a gap in a byte
 *   stream, past MIRROR_HELD_MAX) is counted and, when it leaves the pair
 *   unrebuildable, the pair is dropped: a pair is rebuilt right or not at
 *   all (then its far ends learn it with a reset when they next speak).
 * - Rebuild: the front socket binds VIP:port beside the listener (repair
 *   mode forces the reuse), the back one VIP:port of the dead node's half
 *   of the ephemeral range, so nothing of ours is in the way.
 */
#include <sys/socket.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lbd.h"
#include "hasync.pb-c.h"

#define MIRROR_BUCKETS		4096		/* hash buckets of held pairs (power of two) */
#define MIRROR_HELD_MAX		(16u << 20)	/* unacknowledged bytes held per direction of a pair:
						 * a data port's socket buffers and lbd's own */
#define MIRROR_HELD_TOTAL	(512u << 20)	/* ... for all pairs */
#define MIRROR_PAIRS_MAX	1000000		/* pairs held */
#define MIRROR_LOG_MS		1000
#define MIRROR_REBUILD_THREADS	4		/* CPUs a takeover's rebuild uses, at most */
#define MIRROR_REBUILD_SHARE_MIN 64		/* pairs per thread, at least */
#define MIRROR_PROBE_AFTER_MS	5		/* rebuilt sockets probe this long after the rebuild:
						 * the GARP leaves when taking_over returns */

struct held {
	struct held	*next;		/* in its bucket */
	uint64_t	 id;
	struct mirror_pair p;
};

static struct {
	struct held	*bucket[MIRROR_BUCKETS];
	uint64_t	 n;		/* pairs held */
	uint64_t	 bytes;		/* bytes held, all pairs */
	uint64_t	 rx_records;
	uint64_t	 rx_bad;
	uint64_t	 takeovers, rebuilt, failed, last_rebuilt, last_failed;
	uint64_t	 stale_base;	/* mirror_stale_total() at the last takeover */
	double		 last_ms;
	struct log_limit limit;
} peer = { .last_ms = -1 };

static struct held **
held_slot(uint64_t id)
{
	struct held	**hp;

	for (hp = &peer.bucket[(id * 0x9e3779b97f4a7c15ULL) >> 52 & (MIRROR_BUCKETS - 1)];
	    *hp != NULL; hp = &(*hp)->next)
		if ((*hp)->id == id)
			break;
	return hp;
}

static void
held_free(struct held **hp)
{
	struct held	*h = *hp;
	int		 i;

	*hp = h->next;
	for (i = 0; i < 2; i++) {
		peer.bytes -= h->p.len[i];
		free(h->p.buf[i]);
	}
	free(h);
	peer.n--;
}

static void
mirror_peer_clear(void)
{
	int	 i;

	for (i = 0; i < MIRROR_BUCKETS; i++)
		while (peer.bucket[i] != NULL)
			held_free(&peer.bucket[i]);
}

/* A bad record: counted, said once a second. */
static void
mirror_bad(const char *fmt, uint64_t id)
{
	peer.rx_bad++;
	log_limited(&peer.limit, clock_now_ms(), MIRROR_LOG_MS, LOG_LEVEL_INFO,
	    "mirror: record from the peer dropped: %s (pair %llu)", fmt,
	    (unsigned long long)id);
}

/* A PairSock into a snapshot. Returns 0, or -1 malformed. */
static int
mirror_sock(const Lbd__PairSock *ps, struct repair_sock *rs)
{
	struct lbd_ip	 ip;

	if (ps == NULL || ps->local.len != 16 || ps->remote.len != 16 ||
	    ps->local_port == 0 || ps->local_port > 65535 || ps->remote_port == 0 ||
	    ps->remote_port > 65535 || ps->mss < 64 || ps->mss > 65535 ||
	    ps->snd_wscale > 14 || ps->rcv_wscale > 14 || ps->flags > 7)
		return -1;
	memset(rs, 0, sizeof(*rs));
	memcpy(ip.bytes, ps->local.data, 16);
	ip_to_sockaddr(&ip, (uint16_t)ps->local_port, &rs->local);
	memcpy(ip.bytes, ps->remote.data, 16);
	ip_to_sockaddr(&ip, (uint16_t)ps->remote_port, &rs->remote);
	rs->snd_isn = ps->snd_isn;
	rs->rcv_isn = ps->rcv_isn;
	rs->ts_val = ps->ts_val;
	rs->wall_ms = ps->wall_ms;
	rs->snd_wnd = ps->snd_wnd;
	rs->rcv_wnd = ps->rcv_wnd;
	rs->mss = (uint16_t)ps->mss;
	rs->snd_wscale = (uint8_t)ps->snd_wscale;
	rs->rcv_wscale = (uint8_t)ps->rcv_wscale;
	rs->sack = (ps->flags & MIRROR_PB_SACK) != 0;
	rs->tstamp = (ps->flags & MIRROR_PB_TSTAMP) != 0;
	rs->wscale = (ps->flags & MIRROR_PB_WSCALE) != 0;
	return 0;
}

static void
mirror_rx_open(const Lbd__PairOpen *o)
{
	struct held	**hp, *h;

	if (o->id == 0 || o->service == NULL || o->backend == NULL ||
	    strlen(o->service) >= LBD_NAME_MAX || strlen(o->backend) >= LBD_NAME_MAX) {
		mirror_bad("Open without id or names", o->id);
		return;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL) {
		mirror_bad("out of memory", o->id);
		return;
	}
	if (mirror_sock(o->front, &h->p.front) == -1 || mirror_sock(o->back, &h->p.back) == -1) {
		free(h);
		mirror_bad("Open with a malformed socket", o->id);
		return;
	}
	hp = held_slot(o->id);
	if (*hp != NULL)
		held_free(hp);		/* a resync's: the new one is current */
	else if (peer.n >= MIRROR_PAIRS_MAX) {
		free(h);
		mirror_bad("too many pairs held", o->id);
		return;
	}
	h->id = o->id;
	snprintf(h->p.service, sizeof(h->p.service), "%s", o->service);
	snprintf(h->p.backend, sizeof(h->p.backend), "%s", o->backend);
	h->p.read[0] = h->p.base[0] = o->read_c2b;
	h->p.read[1] = h->p.base[1] = o->read_b2c;
	h->next = NULL;
	*held_slot(o->id) = h;
	peer.n++;
}

/* Appends a direction's bytes at offset; a gap or an overflow drops the pair. */
static void
mirror_rx_bytes(const Lbd__PairBytes *b)
{
	struct held	**hp = held_slot(b->id), *h = *hp;
	struct mirror_pair *p;
	uint64_t	 end, skip, add;
	size_t		 need;
	uint8_t		*nb;
	int		 di;

	if (h == NULL) {
		mirror_bad("Bytes of an unknown pair", b->id);
		return;
	}
	if (b->dir > 1 || b->data.len == 0 || b->data.len > MIRROR_HELD_MAX) {
		mirror_bad("malformed Bytes", b->id);
		held_free(hp);
		return;
	}
	p = &h->p;
	di = (int)b->dir;
	end = b->offset + b->data.len;
	if (b->offset > p->read[di]) {
		mirror_bad("gap in a byte stream: the pair cannot be rebuilt", b->id);
		held_free(hp);
		return;
	}
	if (end <= p->read[di])
		return;		/* all seen */
	skip = p->read[di] - b->offset;
	add = b->data.len - skip;
	need = p->len[di] + add;
	if (need > MIRROR_HELD_MAX || peer.bytes + add > MIRROR_HELD_TOTAL) {
		mirror_bad("too many unacknowledged bytes: the pair cannot be rebuilt", b->id);
		held_free(hp);
		return;
	}
	if (need > p->cap[di]) {
		size_t cap = p->cap[di] < 256 ? 256 : p->cap[di];

		while (cap < need)
			cap *= 2;
		if ((nb = realloc(p->buf[di], cap)) == NULL) {
			mirror_bad("out of memory", b->id);
			held_free(hp);
			return;
		}
		p->buf[di] = nb;
		p->cap[di] = cap;
	}
	memcpy(p->buf[di] + p->len[di], b->data.data + skip, add);
	p->len[di] = need;
	p->read[di] = end;
	peer.bytes += add;
}

/* Forgets the bytes below what the destinations acknowledged. */
static void
mirror_rx_ack(const Lbd__PairAck *a)
{
	struct held	*h = *held_slot(a->id);
	struct mirror_pair *p;
	uint64_t	 acked[2] = { a->acked_c2b, a->acked_b2c }, drop;
	int		 di;

	if (h == NULL) {
		mirror_bad("Ack of an unknown pair", a->id);
		return;
	}
	p = &h->p;
	for (di = 0; di < 2; di++) {
		if (acked[di] <= p->base[di])
			continue;	/* old news */
		if (acked[di] > p->read[di]) {
			mirror_bad("Ack past the bytes read", a->id);
			continue;
		}
		drop = acked[di] - p->base[di];
		memmove(p->buf[di], p->buf[di] + drop, p->len[di] - drop);
		p->len[di] -= drop;
		p->base[di] = acked[di];
		peer.bytes -= drop;
	}
}

void
mirror_rx(struct lbd *lbd, const struct Lbd__PairBatch *b)
{
	size_t		 i;
	const Lbd__PairRecord *r;
	struct held	**hp;

	if (b->reset)
		mirror_peer_clear();
	for (i = 0; i < b->n_records; i++) {
		if ((r = b->records[i]) == NULL)
			continue;
		peer.rx_records++;
		switch (r->body_case) {
		case LBD__PAIR_RECORD__BODY_OPEN:
			mirror_rx_open(r->open);
			break;
		case LBD__PAIR_RECORD__BODY_BYTES:
			mirror_rx_bytes(r->bytes);
			break;
		case LBD__PAIR_RECORD__BODY_ACK:
			mirror_rx_ack(r->ack);
			break;
		case LBD__PAIR_RECORD__BODY_CLOSE:
			if (*(hp = held_slot(r->close->id)) != NULL)
				held_free(hp);
			break;
		default:
			mirror_bad("record of no known kind", 0);
			break;
		}
	}
}

/* ---------------------------------------------------------------- rebuild */

/* One pair's rebuild: found in the config, its sockets (any thread), handed to the relay. */
struct rebuild_job {
	struct mirror_pair *p;
	struct service	*svc;
	struct backend	*be;
	int		 cfd, bfd;	/* -1: not rebuilt (err says why) */
	size_t		 sent[2];	/* per direction: queued in its destination socket */
	char		 err[200];
};

/* Main thread: the pair's service and backend here. Returns 0, -1 (job->err). */
static int
mirror_rebuild_find(struct lbd *lbd, struct rebuild_job *j)
{
	struct mirror_pair *p = j->p;
	int		 i;

	j->cfd = j->bfd = -1;
	if ((j->svc = lbd_service_by_name(lbd, p->service)) == NULL) {
		snprintf(j->err, sizeof(j->err), "no service \"%s\" here (the configs differ)",
		    p->service);
		return -1;
	}
	for (i = 0, j->be = NULL; i < j->svc->nbackends && j->be == NULL; i++)
		if (strcmp(j->svc->backends[i].conf.name, p->backend) == 0)
			j->be = &j->svc->backends[i];
	if (j->be == NULL) {
		snprintf(j->err, sizeof(j->err), "no backend \"%s\" in %s here", p->backend,
		    p->service);
		return -1;
	}
	return 0;
}

/*
 * Any thread: both sockets of j's pair, nothing else touched (no log, no
 * lbd state). On failure nothing is left open.
 */
static void
mirror_rebuild_sockets(struct rebuild_job *j, uint32_t mark, uint64_t wall_ms)
{
	struct mirror_pair *p = j->p;
	struct repair_plan plan[2];	/* front, back */
	char		 e[160];
	int		 i;

	/* Front: we send the backend's bytes, we read the client's. */
	memset(plan, 0, sizeof(plan));
	for (i = 0; i < 2; i++) {
		plan[i].snd_off = p->base[!i];
		plan[i].rcv_off = p->read[i];
		plan[i].mark = mark;
		plan[i].queue = p->buf[!i];
		plan[i].queue_len = p->len[!i];
	}
	plan[0].ts = repair_ts_now(&p->front, wall_ms);
	plan[1].ts = repair_ts_now(&p->back, wall_ms);
	if ((j->cfd = repair_rebuild(&p->front, &plan[0], e, sizeof(e))) == -1) {
		snprintf(j->err, sizeof(j->err), "client socket: %s", e);
		return;
	}
	if ((j->bfd = repair_rebuild(&p->back, &plan[1], e, sizeof(e))) == -1) {
		repair_drop(j->cfd);	/* nothing of it went out */
		j->cfd = -1;
		snprintf(j->err, sizeof(j->err), "backend socket: %s", e);
		return;
	}
	j->sent[1] = plan[0].queued;	/* B2C bytes went into the front socket */
	j->sent[0] = plan[1].queued;
}

/* Main thread: j's rebuilt sockets to the relay. Returns 0, -1 (j->err; closed). */
static int
mirror_rebuild_adopt(struct rebuild_job *j)
{
	struct mirror_pair *p = j->p;
	struct conn_mirror *m;
	struct relay_pending left[2];
	int		 i;

	if ((m = mirror_adopted(p)) == NULL) {
		snprintf(j->err, sizeof(j->err), "out of memory");
		kick_socket(j->cfd);
		kick_socket(j->bfd);
		return -1;
	}
	/* What the sockets did not take: the relay's pending bytes, its buffers now. */
	for (i = 0; i < 2; i++) {
		left[i].len = p->len[i] - j->sent[i];
		left[i].buf = NULL;
		if (left[i].len > 0) {
			if (j->sent[i] > 0)
				memmove(p->buf[i], p->buf[i] + j->sent[i], left[i].len);
			left[i].buf = p->buf[i];
			p->buf[i] = NULL;
			peer.bytes -= p->len[i];
			p->len[i] = p->cap[i] = 0;
		}
	}
	if (relay_rebuilt(j->svc, j->be, j->cfd, j->bfd, m, left) == -1) {
		snprintf(j->err, sizeof(j->err), "the relay could not take it");
		return -1;
	}
	return 0;
}

/* A share of the jobs: every nth from first on. */
struct rebuild_share {
	struct rebuild_job *jobs;
	size_t		 n, first, step;
	uint32_t	 mark;
	uint64_t	 wall_ms;
};

static void *
mirror_rebuild_share(void *arg)
{
	struct rebuild_share *sh = arg;
	size_t		 i;

	for (i = sh->first; i < sh->n; i += sh->step)
		if (sh->jobs[i].svc != NULL)
			mirror_rebuild_sockets(&sh->jobs[i], sh->mark, sh->wall_ms);
	return NULL;
}

/*
 * Every job's sockets, on up to MIRROR_REBUILD_THREADS CPUs: system
 * calls on separate sockets, so the time before the GARP shrinks with
 * the CPUs. A thread that cannot start leaves its share to this one.
 */
static void
mirror_rebuild_all(struct rebuild_job *jobs, size_t n, uint64_t wall_ms)
{
	struct rebuild_share sh[MIRROR_REBUILD_THREADS];
	pthread_t	 tid[MIRROR_REBUILD_THREADS];
	bool		 started[MIRROR_REBUILD_THREADS] = { false };
	long		 cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t		 t, nt = n / MIRROR_REBUILD_SHARE_MIN;

	if (cpus >= 1 && nt > (size_t)cpus)
		nt = (size_t)cpus;
	if (nt > MIRROR_REBUILD_THREADS)
		nt = MIRROR_REBUILD_THREADS;
	if (nt < 1)
		nt = 1;
	for (t = 0; t < nt; t++)
		sh[t] = (struct rebuild_share){ jobs, n, t, nt, mirror_fence_mark(), wall_ms };
	for (t = 1; t < nt; t++)
		started[t] = pthread_create(&tid[t], NULL, mirror_rebuild_share, &sh[t]) == 0;
	(void)mirror_rebuild_share(&sh[0]);
	for (t = 1; t < nt; t++) {
		if (started[t])
			(void)pthread_join(tid[t], NULL);
		else
			(void)mirror_rebuild_share(&sh[t]);
	}
}

/*
 * Both sides of every held pair, for steering back to the live peer:
 * this node's conntrack may still hold them as established (they began
 * here before this node's lbd died), which keeps them from the steering
 * rule for unknown connections. Returns 0, -1 out of memory.
 */
static int
mirror_held_tuples(struct sockaddr_storage **remote, uint16_t **local_port, size_t *n)
{
	struct held	*h;
	int		 i;

	*n = 0;
	*remote = calloc(peer.n * 2, sizeof(**remote));
	*local_port = calloc(peer.n * 2, sizeof(**local_port));
	if (*remote == NULL || *local_port == NULL) {
		free(*remote);
		free(*local_port);
		*remote = NULL;
		*local_port = NULL;
		return -1;
	}
	for (i = 0; i < MIRROR_BUCKETS; i++)
		for (h = peer.bucket[i]; h != NULL; h = h->next) {
			(*remote)[*n] = h->p.front.remote;
			(*local_port)[(*n)++] = addr_port((const struct sockaddr *)&h->p.front.local);
			(*remote)[*n] = h->p.back.remote;
			(*local_port)[(*n)++] = addr_port((const struct sockaddr *)&h->p.back.local);
		}
	return 0;
}

uint64_t
mirror_takeover(struct lbd *lbd, bool peer_dead, struct sockaddr_storage **remote,
    uint16_t **local_port, size_t *n)
{
	struct rebuild_job *jobs;
	struct held	*h;
	uint64_t	 t0 = clock_now_us(), wall = clock_wall_ns() / 1000000, ok = 0, bad = 0;
	size_t		 nj = 0, k;
	int		 i;

	*remote = NULL;
	*local_port = NULL;
	*n = 0;
	if (peer.n == 0)
		return 0;
	if (!peer_dead) {
		/* A planned handover: the old MASTER keeps serving its own. */
		log_info("mirror: taking over from a live %s: its %llu mirrored connections "
		    "stay with it", lbd->conf->peer_name, (unsigned long long)peer.n);
		if (mirror_held_tuples(remote, local_port, n) == -1)
			log_warn("mirror: cannot list the peer's connections for steering");
		return 0;
	}
	if ((jobs = calloc(peer.n, sizeof(*jobs))) == NULL) {
		log_warn("mirror: cannot rebuild the %llu connections of %s",
		    (unsigned long long)peer.n, lbd->conf->peer_name);
		mirror_peer_clear();
		return 0;
	}
	mirror_probe_after(UINT64_MAX);
	for (i = 0; i < MIRROR_BUCKETS; i++)
		for (h = peer.bucket[i]; h != NULL; h = h->next) {
			jobs[nj].p = &h->p;
			if (mirror_rebuild_find(lbd, &jobs[nj]) == -1)
				jobs[nj].svc = NULL;
			nj++;
		}
	mirror_rebuild_all(jobs, nj, wall);
	for (k = 0; k < nj; k++) {
		if (jobs[k].svc != NULL && jobs[k].cfd != -1 && mirror_rebuild_adopt(&jobs[k]) == 0) {
			ok++;
			continue;
		}
		bad++;
		log_limited(&peer.limit, clock_now_ms(), MIRROR_LOG_MS, LOG_LEVEL_WARNING,
		    "mirror: a connection of %s to %s could not be rebuilt: %s",
		    jobs[k].p->service, jobs[k].p->backend, jobs[k].err);
	}
	free(jobs);
	mirror_peer_clear();
	mirror_probe_after(clock_now_ms() + MIRROR_PROBE_AFTER_MS);
	peer.takeovers++;
	peer.stale_base = mirror_stale_total();
	peer.rebuilt += ok;
	peer.failed += bad;
	peer.last_rebuilt = ok;
	peer.last_failed = bad;
	peer.last_ms = (double)(clock_now_us() - t0) / 1000.0;
	log_warnx("mirror: rebuilt %llu of %llu connections of %s in %.1f ms, before "
	    "announcing the VIP", (unsigned long long)ok, (unsigned long long)(ok + bad),
	    lbd->conf->peer_name, peer.last_ms);
	bus_publish(lbd, "mirror", json_pack("{s:s, s:I, s:I, s:f}", "state", "rebuilt",
	    "rebuilt", (json_int_t)ok, "failed", (json_int_t)bad, "ms", peer.last_ms));
	return ok;
}

void
mirror_peer_stats(struct mirror_stats *st)
{
	st->held = peer.n;
	st->held_bytes = peer.bytes;
	st->rx_records = peer.rx_records;
	st->rx_bad = peer.rx_bad;
	st->takeovers = peer.takeovers;
	st->rebuilt = peer.rebuilt;
	st->failed = peer.failed;
	st->last_rebuilt = peer.last_rebuilt;
	st->last_failed = peer.last_failed;
	st->last_reset = peer.last_failed + (st->stale - peer.stale_base);
	st->last_rebuild_ms = peer.last_ms;
	st->fence = fence_active();
	if (!st->fence || fence_dropped(&st->fence_dropped) == -1)
		st->fence_dropped = 0;
}

void
mirror_peer_init(struct lbd *lbd)
{
	mirror_peer_clear();
}

void
mirror_peer_free(void)
{
	mirror_peer_clear();
}
