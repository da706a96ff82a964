/*
 * relay.c - the data plane: each accepted client gets a backend connection,
 * and bytes move between the two with splice(2) through pooled pipes.
 *
 * Design, for throughput and for memory per idle connection:
 * - Every proxied socket is in the relay's own epoll set (relay_epfd),
 *   added once edge-triggered for read, write and peer shutdown and never
 *   changed; libevent watches that one descriptor (a nested epoll) and
 *   relay_epoll_cb takes its events in batches. The hot path makes no
 *   epoll_ctl call but the two adds: close(2) takes a socket out of the set,
 *   so a connection ends without EPOLL_CTL_DEL (system calls are dear here:
 *   a null one costs about 1 us on a PTI virtual machine).
 *   The price of edge triggering is that we must keep reading a source until
 *   EAGAIN (or remember that it still has data, DIR_READABLE) and keep
 *   writing until EAGAIN before waiting for the next edge. A read that
 *   returns less than asked emptied the socket, and the raw event says
 *   whether a FIN or an error came with what was reported (EPOLLRDHUP,
 *   EPOLLHUP, EPOLLERR: DIR_HUP): without one, the EAGAIN read is skipped,
 *   since anything arriving later raises a new edge.
 * - A direction takes a pipe from a LIFO pool only while bytes are in
 *   flight and gives it back as soon as the pipe is empty, so an idle
 *   connection holds no pipe; the events are embedded in struct conn.
 * - A source is read only into an empty pipe (or buffer). Then EAGAIN from
 *   a read can only mean "socket empty", never "pipe full", and
 *   backpressure is simple: while the pipe holds bytes the destination has
 *   not taken, the source is not read; the destination's write edge
 *   resumes the direction.
 * - Small flows do not splice: a direction starts by reading with recv(2)
 *   into one shared bounce buffer and sending from it at once; only a read
 *   that fills the buffer moves it to splice (DIR_SPLICE). For a short
 *   request or an FTP control reply that is as many system calls as
 *   splicing, without the pipe, and a short read lets the next read (which
 *   edge triggering needs anyway) come before the send: when it says EOF,
 *   the bytes go out with MSG_MORE and the FIN rides on their segment, one
 *   packet less for both ends. Bytes the destination cannot take at once
 *   move from the bounce buffer to a buffer of their own.
 */
#include <sys/epoll.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "lbd.h"

#define RELAY_PIPE_SIZE		(1024 * 1024)	/* pipe capacity asked with F_SETPIPE_SZ */
#define RELAY_POOL_MAX		256		/* spare empty pipes kept for reuse */
#define RELAY_BOUNCE_SIZE	16384		/* shared recv buffer; a read filling it means bulk: splice */
#define RELAY_ROUNDS		16		/* read+write rounds per wakeup, then yield */
#define RELAY_SPLICE_FLAGS	(SPLICE_F_NONBLOCK | SPLICE_F_MOVE) /* every splice(2) */
#define RELAY_LOG_INTERVAL_MS	1000		/* at most one connect-failure line per this */
#define RELAY_BATCH		32		/* socket events taken per relay_epoll_cb */
#define RELAY_EPOLL_EVENTS	(EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) /* every socket's interest */
#define RELAY_SIDE_B		0x1		/* low bit of an event's pointer: the backend socket */

#define DIR_C2B		0		/* client -> backend */
#define DIR_B2C		1		/* backend -> client */

#define DIR_READABLE	0x01		/* source may have bytes: read it before waiting */
#define DIR_BLOCKED	0x02		/* destination said EAGAIN: wait for its write edge */
#define DIR_EOF		0x04		/* source sent FIN */
#define DIR_DONE	0x08		/* FIN passed on with shutdown(dst, SHUT_WR) */
#define DIR_COPY	0x10		/* splice refused or off: recv/send only, never DIR_SPLICE */
#define DIR_SPLICE	0x20		/* bulk: reads splice into a pipe */
#define DIR_HUP		0x40		/* the source reported FIN or an error: read it until 0 or EAGAIN */
#define DIR_AGAIN	0x80		/* budget spent with work left: on relay_again */

#define CONN_WATCH_C	0x01		/* cfd is in relay_epfd */
#define CONN_WATCH_B	0x02		/* bfd is in relay_epfd */
#define CONN_ADOPTED	0x04		/* fds came from elsewhere: EPOLL_CTL_DEL before close */

enum conn_state {
	CONN_CONNECTING = 0,		/* backend connect in progress */
	CONN_RELAYING			/* both sockets connected, bytes flow */
};

