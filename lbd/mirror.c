/*
 * mirror.c - connection mirroring, the MASTER's side: every proxied
 * connection on a service's mirror_ports streams to the peer what
 * rebuilding its two sockets needs (mirror_peer.c holds it there and
 * rebuilds after this node's death).
 *
 * - At setup (both sockets connected, no byte moved) the worker takes a
 *   snapshot of each socket (repair.c) and posts an Open record; as lbd
 *   reads bytes, before it forwards them, a Bytes record; what the
 *   destinations acknowledged, at most every MIRROR_ACK_EVERY_MS while
 *   busy and once more MIRROR_QUIET_MS after the last byte (an Ack
 *   record: the peer forgets the bytes below); a Close record when the
 *   connection half-closes or ends. An idle connection then costs
 *   nothing: no timer, no record, and on the peer only its Open.
 * - Records from every worker go to one queue (a mutex; the main thread
 *   is woken once per batch, not per record) and from there in PairBatch
 *   frames over the sync channel, written to the socket at once. The
 *   peer acks each batch: lag is the ack's arrival minus the oldest
 *   record's time, one clock.
 * - Mirrored sockets carry the fence's SO_MARK (fence.c drops their FIN
 *   and RST at the nftables output hook, and the RSTs for their 4-tuples
 *   once they are gone): when this process dies, its kernel cannot end
 *   the sessions the peer is about to rebuild. lbd gives them the
 *   fence's release mark just before any shutdown or close of its own.
 * - The channel coming up (the peer restarted, or after a partition)
 *   starts a new generation: a reset batch, then every live pair's Open
 *   again, each once nothing of it is in flight (the peer could not
 *   rebuild bytes it never saw). A queue past MIRROR_QUEUE_MAX (a stuck
 *   channel) gives up the pairs that would add to it, counted: mirroring
 *   never blocks or slows the relay.
 * - Mirrored connections copy (recv/send, no splice): every byte is seen.
 *   That is why only the control ports are mirrored by default.
 */
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "relay_int.h"
#include "hasync.pb-c.h"

#define MIRROR_BATCH_RECORDS	512		/* records per PairBatch */
#define MIRROR_BATCH_BYTES	(256 * 1024)	/* payload bytes per PairBatch */
#define MIRROR_QUEUE_MAX	(16u << 20)	/* bytes queued for the channel: past it pairs are given up */
#define MIRROR_ACK_EVERY_MS	100		/* a busy pair reports acknowledgements this often */
#define MIRROR_QUIET_MS		200		/* after the last byte: one last report */
#define MIRROR_RESYNC_MS	100		/* a pair with bytes in flight at a resync: look again */
#define MIRROR_STALE_MS		500		/* rebuilt, segments coming, no progress this long: stale */
#define MIRROR_STALE_SEGS	2		/* ... at least this many segments */
#define MIRROR_GAP_MS		400		/* far end ahead of us this long, no progress: stale */
#define MIRROR_PROBATION_MS	5000		/* a rebuilt pair is watched this long */
#define MIRROR_TICK_MS		100		/* the watch's period */
#define MIRROR_PROBE_WAIT_MS	5		/* a takeover still rebuilding: look again this soon */
#define MIRROR_LAZY_MS		200		/* a pair is mirrored once it lived this long */
#define MIRROR_RECORD_MAX	(64 * 1024)	/* bytes per Bytes record (a late start's can be MBs) */
#define MIRROR_INFLIGHT		1024		/* batches awaiting their ack, remembered (power of two) */
#define MIRROR_LOG_MS		1000		/* rate limit of the lines below */

enum mirror_kind { MREC_OPEN, MREC_BYTES, MREC_ACK, MREC_CLOSE };

/* An Open record's body. */
struct mirror_open {
	char		 service[LBD_NAME_MAX];
	char		 backend[LBD_NAME_MAX];
	struct repair_sock front, back;
	uint64_t	 read[2];
};

/* One record on its way to the channel. */
struct mirror_rec {
	TAILQ_ENTRY(mirror_rec) entry;
	uint64_t	 id;
	uint64_t	 t_us;		/* monotonic time it was made (lag) */
	uint64_t	 off[2];	/* bytes: [0] offset; ack: acked c2b, b2c */
	uint32_t	 len;		/* bytes: data length; open: sizeof(struct mirror_open) */
	uint8_t		 kind;		/* enum mirror_kind */
	uint8_t		 dir;		/* bytes: DIR_C2B or DIR_B2C */
	_Alignas(uint64_t) uint8_t data[];	/* bytes, or the struct mirror_open (aligned for it) */
};
TAILQ_HEAD(mirror_recs, mirror_rec);

/* A batch sent, not acked yet. */
struct mirror_inflight {
	uint64_t	 sequence;
	uint64_t	 t_us;		/* its oldest record's time */
};

