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
 * - Standby: quiet pairs have their sockets made ahead of time, so the
 *   rebuild before the GARP is one call a socket for them (below).
 */
#include <sys/socket.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

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
#define MIRROR_STANDBY_TICK_MS	50		/* the BACKUP makes standby sockets this often */
#define MIRROR_STANDBY_QUIET_MS	500		/* ... for pairs this long without a record */
#define MIRROR_STANDBY_BATCH	128		/* ... this many pairs a tick at most (~5 ms) */
#define MIRROR_STANDBY_RETRY_MS	5000		/* a pair whose standby failed is tried again then */

struct held {
	struct held	*next;		/* in its bucket */
	uint64_t	 id;
	struct mirror_pair p;
	int		 sfd[2];	/* standby sockets, front and back; -1 none */
	uint32_t	 smark;		/* the SO_MARK they were made with */
	uint64_t	 last_ms;	/* the pair's last record */
	uint64_t	 retry_ms;	/* no standby before (one failed) */
};

static struct {
	struct held	*bucket[MIRROR_BUCKETS];
	uint64_t	 n;		/* pairs held */
	uint64_t	 bytes;		/* bytes held, all pairs */
	uint64_t	 rx_records;
	uint64_t	 rx_bad;
	uint64_t	 takeovers, rebuilt, failed, last_rebuilt, last_failed, last_standby;
	uint64_t	 stale_base;	/* mirror_stale_total() at the last takeover */
	double		 last_ms;
	uint64_t	 standby;	/* pairs with standby sockets */
	uint64_t	 standby_failed; /* standby attempts that failed, ever */
	int		 cursor;	/* the bucket the next standby tick starts at */
	struct event	*tick;		/* the standby tick, armed while pairs are held */
	struct lbd	*lbd;
	struct log_limit limit;
} peer = { .last_ms = -1 };

/*
 * Standby sockets: a held pair with nothing in flight (everything the
 * MASTER read is acknowledged by its destination) has the same rebuild
 * now as at a takeover, so the BACKUP makes its two sockets ahead of
 * time (repair_standby: established, in repair mode, silent), once the
 * pair has been quiet for MIRROR_STANDBY_QUIET_MS. A takeover then turns
 * repair off on them (one system call each) instead of a dozen, and the
 * GARP leaves that much sooner. Any record that moves the pair closes
 * them (silently, in repair mode); they are made again once it is quiet.
 * Only while this node is a BACKUP without the VIP: a node holding the
 * VIP could receive the pair's segments, and a repair-mode socket must
 * never see them. Costs two descriptors (in the budget) and two kernel
 * sockets (~7 KB of slab) a pair, what the pair costs the MASTER.
 */
static void
held_unready(struct held *h)
{
	if (h->sfd[0] == -1)
		return;
	/* In repair mode close() sends nothing. */
	close(h->sfd[0]);
	close(h->sfd[1]);
	h->sfd[0] = h->sfd[1] = -1;
	fds_use(-2);
	peer.standby--;
}

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
	held_unready(h);
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
	h->sfd[0] = h->sfd[1] = -1;
	h->last_ms = clock_now_ms();
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
	held_unready(h);
	h->last_ms = clock_now_ms();
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
		held_unready(h);
		h->last_ms = clock_now_ms();
		drop = acked[di] - p->base[di];
		memmove(p->buf[di], p->buf[di] + drop, p->len[di] - drop);
		p->len[di] -= drop;
		p->base[di] = acked[di];
		peer.bytes -= drop;
	}
}

static void mirror_standby_arm(void);

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
	mirror_standby_arm();
}

/* ---------------------------------------------------------------- standby */

/*
 * The rebuild plans of p's sockets, front and back: the front socket sends
 * the backend's bytes and reads the client's; the queues are the bytes the
 * destinations may lack (none for a standby pair).
 */
static void
mirror_plans(const struct mirror_pair *p, uint32_t mark, uint64_t wall_ms,
    struct repair_plan plan[2])
{
	int	 i;