/* One direction of a proxied connection. */
struct conn_dir {
	int		 pipe_r;	/* pipe read end, -1 when no pipe is held */
	int		 pipe_w;	/* pipe write end */
	uint32_t	 pending;	/* bytes in the pipe, buf or bounce buffer not yet written */
	uint32_t	 off;		/* recv/send: first unwritten byte in buf or the bounce buffer */
	char		*buf;		/* bytes the destination did not take yet; NULL: none */
	uint64_t	 bytes;		/* bytes written to the destination */
	uint8_t		 flags;		/* DIR_* */
};

/* A TCP 4-tuple; IPv4 addresses are v4-mapped like sticky keys. */
struct conn_tuple {
	struct lbd_ip	 src;		/* source address */
	struct lbd_ip	 dst;		/* destination address */
	uint16_t	 sport;		/* source port */
	uint16_t	 dport;		/* destination port */
};

/* A proxied connection: client socket, backend socket and their state. */
struct conn {
	TAILQ_ENTRY(conn) entry;	/* in svc->conns */
	struct service	*svc;		/* owner */
	struct backend	*be;		/* where it goes */
	int		 cfd;		/* client socket */
	int		 bfd;		/* backend socket */
	uint8_t		 state;		/* enum conn_state */
	uint8_t		 watch;		/* CONN_WATCH_*, CONN_ADOPTED */
	TAILQ_ENTRY(conn) again;	/* in relay_again while a direction has DIR_AGAIN */
	struct event	 timer;		/* connect timeout, then idle timeout */
	struct conn_dir	 dir[2];	/* DIR_C2B, DIR_B2C */
	struct conn_tuple front;	/* client -> VIP:port */
	struct conn_tuple back;		/* backend source (adopted only: no getsockname per connect) -> backend:port */
	uint64_t	 created_ms;	/* monotonic time of accept */
	uint64_t	 last_ms;	/* monotonic time of the last I/O event */
};

/* An empty pipe waiting in the pool. */
struct relay_pipe {
	int		 r;		/* read end */
	int		 w;		/* write end */
};

static struct relay_pipe relay_pool[RELAY_POOL_MAX];	/* LIFO free list */
static int		 relay_npool;		/* pipes in relay_pool */
static bool		 relay_splice_on = true; /* false: copy mode for new connections */
static bool		 relay_stopping;	/* relay_shutdown: do not resume listeners */
static uint64_t		 relay_nactive;		/* open connections, all services */
static uint64_t		 relay_log_last_ms;	/* last relay_log_limited() line */
static uint64_t		 relay_log_dropped;	/* lines not printed since */
static char		 relay_bounce[RELAY_BOUNCE_SIZE]; /* recv buffer of every direction not splicing */
static int		 relay_epfd = -1;	/* every proxied socket, edge-triggered */
static struct event	*relay_epev;		/* libevent's read event on relay_epfd */
static TAILQ_HEAD(, conn) relay_again = TAILQ_HEAD_INITIALIZER(relay_again); /* to pump again */
static struct epoll_event relay_batch[RELAY_BATCH]; /* the batch relay_epoll_cb works through */
static int		 relay_batch_n;		/* events in relay_batch */
static int		 relay_batch_i;		/* next one to handle */

static void	relay_io(struct conn *, int, uint32_t);
static void	relay_timer_cb(evutil_socket_t, short, void *);

/* ---------------------------------------------------------------- pipes */

/* A new pipe sized to RELAY_PIPE_SIZE, or the kernel's limit. Returns 0 or -1. */
static int
relay_pipe_new(struct relay_pipe *p)
{
	static bool	 warned;
	int		 fds[2];

	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == -1)
		return -1;
	/*
	 * Ask for 1 MiB (the default 64 KiB pipe caps each splice at 16 pages).
	 * A lower /proc/sys/fs/pipe-max-size, or an unprivileged process past
	 * pipe-user-pages-soft, gets EPERM: the default pipe still works, each
	 * splice just moves less.
	 */
	if (fcntl(fds[0], F_SETPIPE_SZ, RELAY_PIPE_SIZE) == -1 && !warned) {
		warned = true;
		log_warnx("relay: cannot grow pipes to %d bytes (%s): throughput "
		    "will suffer; as a non-root user set fs.pipe-user-pages-soft=0 "
		    "(deploy/lbd.sysctl.conf)", RELAY_PIPE_SIZE, strerror(errno));
	}
	p->r = fds[0];
	p->w = fds[1];
	return 0;
}

/* Gives d an empty pipe. Returns 0, or -1 when none can be made. */
static int
relay_pipe_get(struct conn_dir *d)
{
	struct relay_pipe	 p;

	if (relay_npool > 0)
		p = relay_pool[--relay_npool];
	else if (relay_pipe_new(&p) == -1)
		return -1;
	d->pipe_r = p.r;
	d->pipe_w = p.w;
	return 0;
}

