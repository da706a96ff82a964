/*
 * relay.c - the data plane: each accepted client gets a backend connection,
 * and bytes move between the two with splice(2) through pooled pipes.
 *
 * Threads: the main thread accepts and picks; workers move bytes.
 * - The main thread (lbd->base, which also runs heartbeats, replication,
 *   checks and the control socket) does relay_accept up to and including
 *   connect(2): backend pick, sticky entry, counters, backend socket; and
 *   relay_adopt's setup. Then it hands the connection to one of
 *   node.relay_threads workers, round robin, through the worker's inbox:
 *   a mutex-protected list and an eventfd, written only when the list was
 *   empty (one system call per wakeup, not per connection).
 * - A worker is a thread with its own event_base, epoll set, bounce buffer,
 *   pipe pool and timers (struct relay_worker). From the handoff on only it
 *   touches the connection's sockets, pipes and timer. It reads nothing
 *   another thread writes: the timeouts it needs were copied into the
 *   connection at accept (a reload rewrites svc->conf in place), and the
 *   backend's byte counters are only added to, with relaxed atomics
 *   (status and metrics load them atomically).
 * - When a connection ends, its worker closes the sockets, gives back the
 *   pipes and posts it with a reason code and errno to the done queue (the
 *   same list + eventfd, watched by the main loop); the main thread logs,
 *   counts (connect failures, active) and frees it. A service or backend
 *   thus outlives its connections in workers: a reload reuses a backend
 *   slot only when its active count is 0.
 * - node.relay_threads = 0 runs the one worker in the main loop: no
 *   handoff, no queue, and a connection ends at once, as before threads.
 *
 * Design of a worker, for throughput and for memory per idle connection:
 * - Every proxied socket is in the worker's own epoll set (epfd),
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
 * - Pipe memory is bounded for the whole node, not per connection: a
 *   direction holding a pipe grown to RELAY_PIPE_SIZE holds that many
 *   bytes of node.pipe_memory_max_mb (relay_pipe_bytes, an atomic shared by
 *   all workers, taken with compare-and-swap so it never passes the
 *   budget, given back when the pipe goes back to the pool or is closed).
 *   An empty pooled pipe holds no data pages and is not counted. When the
 *   budget is spent, or the kernel refuses F_SETPIPE_SZ (EPERM past
 *   fs.pipe-user-pages-soft), a direction splices through a default-size
 *   pipe (64 KiB): slower, never refused. Both are counted.
 * - A source is read only into an empty pipe (or buffer). Then EAGAIN from
 *   a read can only mean "socket empty", never "pipe full", and
 *   backpressure is simple: while the pipe holds bytes the destination has
 *   not taken, the source is not read; the destination's write edge
 *   resumes the direction.
 * - Small flows do not splice: a direction starts by reading with recv(2)
 *   into the worker's bounce buffer and sending from it at once; only a read
 *   that fills the buffer moves it to splice (DIR_SPLICE). For a short
 *   request or an FTP control reply that is as many system calls as
 *   splicing, without the pipe, and a short read lets the next read (which
 *   edge triggering needs anyway) come before the send: when it says EOF,
 *   the bytes go out with MSG_MORE and the FIN rides on their segment, one
 *   packet less for both ends. Bytes the destination cannot take at once
 *   move from the bounce buffer to a buffer of their own.
 */
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "lbd.h"

#ifndef IP_LOCAL_PORT_RANGE
#define IP_LOCAL_PORT_RANGE	51	/* Linux 6.3+: a socket's own ephemeral port range (linux/in.h) */
#endif
#define RELAY_PORTS_FILE	"/proc/sys/net/ipv4/ip_local_port_range" /* the kernel's ephemeral ports */
#define RELAY_PIPE_SIZE		(1024 * 1024)	/* pipe capacity asked with F_SETPIPE_SZ: a power of two */
#define RELAY_PIPE_SMALL	(64 * 1024)	/* a pipe shrunk back to the kernel's default size */
#define RELAY_PIPE_RAM_SHARE	8		/* unset node.pipe_memory_max_mb: at most RAM / this */
#define RELAY_GROW_RETRY_MS	1000		/* after a refused F_SETPIPE_SZ a worker's pipes stay small this long */
#define RELAY_POOL_MAX		256		/* spare empty pipes kept for reuse, per worker */
#define RELAY_BOUNCE_SIZE	16384		/* a worker's recv buffer; a read filling it means bulk: splice */
#define RELAY_ROUNDS		16		/* read+write rounds per wakeup, then yield */
#define RELAY_SPLICE_FLAGS	(SPLICE_F_NONBLOCK | SPLICE_F_MOVE) /* every splice(2) */
#define RELAY_LOG_INTERVAL_MS	1000		/* at most one rate-limited line of a kind per this */
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
#define DIR_AGAIN	0x80		/* budget spent with work left: on the worker's again list */

#define CONN_WATCH_C	0x01		/* cfd is in the worker's epoll set */
#define CONN_WATCH_B	0x02		/* bfd is in the worker's epoll set */
#define CONN_ADOPTED	0x04		/* fds came from elsewhere: EPOLL_CTL_DEL before close */
#define CONN_READY	0x08		/* connected before the handoff: relay_start at once */
#define CONN_COUNTED	0x10		/* front.src is counted in svc->clients (main thread's bit) */

enum conn_state {
	CONN_CONNECTING = 0,		/* backend connect in progress */
	CONN_RELAYING			/* both sockets connected, bytes flow */
};

/* Why a connection ended: the worker says, the main thread logs and counts. */
enum relay_why {
	RELAY_WHY_CLOSED = 0,		/* both sides sent FIN */
	RELAY_WHY_CLIENT_RESET,		/* the client reset, or writing to it failed */
	RELAY_WHY_BACKEND_RESET,	/* the backend reset, or writing to it failed */
	RELAY_WHY_SHUTDOWN_FAILED,	/* shutdown(SHUT_WR) failed (err) */
	RELAY_WHY_NOMEM,		/* copy mode could not allocate (err) */
	RELAY_WHY_EPOLL,		/* epoll_ctl could not add a socket (err) */
	RELAY_WHY_IDLE,			/* no byte either way for idle_s */
	RELAY_WHY_CONNECT,		/* the backend connect failed (err) */
	RELAY_WHY_CONNECT_TIMEOUT,	/* no answer to the connect within connect_ms */
	RELAY_WHY_STOPPING		/* relay_shutdown */
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
	uint32_t	 pipe_size;	/* budget bytes its pipe holds (enlarged size); 0: default size */
};

/* A TCP 4-tuple; IPv4 addresses are v4-mapped like sticky keys. */
struct conn_tuple {
	struct lbd_ip	 src;		/* source address */
	struct lbd_ip	 dst;		/* destination address */
	uint16_t	 sport;		/* source port */
	uint16_t	 dport;		/* destination port */
};

struct relay_worker;

/* A proxied connection: client socket, backend socket and their state. */
struct conn {
	TAILQ_ENTRY(conn) entry;	/* in svc->conns: the main thread's */
	TAILQ_ENTRY(conn) wentry;	/* in a worker's inbox or conns, or in relay_done */
	struct service	*svc;		/* owner; the main thread's */
	struct backend	*be;		/* where it goes; a worker only adds to its byte counters */
	struct relay_worker *w;		/* who moves its bytes; NULL before the handoff */
	int		 cfd;		/* client socket, -1 once closed */
	int		 bfd;		/* backend socket, -1 once closed */
	int		 err;		/* errno behind why; 0: none */
	int		 connect_ms;	/* svc->conf.connect_timeout_ms, copied at accept */
	int		 idle_s;	/* svc->conf.idle_timeout_s, copied at accept */
	uint8_t		 state;		/* enum conn_state */
	uint8_t		 watch;		/* CONN_WATCH_*, CONN_ADOPTED, CONN_READY */
	uint8_t		 why;		/* enum relay_why, once ended */
	TAILQ_ENTRY(conn) again;	/* in the worker's again list while a direction has DIR_AGAIN */
	struct event	 timer;		/* connect timeout, then idle timeout; in the worker's base */
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
	uint32_t	 size;		/* its capacity when enlarged (not counted while pooled), 0 default */
};