static struct {
	struct lbd	*lbd;
	bool		 on;		/* cluster.mirror with a peer */
	uint32_t	 mark;		/* SO_MARK of mirrored sockets */
	pthread_mutex_t	 lock;		/* guards q, qbytes, woken */
	struct mirror_recs q;		/* records for the channel */
	size_t		 qbytes;	/* their payload; atomic (read without the lock) */
	bool		 woken;		/* the main thread was told since its last take */
	int		 efd;		/* eventfd: wakes the main thread (threaded relay) */
	struct event	*ev;		/* main thread: on efd, or activated inline */
	uint64_t	 next_id;	/* atomic */
	uint32_t	 gen;		/* atomic: channel generation */
	uint64_t	 probe_from;	/* atomic: rebuilt sockets' window probes not before (ms) */
	uint64_t	 sequence;	/* main thread: last PairBatch.sequence */
	bool		 reset_due;	/* main thread: the next batch says reset */
	struct mirror_inflight inflight[MIRROR_INFLIGHT];
	uint32_t	 lag_us[MIRROR_LAG_WINDOW];
	uint32_t	 nlag;
	struct mirror_stats st;		/* counters: atomics where workers add */
	struct mirror_ops ops;		/* main.c's: the channel and the workers */
	struct log_limit limit;		/* workers' lines (atomic-free: rate only) */
} mir = { .lock = PTHREAD_MUTEX_INITIALIZER, .efd = -1 };

/* ---------------------------------------------------------------- queue */

/* Worker: r goes to the channel; the main thread is woken when the queue was empty. */
static void
mirror_post(struct mirror_rec *r)
{
	bool	 wake;

	r->t_us = clock_now_us();
	pthread_mutex_lock(&mir.lock);
	TAILQ_INSERT_TAIL(&mir.q, r, entry);
	__atomic_add_fetch(&mir.qbytes, r->len + sizeof(*r), __ATOMIC_RELAXED);
	wake = !mir.woken;
	mir.woken = true;
	pthread_mutex_unlock(&mir.lock);
	if (!wake)
		return;
	if (!mir.ops.threaded)
		event_active(mir.ev, EV_READ, 0);
	else {
		uint64_t one = 1;

		if (write(mir.efd, &one, sizeof(one)) == -1 && errno != EAGAIN)
			log_warn("mirror: cannot wake the main thread (eventfd)");
	}
}

/* No lock on the read path: a cap checked a record late is still a cap. */
static bool
mirror_queue_full(void)
{
	return __atomic_load_n(&mir.qbytes, __ATOMIC_RELAXED) > MIRROR_QUEUE_MAX;
}

static struct mirror_rec *
mirror_rec_new(const struct conn_mirror *m, enum mirror_kind kind, size_t len)
{
	struct mirror_rec *r;

	if ((r = calloc(1, sizeof(*r) + len)) == NULL)
		return NULL;
	r->id = m->id;
	r->kind = (uint8_t)kind;
	r->len = (uint32_t)len;
	return r;
}

/* ---------------------------------------------------------------- records */

/* The relay is to run mirror_conn_tick within ms (it moves the timer up: relay_mirror_tick). */
static void
mirror_tick_in(struct conn_mirror *m, int ms)
{
	if (m->tick_in == 0 || ms < m->tick_in)
		m->tick_in = ms;
}

static void	mirror_give_up(struct conn *, const char *why, int err);

/* The fence's mark on fd, or its release mark (lifted: its FIN and RST pass). */
static void
mirror_mark(int fd, uint32_t mark)
{
	int	 v = (int)mark;

	if (fd != -1)
		(void)setsockopt(fd, SOL_SOCKET, SO_MARK, &v, sizeof(v));
}

static void
mirror_post_open(struct conn *c)
{
	struct conn_mirror *m = c->m;
	struct mirror_open *o;
	struct mirror_rec *r;

	if ((r = mirror_rec_new(m, MREC_OPEN, sizeof(*o))) == NULL) {
		mirror_give_up(c, "out of memory", ENOMEM);
		return;
	}
	o = (struct mirror_open *)r->data;
	memcpy(o->service, m->service, sizeof(o->service));
	memcpy(o->backend, m->backend, sizeof(o->backend));
	o->front = m->front;
	o->back = m->back;
	o->read[0] = m->read[0];
	o->read[1] = m->read[1];
	m->gen = __atomic_load_n(&mir.gen, __ATOMIC_RELAXED);
	m->flags &= (uint8_t)~MIRROR_RESYNC;
	mirror_post(r);
	__atomic_fetch_add(&mir.st.opens, 1, __ATOMIC_RELAXED);
}

static void
mirror_post_close(struct conn_mirror *m)
{
	struct mirror_rec *r;

	/* Out of memory: the peer keeps a record it never rebuilds alone (its far ends reset it). */
	if ((r = mirror_rec_new(m, MREC_CLOSE, 0)) != NULL)
		mirror_post(r);
}

/*
 * The acked offset of direction di: the destination's acknowledged
 * bytes since its snapshot (or rebuild). Returns 0, -1 (socket error).
 */
static int
mirror_acked(const struct conn *c, int di, uint64_t *off, uint32_t *unacked)
{
	struct repair_info ri;

	if (repair_info(di == DIR_C2B ? c->bfd : c->cfd, &ri) == -1)
		return -1;
	*off = (uint64_t)(c->m->ack_base[di] + (int64_t)ri.bytes_acked);
	if (unacked != NULL)
		*unacked = ri.unacked;
	return 0;
}