/* Takes d's pipe back: pooled when empty and there is room, else closed. */
static void
relay_pipe_put(struct conn_dir *d)
{
	if (d->pipe_r == -1)
		return;
	if (d->pending == 0 && relay_npool < RELAY_POOL_MAX) {
		relay_pool[relay_npool].r = d->pipe_r;
		relay_pool[relay_npool].w = d->pipe_w;
		relay_npool++;
	} else {
		close(d->pipe_r);
		close(d->pipe_w);
	}
	d->pipe_r = d->pipe_w = -1;
}

/* d is empty: its pipe goes back to the pool, its copy buffer is freed. */
static void
relay_dir_release(struct conn_dir *d)
{
	relay_pipe_put(d);
	free(d->buf);
	d->buf = NULL;
}

/* ---------------------------------------------------------------- closing */

/*
 * log_info, at most once per RELAY_LOG_INTERVAL_MS: a dead backend or a
 * full fd table must not turn every connection into a log line.
 */
static void __attribute__((format(printf, 1, 2)))
relay_log_limited(const char *fmt, ...)
{
	char		 msg[512];
	va_list		 ap;
	uint64_t	 now = now_ms();

	if (relay_log_last_ms != 0 && now - relay_log_last_ms < RELAY_LOG_INTERVAL_MS) {
		relay_log_dropped++;
		return;
	}
	relay_log_last_ms = now;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (relay_log_dropped > 0)
		log_info("%s (and %llu similar messages suppressed)", msg,
		    (unsigned long long)relay_log_dropped);
	else
		log_info("%s", msg);
	relay_log_dropped = 0;
}