/* A thread (or, with node.relay_threads = 0, the main loop) moving bytes. */
struct relay_worker {
	struct event_base *base;	/* its event loop: its own, or lbd->base when inline */
	bool		 threaded;	/* runs in a thread of its own */
	bool		 started;	/* its thread was created and is not joined yet */
	pthread_t	 tid;		/* that thread */
	int		 epfd;		/* every socket it relays, edge-triggered */
	struct event	*epev;		/* libevent's read event on epfd */
	struct conn_list conns;		/* its connections (wentry) */
	TAILQ_HEAD(, conn) again;	/* connections to pump again */
	struct epoll_event batch[RELAY_BATCH]; /* the batch relay_epoll_cb works through */
	int		 batch_n;	/* events in batch */
	int		 batch_i;	/* next one to handle */
	struct relay_pipe pool[RELAY_POOL_MAX]; /* LIFO free list of empty pipes */
	int		 npool;		/* pipes in pool */
	struct log_limit limit;	/* its rate-limited lines */
	struct log_limit pipe_limit; /* its "pipe budget spent" lines */
	uint64_t	 grow_after_ms;	/* F_SETPIPE_SZ was refused: no new try before; 0 none */
	struct conn_list outbox;	/* main thread: handed to it, not yet in inbox */
	struct conn_list ended;		/* ended here, not yet in relay_done */
	struct event	*flush_ev;	/* activated by relay_close: moves ended to relay_done */
	pthread_mutex_t	 lock;		/* guards inbox and stop */
	struct conn_list inbox;		/* handed over, not taken yet (wentry) */
	bool		 stop;		/* relay_shutdown: close everything, exit */
	int		 efd;		/* eventfd: inbox became non-empty, or stop */
	struct event	*inev;		/* read event on efd */
	char		 bounce[RELAY_BOUNCE_SIZE]; /* recv buffer of every direction not splicing */
};

static struct relay_worker **relay_workers;	/* relay_nworkers of them */
static int		 relay_nworkers;	/* entries of relay_workers */
static uint32_t		 relay_ports;		/* IP_LOCAL_PORT_RANGE of VIP-sourced backend sockets; 0: none */
static int		 relay_nthreads;	/* of them threaded; 0: the one runs inline */
static unsigned int	 relay_rr;		/* next worker to hand a connection to */
static bool		 relay_splice_on = true; /* false: copy mode for new connections */
static bool		 relay_stopping;	/* relay_shutdown: do not resume listeners */
static relay_room_fn	*relay_room;		/* told of max_connections reached and left; NULL: nobody */
static uint64_t		 relay_nactive;		/* open connections, all services; atomic: fds_room in workers */
static uint64_t		 relay_npipe_fds;	/* pipe ends open, all workers; atomic */
static struct log_limit relay_main_limit;	/* the main thread's rate-limited lines */
static struct log_limit relay_cap_limit;	/* the "over max_connections_per_client" lines */
static pthread_mutex_t	 relay_done_lock = PTHREAD_MUTEX_INITIALIZER; /* guards relay_done */
static struct conn_list	 relay_done = TAILQ_HEAD_INITIALIZER(relay_done); /* ended in workers */
static int		 relay_done_fd = -1;	/* eventfd: relay_done became non-empty */
static struct event	*relay_done_ev;		/* the main loop's read event on it */
static struct event	*relay_hand_ev;		/* activated by relay_hand: moves outboxes to inboxes */
/* The pipe budget; every worker reads and writes these with atomics. */
static uint64_t		 relay_pipe_max;	/* node.pipe_memory_max_mb in bytes */
static uint64_t		 relay_pipe_bytes;	/* enlarged pipe bytes directions hold now */
static uint64_t		 relay_pipe_peak;	/* most relay_pipe_bytes ever, since relay_init */
static uint64_t		 relay_pipe_fallbacks;	/* pipes handed out at the default size */
static uint64_t		 relay_pipe_refused;	/* F_SETPIPE_SZ failures */

static void	relay_io(struct conn *, int, uint32_t);
static void	relay_timer_cb(evutil_socket_t, short, void *);

/* ---------------------------------------------------------------- pipes */

/*
 * Takes n bytes of the pipe budget, never passing relay_pipe_max (also
 * with several workers taking at once). Returns the bytes held with
 * these, or 0 when the budget has less than n left.
 */
static uint64_t
relay_budget_take(uint64_t n)
{
	uint64_t	 cur;

	cur = __atomic_load_n(&relay_pipe_bytes, __ATOMIC_RELAXED);
	do {
		if (cur + n > __atomic_load_n(&relay_pipe_max, __ATOMIC_RELAXED))
			return 0;
	} while (!__atomic_compare_exchange_n(&relay_pipe_bytes, &cur, cur + n, true,
	    __ATOMIC_RELAXED, __ATOMIC_RELAXED));
	return cur + n;
}