/*
 * Reports what the destinations acknowledged, when it moved. QUIET once
 * both have everything read: the peer holds no byte of this pair.
 */
static void
mirror_report(struct conn *c, uint64_t now)
{
	struct conn_mirror *m = c->m;
	struct mirror_rec *r;
	uint64_t	 a[2];

	m->ack_ms = now;
	if (mirror_acked(c, DIR_C2B, &a[0], NULL) == -1 ||
	    mirror_acked(c, DIR_B2C, &a[1], NULL) == -1)
		return;
	if (a[0] == m->read[0] && a[1] == m->read[1])
		m->flags |= MIRROR_QUIET;
	if (a[0] == m->acked_sent[0] && a[1] == m->acked_sent[1])
		return;
	if ((r = mirror_rec_new(m, MREC_ACK, 0)) == NULL)
		return;		/* the next report says it */
	r->off[0] = m->acked_sent[0] = a[0];
	r->off[1] = m->acked_sent[1] = a[1];
	mirror_post(r);
}

/*
 * The peer lacks this pair (a new channel generation): its Open goes out
 * again once every byte read was acknowledged, as the peer cannot rebuild
 * bytes it never saw. Fresh timestamp clocks: the old values are stale.
 */
static void
mirror_try_resync(struct conn *c)
{
	struct conn_mirror *m = c->m;
	uint64_t	 a[2];

	if (mirror_acked(c, DIR_C2B, &a[0], NULL) == -1 ||
	    mirror_acked(c, DIR_B2C, &a[1], NULL) == -1 ||
	    a[0] != m->read[0] || a[1] != m->read[1] ||
	    c->dir[DIR_C2B].pending > 0 || c->dir[DIR_B2C].pending > 0) {
		m->flags |= MIRROR_RESYNC;
		mirror_tick_in(m, MIRROR_RESYNC_MS);
		return;
	}
	if (repair_clock(c->cfd, &m->front) == -1 || repair_clock(c->bfd, &m->back) == -1) {
		mirror_give_up(c, "cannot read its timestamp clock", errno);
		return;
	}
	m->acked_sent[0] = a[0];
	m->acked_sent[1] = a[1];
	m->flags |= MIRROR_QUIET;
	mirror_post_open(c);
}

/* Mirroring of c ends for good (why, err): the peer forgets it, the fence lets it go. */
static void
mirror_give_up(struct conn *c, const char *why, int err)
{
	struct conn_mirror *m = c->m;

	if (m->flags & MIRROR_OFF)
		return;
	if (err != 0) {
		__atomic_fetch_add(&mir.st.given_up, 1, __ATOMIC_RELAXED);
		log_limited(&mir.limit, clock_now_ms(), MIRROR_LOG_MS, LOG_LEVEL_WARNING,
		    "mirror: connection from port %u of %s not mirrored: %s (%s)%s",
		    c->front.sport, m->service, why, strerror(err), err == EPERM ?
		    "; TCP_REPAIR needs CAP_NET_ADMIN (the systemd unit grants it)" : "");
	}
	if (m->flags & MIRROR_STARTED) {
		mirror_post_close(m);
		__atomic_fetch_sub(&mir.st.pairs, 1, __ATOMIC_RELAXED);
	}
	/*
	 * The release mark, not 0: the socket's next packet takes its 4-tuple
	 * out of the fence's set, so neither its FIN or RST nor the kernel's
	 * RST once it is gone is dropped. Also before the Open (never marked):
	 * an earlier pair on the same 4-tuple may have left it there.
	 */
	mirror_mark(c->cfd, fence_release_mark(mir.mark));
	mirror_mark(c->bfd, fence_release_mark(mir.mark));
	m->flags = MIRROR_OFF;
}

/* ---------------------------------------------------------------- relay hooks */

bool
mirror_conn_new(struct conn *c, uint16_t port)
{
	const struct service_config *sc = &c->svc->conf;
	struct conn_mirror *m;
	int		 i;

	if (!mir.on)
		return false;
	for (i = 0; i < sc->nmirror; i++)
		if (port >= sc->mirror[i].first && port <= sc->mirror[i].last)
			break;
	if (i == sc->nmirror)
		return false;
	if ((m = calloc(1, sizeof(*m))) == NULL) {
		__atomic_fetch_add(&mir.st.given_up, 1, __ATOMIC_RELAXED);
		return false;
	}
	m->id = __atomic_add_fetch(&mir.next_id, 1, __ATOMIC_RELAXED);
	snprintf(m->service, sizeof(m->service), "%s", sc->name);
	snprintf(m->backend, sizeof(m->backend), "%s", c->be->conf.name);
	c->m = m;
	c->dir[DIR_C2B].flags |= DIR_COPY;
	c->dir[DIR_B2C].flags |= DIR_COPY;
	return true;
}

void
mirror_conn_start(struct conn *c)
{
	struct conn_mirror *m = c->m;

	if (m == NULL || (m->flags & (MIRROR_STARTED | MIRROR_OFF | MIRROR_LAZY)))
		return;
	m->flags |= MIRROR_LAZY;
	m->start_ms = clock_now_ms() + MIRROR_LAZY_MS;
	mirror_tick_in(m, MIRROR_LAZY_MS);
}