/* Makes close(fd) send a RST instead of a FIN: passes a reset on. */
static void
relay_set_reset(int fd)
{
	struct linger	 l = { .l_onoff = 1, .l_linger = 0 };

	if (fd != -1)
		(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
}

/* Frees c and everything it holds; the counters forget it. */
static void
relay_close(struct conn *c, const char *why)
{
	struct service	*svc = c->svc;
	int		 i;

	log_debug("%s: connection from port %u closed (%s), %llu bytes in, %llu out",
	    svc->conf.name, c->front.sport, why,
	    (unsigned long long)c->dir[DIR_C2B].bytes,
	    (unsigned long long)c->dir[DIR_B2C].bytes);
	/* close() takes an fd out of relay_epfd, unless a copy of it lives on. */
	if (c->watch & CONN_ADOPTED) {
		if (c->watch & CONN_WATCH_C)
			(void)epoll_ctl(relay_epfd, EPOLL_CTL_DEL, c->cfd, NULL);
		if (c->watch & CONN_WATCH_B)
			(void)epoll_ctl(relay_epfd, EPOLL_CTL_DEL, c->bfd, NULL);
	}
	/* Events of c still in the batch must not reach the freed c. */
	for (i = relay_batch_i; i < relay_batch_n; i++)
		if ((struct conn *)((uintptr_t)relay_batch[i].data.ptr &
		    ~(uintptr_t)RELAY_SIDE_B) == c)
			relay_batch[i].data.ptr = NULL;
	if ((c->dir[DIR_C2B].flags | c->dir[DIR_B2C].flags) & DIR_AGAIN)
		TAILQ_REMOVE(&relay_again, c, again);
	event_del(&c->timer);
	for (i = 0; i < 2; i++)
		relay_dir_release(&c->dir[i]);	/* a pipe holding bytes is closed, not pooled */
	if (c->cfd != -1)
		close(c->cfd);
	if (c->bfd != -1)
		close(c->bfd);
	TAILQ_REMOVE(&svc->conns, c, entry);
	c->be->active--;
	svc->active--;
	relay_nactive--;
	free(c);
	if (!relay_stopping && svc->active < (uint64_t)svc->conf.max_connections)
		listener_resume(svc);
}

/* The backend could not be reached: count it, close both sides. */
static void
relay_connect_failed(struct conn *c, const char *reason)
{
	char	 ca[ADDR_STRLEN], ba[ADDR_STRLEN];

	c->be->connect_failures++;
	relay_log_limited("%s: connect to %s failed: %s", c->be->conf.name,
	    ip_str(&c->back.dst, ba, sizeof(ba)), reason);
	log_debug("%s: client %s closed: backend %s unreachable", c->svc->conf.name,
	    ip_str(&c->front.src, ca, sizeof(ca)), c->be->conf.name);
	relay_close(c, "connect failed");
}

/* ---------------------------------------------------------------- data */

/*
 * Puts direction di into copy mode for good (splice refused, or no pipe);
 * bytes left in its pipe move to a buffer of their own. Returns 0, or -1
 * out of memory.
 */
static int
relay_dir_copy(struct conn *c, int di)
{
	struct conn_dir	*d = &c->dir[di];
	ssize_t		 n;
	uint32_t	 got = 0;

	if (d->flags & DIR_COPY)
		return 0;
	log_debug("%s: splice refused, connection from port %u copies %s",
	    c->svc->conf.name, c->front.sport, di == DIR_C2B ? "client->backend" :
	    "backend->client");
	if (d->pending > 0 && d->pipe_r != -1) {
		if ((d->buf = malloc(d->pending)) == NULL)
			return -1;
		while (got < d->pending) {
			n = read(d->pipe_r, d->buf + got, d->pending - got);
			if (n == -1 && errno == EINTR)
				continue;
			if (n <= 0)
				return -1;
			got += (uint32_t)n;
		}
		d->off = 0;
	}
	d->flags = (uint8_t)((d->flags | DIR_COPY) & ~DIR_SPLICE);
	if (d->pipe_r != -1) {
		uint32_t pending = d->pending;

		d->pending = 0;			/* the pipe is empty now: pool it */
		relay_pipe_put(d);
		d->pending = pending;
	}
	return 0;
}

/*
 * The bounce buffer is shared: bytes of d the destination did not take
 * move to a buffer of their own before relay_pump returns. Returns 0, or
 * -1 out of memory.
 */
static int
relay_dir_keep(struct conn_dir *d)
{
	if (d->pending == 0 || d->pipe_r != -1 || d->buf != NULL)
		return 0;
	if ((d->buf = malloc(d->pending)) == NULL)
		return -1;
	memcpy(d->buf, relay_bounce + d->off, d->pending);
	d->off = 0;
	return 0;
}

/* Writes what direction d holds to dst. Returns bytes written or -1 (errno). */
static ssize_t
relay_dir_write(struct conn_dir *d, int dst)
{
	ssize_t	 n;
	int	 flags = MSG_NOSIGNAL | MSG_DONTWAIT;

	if (d->pipe_r != -1)
		return splice(d->pipe_r, NULL, dst, NULL, d->pending, RELAY_SPLICE_FLAGS);
	/* The source is at EOF: the FIN (shutdown or close, next) joins this segment. */
	if (d->flags & DIR_EOF)
		flags |= MSG_MORE;
	n = send(dst, (d->buf != NULL ? d->buf : relay_bounce) + d->off, d->pending, flags);
	if (n > 0)
		d->off += (uint32_t)n;
	return n;
}

/* Reads from src into direction d, which holds nothing. Returns bytes, 0 at EOF, -1 (errno). */
static ssize_t
relay_dir_read(struct conn_dir *d, int src)
{
	if (d->flags & DIR_SPLICE)	/* more than the pipe holds is fine: splice stops when full */
		return splice(src, NULL, d->pipe_w, NULL, RELAY_PIPE_SIZE, RELAY_SPLICE_FLAGS);
	d->off = 0;
	return recv(src, relay_bounce, sizeof(relay_bounce), MSG_DONTWAIT);
}

/*
 * Direction di just read d->pending bytes into the bounce buffer. A full
 * buffer means bulk: splice from now on (unless DIR_COPY). A short read
 * emptied the socket: unless its last event reported a FIN or an error
 * (DIR_HUP) that is all. With one, the next read is made now, before the
 * send: it tells EOF (then the FIN joins the bytes) from "empty", or
 * brings more bytes for the same send.
 * Returns: -1 c was closed, 0 otherwise.
 */
static int
relay_dir_peek(struct conn *c, int di, int src, int dst)
{
	struct conn_dir	*d = &c->dir[di];
	ssize_t		 n;

	if (d->pending < sizeof(relay_bounce) && !(d->flags & DIR_HUP)) {
		/* Emptied, and no FIN or error was reported: the next edge tells. */
		d->flags &= (uint8_t)~DIR_READABLE;
	} else if (d->pending < sizeof(relay_bounce)) {
		n = recv(src, relay_bounce + d->pending, sizeof(relay_bounce) - d->pending,
		    MSG_DONTWAIT);
		if (n > 0)
			d->pending += (uint32_t)n;
		else if (n == 0)
			d->flags = (uint8_t)((d->flags | DIR_EOF) & ~DIR_READABLE);
		else if (errno == EAGAIN || errno == EWOULDBLOCK)
			d->flags &= (uint8_t)~(DIR_READABLE | DIR_HUP);
		else if (errno != EINTR) {
			/* src reset us after these bytes: they go first, then the reset. */
			if ((n = send(dst, relay_bounce, d->pending, MSG_NOSIGNAL |
			    MSG_DONTWAIT)) > 0) {
				d->bytes += (uint64_t)n;
				*(di == DIR_C2B ? &c->be->bytes_in : &c->be->bytes_out) +=
				    (uint64_t)n;
			}
			d->pending = 0;
			relay_set_reset(dst);
			relay_close(c, di == DIR_C2B ? "client reset" : "backend reset");
			return -1;
		}
	}
	if (d->pending == sizeof(relay_bounce) && !(d->flags & DIR_COPY))
		d->flags |= DIR_SPLICE;
	return 0;
}

/*
 * Moves bytes of direction di until the source is empty, the destination is
 * full, or the round budget is spent (then the source's event is activated
 * again so other connections get their turn first).
 * Returns: -1 c was closed, 0 otherwise.
 */
static int
relay_pump(struct conn *c, int di)
{
	struct conn_dir	*d = &c->dir[di];
	int		 src = di == DIR_C2B ? c->cfd : c->bfd;
	int		 dst = di == DIR_C2B ? c->bfd : c->cfd;
	uint64_t	*counter = di == DIR_C2B ? &c->be->bytes_in : &c->be->bytes_out;
	ssize_t		 n;
	int		 round;

	for (round = 0; round < RELAY_ROUNDS; round++) {
		if (d->pending > 0) {
			if (d->flags & DIR_BLOCKED)
				return 0;
			n = relay_dir_write(d, dst);
			if (n == -1) {
				if (errno == EAGAIN || errno == EWOULDBLOCK) {
					if (relay_dir_keep(d) == -1)
						goto fail;
					d->flags |= DIR_BLOCKED;
					return 0;
				}
				if (errno == EINTR)
					continue;
				if ((errno == EINVAL || errno == ENOSYS) && d->pipe_r != -1) {
					if (relay_dir_copy(c, di) == -1)
						goto fail;
					continue;
				}
				/* dst reset us (EPIPE, ECONNRESET...): reset src too. */
				relay_set_reset(src);
				relay_close(c, di == DIR_C2B ? "backend reset" :
				    "client reset");
				return -1;
			}
			d->pending -= (uint32_t)n;
			d->bytes += (uint64_t)n;
			*counter += (uint64_t)n;
			if (d->pending > 0)
				continue;
			relay_dir_release(d);	/* an idle direction holds no pipe, no buffer */
		}
		if (d->flags & DIR_EOF) {
			if (d->flags & DIR_DONE)
				return 0;
			d->flags |= DIR_DONE;
			/* Both ways finished: close() sends this FIN, no shutdown() needed. */
			if (c->dir[!di].flags & DIR_DONE) {
				relay_close(c, "closed");
				return -1;
			}
			if (shutdown(dst, SHUT_WR) == -1 && errno != ENOTCONN) {
				relay_set_reset(src);
				relay_close(c, "shutdown failed");
				return -1;
			}
			return 0;
		}
		if (!(d->flags & DIR_READABLE))
			return 0;
		if ((d->flags & DIR_SPLICE) && d->pipe_r == -1 && relay_pipe_get(d) == -1) {
			relay_log_limited("%s: no pipe for a connection (%s), copying "
			    "instead: raise LimitNOFILE", c->svc->conf.name, strerror(errno));
			if (relay_dir_copy(c, di) == -1)
				goto fail;
		}
		n = relay_dir_read(d, src);
		if (n == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				d->flags &= (uint8_t)~(DIR_READABLE | DIR_HUP);
				relay_dir_release(d);
				return 0;
			}
			if (errno == EINTR)
				continue;
			if ((errno == EINVAL || errno == ENOSYS) && (d->flags & DIR_SPLICE)) {
				if (relay_dir_copy(c, di) == -1)
					goto fail;
				continue;
			}
			if (errno == ENOMEM)
				goto fail;
			if (c->state == CONN_CONNECTING) {	/* see relay_connected() */
				relay_connect_failed(c, strerror(errno));
				return -1;
			}
			/* src reset us (ECONNRESET, ETIMEDOUT...): reset dst too. */
			relay_set_reset(dst);
			relay_close(c, di == DIR_C2B ? "client reset" : "backend reset");
			return -1;
		}
		if (n == 0) {
			d->flags = (uint8_t)((d->flags | DIR_EOF) & ~DIR_READABLE);
			relay_dir_release(d);
			continue;
		}
		d->pending = (uint32_t)n;
		if (!(d->flags & DIR_SPLICE) && relay_dir_peek(c, di, src, dst) == -1)
			return -1;
	}
	/* Budget spent with work left: come back after the other ready events. */
	if (relay_dir_keep(d) == -1)
		goto fail;
	if (!((c->dir[DIR_C2B].flags | c->dir[DIR_B2C].flags) & DIR_AGAIN))
		TAILQ_INSERT_TAIL(&relay_again, c, again);
	d->flags |= DIR_AGAIN;
	event_active(relay_epev, EV_READ, 0);
	return 0;

fail:
	log_warn("%s: copy mode for a connection failed", c->svc->conf.name);
	relay_set_reset(src);
	relay_set_reset(dst);
	relay_close(c, "out of memory");
	return -1;
}