	memset(plan, 0, 2 * sizeof(plan[0]));
	for (i = 0; i < 2; i++) {
		plan[i].snd_off = p->base[!i];
		plan[i].rcv_off = p->read[i];
		plan[i].mark = mark;
		plan[i].queue = p->buf[!i];
		plan[i].queue_len = p->len[!i];
	}
	plan[0].ts = repair_ts_now(&p->front, wall_ms);
	plan[1].ts = repair_ts_now(&p->back, wall_ms);
}

/* Makes h's standby sockets. Returns 0, -1 (retried later). */
static int
held_standby(struct held *h, uint32_t mark, uint64_t now)
{
	struct repair_plan plan[2];
	char		 e[160];

	mirror_plans(&h->p, mark, clock_wall_ns() / 1000000, plan);
	if ((h->sfd[0] = repair_standby(&h->p.front, &plan[0], e, sizeof(e))) == -1 ||
	    (h->sfd[1] = repair_standby(&h->p.back, &plan[1], e, sizeof(e))) == -1) {
		if (h->sfd[0] != -1)
			close(h->sfd[0]);	/* repair mode: silent */
		h->sfd[0] = h->sfd[1] = -1;
		h->retry_ms = now + MIRROR_STANDBY_RETRY_MS;
		peer.standby_failed++;
		log_limited(&peer.limit, now, MIRROR_LOG_MS, LOG_LEVEL_INFO,
		    "mirror: no standby sockets for a connection of %s to %s (it is rebuilt "
		    "in full at a takeover): %s", h->p.service, h->p.backend, e);
		return -1;
	}
	h->smark = mark;
	fds_use(2);
	peer.standby++;
	return 0;
}

/* Every standby socket closed (silently): this node is no longer a quiet BACKUP. */
static void
mirror_standby_drop_all(void)
{
	struct held	*h;
	int		 i;

	for (i = 0; i < MIRROR_BUCKETS && peer.standby > 0; i++)
		for (h = peer.bucket[i]; h != NULL; h = h->next)
			held_unready(h);
}

/*
 * Main thread, every MIRROR_STANDBY_TICK_MS while pairs are held: standby
 * sockets for up to MIRROR_STANDBY_BATCH quiet pairs, from where the
 * last tick stopped.
 */
static void
mirror_standby_cb(evutil_socket_t fd, short what, void *arg)
{
	struct held	*h;
	uint64_t	 now = clock_now_ms();
	uint32_t	 mark = mirror_fence_mark();
	int		 i, b, made = 0;

	(void)fd;
	(void)what;
	(void)arg;
	if (!cluster_quiet_backup(peer.lbd)) {
		mirror_standby_drop_all();
		mirror_standby_arm();
		return;
	}
	for (i = 0; i < MIRROR_BUCKETS && made < MIRROR_STANDBY_BATCH; i++) {
		b = (peer.cursor + i) & (MIRROR_BUCKETS - 1);
		for (h = peer.bucket[b]; h != NULL && made < MIRROR_STANDBY_BATCH; h = h->next) {
			if (h->sfd[0] != -1 && h->smark != mark)
				held_unready(h);	/* a reload changed cluster.mirror_mark */
			if (h->sfd[0] != -1 || h->p.len[0] != 0 || h->p.len[1] != 0 ||
			    now - h->last_ms < MIRROR_STANDBY_QUIET_MS || now < h->retry_ms)
				continue;
			if (!fds_room(2))
				goto out;
			(void)held_standby(h, mark, now);
			made++;
		}
		if (made >= MIRROR_STANDBY_BATCH)
			break;
	}
out:
	peer.cursor = (peer.cursor + i) & (MIRROR_BUCKETS - 1);
	mirror_standby_arm();
}