/*
 * MIRROR_LAZY_MS into the pair's life: its snapshots, taken now. Offset 0
 * of each stream is the next sequence number minus the bytes the relay
 * moved; what a destination has not acknowledged is read back from its
 * send queue, and what lbd holds for it is in its direction's buffer:
 * the peer gets the Open at the acknowledged offsets and those bytes.
 * Costs no system call in a connection that ended before.
 */
static void
mirror_late_start(struct conn *c)
{
	struct conn_mirror *m = c->m;
	struct sockaddr_storage client, vip, backend;
	struct repair_sendq sq[2] = { { 0, NULL, 0 }, { 0, NULL, 0 } };	/* per direction: its destination's */
	uint64_t	 written[2];
	int		 di;

	for (di = 0; di < 2; di++)
		if (c->dir[di].pending > 0 && c->dir[di].buf == NULL)
			return;		/* in a pipe or the bounce buffer: look again later */
	/* The relay knows every address but the backend socket's own. */
	ip_to_sockaddr(&c->front.src, c->front.sport, &client);
	ip_to_sockaddr(&c->front.dst, c->front.dport, &vip);
	ip_to_sockaddr(&c->back.dst, c->back.dport, &backend);
	if (repair_snapshot(c->cfd, (struct sockaddr *)&vip, (struct sockaddr *)&client,
	    &m->front, &sq[DIR_B2C]) == -1) {
		if (errno == EAGAIN)
			return;		/* ACKs kept coming while it looked: again later */
		m->flags &= (uint8_t)~MIRROR_LAZY;
		/* Half-closed meanwhile (its FIN not read yet): ends unmirrored, as it would have. */
		mirror_give_up(c, "no snapshot of the client socket", errno == ENOTCONN ? 0 : errno);
		return;
	}
	if (repair_snapshot(c->bfd, NULL, (struct sockaddr *)&backend, &m->back,
	    &sq[DIR_C2B]) == -1) {
		free(sq[DIR_B2C].buf);
		if (errno == EAGAIN)
			return;
		m->flags &= (uint8_t)~MIRROR_LAZY;
		mirror_give_up(c, "no snapshot of the backend socket", errno == ENOTCONN ? 0 : errno);
		return;
	}
	for (di = 0; di < 2; di++)
		written[di] = c->dir[di].bytes;
	/* Offset 0: the next byte each way, minus what the relay wrote or read (+ pending). */
	m->front.snd_isn -= (uint32_t)written[DIR_B2C];
	m->front.rcv_isn -= (uint32_t)(written[DIR_C2B] + c->dir[DIR_C2B].pending);
	m->back.snd_isn -= (uint32_t)written[DIR_C2B];
	m->back.rcv_isn -= (uint32_t)(written[DIR_B2C] + c->dir[DIR_B2C].pending);
	/* Acknowledged offset = written - what was in flight when acked0 was read. */
	m->ack_base[DIR_C2B] = (int64_t)(written[DIR_C2B] - sq[DIR_C2B].outq) -
	    (int64_t)m->back.acked0;
	m->ack_base[DIR_B2C] = (int64_t)(written[DIR_B2C] - sq[DIR_B2C].outq) -
	    (int64_t)m->front.acked0;
	/*
	 * Fenced from now on, as the peer learns of it: a connection the peer
	 * cannot rebuild is better told of a crash by its FIN at once.
	 */
	mirror_mark(c->cfd, mir.mark);
	mirror_mark(c->bfd, mir.mark);
	m->flags = (uint8_t)((m->flags & ~MIRROR_LAZY) | MIRROR_STARTED | MIRROR_QUIET);
	__atomic_fetch_add(&mir.st.pairs, 1, __ATOMIC_RELAXED);
	/*
	 * The Open at the peeked queues' first byte (ACKs since acked0 took the
	 * rest), then what the destinations may lack, read on from there.
	 */
	for (di = 0; di < 2; di++)
		m->acked_sent[di] = m->read[di] = written[di] - sq[di].len;
	mirror_post_open(c);
	for (di = 0; di < 2; di++) {
		mirror_conn_read(c, di, (const char *)sq[di].buf, sq[di].len);
		if (c->dir[di].pending > 0)
			mirror_conn_read(c, di, c->dir[di].buf + c->dir[di].off, c->dir[di].pending);
		free(sq[di].buf);
	}
}