/* A pipe is held with held bytes in all (relay_budget_take's): the peak follows. */
static void
relay_budget_peak(uint64_t held)
{
	uint64_t	 peak = __atomic_load_n(&relay_pipe_peak, __ATOMIC_RELAXED);

	while (held > peak && !__atomic_compare_exchange_n(&relay_pipe_peak, &peak, held,
	    true, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

/* Gives n bytes back to the pipe budget. */
static void
relay_budget_give(uint64_t n)
{
	__atomic_fetch_sub(&relay_pipe_bytes, n, __ATOMIC_RELAXED);
}

/* A direction got a default-size pipe: counted, and said once a second per worker. */
static void
relay_pipe_fallback(struct relay_worker *w, bool refused)
{
	__atomic_fetch_add(&relay_pipe_fallbacks, 1, __ATOMIC_RELAXED);
	if (!refused && __atomic_load_n(&relay_pipe_max, __ATOMIC_RELAXED) > 0)
		log_limited(&w->pipe_limit, RELAY_LOG_INTERVAL_MS, LOG_LEVEL_INFO,
		    "relay: pipe memory budget spent "
		    "(%llu MiB, node.pipe_memory_max_mb): transfers use %d KiB pipes "
		    "until others end",
		    (unsigned long long)(__atomic_load_n(&relay_pipe_max, __ATOMIC_RELAXED) /
		    (1024 * 1024)), RELAY_PIPE_SMALL / 1024);
}

/*
 * Grows p, a default-size pipe, to RELAY_PIPE_SIZE when the budget has
 * room and the kernel agrees; p->size says which. A refusal (EPERM: a
 * lower fs.pipe-max-size, or an unprivileged lbd past
 * fs.pipe-user-pages-soft) leaves the default pipe, which still works,
 * each splice just moves less; the worker then asks no more for
 * RELAY_GROW_RETRY_MS, not once per burst.
 */
static void
relay_pipe_grow(struct relay_worker *w, struct relay_pipe *p)
{
	static bool	 warned;	/* any worker: relaxed atomic */
	uint64_t	 held;
	int		 n;

	if (w->grow_after_ms != 0) {
		if (now_ms() < w->grow_after_ms) {
			relay_pipe_fallback(w, true);
			return;
		}
		w->grow_after_ms = 0;
	}
	if ((held = relay_budget_take(RELAY_PIPE_SIZE)) == 0) {
		relay_pipe_fallback(w, false);
		return;
	}
	/* The default 64 KiB pipe caps each splice at 16 pages: ask for 1 MiB. */
	if ((n = fcntl(p->r, F_SETPIPE_SZ, RELAY_PIPE_SIZE)) == -1) {
		if (!__atomic_exchange_n(&warned, true, __ATOMIC_RELAXED))
			log_warn("relay: cannot grow pipes to %d bytes: throughput will "
			    "suffer; as a non-root user set fs.pipe-user-pages-soft=0 "
			    "(deploy/lbd.sysctl.conf)", RELAY_PIPE_SIZE);
		relay_budget_give(RELAY_PIPE_SIZE);
		__atomic_fetch_add(&relay_pipe_refused, 1, __ATOMIC_RELAXED);
		relay_pipe_fallback(w, true);
		w->grow_after_ms = now_ms() + RELAY_GROW_RETRY_MS;
		return;
	}
	/* RELAY_PIPE_SIZE is a power of two pages: the kernel sets exactly that. */
	if ((uint32_t)n < RELAY_PIPE_SIZE) {
		relay_budget_give(RELAY_PIPE_SIZE - (uint32_t)n);
		held -= RELAY_PIPE_SIZE - (uint32_t)n;
	}
	p->size = (uint32_t)n < RELAY_PIPE_SIZE ? (uint32_t)n : RELAY_PIPE_SIZE;
	relay_budget_peak(held);
}

/* A new default-size pipe. Returns 0 or -1. */
static int
relay_pipe_new(struct relay_pipe *p)
{
	int		 fds[2];

	/* Past the budget the direction copies: the reserve stays for checks. */
	if (!fds_room(2)) {
		errno = EMFILE;
		return -1;
	}
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == -1)
		return -1;
	__atomic_add_fetch(&relay_npipe_fds, 2, __ATOMIC_RELAXED);
	p->r = fds[0];
	p->w = fds[1];
	p->size = 0;
	return 0;
}

/*
 * Gives d an empty pipe from w's pool (or a new one), enlarged while the
 * budget allows: an enlarged pooled pipe takes its size from the budget,
 * or, the budget spent, is shrunk back to the default; a default one is
 * grown when the budget has room. Returns 0, or -1 when none can be made.
 */
static int
relay_pipe_get(struct relay_worker *w, struct conn_dir *d)
{
	struct relay_pipe	 p;
	uint64_t		 held;

	if (w->npool > 0)
		p = w->pool[--w->npool];
	else if (relay_pipe_new(&p) == -1)
		return -1;
	if (p.size == 0)
		relay_pipe_grow(w, &p);
	else if ((held = relay_budget_take(p.size)) != 0)
		relay_budget_peak(held);
	else {
		relay_pipe_fallback(w, false);
		/* Shrinking an empty pipe cannot fail but for a kernel bug: then a new one. */
		if (fcntl(p.r, F_SETPIPE_SZ, RELAY_PIPE_SMALL) == -1) {
			close(p.r);
			close(p.w);
			__atomic_sub_fetch(&relay_npipe_fds, 2, __ATOMIC_RELAXED);
			if (relay_pipe_new(&p) == -1)
				return -1;
		}
		p.size = 0;
	}
	d->pipe_r = p.r;
	d->pipe_w = p.w;
	d->pipe_size = p.size;
	return 0;
}

/*
 * Takes d's pipe back, and its bytes back to the budget: pooled in w when
 * empty and there is room, else closed.
 */
static void
relay_pipe_put(struct relay_worker *w, struct conn_dir *d)
{
	if (d->pipe_r == -1)
		return;
	if (d->pipe_size != 0)
		relay_budget_give(d->pipe_size);
	if (d->pending == 0 && w->npool < RELAY_POOL_MAX) {
		w->pool[w->npool].r = d->pipe_r;
		w->pool[w->npool].w = d->pipe_w;
		w->pool[w->npool].size = d->pipe_size;
		w->npool++;
	} else {
		close(d->pipe_r);
		close(d->pipe_w);
		__atomic_sub_fetch(&relay_npipe_fds, 2, __ATOMIC_RELAXED);
	}
	d->pipe_r = d->pipe_w = -1;
	d->pipe_size = 0;
}

/* d is empty: its pipe goes back to the pool, its copy buffer is freed. */
static void
relay_dir_release(struct relay_worker *w, struct conn_dir *d)
{
	relay_pipe_put(w, d);
	free(d->buf);
	d->buf = NULL;
}

/* ---------------------------------------------------------------- closing */

static const char *
relay_why_str(enum relay_why why)
{
	switch (why) {
	case RELAY_WHY_CLOSED:
		return "closed";
	case RELAY_WHY_CLIENT_RESET:
		return "client reset";
	case RELAY_WHY_BACKEND_RESET:
		return "backend reset";
	case RELAY_WHY_SHUTDOWN_FAILED:
		return "shutdown failed";
	case RELAY_WHY_NOMEM:
		return "out of memory";
	case RELAY_WHY_EPOLL:
		return "epoll_ctl failed";
	case RELAY_WHY_IDLE:
		return "idle timeout";
	case RELAY_WHY_CONNECT:
	case RELAY_WHY_CONNECT_TIMEOUT:
		return "connect failed";
	case RELAY_WHY_STOPPING:
		return "shutting down";
	}
	return "unknown";
}

/* Makes close(fd) send a RST instead of a FIN: passes a reset on. */
static void
relay_set_reset(int fd)
{
	struct linger	 l = { .l_onoff = 1, .l_linger = 0 };

	if (fd != -1)
		(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
}

/*
 * Main thread: c ended (c->why, c->err; detail, when not NULL, says why a
 * connect failed before the handoff). Logs it, closes what the worker did
 * not, and the counters forget it; c is freed.
 */
static void
relay_finish(struct conn *c, const char *detail)
{
	struct service	*svc = c->svc;
	struct backend	*be = c->be;
	char		 ca[ADDR_STRLEN], ba[ADDR_STRLEN], reason[64];

	switch (c->why) {
	case RELAY_WHY_CONNECT_TIMEOUT:
		snprintf(reason, sizeof(reason), "no answer within %d ms", c->connect_ms);
		detail = reason;
		/* FALLTHROUGH */
	case RELAY_WHY_CONNECT:
		be->connect_failures++;
		log_limited(&relay_main_limit, RELAY_LOG_INTERVAL_MS, LOG_LEVEL_INFO,
		    "%s: connect to %s failed: %s", be->conf.name,
		    ip_str(&c->back.dst, ba, sizeof(ba)),
		    detail != NULL ? detail : strerror(c->err));
		log_debug("%s: client %s closed: backend %s unreachable", svc->conf.name,
		    ip_str(&c->front.src, ca, sizeof(ca)), be->conf.name);
		break;
	case RELAY_WHY_NOMEM:
		errno = c->err;
		log_warn("%s: copy mode for a connection failed", svc->conf.name);
		break;
	case RELAY_WHY_EPOLL:
		errno = c->err;
		log_warn("%s: cannot watch a connection", svc->conf.name);
		break;
	default:
		break;
	}
	log_debug("%s: connection from port %u closed (%s), %llu bytes in, %llu out",
	    svc->conf.name, c->front.sport, relay_why_str(c->why),
	    (unsigned long long)c->dir[DIR_C2B].bytes,
	    (unsigned long long)c->dir[DIR_B2C].bytes);
	if (c->cfd != -1)		/* ended before the handoff */
		close(c->cfd);
	if (c->bfd != -1)
		close(c->bfd);
	if (c->watch & CONN_COUNTED)
		clients_del(svc->clients, &c->front.src);
	TAILQ_REMOVE(&svc->conns, c, entry);
	be->active--;
	svc->active--;
	__atomic_sub_fetch(&relay_nactive, 1, __ATOMIC_RELAXED);
	free(c);
	if (!relay_stopping && svc->active < (uint64_t)svc->conf.max_connections &&
	    relay_room != NULL)
		relay_room(svc, true);
}

/* Wakes the loop watching eventfd fd. */
static void
relay_wake(int fd)
{
	uint64_t	 one = 1;

	if (write(fd, &one, sizeof(one)) == -1 && errno != EAGAIN)
		log_warn("relay: cannot wake a thread (eventfd)");
}

/*
 * Worker thread: what ended in w goes to the done queue, for the main
 * thread to finish; the eventfd is written only when the queue was empty.
 */
static void
relay_worker_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct relay_worker	*w = arg;
	bool			 wake;

	if (TAILQ_EMPTY(&w->ended))
		return;
	pthread_mutex_lock(&relay_done_lock);
	wake = TAILQ_EMPTY(&relay_done);
	TAILQ_CONCAT(&relay_done, &w->ended, wentry);
	pthread_mutex_unlock(&relay_done_lock);
	if (wake)
		relay_wake(relay_done_fd);
}

/*
 * Main thread: finishes what workers posted. The eventfd is read before
 * the list is taken, so a post after the take raises a new wakeup.
 */
static void
relay_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn_list	 done;
	struct conn		*c;
	uint64_t		 n;

	if (relay_done_fd != -1 && read(relay_done_fd, &n, sizeof(n)) == -1 &&
	    errno != EAGAIN)
		log_warn("relay: cannot read the done queue's eventfd");
	TAILQ_INIT(&done);
	pthread_mutex_lock(&relay_done_lock);
	TAILQ_CONCAT(&done, &relay_done, wentry);
	pthread_mutex_unlock(&relay_done_lock);
	while ((c = TAILQ_FIRST(&done)) != NULL) {
		TAILQ_REMOVE(&done, c, wentry);
		relay_finish(c, NULL);
	}
}

/*
 * Worker: c ended (why, err): its sockets close (a pipe holding bytes is
 * closed, not pooled) and the main thread finishes it, at once when the
 * worker runs inline, else through the done queue.
 */
static void
relay_close(struct conn *c, enum relay_why why, int err)
{
	struct relay_worker	*w = c->w;
	int			 i;

	/* close() takes an fd out of the epoll set, unless a copy of it lives on. */
	if (c->watch & CONN_ADOPTED) {
		if (c->watch & CONN_WATCH_C)
			(void)epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->cfd, NULL);
		if (c->watch & CONN_WATCH_B)
			(void)epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->bfd, NULL);
	}
	/* Events of c still in the batch must not reach the freed c. */
	for (i = w->batch_i; i < w->batch_n; i++)
		if ((struct conn *)((uintptr_t)w->batch[i].data.ptr &
		    ~(uintptr_t)RELAY_SIDE_B) == c)
			w->batch[i].data.ptr = NULL;
	if ((c->dir[DIR_C2B].flags | c->dir[DIR_B2C].flags) & DIR_AGAIN)
		TAILQ_REMOVE(&w->again, c, again);
	event_del(&c->timer);
	for (i = 0; i < 2; i++)
		relay_dir_release(w, &c->dir[i]);
	if (c->cfd != -1)
		close(c->cfd);
	if (c->bfd != -1)
		close(c->bfd);
	c->cfd = c->bfd = -1;
	TAILQ_REMOVE(&w->conns, c, wentry);
	c->why = (uint8_t)why;
	c->err = err;
	if (!w->threaded) {
		relay_finish(c, NULL);
		return;
	}
	/* Posted once this loop iteration's callbacks are done: one lock, one wakeup. */
	TAILQ_INSERT_TAIL(&w->ended, c, wentry);
	event_active(w->flush_ev, EV_TIMEOUT, 0);
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
	log_debug("relay: splice refused, connection from port %u copies %s",
	    c->front.sport, di == DIR_C2B ? "client->backend" : "backend->client");
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
		relay_pipe_put(c->w, d);
		d->pending = pending;
	}
	return 0;
}

