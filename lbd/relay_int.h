/*
 * relay_int.h - what the relay's files (relay.c, relay_worker.c,
 * relay_pump.c) share: the connection record, a worker, and the calls
 * between them; the rest of lbd sees only the relay prototypes in lbd.h.
 */
#ifndef RELAY_INT_H
#define RELAY_INT_H

#include <sys/epoll.h>
#include <pthread.h>

#include <event2/event_struct.h>

#include "lbd.h"

#define RELAY_PIPE_SIZE		(1024 * 1024)	/* pipe capacity asked with F_SETPIPE_SZ: a power of two */
#define RELAY_POOL_MAX		256		/* spare empty pipes kept for reuse, per worker */
#define RELAY_BOUNCE_SIZE	16384		/* a worker's recv buffer; a read filling it means bulk: splice */
#define RELAY_LOG_INTERVAL_MS	1000		/* at most one rate-limited line of a kind per this */
#define RELAY_BATCH		32		/* socket events taken per relay_epoll_cb */
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
	RELAY_WHY_STOPPING,		/* relay_shutdown */
	RELAY_WHY_STALE			/* rebuilt after a takeover with state the far end had passed */
};

/* conn_mirror.flags */
#define MIRROR_STARTED		0x01	/* snapshots taken: its records flow */
#define MIRROR_OFF		0x02	/* given up (no snapshot, queue full, half-closed): never again */
#define MIRROR_RESYNC		0x04	/* the peer lacks its Open: sent once nothing is in flight */
#define MIRROR_REBUILT		0x08	/* rebuilt here after a takeover */
#define MIRROR_PROBATION	0x10	/* rebuilt recently: watched for stale state */
#define MIRROR_QUIET		0x20	/* acknowledgements reported up to what was read: nothing to say */
#define MIRROR_UNPROBED		0x40	/* rebuilt; its window probes wait for the takeover's GARP */
#define MIRROR_LAZY		0x80	/* not mirrored before start_ms: a short connection never is */

/* Progress of one rebuilt socket, for the stale rule. */
struct mirror_watch {
	uint64_t	 rx;		/* tcpi_bytes_received at the last progress */
	uint64_t	 acked;		/* tcpi_bytes_acked then */
	uint32_t	 segs;		/* tcpi_segs_in then */
	uint64_t	 since_ms;	/* when */
	uint32_t	 segs_seen;	/* tcpi_segs_in at the last look at the far end's sequence */
	uint64_t	 ahead_ms;	/* since when the far end is ahead of us without progress; 0 not */
};

/*
 * A mirrored connection's mirror state (mirror.c); only its worker
 * touches it after the handoff. Stream offsets count one direction's
 * bytes from 0; a socket's sequence number is its isn plus an offset.
 */
struct conn_mirror {
	uint64_t	 id;		/* this process's, in the peer's table */
	char		 service[LBD_NAME_MAX];	/* copied at accept: a reload rewrites svc->conf */
	char		 backend[LBD_NAME_MAX];
	struct repair_sock front;	/* client <-> VIP:port */
	struct repair_sock back;	/* VIP:port <-> backend */
	uint64_t	 read[2];	/* per direction: offset of the next byte read */
	int64_t		 ack_base[2];	/* per direction: acked offset = this + the destination's tcpi_bytes_acked */
	uint64_t	 acked_sent[2];	/* acked offsets last reported */
	uint64_t	 ack_ms;	/* when they were */
	uint64_t	 probation_ms;	/* PROBATION until then */
	uint64_t	 start_ms;	/* LAZY: mirrored from then on */
	uint64_t	 tick_ms;	/* the relay timer was moved up to then for us; 0 not */
	int		 tick_in;	/* mirror.c wants a tick within this many ms; 0 no (relay_mirror_tick) */
	struct mirror_watch watch[2];	/* front, back */
	uint32_t	 gen;		/* channel generation its Open went out in */
	uint8_t		 flags;		/* MIRROR_* */
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
	struct conn_mirror *m;		/* mirrored (mirror.c); NULL: not */
	uint64_t	 created_ms;	/* monotonic time of accept */
	uint64_t	 last_ms;	/* monotonic time of the last I/O event */
};

/* An empty pipe waiting in the pool. */
struct relay_pipe {
	int		 r;		/* read end */
	int		 w;		/* write end */
	uint32_t	 size;		/* its capacity when enlarged (not counted while pooled), 0 default */
};

/* Main thread: c ended (c->why, c->err; detail, when not NULL, says why a connect failed). */
typedef void	 relay_finish_fn(struct conn *c, const char *detail);

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
	bool		 resync;	/* relay_mirror_resync: every mirrored connection to the peer again */
	int		 efd;		/* eventfd: inbox became non-empty, or stop */
	struct event	*inev;		/* read event on efd */
	relay_finish_fn	*finish;	/* relay.c's end of a connection (main thread) */
	char		 bounce[RELAY_BOUNCE_SIZE]; /* recv buffer of every direction not splicing */
};

/* relay_worker.c */
/*
 * Starts node.relay_threads workers (or the inline one); finish is
 * relay.c's end of a connection, run in the main thread for every
 * connection a worker ends. Returns: 0, -1 logged.
 */
int		 relay_worker_init(struct lbd *, relay_finish_fn *finish);
/* Ends every connection (each finished), joins and frees the workers. */
void		 relay_worker_shutdown(void);
bool		 relay_worker_up(void);		/* relay_worker_init ran, no shutdown since */
void		 relay_hand(struct conn *);	/* main thread: c goes to a worker */

/* relay_worker.c: the mirror's tick */
void		 relay_tick_soon(struct conn *, int ms);	/* c's timer fires within ms */

/* mirror.c: the relay's calls, in c's worker */
/*
 * Main thread, at accept: c on svc's port is to be mirrored (its sockets
 * get the fence's mark; copy mode, no splice). Returns: true mirrored.
 */
bool		 mirror_conn_new(struct conn *c, uint16_t port);
void		 mirror_conn_start(struct conn *c);	/* both sockets connected, no byte moved yet */
/* Direction di read n bytes into buf, about to forward them. */
void		 mirror_conn_read(struct conn *c, int di, const char *buf, size_t n);
void		 mirror_conn_stop(struct conn *c);	/* a FIN or reset: not mirrored any more */
void		 mirror_conn_free(struct conn *c);	/* relay_close, sockets still open */
/*
 * The relay timer fired. Returns: ms until the mirror wants it again (0
 * never), or MIRROR_TICK_RESET: c is stale, reset it (relay_reset).
 */
#define MIRROR_TICK_RESET	(-1)
int		 mirror_conn_tick(struct conn *c, uint64_t now);
void		 mirror_conn_resync(struct conn *c);	/* the peer forgot every pair */

/* relay_pump.c */
/* Resets both sides of c (SO_LINGER 0) and ends it: why. */
void		 relay_reset(struct conn *c, enum relay_why why);
/* Moves bytes of direction di of c. Returns: -1 c was closed, 0 otherwise. */
int		 relay_pump(struct conn *c, int di);
/* Worker: c ended (why, err): sockets closed, pipes given back, c to be finished. */
void		 relay_close(struct conn *c, enum relay_why why, int err);
void		 relay_pipe_pool_free(struct relay_worker *);	/* closes w's spare pipes */
/* relay_init: pipe counters start over, the budget is set and said. */
void		 relay_pipe_init(const struct lbd_config *);

#endif /* RELAY_INT_H */