void
mirror_conn_read(struct conn *c, int di, const char *buf, size_t n)
{
	struct conn_mirror *m = c->m;
	struct mirror_rec *r;
	uint64_t	 now;
	size_t		 off, len;

	if (m == NULL || !(m->flags & MIRROR_STARTED) || (m->flags & MIRROR_OFF) || n == 0)
		return;
	if (m->gen != __atomic_load_n(&mir.gen, __ATOMIC_RELAXED) ||
	    (m->flags & MIRROR_RESYNC)) {
		mirror_try_resync(c);
		if (m->flags & (MIRROR_RESYNC | MIRROR_OFF)) {
			/* Not known to the peer yet: these bytes count, unsent. */
			m->read[di] += n;
			m->flags &= (uint8_t)~MIRROR_QUIET;
			return;
		}
	}
	if (mirror_queue_full()) {
		mirror_give_up(c, "the mirror queue is full (sync channel stuck)", ENOBUFS);
		return;
	}
	/* A record is at most MIRROR_RECORD_MAX: a batch, and a channel frame, hold it. */
	for (off = 0; off < n; off += len) {
		len = n - off < MIRROR_RECORD_MAX ? n - off : MIRROR_RECORD_MAX;
		if ((r = mirror_rec_new(m, MREC_BYTES, len)) == NULL) {
			mirror_give_up(c, "out of memory", ENOMEM);
			return;
		}
		r->dir = (uint8_t)di;
		r->off[0] = m->read[di];
		memcpy(r->data, buf + off, len);
		m->read[di] += len;
		mirror_post(r);
	}
	m->flags &= (uint8_t)~MIRROR_QUIET;
	__atomic_fetch_add(&mir.st.bytes, n, __ATOMIC_RELAXED);
	now = clock_now_ms();
	if (now - m->ack_ms >= MIRROR_ACK_EVERY_MS)
		mirror_report(c, now);
	mirror_tick_in(m, MIRROR_QUIET_MS);
}

void
mirror_conn_stop(struct conn *c)
{
	if (c->m != NULL)
		mirror_give_up(c, NULL, 0);
}

void
mirror_conn_free(struct conn *c)
{
	if (c->m == NULL)
		return;
	mirror_give_up(c, NULL, 0);
	free(c->m);
	c->m = NULL;
}

void
mirror_conn_resync(struct conn *c)
{
	struct conn_mirror *m = c->m;

	if (m == NULL || !(m->flags & MIRROR_STARTED) || (m->flags & MIRROR_OFF))
		return;
	mirror_try_resync(c);
}

/*
 * A rebuilt pair's socket fd (side 0 front, 1 back) in probation is
 * stale when its far end has sent past our rcv_nxt and, MIRROR_GAP_MS
 * later (a retransmission of its own would have filled a mere loss),
 * still nothing moved: the dead node acknowledged bytes it never read.
 * Or when segments keep coming for MIRROR_STALE_MS without moving it
 * either way (it acknowledges what we never sent). The far end is looked
 * at only when segments came since the last look.
 */
static bool
mirror_stale(struct conn_mirror *m, int side, int fd, uint64_t now)
{
	struct mirror_watch *w = &m->watch[side];
	struct repair_info ri;

	if (repair_info(fd, &ri) == -1)
		return false;	/* the relay sees the error itself */
	/*
	 * Progress, or the first look. At the first, the far end's answer to
	 * the rebuild's window probe carries its next sequence number: ahead
	 * of ours, it sent bytes the dead node took and lbd never read (a
	 * QUIT in the instant of the crash), and both ends would wait.
	 */
	if (w->since_ms == 0 || ri.bytes_received != w->rx || ri.bytes_acked != w->acked) {
		w->ahead_ms = w->since_ms == 0 && repair_peer_ahead(fd) == 1 ? now : 0;
		w->rx = ri.bytes_received;
		w->acked = ri.bytes_acked;
		w->segs = w->segs_seen = ri.segs_in;
		w->since_ms = now;
		return false;
	}
	if (ri.segs_in != w->segs_seen) {
		w->segs_seen = ri.segs_in;
		if (w->ahead_ms == 0 && repair_peer_ahead(fd) == 1)
			w->ahead_ms = now;
	}
	if (w->ahead_ms != 0 && now - w->ahead_ms >= MIRROR_GAP_MS)
		return true;
	return ri.segs_in - w->segs >= MIRROR_STALE_SEGS && now - w->since_ms >= MIRROR_STALE_MS;
}