/*
 * The bounce buffer is the worker's: bytes of d the destination did not
 * take move to a buffer of their own before relay_pump returns. Returns 0,
 * or -1 out of memory.
 */
static int
relay_dir_keep(struct relay_worker *w, struct conn_dir *d)
{
	if (d->pending == 0 || d->pipe_r != -1 || d->buf != NULL)
		return 0;
	if ((d->buf = malloc(d->pending)) == NULL)
		return -1;
	memcpy(d->buf, w->bounce + d->off, d->pending);
	d->off = 0;
	return 0;
}

/* Writes what direction d holds to dst. Returns bytes written or -1 (errno). */
static ssize_t
relay_dir_write(struct relay_worker *w, struct conn_dir *d, int dst)
{
	ssize_t	 n;
	int	 flags = MSG_NOSIGNAL | MSG_DONTWAIT;

	if (d->pipe_r != -1)
		return splice(d->pipe_r, NULL, dst, NULL, d->pending, RELAY_SPLICE_FLAGS);
	/* The source is at EOF: the FIN (shutdown or close, next) joins this segment. */
	if (d->flags & DIR_EOF)
		flags |= MSG_MORE;
	n = send(dst, (d->buf != NULL ? d->buf : w->bounce) + d->off, d->pending, flags);
	if (n > 0)
		d->off += (uint32_t)n;
	return n;
}

/* Reads from src into direction d, which holds nothing. Returns bytes, 0 at EOF, -1 (errno). */
static ssize_t
relay_dir_read(struct relay_worker *w, struct conn_dir *d, int src)
{
	if (d->flags & DIR_SPLICE)	/* more than the pipe holds is fine: splice stops when full */
		return splice(src, NULL, d->pipe_w, NULL, RELAY_PIPE_SIZE, RELAY_SPLICE_FLAGS);
	d->off = 0;
	return recv(src, w->bounce, sizeof(w->bounce), MSG_DONTWAIT);
}

/* Adds n bytes moved by direction di to c's backend counters (read by the main thread). */
static void
relay_count(struct conn *c, int di, uint64_t n)
{
	__atomic_fetch_add(di == DIR_C2B ? &c->be->bytes_in : &c->be->bytes_out, n,
	    __ATOMIC_RELAXED);
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
	struct relay_worker *w = c->w;
	struct conn_dir	*d = &c->dir[di];
	ssize_t		 n;

	if (d->pending < sizeof(w->bounce) && !(d->flags & DIR_HUP)) {
		/* Emptied, and no FIN or error was reported: the next edge tells. */
		d->flags &= (uint8_t)~DIR_READABLE;
	} else if (d->pending < sizeof(w->bounce)) {
		n = recv(src, w->bounce + d->pending, sizeof(w->bounce) - d->pending,
		    MSG_DONTWAIT);
		if (n > 0)
			d->pending += (uint32_t)n;
		else if (n == 0)
			d->flags = (uint8_t)((d->flags | DIR_EOF) & ~DIR_READABLE);
		else if (errno == EAGAIN || errno == EWOULDBLOCK)
			d->flags &= (uint8_t)~(DIR_READABLE | DIR_HUP);
		else if (errno != EINTR) {
			/* src reset us after these bytes: they go first, then the reset. */
			if ((n = send(dst, w->bounce, d->pending, MSG_NOSIGNAL |
			    MSG_DONTWAIT)) > 0) {
				d->bytes += (uint64_t)n;
				relay_count(c, di, (uint64_t)n);
			}
			d->pending = 0;
			relay_set_reset(dst);
			relay_close(c, di == DIR_C2B ? RELAY_WHY_CLIENT_RESET :
			    RELAY_WHY_BACKEND_RESET, 0);
			return -1;
		}
	}
	if (d->pending == sizeof(w->bounce) && !(d->flags & DIR_COPY))
		d->flags |= DIR_SPLICE;
	return 0;
}