/* Arms the timer for ms milliseconds; ms <= 0 means no timeout. */
static void
relay_timer_set(struct conn *c, int64_t ms)
{
	struct timeval	 tv;

	if (ms <= 0) {
		event_del(&c->timer);
		return;
	}
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	evtimer_add(&c->timer, &tv);
}

/* Adds c's socket of side RELAY_SIDE_B (or 0: the client's) to relay_epfd. Returns 0 or -1. */
static int
relay_watch(struct conn *c, int side)
{
	struct epoll_event	 ev;
	uint8_t			 bit = side == RELAY_SIDE_B ? CONN_WATCH_B : CONN_WATCH_C;

	if (c->watch & bit)
		return 0;
	memset(&ev, 0, sizeof(ev));
	ev.events = RELAY_EPOLL_EVENTS;
	ev.data.ptr = (void *)((uintptr_t)c | (uintptr_t)side);
	if (epoll_ctl(relay_epfd, EPOLL_CTL_ADD, side == RELAY_SIDE_B ? c->bfd : c->cfd,
	    &ev) == -1)
		return -1;
	c->watch |= bit;
	return 0;
}

/*
 * Both sockets are connected: watch both (the backend's is watched
 * already after an asynchronous connect) and start moving bytes.
 * Returns: -1 c was closed, 0 otherwise.
 */