int
mirror_conn_tick(struct conn *c, uint64_t now)
{
	struct conn_mirror *m = c->m;
	int		 next = 0;

	if (m == NULL || (m->flags & MIRROR_OFF))
		return 0;
	if (m->flags & MIRROR_LAZY) {
		if (now < m->start_ms)
			return (int)(m->start_ms - now);
		mirror_late_start(c);
		if (m->flags & MIRROR_LAZY)
			return MIRROR_RESYNC_MS;
		if (m->flags & MIRROR_OFF)
			return 0;
	}
	if (m->flags & MIRROR_UNPROBED) {
		uint64_t from = __atomic_load_n(&mir.probe_from, __ATOMIC_RELAXED);

		if (now < from)
			return from == UINT64_MAX ? MIRROR_PROBE_WAIT_MS : (int)(from - now);
		(void)repair_finish(c->cfd);
		(void)repair_finish(c->bfd);
		m->flags &= (uint8_t)~MIRROR_UNPROBED;
		return 1;	/* the first look, once the answers are in */
	}
	if (m->flags & MIRROR_PROBATION) {
		if (mirror_stale(m, 0, c->cfd, now) || mirror_stale(m, 1, c->bfd, now)) {
			__atomic_fetch_add(&mir.st.stale, 1, __ATOMIC_RELAXED);
			log_limited(&mir.limit, now, MIRROR_LOG_MS, LOG_LEVEL_INFO,
			    "mirror: rebuilt connection from port %u of %s was stale (its far "
			    "end had moved past what was mirrored): reset both ways",
			    c->front.sport, m->service);
			return MIRROR_TICK_RESET;
		}
		if (now >= m->probation_ms)
			m->flags &= (uint8_t)~MIRROR_PROBATION;
		else
			next = MIRROR_TICK_MS;
	}
	if (!(m->flags & MIRROR_STARTED))
		return next;
	if (m->flags & MIRROR_RESYNC) {
		mirror_try_resync(c);
		if (m->flags & MIRROR_RESYNC)
			return MIRROR_RESYNC_MS;
	}
	if (!(m->flags & MIRROR_QUIET)) {
		if (now - c->last_ms < MIRROR_QUIET_MS)
			return (int)(MIRROR_QUIET_MS - (now - c->last_ms));
		mirror_report(c, now);
		if (!(m->flags & MIRROR_QUIET) && (next == 0 || next > MIRROR_QUIET_MS))
			next = MIRROR_QUIET_MS;	/* bytes still in flight: look again */
	}
	return next;
}

/* ---------------------------------------------------------------- rebuilt pairs */

struct conn_mirror *
mirror_adopted(const struct mirror_pair *p)
{
	struct conn_mirror *m;
	uint64_t	 now = clock_now_ms();

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	m->id = __atomic_add_fetch(&mir.next_id, 1, __ATOMIC_RELAXED);
	snprintf(m->service, sizeof(m->service), "%s", p->service);
	snprintf(m->backend, sizeof(m->backend), "%s", p->backend);
	m->front = p->front;
	m->back = p->back;
	m->read[0] = p->read[0];
	m->read[1] = p->read[1];
	/* The rebuilt sockets count acknowledgements from what they started with. */
	m->ack_base[DIR_C2B] = (int64_t)p->base[DIR_C2B];
	m->ack_base[DIR_B2C] = (int64_t)p->base[DIR_B2C];
	m->acked_sent[0] = p->base[0];
	m->acked_sent[1] = p->base[1];
	m->probation_ms = now + MIRROR_PROBATION_MS;
	/* Mirrored on to the peer once it is back: a new generation's resync sends the Open. */
	m->flags = MIRROR_STARTED | MIRROR_REBUILT | MIRROR_PROBATION | MIRROR_RESYNC |
	    MIRROR_UNPROBED;
	m->gen = __atomic_load_n(&mir.gen, __ATOMIC_RELAXED) - 1;
	__atomic_fetch_add(&mir.st.pairs, 1, __ATOMIC_RELAXED);
	return m;
}

/* ---------------------------------------------------------------- channel */

/* PairSock of a snapshot. */
static void
mirror_pb_sock(Lbd__PairSock *ps, const struct repair_sock *rs, uint8_t addr[2][16])
{
	struct lbd_ip	 ip;

	ip_from_sockaddr(&ip, (const struct sockaddr *)&rs->local);
	memcpy(addr[0], ip.bytes, 16);
	ip_from_sockaddr(&ip, (const struct sockaddr *)&rs->remote);
	memcpy(addr[1], ip.bytes, 16);
	ps->local.data = addr[0];
	ps->local.len = 16;
	ps->local_port = addr_port((const struct sockaddr *)&rs->local);
	ps->remote.data = addr[1];
	ps->remote.len = 16;
	ps->remote_port = addr_port((const struct sockaddr *)&rs->remote);
	ps->snd_isn = rs->snd_isn;
	ps->rcv_isn = rs->rcv_isn;
	ps->ts_val = rs->ts_val;
	ps->wall_ms = rs->wall_ms;
	ps->snd_wnd = rs->snd_wnd;
	ps->rcv_wnd = rs->rcv_wnd;
	ps->mss = rs->mss;
	ps->snd_wscale = rs->snd_wscale;
	ps->rcv_wscale = rs->rcv_wscale;
	ps->flags = (rs->sack ? MIRROR_PB_SACK : 0) | (rs->tstamp ? MIRROR_PB_TSTAMP : 0) |
	    (rs->wscale ? MIRROR_PB_WSCALE : 0);
}

/* Scratch for one PairBatch: the records and what they point to. */
struct mirror_scratch {
	Lbd__PairRecord	*recp[MIRROR_BATCH_RECORDS];
	Lbd__PairRecord	 rec[MIRROR_BATCH_RECORDS];
	union {
		Lbd__PairOpen	 open;
		Lbd__PairBytes	 bytes;
		Lbd__PairAck	 ack;
		Lbd__PairClose	 close;
	} body[MIRROR_BATCH_RECORDS];
	Lbd__PairSock	 sock[MIRROR_BATCH_RECORDS][2];
	uint8_t		 addr[MIRROR_BATCH_RECORDS][2][2][16];
};

static struct mirror_scratch mirror_sc;	/* main thread only; ~300 KiB, not on the stack */