/*
 * Moves bytes of direction di until the source is empty, the destination is
 * full, or the round budget is spent (then the worker's epoll event is
 * activated again so other connections get their turn first).
 * Returns: -1 c was closed, 0 otherwise.
 */
static int
relay_pump(struct conn *c, int di)
{
	struct relay_worker *w = c->w;
	struct conn_dir	*d = &c->dir[di];
	int		 src = di == DIR_C2B ? c->cfd : c->bfd;
	int		 dst = di == DIR_C2B ? c->bfd : c->cfd;
	ssize_t		 n;
	int		 round;

	for (round = 0; round < RELAY_ROUNDS; round++) {
		if (d->pending > 0) {
			if (d->flags & DIR_BLOCKED)
				return 0;
			n = relay_dir_write(w, d, dst);
			if (n == -1) {
				if (errno == EAGAIN || errno == EWOULDBLOCK) {
					if (relay_dir_keep(w, d) == -1)
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
				relay_close(c, di == DIR_C2B ? RELAY_WHY_BACKEND_RESET :
				    RELAY_WHY_CLIENT_RESET, 0);
				return -1;
			}
			d->pending -= (uint32_t)n;
			d->bytes += (uint64_t)n;
			relay_count(c, di, (uint64_t)n);
			if (d->pending > 0)
				continue;
			relay_dir_release(w, d);	/* an idle direction holds no pipe, no buffer */
		}
		if (d->flags & DIR_EOF) {
			if (d->flags & DIR_DONE)
				return 0;
			d->flags |= DIR_DONE;
			/* Both ways finished: close() sends this FIN, no shutdown() needed. */
			if (c->dir[!di].flags & DIR_DONE) {
				relay_close(c, RELAY_WHY_CLOSED, 0);
				return -1;
			}
			if (shutdown(dst, SHUT_WR) == -1 && errno != ENOTCONN) {
				relay_set_reset(src);
				relay_close(c, RELAY_WHY_SHUTDOWN_FAILED, errno);
				return -1;
			}
			return 0;
		}
		if (!(d->flags & DIR_READABLE))
			return 0;
		if ((d->flags & DIR_SPLICE) && d->pipe_r == -1 && relay_pipe_get(w, d) == -1) {
			log_limited(&w->limit, RELAY_LOG_INTERVAL_MS, LOG_LEVEL_INFO,
			    "relay: no pipe for the connection from "
			    "port %u (%s), copying instead: raise LimitNOFILE",
			    c->front.sport, strerror(errno));
			if (relay_dir_copy(c, di) == -1)
				goto fail;
		}
		n = relay_dir_read(w, d, src);
		if (n == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				d->flags &= (uint8_t)~(DIR_READABLE | DIR_HUP);
				relay_dir_release(w, d);
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
				relay_close(c, RELAY_WHY_CONNECT, errno);
				return -1;
			}
			/* src reset us (ECONNRESET, ETIMEDOUT...): reset dst too. */
			relay_set_reset(dst);
			relay_close(c, di == DIR_C2B ? RELAY_WHY_CLIENT_RESET :
			    RELAY_WHY_BACKEND_RESET, 0);
			return -1;
		}
		if (n == 0) {
			d->flags = (uint8_t)((d->flags | DIR_EOF) & ~DIR_READABLE);
			relay_dir_release(w, d);
			continue;
		}
		d->pending = (uint32_t)n;
		if (!(d->flags & DIR_SPLICE) && relay_dir_peek(c, di, src, dst) == -1)
			return -1;
	}
	/* Budget spent with work left: come back after the other ready events. */
	if (relay_dir_keep(w, d) == -1)
		goto fail;
	if (!((c->dir[DIR_C2B].flags | c->dir[DIR_B2C].flags) & DIR_AGAIN))
		TAILQ_INSERT_TAIL(&w->again, c, again);
	d->flags |= DIR_AGAIN;
	event_active(w->epev, EV_READ, 0);
	return 0;

fail:
	relay_set_reset(src);
	relay_set_reset(dst);
	relay_close(c, RELAY_WHY_NOMEM, errno);
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

/* Adds c's socket of side RELAY_SIDE_B (or 0: the client's) to its worker's epoll set. Returns 0 or -1. */
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
	if (epoll_ctl(c->w->epfd, EPOLL_CTL_ADD, side == RELAY_SIDE_B ? c->bfd : c->cfd,
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
		relay_close(c, RELAY_WHY_EPOLL, errno);
		return -1;
	}
	relay_timer_set(c, (int64_t)c->idle_s * 1000);
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
 * Worker w's epoll set has events, or its again list connections: first
 * the connections whose budget ran out (as many as were waiting), then a
 * batch of socket events. Another round is asked for while work is left.
 */
static void
relay_epoll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct relay_worker *w = arg;
	struct conn	*c;
	uintptr_t	 p;
	int		 i, n, di;

	for (n = 0, c = TAILQ_FIRST(&w->again); c != NULL; c = TAILQ_NEXT(c, again))
		n++;
	while (n-- > 0 && (c = TAILQ_FIRST(&w->again)) != NULL) {
		TAILQ_REMOVE(&w->again, c, again);
		for (di = 0; di < 2; di++)
			c->dir[di].flags &= (uint8_t)~DIR_AGAIN;
		c->last_ms = now_ms();
		if (relay_pump(c, DIR_C2B) == -1)
			continue;
		(void)relay_pump(c, DIR_B2C);
	}
	do
		n = epoll_wait(w->epfd, w->batch, RELAY_BATCH, 0);
	while (n == -1 && errno == EINTR);
	if (n == -1) {
		log_warn("relay: epoll_wait");
		n = 0;
	}
	w->batch_n = n;
	for (i = 0; i < n; i++) {
		w->batch_i = i + 1;
		if ((p = (uintptr_t)w->batch[i].data.ptr) == 0)
			continue;	/* its connection was closed earlier in the batch */
		relay_io((struct conn *)(p & ~(uintptr_t)RELAY_SIDE_B), (int)(p & RELAY_SIDE_B),
		    w->batch[i].events);
	}
	w->batch_n = w->batch_i = 0;
	if (!TAILQ_EMPTY(&w->again))
		event_active(w->epev, EV_READ, 0);
}

static void
relay_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn	*c = arg;
	uint64_t	 idle, now;

	if (c->state == CONN_CONNECTING) {
		relay_close(c, RELAY_WHY_CONNECT_TIMEOUT, 0);
		return;
	}
	/* Activity does not re-arm the timer: re-arm here for what is left. */
	idle = (uint64_t)c->idle_s * 1000;
	now = now_ms();
	if (now - c->last_ms < idle) {
		relay_timer_set(c, (int64_t)(idle - (now - c->last_ms)));
		return;
	}
	relay_close(c, RELAY_WHY_IDLE, 0);
}

/* ---------------------------------------------------------------- handoff */

/* Worker w takes c: from now on only w touches its sockets, pipes and timer. */
static void
relay_take(struct relay_worker *w, struct conn *c)
{
	c->w = w;
	TAILQ_INSERT_TAIL(&w->conns, c, wentry);
	evtimer_assign(&c->timer, w->base, relay_timer_cb, c);
	if (c->watch & CONN_READY) {
		(void)relay_start(c);
		return;
	}
	if (relay_watch(c, RELAY_SIDE_B) == -1) {
		relay_close(c, RELAY_WHY_EPOLL, errno);
		return;
	}
	relay_timer_set(c, c->connect_ms);
}

/* Main thread: gives c to the next worker (round robin), or runs it inline. */
static void
relay_hand(struct conn *c)
{
	struct relay_worker	*w;

	if (relay_nthreads == 0) {
		relay_take(relay_workers[0], c);
		return;
	}
	w = relay_workers[relay_rr++ % (unsigned int)relay_nthreads];
	/* Flushed once this loop iteration's accepts are done: one lock, one wakeup. */
	TAILQ_INSERT_TAIL(&w->outbox, c, wentry);
	event_active(relay_hand_ev, EV_TIMEOUT, 0);
}