static int
relay_start(struct conn *c)
{
	c->state = CONN_RELAYING;
	c->last_ms = now_ms();
	if (relay_watch(c, 0) == -1 || relay_watch(c, RELAY_SIDE_B) == -1) {
		log_warn("%s: cannot watch a connection", c->svc->conf.name);
		relay_close(c, "epoll_ctl failed");
		return -1;
	}
	relay_timer_set(c, (int64_t)c->svc->conf.idle_timeout_s * 1000);
	/* Pump what is known readable; the new client event reports the rest. */
	if (relay_pump(c, DIR_B2C) == -1)
		return -1;
	return relay_pump(c, DIR_C2B);
}

/*
 * The backend connect finished, one way or the other: what is the event
 * that said so. EV_WRITE alone can only be success. A failed connect
 * reports EPOLLERR, which libevent turns into EV_READ|EV_WRITE, but so does
 * a success with bytes (the 220 greeting) already there: instead of asking
 * SO_ERROR, read the backend while still CONNECTING, which returns either
 * the bytes, EOF, or the connect error (then counted as a connect failure).
 */
static void
relay_connected(struct conn *c, short what)
{
	if (what & EV_READ) {
		c->dir[DIR_B2C].flags |= DIR_READABLE;
		if (relay_pump(c, DIR_B2C) == -1)
			return;
	}
	(void)relay_start(c);
}

/* Socket side (RELAY_SIDE_B or 0) of c reported epoll events ev. */
static void
relay_io(struct conn *c, int side, uint32_t ev)
{
	int		 rd = side == RELAY_SIDE_B ? DIR_B2C : DIR_C2B;	/* the socket is its source */
	short		 what = 0;

	/* As libevent: an error or a full hangup is readable and writable. */
	if (ev & (EPOLLERR | EPOLLHUP))
		what = EV_READ | EV_WRITE;
	if (ev & (EPOLLIN | EPOLLRDHUP))
		what |= EV_READ;
	if (ev & EPOLLOUT)
		what |= EV_WRITE;
	if (ev & (EPOLLERR | EPOLLHUP | EPOLLRDHUP))
		c->dir[rd].flags |= DIR_HUP;
	if (c->state == CONN_CONNECTING) {
		relay_connected(c, what);
		return;
	}
	c->last_ms = now_ms();
	if (what & EV_WRITE) {
		c->dir[!rd].flags &= (uint8_t)~DIR_BLOCKED;
		if (c->dir[!rd].pending > 0 && relay_pump(c, !rd) == -1)
			return;
	}
	if (what & EV_READ) {
		c->dir[rd].flags |= DIR_READABLE;
		(void)relay_pump(c, rd);
	}
}

/*
 * relay_epfd has events, or relay_again connections: first the
 * connections whose budget ran out (as many as were waiting), then a batch
 * of socket events. Another round is asked for while work is left.
 */
static void
relay_epoll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn	*c;
	uintptr_t	 p;
	int		 i, n, di;

	for (n = 0, c = TAILQ_FIRST(&relay_again); c != NULL; c = TAILQ_NEXT(c, again))
		n++;
	while (n-- > 0 && (c = TAILQ_FIRST(&relay_again)) != NULL) {
		TAILQ_REMOVE(&relay_again, c, again);
		for (di = 0; di < 2; di++)
			c->dir[di].flags &= (uint8_t)~DIR_AGAIN;
		c->last_ms = now_ms();
		if (relay_pump(c, DIR_C2B) == -1)
			continue;
		(void)relay_pump(c, DIR_B2C);
	}
	do
		n = epoll_wait(relay_epfd, relay_batch, RELAY_BATCH, 0);
	while (n == -1 && errno == EINTR);
	if (n == -1) {
		log_warn("relay: epoll_wait");
		n = 0;
	}
	relay_batch_n = n;
	for (i = 0; i < n; i++) {
		relay_batch_i = i + 1;
		if ((p = (uintptr_t)relay_batch[i].data.ptr) == 0)
			continue;	/* its connection was closed earlier in the batch */
		relay_io((struct conn *)(p & ~(uintptr_t)RELAY_SIDE_B), (int)(p & RELAY_SIDE_B),
		    relay_batch[i].events);
	}
	relay_batch_n = relay_batch_i = 0;
	if (!TAILQ_EMPTY(&relay_again))
		event_active(relay_epev, EV_READ, 0);
}