/* Record i of the batch from r. */
static void
mirror_pb_rec(struct mirror_scratch *sc, int i, struct mirror_rec *r)
{
	Lbd__PairRecord	*pr = &sc->rec[i];
	const struct mirror_open *o;

	lbd__pair_record__init(pr);
	sc->recp[i] = pr;
	switch (r->kind) {
	case MREC_OPEN:
		o = (const struct mirror_open *)r->data;
		lbd__pair_open__init(&sc->body[i].open);
		lbd__pair_sock__init(&sc->sock[i][0]);
		lbd__pair_sock__init(&sc->sock[i][1]);
		mirror_pb_sock(&sc->sock[i][0], &o->front, sc->addr[i][0]);
		mirror_pb_sock(&sc->sock[i][1], &o->back, sc->addr[i][1]);
		sc->body[i].open.id = r->id;
		sc->body[i].open.service = (char *)(uintptr_t)o->service;
		sc->body[i].open.backend = (char *)(uintptr_t)o->backend;
		sc->body[i].open.front = &sc->sock[i][0];
		sc->body[i].open.back = &sc->sock[i][1];
		sc->body[i].open.read_c2b = o->read[DIR_C2B];
		sc->body[i].open.read_b2c = o->read[DIR_B2C];
		pr->body_case = LBD__PAIR_RECORD__BODY_OPEN;
		pr->open = &sc->body[i].open;
		break;
	case MREC_BYTES:
		lbd__pair_bytes__init(&sc->body[i].bytes);
		sc->body[i].bytes.id = r->id;
		sc->body[i].bytes.dir = r->dir;
		sc->body[i].bytes.offset = r->off[0];
		sc->body[i].bytes.data.data = r->data;
		sc->body[i].bytes.data.len = r->len;
		pr->body_case = LBD__PAIR_RECORD__BODY_BYTES;
		pr->bytes = &sc->body[i].bytes;
		break;
	case MREC_ACK:
		lbd__pair_ack__init(&sc->body[i].ack);
		sc->body[i].ack.id = r->id;
		sc->body[i].ack.acked_c2b = r->off[0];
		sc->body[i].ack.acked_b2c = r->off[1];
		pr->body_case = LBD__PAIR_RECORD__BODY_ACK;
		pr->ack = &sc->body[i].ack;
		break;
	default:
		lbd__pair_close__init(&sc->body[i].close);
		sc->body[i].close.id = r->id;
		pr->body_case = LBD__PAIR_RECORD__BODY_CLOSE;
		pr->close = &sc->body[i].close;
		break;
	}
}

/* Sends n records of sc as one batch; t_us its oldest. Returns 0 or -1. */
static int
mirror_send(struct mirror_scratch *sc, size_t n, uint64_t t_us)
{
	Lbd__PairBatch	 b = LBD__PAIR_BATCH__INIT;
	struct mirror_inflight *fl;

	b.records = sc->recp;
	b.n_records = n;
	b.sequence = mir.sequence + 1;
	b.reset = mir.reset_due;
	if (mir.ops.send(mir.lbd, &b) == -1)
		return -1;
	mir.sequence++;
	mir.reset_due = false;
	fl = &mir.inflight[mir.sequence & (MIRROR_INFLIGHT - 1)];
	fl->sequence = mir.sequence;
	fl->t_us = t_us;
	mir.st.batches++;
	mir.st.records += n;
	return 0;
}

/* Main thread: the queue goes out in batches; with the channel down it is dropped. */
static void
mirror_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mirror_recs q;
	struct mirror_rec *r, *first;
	uint64_t	 n;
	size_t		 nrec = 0, bytes = 0;
	bool		 failed = false;

	if (mir.efd != -1 && fd == mir.efd && read(mir.efd, &n, sizeof(n)) == -1 &&
	    errno != EAGAIN)
		log_warn("mirror: cannot read its eventfd");
	TAILQ_INIT(&q);
	pthread_mutex_lock(&mir.lock);
	TAILQ_CONCAT(&q, &mir.q, entry);
	__atomic_store_n(&mir.qbytes, 0, __ATOMIC_RELAXED);
	mir.woken = false;
	pthread_mutex_unlock(&mir.lock);
	first = TAILQ_FIRST(&q);
	TAILQ_FOREACH(r, &q, entry) {
		if (failed)
			break;
		mirror_pb_rec(&mirror_sc, (int)nrec++, r);
		bytes += r->len;
		if (nrec == MIRROR_BATCH_RECORDS || bytes >= MIRROR_BATCH_BYTES ||
		    TAILQ_NEXT(r, entry) == NULL) {
			if (mirror_send(&mirror_sc, nrec, first->t_us) == -1)
				failed = true;
			nrec = bytes = 0;
			first = TAILQ_NEXT(r, entry);
		}
	}
	while ((r = TAILQ_FIRST(&q)) != NULL) {
		TAILQ_REMOVE(&q, r, entry);
		free(r);
	}
	if (failed && mir.ops.up(mir.lbd)) {
		/* Up but refused (queue full): the peer's table is behind; start over. */
		mir.st.send_failures++;
		mirror_peer_up(mir.lbd);
	}
}