/*
 * Main thread: the connections handed over since the last flush go to
 * their workers' inboxes; a worker's eventfd is written only when its
 * inbox was empty.
 */
static void
relay_hand_cb(evutil_socket_t fd, short what, void *arg)
{
	struct relay_worker	*w;
	bool			 wake;
	int			 i;

	for (i = 0; i < relay_nthreads; i++) {
		w = relay_workers[i];
		if (TAILQ_EMPTY(&w->outbox))
			continue;
		pthread_mutex_lock(&w->lock);
		wake = TAILQ_EMPTY(&w->inbox);
		TAILQ_CONCAT(&w->inbox, &w->outbox, wentry);
		pthread_mutex_unlock(&w->lock);
		if (wake)
			relay_wake(w->efd);
	}
}

/* Worker: ends every connection it holds (relay_shutdown). */
static void
relay_worker_close_all(struct relay_worker *w)
{
	while (!TAILQ_EMPTY(&w->conns))
		relay_close(TAILQ_FIRST(&w->conns), RELAY_WHY_STOPPING, 0);
}

/*
 * Worker thread: its inbox has connections, or it is told to stop. The
 * eventfd is read before the inbox is taken (see relay_done_cb).
 */
static void
relay_inbox_cb(evutil_socket_t fd, short what, void *arg)
{
	struct relay_worker	*w = arg;
	struct conn_list	 in;
	struct conn		*c;
	uint64_t		 n;
	bool			 stop;

	if (read(w->efd, &n, sizeof(n)) == -1 && errno != EAGAIN)
		log_warn("relay: cannot read a worker's eventfd");
	TAILQ_INIT(&in);
	pthread_mutex_lock(&w->lock);
	TAILQ_CONCAT(&in, &w->inbox, wentry);
	stop = w->stop;
	pthread_mutex_unlock(&w->lock);
	while ((c = TAILQ_FIRST(&in)) != NULL) {
		TAILQ_REMOVE(&in, c, wentry);
		relay_take(w, c);
	}
	if (stop) {
		relay_worker_close_all(w);
		relay_worker_flush_cb(-1, 0, w);
		event_base_loopbreak(w->base);
	}
}

static void *
relay_worker_main(void *arg)
{
	struct relay_worker	*w = arg;

	if (event_base_loop(w->base, 0) == -1)
		log_warnx("relay: a worker's event loop failed");
	relay_worker_close_all(w);	/* none left after a stop */
	relay_worker_flush_cb(-1, 0, w);
	return NULL;
}

/* Frees w (its thread joined) and its spare pipes. */
static void
relay_worker_free(struct relay_worker *w)
{
	if (w == NULL)
		return;
	while (w->npool > 0) {
		w->npool--;
		close(w->pool[w->npool].r);
		close(w->pool[w->npool].w);
		__atomic_sub_fetch(&relay_npipe_fds, 2, __ATOMIC_RELAXED);
	}
	if (w->epev != NULL)
		event_free(w->epev);
	if (w->inev != NULL)
		event_free(w->inev);
	if (w->flush_ev != NULL)
		event_free(w->flush_ev);
	if (w->epfd != -1)
		close(w->epfd);
	if (w->efd != -1)
		close(w->efd);
	if (w->threaded && w->base != NULL)
		event_base_free(w->base);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

/*
 * A worker with its epoll set: run by main_base (inline), or, main_base
 * NULL, with an event loop and an inbox of its own, its thread not started
 * yet. Returns it, or NULL logged.
 */
static struct relay_worker *
relay_worker_new(struct event_base *main_base)
{
	struct relay_worker	*w;

	if ((w = calloc(1, sizeof(*w))) == NULL) {
		log_warn("relay: cannot allocate a worker");
		return NULL;
	}
	w->epfd = w->efd = -1;
	TAILQ_INIT(&w->conns);
	TAILQ_INIT(&w->again);
	TAILQ_INIT(&w->inbox);
	TAILQ_INIT(&w->outbox);
	TAILQ_INIT(&w->ended);
	pthread_mutex_init(&w->lock, NULL);
	w->threaded = main_base == NULL;
	if ((w->base = w->threaded ? event_base_new() : main_base) == NULL) {
		log_warnx("relay: cannot make a worker's event loop");
		goto fail;
	}
	if ((w->epfd = epoll_create1(EPOLL_CLOEXEC)) == -1) {
		log_warn("relay: epoll_create1");
		goto fail;
	}
	/* Level-triggered on the set: events not taken by one batch ask again. */
	if ((w->epev = event_new(w->base, w->epfd, EV_READ | EV_PERSIST,
	    relay_epoll_cb, w)) == NULL || event_add(w->epev, NULL) == -1) {
		log_warnx("relay: cannot watch a worker's epoll set");
		goto fail;
	}
	if (!w->threaded)
		return w;
	if ((w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1) {
		log_warn("relay: eventfd");
		goto fail;
	}
	if ((w->inev = event_new(w->base, w->efd, EV_READ | EV_PERSIST,
	    relay_inbox_cb, w)) == NULL || event_add(w->inev, NULL) == -1) {
		log_warnx("relay: cannot watch a worker's inbox");
		goto fail;
	}
	if ((w->flush_ev = event_new(w->base, -1, 0, relay_worker_flush_cb, w)) == NULL) {
		log_warnx("relay: cannot make a worker's flush event");
		goto fail;
	}
	return w;

fail:
	relay_worker_free(w);
	return NULL;
}

/* Starts w's thread with every signal blocked: signals are the main loop's. Returns 0, -1 logged. */
static int
relay_worker_start(struct relay_worker *w)
{
	struct sched_param	 sp = { .sched_priority = 0 };
	pthread_attr_t		 attr;
	sigset_t		 all, old;
	int			 rc;

	/*
	 * lbd may start SCHED_RR (lbd.service, for the advert pacer thread of
	 * hasync), and a thread would inherit it. Workers move bytes: as
	 * real-time threads they would preempt the very clients and servers
	 * they wait for (a pair in the rig, one worker, 2 vCPUs: 4400 conn/s
	 * with the worker real-time, 5600-7800 with it SCHED_OTHER) and could
	 * hold a CPU from everything else under load. So they are ordinary
	 * threads.
	 */
	if ((rc = pthread_attr_init(&attr)) != 0 ||
	    (rc = pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED)) != 0 ||
	    (rc = pthread_attr_setschedpolicy(&attr, SCHED_OTHER)) != 0 ||
	    (rc = pthread_attr_setschedparam(&attr, &sp)) != 0) {
		errno = rc;
		log_warn("relay: cannot set up a worker thread's attributes");
		return -1;
	}
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&w->tid, &attr, relay_worker_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		errno = rc;
		log_warn("relay: cannot start a worker thread");
		return -1;
	}
	w->started = true;
	return 0;
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
	struct conn		*c;
	int			 i;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->svc = svc;
	c->be = be;
	c->cfd = cfd;
	c->bfd = -1;
	/* What the worker needs of svc->conf, which a reload rewrites in place. */
	c->connect_ms = svc->conf.connect_timeout_ms;
	c->idle_s = svc->conf.idle_timeout_s;
	/*
	 * Directions start not readable: adding a socket to epoll reports the
	 * state it is in, so a source with data gets its read edge anyway, and
	 * a source without spares an EAGAIN system call.
	 */
	for (i = 0; i < 2; i++)
		c->dir[i].pipe_r = c->dir[i].pipe_w = -1;
	c->created_ms = c->last_ms = now_ms();
	TAILQ_INSERT_TAIL(&svc->conns, c, entry);
	be->active++;
	be->total++;
	svc->active++;
	svc->total++;
	__atomic_add_fetch(&relay_nactive, 1, __ATOMIC_RELAXED);
	if (svc->conf.max_connections > 0 &&
	    svc->active >= (uint64_t)svc->conf.max_connections && relay_room != NULL)
		relay_room(svc, false);	/* more clients wait in the kernel backlog */
	return c;
}