static void
relay_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn	*c = arg;
	uint64_t	 idle, now;
	char		 reason[64];

	if (c->state == CONN_CONNECTING) {
		snprintf(reason, sizeof(reason), "no answer within %d ms",
		    c->svc->conf.connect_timeout_ms);
		relay_connect_failed(c, reason);
		return;
	}
	/* Activity does not re-arm the timer: re-arm here for what is left. */
	idle = (uint64_t)c->svc->conf.idle_timeout_s * 1000;
	now = now_ms();
	if (now - c->last_ms < idle) {
		relay_timer_set(c, (int64_t)(idle - (now - c->last_ms)));
		return;
	}
	relay_close(c, "idle timeout");
}

/* ---------------------------------------------------------------- connections */

static void
relay_tuple(struct conn_tuple *t, const struct sockaddr *src, const struct sockaddr *dst)
{
	if (src != NULL) {
		ip_from_sockaddr(&t->src, src);
		t->sport = addr_port(src);
	}
	if (dst != NULL) {
		ip_from_sockaddr(&t->dst, dst);
		t->dport = addr_port(dst);
	}
}

/* A zeroed connection of svc to be on the list and in the counters. */
static struct conn *
relay_conn_new(struct service *svc, struct backend *be, int cfd)
{
	struct event_base	*base = svc->lbd->base;
	struct conn		*c;
	int			 i;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->svc = svc;
	c->be = be;
	c->cfd = cfd;
	c->bfd = -1;
	/*
	 * Directions start not readable: adding a socket to epoll reports the
	 * state it is in, so a source with data gets its read edge anyway, and
	 * a source without spares an EAGAIN system call.
	 */
	for (i = 0; i < 2; i++)
		c->dir[i].pipe_r = c->dir[i].pipe_w = -1;
	c->created_ms = c->last_ms = now_ms();
	evtimer_assign(&c->timer, base, relay_timer_cb, c);
	TAILQ_INSERT_TAIL(&svc->conns, c, entry);
	be->active++;
	be->total++;
	svc->active++;
	svc->total++;
	relay_nactive++;
	if (svc->conf.max_connections > 0 &&
	    svc->active >= (uint64_t)svc->conf.max_connections)
		listener_pause(svc);	/* more clients wait in the kernel backlog */
	return c;
}

/* Puts both directions of c in copy mode when splice is turned off. */
static void
relay_conn_mode(struct conn *c)
{
	if (!relay_splice_on)
		c->dir[DIR_C2B].flags = c->dir[DIR_B2C].flags = DIR_COPY;
}

/*
 * A non-blocking socket for the backend connection, bound to the service's
 * source address (port chosen at connect time). Returns the fd, or -1 with
 * *why set.
 */