void
mirror_peer_up(struct lbd *lbd)
{
	if (!mir.on)
		return;
	__atomic_add_fetch(&mir.gen, 1, __ATOMIC_RELAXED);
	mir.reset_due = true;
	mir.st.resyncs++;
	/* The reset goes first, alone, before any Open of the new generation. */
	(void)mirror_send(&mirror_sc, 0, clock_now_us());
	mir.ops.resync_all();
}

void
mirror_acked_batch(uint64_t sequence)
{
	struct mirror_inflight *fl = &mir.inflight[sequence & (MIRROR_INFLIGHT - 1)];
	uint64_t	 now = clock_now_us(), lag;

	if (fl->sequence != sequence || sequence == 0)
		return;
	fl->sequence = 0;
	lag = now > fl->t_us ? now - fl->t_us : 0;
	mir.lag_us[mir.nlag++ % MIRROR_LAG_WINDOW] = lag > UINT32_MAX ? UINT32_MAX :
	    (uint32_t)lag;
}

/* ---------------------------------------------------------------- module */

static int
mirror_cmp_u32(const void *a, const void *b)
{
	uint32_t	 x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

void
mirror_get_stats(struct mirror_stats *st)
{
	static uint32_t	 v[MIRROR_LAG_WINDOW];
	uint32_t	 n = mir.nlag < MIRROR_LAG_WINDOW ? mir.nlag : MIRROR_LAG_WINDOW;

	st->on = mir.on;
	st->pairs = __atomic_load_n(&mir.st.pairs, __ATOMIC_RELAXED);
	st->opens = __atomic_load_n(&mir.st.opens, __ATOMIC_RELAXED);
	st->bytes = __atomic_load_n(&mir.st.bytes, __ATOMIC_RELAXED);
	st->given_up = __atomic_load_n(&mir.st.given_up, __ATOMIC_RELAXED);
	st->stale = __atomic_load_n(&mir.st.stale, __ATOMIC_RELAXED);
	st->batches = mir.st.batches;
	st->records = mir.st.records;
	st->send_failures = mir.st.send_failures;
	st->resyncs = mir.st.resyncs;
	st->lag_p50_ms = st->lag_p99_ms = -1;
	if (n > 0) {
		memcpy(v, mir.lag_us, n * sizeof(v[0]));
		qsort(v, n, sizeof(v[0]), mirror_cmp_u32);
		st->lag_p50_ms = v[(n - 1) / 2] / 1000.0;
		st->lag_p99_ms = v[(n - 1) * 99 / 100] / 1000.0;
	}
}

uint64_t
mirror_stale_total(void)
{
	return __atomic_load_n(&mir.st.stale, __ATOMIC_RELAXED);
}

uint32_t
mirror_fence_mark(void)
{
	return mir.on ? mir.mark : 0;
}

void
mirror_probe_after(uint64_t ms)
{
	__atomic_store_n(&mir.probe_from, ms, __ATOMIC_RELAXED);
}

int
mirror_init(struct lbd *lbd, const struct mirror_ops *ops)
{
	const struct lbd_config *conf = lbd->conf;
	char		 err[256];

	mir.lbd = lbd;
	mir.ops = *ops;
	TAILQ_INIT(&mir.q);
	mir.on = conf->mirror && conf->has_peer;
	mir.mark = (uint32_t)conf->mirror_mark;
	if (!mir.on) {
		/* A crashed run with mirroring may have left its fence: not ours to keep. */
		fence_remove();
		return 0;
	}
	if (mir.ops.threaded) {
		if ((mir.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1) {
			log_warn("mirror: eventfd");
			return -1;
		}
		mir.ev = event_new(lbd->base, mir.efd, EV_READ | EV_PERSIST, mirror_flush_cb,
		    NULL);
	} else
		mir.ev = event_new(lbd->base, -1, 0, mirror_flush_cb, NULL);
	if (mir.ev == NULL || (mir.efd != -1 && event_add(mir.ev, NULL) == -1)) {
		log_warnx("mirror: cannot make its event");
		return -1;
	}
	if (fence_install(mir.mark, err, sizeof(err)) == -1)
		log_warnx("%s; sessions survive a power-off of this node, not a crash of "
		    "its lbd (its kernel would end them)", err);
	log_info("mirror: connections on the mirror_ports are mirrored to %s (fence "
	    "mark 0x%x%s)", conf->peer_name, mir.mark, fence_active() ? "" : ", no fence");
	return 0;
}

void
mirror_shutdown(void)
{
	struct mirror_rec *r;

	if (mir.ev != NULL) {
		event_free(mir.ev);
		mir.ev = NULL;
	}
	if (mir.efd != -1) {
		close(mir.efd);
		mir.efd = -1;
	}
	pthread_mutex_lock(&mir.lock);
	while ((r = TAILQ_FIRST(&mir.q)) != NULL) {
		TAILQ_REMOVE(&mir.q, r, entry);
		free(r);
	}
	__atomic_store_n(&mir.qbytes, 0, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&mir.lock);
	/* Every connection closed with its mark lifted: the fence guards nothing now. */
	if (mir.on)
		fence_remove();
	mir.on = false;
}