/*
 * Main thread: counts c for its client (c->front.src) in the service's
 * table, made on the first connection. Every connection that gets here is
 * uncounted again by relay_finish, the one end of every connection, so the
 * count is exact. Out of memory, c is not counted (and not refused).
 */
static void
relay_client_hold(struct conn *c)
{
	struct service	*svc = c->svc;

	if (svc->clients == NULL && (svc->clients = clients_new()) == NULL) {
		log_limited(&relay_main_limit, RELAY_LOG_INTERVAL_MS, LOG_LEVEL_INFO,
		    "%s: no memory for the per-client "
		    "connection count", svc->conf.name);
		return;
	}
	if (clients_add(svc->clients, &c->front.src) == -1) {
		log_limited(&relay_main_limit, RELAY_LOG_INTERVAL_MS, LOG_LEVEL_INFO,
		    "%s: no memory for the per-client "
		    "connection count", svc->conf.name);
		return;
	}
	c->watch |= CONN_COUNTED;
}

/*
 * Main thread: may client ip open one more connection to svc?
 * Returns: true, or false with the refusal counted and logged (rate-limited).
 */
static bool
relay_client_allowed(struct service *svc, const struct lbd_ip *ip)
{
	int		 cap = svc->conf.max_connections_per_client;
	uint32_t	 n;
	char		 a[ADDR_STRLEN];

	if (cap <= 0 || (n = clients_count(svc->clients, ip)) < (uint32_t)cap)
		return true;
	svc->refused_per_client++;
	log_limited(&relay_cap_limit, RELAY_LOG_INTERVAL_MS, LOG_LEVEL_INFO,
	    "%s: client %s already has %u connections "
	    "open (max_connections_per_client %d): connection refused", svc->conf.name,
	    ip_str(ip, a, sizeof(a)), n, cap);
	return false;
}

/* Puts both directions of c in copy mode when splice is turned off. */
static void
relay_conn_mode(struct conn *c)
{
	if (!relay_splice_on)
		c->dir[DIR_C2B].flags = c->dir[DIR_B2C].flags = DIR_COPY;
}

/* Main thread: the backend connect failed before the handoff (reason says how). */
static void
relay_connect_failed(struct conn *c, const char *reason)
{
	c->why = RELAY_WHY_CONNECT;
	relay_finish(c, reason);
}

/*
 * Both nodes' backend connections leave from the VIP. In a planned
 * handover the old MASTER still serves its connections while the new one
 * opens more; were the new one to pick the port of a live one to the same
 * backend and port, the backend would answer its SYN with a challenge ACK,
 * the new MASTER's kernel would answer that with a RST carrying exactly
 * the sequence number the backend expects, and the old MASTER's connection
 * would die (seen in a namespace test). So each node takes its own half of
 * the ephemeral range: the lower node address the lower half. Sets
 * relay_ports (0: standalone, or no range to split); a reload may turn a
 * service's source to the VIP, so a pair always has it.
 */
static void
relay_ports_split(const struct lbd_config *conf)
{
	struct lbd_ip	 me, peer;
	unsigned	 lo, hi, mid;
	FILE		*f;
	int		 n;

	relay_ports = 0;
	if (!conf->has_peer || conf->npeer_addr == 0)
		return;
	if ((f = fopen(RELAY_PORTS_FILE, "r")) == NULL) {
		log_warn("relay: %s", RELAY_PORTS_FILE);
		return;
	}
	n = fscanf(f, "%u %u", &lo, &hi);
	fclose(f);
	if (n != 2 || lo >= hi || hi > 65535) {
		log_warnx("relay: cannot read the ephemeral port range from %s", RELAY_PORTS_FILE);
		return;
	}
	mid = lo + (hi - lo) / 2;
	ip_from_sockaddr(&me, (const struct sockaddr *)&conf->node_addr);
	ip_from_sockaddr(&peer, (const struct sockaddr *)&conf->peer_addr[0]);
	if (memcmp(&me, &peer, sizeof(me)) < 0)
		hi = mid;
	else
		lo = mid + 1;
	relay_ports = (uint32_t)lo | (uint32_t)hi << 16;
	log_info("relay: backend connections from the VIP use local ports %u-%u "
	    "(this node's half of %s; %s uses the other)", lo, hi, RELAY_PORTS_FILE,
	    conf->peer_name);
}

/*
 * Gives a VIP-sourced backend socket this node's half of the ephemeral
 * ports. A kernel without IP_LOCAL_PORT_RANGE gets one warning with the
 * remedy, then no more tries.
 */
static void
relay_ports_set(int fd)
{
	if (relay_ports == 0 || setsockopt(fd, IPPROTO_IP, IP_LOCAL_PORT_RANGE,
	    &relay_ports, sizeof(relay_ports)) == 0)
		return;
	log_warn("relay: cannot give backend sockets this node's half of the "
	    "ephemeral ports (IP_LOCAL_PORT_RANGE needs Linux 6.3); give the two "
	    "nodes disjoint net.ipv4.ip_local_port_range instead "
	    "(deploy/lbd.sysctl.conf), or a planned handover can reset a "
	    "connection the old MASTER drains when a new one picks its port");
	relay_ports = 0;
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
	 * it forwards. Each option is one system call per connection; the
	 * port range (relay_ports_split) one more in a pair.
	 */
	(void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (svc->conf.source == SOURCE_VIP)
		relay_ports_set(fd);
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
	/* Before the pick: a refused connection refreshes no sticky entry. */
	if (!relay_client_allowed(svc, &ip)) {
		close(cfd);
		return;
	}
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
	relay_client_hold(c);
	relay_tuple(&c->back, NULL, (struct sockaddr *)&dst);
	relay_conn_mode(c);
	if ((c->bfd = relay_backend_socket(svc, be, &why)) == -1) {
		snprintf(reason, sizeof(reason), "%s: %s", why, strerror(errno));
		relay_connect_failed(c, reason);
		return;
	}
	if (connect(c->bfd, (struct sockaddr *)&dst, addr_len((struct sockaddr *)&dst))
	    == 0)
		c->watch |= CONN_READY;
	else if (errno != EINPROGRESS) {
		relay_connect_failed(c, strerror(errno));
		return;
	}
	relay_hand(c);
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
	/* Counted for its client (an existing session, never refused by the cap). */
	if (getpeername(cfd, (struct sockaddr *)&a, &alen) == 0 &&
	    getsockname(cfd, (struct sockaddr *)&b, &blen) == 0) {
		relay_tuple(&c->front, (struct sockaddr *)&a, (struct sockaddr *)&b);
		relay_client_hold(c);
	}
	alen = sizeof(a);
	blen = sizeof(b);
	if (getsockname(bfd, (struct sockaddr *)&a, &alen) == 0 &&
	    getpeername(bfd, (struct sockaddr *)&b, &blen) == 0)
		relay_tuple(&c->back, (struct sockaddr *)&a, (struct sockaddr *)&b);
	relay_conn_mode(c);
	c->watch |= CONN_ADOPTED | CONN_READY;
	relay_hand(c);
	return 0;
}

/* ---------------------------------------------------------------- module */

/*
 * node.relay_threads, LBD_RELAY_THREADS_AUTO resolved: CPUs online - 1, at
 * most 64, but 0 (inline) with 1 or 2 CPUs online (or unknown): measured on
 * 2 vCPUs, the handoff costs more than the idle CPU share it can win
 * (tests/bench/profile.sh: 1 or 2 workers 0.90-0.95x of inline).
 */
static int
relay_threads_wanted(const struct lbd_config *conf)
{
	long	 n = conf->relay_threads;

	if (n != LBD_RELAY_THREADS_AUTO)
		return n < 0 ? 0 : n > LBD_MAX_RELAY_THREADS ? LBD_MAX_RELAY_THREADS : (int)n;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n <= 2)
		return 0;
	return n - 1 > LBD_MAX_RELAY_THREADS ? LBD_MAX_RELAY_THREADS : (int)(n - 1);
}