static int
relay_backend_socket(struct service *svc, struct backend *be, const char **why)
{
	struct lbd_config	*conf = svc->lbd->conf;
	const struct sockaddr_storage *src;
	int			 fd, one = 1, saved;

	src = svc->conf.source == SOURCE_VIP ? &conf->vip_addr : &conf->node_addr;
	if ((fd = socket(be->conf.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		*why = "socket() failed";
		return -1;
	}
	/*
	 * Bound to an address, a socket normally gets its port at bind() and
	 * that port is then unusable for every destination: with
	 * IP_BIND_ADDRESS_NO_PORT the port is picked at connect() from the full
	 * 4-tuple, so one source address serves far more than 28k connections.
	 * No IP_FREEBIND: a client just reached us on the VIP, so the VIP is
	 * local (if it left since, bind fails and the client is closed, which
	 * is right for a node that lost it); the node address always is.
	 * TCP_NODELAY: a relay must not hold back the small FTP control replies
	 * it forwards. Each option is one system call per connection.
	 */
	(void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)src, addr_len((const struct sockaddr *)src))
	    == -1) {
		*why = svc->conf.source == SOURCE_VIP ?
		    "cannot bind the VIP as source address" :
		    "cannot bind the node address as source address";
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

void
relay_accept(struct service *svc, int cfd, const struct sockaddr *client,
    const struct sockaddr *local)
{
	struct sockaddr_storage	 dst;
	struct lbd_ip		 ip;
	struct backend		*be;
	struct conn		*c;
	const char		*why;
	char			 a[ADDR_STRLEN], reason[128];

	ip_from_sockaddr(&ip, client);
	if ((be = sched_select(svc, &ip, now_s())) == NULL) {
		svc->refused++;
		log_debug("%s: no usable backend for %s, connection refused",
		    svc->conf.name, ip_str(&ip, a, sizeof(a)));
		close(cfd);
		return;
	}
	if ((c = relay_conn_new(svc, be, cfd)) == NULL) {
		log_warn("%s: cannot allocate a connection", svc->conf.name);
		close(cfd);
		return;
	}
	dst = be->conf.addr;
	addr_set_port(&dst, addr_port(local));
	relay_tuple(&c->front, client, local);
	relay_tuple(&c->back, NULL, (struct sockaddr *)&dst);
	relay_conn_mode(c);
	if ((c->bfd = relay_backend_socket(svc, be, &why)) == -1) {
		snprintf(reason, sizeof(reason), "%s: %s", why, strerror(errno));
		relay_connect_failed(c, reason);
		return;
	}
	if (connect(c->bfd, (struct sockaddr *)&dst, addr_len((struct sockaddr *)&dst))
	    == 0) {
		relay_connected(c, EV_WRITE);
		return;
	}
	if (errno != EINPROGRESS) {
		relay_connect_failed(c, strerror(errno));
		return;
	}
	if (relay_watch(c, RELAY_SIDE_B) == -1) {
		log_warn("%s: cannot watch a backend connect", svc->conf.name);
		relay_close(c, "epoll_ctl failed");
		return;
	}
	relay_timer_set(c, svc->conf.connect_timeout_ms);
}

int
relay_adopt(struct service *svc, struct backend *be, int cfd, int bfd)
{
	struct sockaddr_storage	 a, b;
	socklen_t		 alen, blen;
	struct conn		*c;

	if ((c = relay_conn_new(svc, be, cfd)) == NULL) {
		log_warn("%s: cannot allocate an adopted connection", svc->conf.name);
		close(cfd);
		close(bfd);
		return -1;
	}
	c->bfd = bfd;
	alen = sizeof(a);
	blen = sizeof(b);
	if (getpeername(cfd, (struct sockaddr *)&a, &alen) == 0 &&
	    getsockname(cfd, (struct sockaddr *)&b, &blen) == 0)
		relay_tuple(&c->front, (struct sockaddr *)&a, (struct sockaddr *)&b);
	alen = sizeof(a);
	blen = sizeof(b);
	if (getsockname(bfd, (struct sockaddr *)&a, &alen) == 0 &&
	    getpeername(bfd, (struct sockaddr *)&b, &blen) == 0)
		relay_tuple(&c->back, (struct sockaddr *)&a, (struct sockaddr *)&b);
	relay_conn_mode(c);
	c->watch |= CONN_ADOPTED;
	(void)relay_start(c);
	return 0;
}

/* ---------------------------------------------------------------- module */

static void
relay_free_epoll(void)
{
	if (relay_epev != NULL)
		event_free(relay_epev);
	relay_epev = NULL;
	if (relay_epfd != -1)
		close(relay_epfd);
	relay_epfd = -1;
}

int
relay_init(struct lbd *lbd)
{
	relay_free_epoll();
	if ((relay_epfd = epoll_create1(EPOLL_CLOEXEC)) == -1) {
		log_warn("relay: epoll_create1");
		return -1;
	}
	/* Level-triggered on the set: events not taken by one batch ask again. */
	if ((relay_epev = event_new(lbd->base, relay_epfd, EV_READ | EV_PERSIST,
	    relay_epoll_cb, NULL)) == NULL || event_add(relay_epev, NULL) == -1) {
		log_warnx("relay: cannot watch the relay's epoll set");
		relay_free_epoll();
		return -1;
	}
	TAILQ_INIT(&relay_again);
	relay_npool = 0;
	relay_stopping = false;
	return 0;
}

void
relay_shutdown(struct lbd *lbd)
{
	struct service	*svc;
	int		 i;

	relay_stopping = true;
	for (i = 0; i < lbd->nservices; i++) {
		svc = &lbd->services[i];
		while (!TAILQ_EMPTY(&svc->conns))
			relay_close(TAILQ_FIRST(&svc->conns), "shutting down");
	}
	while (relay_npool > 0) {
		relay_npool--;
		close(relay_pool[relay_npool].r);
		close(relay_pool[relay_npool].w);
	}
	relay_free_epoll();
	relay_stopping = false;
}

uint64_t
relay_active(void)
{
	return relay_nactive;
}

void
relay_set_splice(bool on)
{
	relay_splice_on = on;
}

size_t
relay_conn_size(void)
{
	return sizeof(struct conn);
}