static void
mirror_standby_arm(void)
{
	struct timeval	 tv = { 0, MIRROR_STANDBY_TICK_MS * 1000 };

	if (peer.tick != NULL && (peer.n > 0 || peer.standby > 0) &&
	    !evtimer_pending(peer.tick, NULL))
		evtimer_add(peer.tick, &tv);
}

/* ---------------------------------------------------------------- rebuild */

/* One pair's rebuild: found in the config, its sockets (any thread), handed to the relay. */
struct rebuild_job {
	struct mirror_pair *p;
	struct service	*svc;
	struct backend	*be;
	int		 cfd, bfd;	/* -1: not rebuilt (err says why) */
	int		 sfd[2];	/* its standby sockets, -1 none */
	bool		 standby;	/* rebuilt from them */
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

	if (j->sfd[0] != -1) {
		if (repair_ready(j->sfd[0]) == 0 && repair_ready(j->sfd[1]) == 0) {
			j->cfd = j->sfd[0];
			j->bfd = j->sfd[1];
			j->sent[0] = j->sent[1] = 0;
			j->standby = true;
			return;
		}
		repair_drop(j->sfd[0]);	/* then in full, as without them */
		repair_drop(j->sfd[1]);
	}
	mirror_plans(p, mark, wall_ms, plan);
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
	uint64_t	 ready = 0;
	size_t		 nj = 0, k;
	int		 i;

	*remote = NULL;
	*local_port = NULL;
	*n = 0;
	if (peer.n == 0)
		return 0;
	if (!peer_dead) {
		/* A planned handover: the old MASTER keeps serving its own. */
		mirror_standby_drop_all();
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
			jobs[nj].sfd[0] = jobs[nj].sfd[1] = -1;
			if (mirror_rebuild_find(lbd, &jobs[nj]) == -1)
				jobs[nj].svc = NULL;
			else if (h->sfd[0] != -1 && h->smark == mirror_fence_mark()) {
				/* Its standby sockets are the job's now, the relay's next. */
				jobs[nj].sfd[0] = h->sfd[0];
				jobs[nj].sfd[1] = h->sfd[1];
				h->sfd[0] = h->sfd[1] = -1;
				fds_use(-2);
				peer.standby--;
			}
			nj++;
		}
	mirror_rebuild_all(jobs, nj, wall);
	for (k = 0; k < nj; k++) {
		if (jobs[k].svc != NULL && jobs[k].cfd != -1 && mirror_rebuild_adopt(&jobs[k]) == 0) {
			ok++;
			ready += jobs[k].standby;
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
	peer.last_standby = ready;
	log_warnx("mirror: rebuilt %llu of %llu connections of %s in %.1f ms (%llu from "
	    "standby sockets), before announcing the VIP", (unsigned long long)ok,
	    (unsigned long long)(ok + bad), lbd->conf->peer_name, peer.last_ms,
	    (unsigned long long)ready);
	bus_publish(lbd, "mirror", json_pack("{s:s, s:I, s:I, s:f, s:I}", "state", "rebuilt",
	    "rebuilt", (json_int_t)ok, "failed", (json_int_t)bad, "ms", peer.last_ms,
	    "standby", (json_int_t)ready));
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
	st->standby = peer.standby;
	st->standby_failed = peer.standby_failed;
	st->last_standby = peer.last_standby;
	st->fence = fence_active();
	if (!st->fence || fence_dropped(&st->fence_dropped) == -1)
		st->fence_dropped = 0;
}

int
mirror_peer_init(struct lbd *lbd)
{
	mirror_peer_clear();
	peer.lbd = lbd;
	if (peer.tick == NULL && (peer.tick = evtimer_new(lbd->base, mirror_standby_cb,
	    NULL)) == NULL) {
		log_warnx("mirror: cannot make the standby timer");
		return -1;
	}
	return 0;
}

void
mirror_peer_free(void)
{
	mirror_peer_clear();
	if (peer.tick != NULL)
		event_free(peer.tick);
	peer.tick = NULL;
	peer.lbd = NULL;
}