/*
 * Sets the pipe budget from node.pipe_memory_max_mb; at start and on every
 * reload (a lower budget applies to pipes taken from then on). Unset: 256
 * MiB, so 256 one-way transfers (an FTP data connection is one way) at a
 * time get 1 MiB pipes, far more than a link needs to be full, but at most
 * an eighth of the RAM, so a small VM's pipes cannot take its memory.
 */
static void
relay_pipe_budget_set(const struct lbd_config *conf, bool say)
{
	uint64_t	 max, ram, old;
	long		 pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);

	if (conf->pipe_memory_max_mb != LBD_PIPE_MEMORY_AUTO)
		max = (uint64_t)conf->pipe_memory_max_mb * 1024 * 1024;
	else {
		max = (uint64_t)LBD_PIPE_MEMORY_DEF_MB * 1024 * 1024;
		ram = pages > 0 && psize > 0 ? (uint64_t)pages * (uint64_t)psize : 0;
		if (ram > 0 && ram / RELAY_PIPE_RAM_SHARE < max)
			max = ram / RELAY_PIPE_RAM_SHARE;
	}
	old = __atomic_exchange_n(&relay_pipe_max, max, __ATOMIC_RELAXED);
	if ((old != max || say) && max == 0)
		log_info("relay: pipe memory budget 0 (node.pipe_memory_max_mb): pipes keep "
		    "the default %d KiB", RELAY_PIPE_SMALL / 1024);
	else if (old != max || say)
		log_info("relay: pipe memory budget %llu MiB%s: %llu pipes of %d KiB at a "
		    "time, then %d KiB pipes", (unsigned long long)(max / (1024 * 1024)),
		    conf->pipe_memory_max_mb == LBD_PIPE_MEMORY_AUTO ?
		    " (node.pipe_memory_max_mb unset: 256 MiB, at most RAM / 8)" : "",
		    (unsigned long long)(max / RELAY_PIPE_SIZE), RELAY_PIPE_SIZE / 1024,
		    RELAY_PIPE_SMALL / 1024);
}

void
relay_pipe_budget(const struct lbd_config *conf)
{
	relay_pipe_budget_set(conf, false);
}

void
relay_pipe_stats(struct relay_pipe_stats *st)
{
	st->bytes = __atomic_load_n(&relay_pipe_bytes, __ATOMIC_RELAXED);
	st->max = __atomic_load_n(&relay_pipe_max, __ATOMIC_RELAXED);
	st->peak = __atomic_load_n(&relay_pipe_peak, __ATOMIC_RELAXED);
	st->fallbacks = __atomic_load_n(&relay_pipe_fallbacks, __ATOMIC_RELAXED);
	st->refused = __atomic_load_n(&relay_pipe_refused, __ATOMIC_RELAXED);
	st->pipe_size = RELAY_PIPE_SIZE;
}

int
relay_init(struct lbd *lbd)
{
	int	 n, i;

	if (relay_workers != NULL)
		relay_shutdown(lbd);
	n = relay_threads_wanted(lbd->conf);
	relay_ports_split(lbd->conf);
	/* Counters start over; relay_pipe_bytes is 0 here (every pipe was given back). */
	__atomic_store_n(&relay_pipe_peak, __atomic_load_n(&relay_pipe_bytes,
	    __ATOMIC_RELAXED), __ATOMIC_RELAXED);
	__atomic_store_n(&relay_pipe_fallbacks, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&relay_pipe_refused, 0, __ATOMIC_RELAXED);
	relay_pipe_budget_set(lbd->conf, true);
	if ((relay_workers = calloc(n > 0 ? (size_t)n : 1, sizeof(*relay_workers))) == NULL) {
		log_warn("relay: cannot allocate the workers");
		return -1;
	}
	relay_rr = 0;
	relay_stopping = false;
	memset(&relay_main_limit, 0, sizeof(relay_main_limit));
	if (n == 0) {
		if ((relay_workers[0] = relay_worker_new(lbd->base)) == NULL)
			goto fail;
		relay_nworkers = 1;
		log_info("relay: in the main thread (node.relay_threads = 0)");
		return 0;
	}
	if ((relay_done_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1) {
		log_warn("relay: eventfd");
		goto fail;
	}
	if ((relay_done_ev = event_new(lbd->base, relay_done_fd, EV_READ | EV_PERSIST,
	    relay_done_cb, NULL)) == NULL || event_add(relay_done_ev, NULL) == -1) {
		log_warnx("relay: cannot watch the done queue");
		goto fail;
	}
	if ((relay_hand_ev = event_new(lbd->base, -1, 0, relay_hand_cb, NULL)) == NULL) {
		log_warnx("relay: cannot make the handoff event");
		goto fail;
	}
	for (i = 0; i < n; i++) {
		if ((relay_workers[i] = relay_worker_new(NULL)) == NULL)
			goto fail;
		relay_nworkers++;
		if (relay_worker_start(relay_workers[i]) == -1)
			goto fail;
		relay_nthreads++;
	}
	log_info("relay: %d worker thread%s", n, n == 1 ? "" : "s");
	return 0;

fail:
	relay_shutdown(lbd);
	return -1;
}

void
relay_shutdown(struct lbd *lbd)
{
	struct relay_worker	*w;
	int			 i;

	relay_stopping = true;
	relay_hand_cb(-1, 0, NULL);	/* handed over this iteration: workers close them too */
	for (i = 0; i < relay_nworkers; i++) {
		w = relay_workers[i];
		if (!w->threaded) {
			relay_worker_close_all(w);	/* finishes each at once */
			continue;
		}
		if (!w->started)
			continue;
		pthread_mutex_lock(&w->lock);
		w->stop = true;
		pthread_mutex_unlock(&w->lock);
		relay_wake(w->efd);
	}
	for (i = 0; i < relay_nworkers; i++) {
		w = relay_workers[i];
		if (w->started) {
			pthread_join(w->tid, NULL);
			w->started = false;
		}
	}
	relay_done_cb(-1, 0, NULL);	/* what the workers posted, last ones included */
	/* Every connection is finished: the per-client tables are empty. */
	for (i = 0; i < lbd->nservices; i++) {
		clients_free(lbd->services[i].clients);
		lbd->services[i].clients = NULL;
	}
	for (i = 0; i < relay_nworkers; i++)
		relay_worker_free(relay_workers[i]);
	free(relay_workers);
	relay_workers = NULL;
	relay_nworkers = relay_nthreads = 0;
	if (relay_done_ev != NULL)
		event_free(relay_done_ev);
	relay_done_ev = NULL;
	if (relay_hand_ev != NULL)
		event_free(relay_hand_ev);
	relay_hand_ev = NULL;
	if (relay_done_fd != -1)
		close(relay_done_fd);
	relay_done_fd = -1;
	relay_stopping = false;
}

uint64_t
relay_active(void)
{
	return __atomic_load_n(&relay_nactive, __ATOMIC_RELAXED);
}

uint64_t
relay_pipe_fds(void)
{
	return __atomic_load_n(&relay_npipe_fds, __ATOMIC_RELAXED);
}

int
relay_threads(void)
{
	return relay_nthreads;
}

void
relay_set_room_fn(relay_room_fn *fn)
{
	relay_room = fn;
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
