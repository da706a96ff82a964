/*
 * relay_pump.c - the relay's byte pump: moves a connection's bytes one
 * direction at a time, with recv/send for small flows and splice(2)
 * through pooled pipes, whose memory is bounded for the whole node.
 *
 * - A direction takes a pipe from a LIFO pool only while bytes are in
 *   flight and gives it back as soon as the pipe is empty, so an idle
 *   connection holds no pipe.
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
 * - Edge triggering (relay_worker.c) means a source is read until EAGAIN
 *   (or remembered as still holding data, DIR_READABLE) and a destination
 *   written until EAGAIN before waiting for the next edge. A read that
 *   returns less than asked emptied the socket, and the raw event says
 *   whether a FIN or an error came with what was reported (EPOLLRDHUP,
 *   EPOLLHUP, EPOLLERR: DIR_HUP): without one, the EAGAIN read is skipped,
 *   since anything arriving later raises a new edge.
 * - Small flows do not splice: a direction starts by reading with recv(2)
 *   into the worker's bounce buffer and sending from it at once; only a read
 *   that fills the buffer moves it to splice (DIR_SPLICE). For a short
 *   request or an FTP control reply that is as many system calls as
 *   splicing, without the pipe, and a short read lets the next read (which
 *   edge triggering needs anyway) come before the send: when it says EOF,
 *   the bytes go out with MSG_MORE and the FIN rides on their segment, one
 *   packet less for both ends. Bytes the destination cannot take at once
 *   move from the bounce buffer to a buffer of their own.
 * - Half-close: a source's FIN is passed on with shutdown(dst, SHUT_WR)
 *   once its bytes are written; when both ways are done the connection
 *   closes. A reset is passed on as a reset (SO_LINGER 0).
 */
#include <sys/epoll.h>
#include <sys/socket.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "relay_int.h"

#define RELAY_PIPE_SMALL	(64 * 1024)	/* a pipe shrunk back to the kernel's default size */
#define RELAY_PIPE_RAM_SHARE	8		/* unset node.pipe_memory_max_mb: at most RAM / this */
#define RELAY_GROW_RETRY_MS	1000		/* after a refused F_SETPIPE_SZ a worker's pipes stay small this long */
#define RELAY_ROUNDS		16		/* read+write rounds per wakeup, then yield */
#define RELAY_SPLICE_FLAGS	(SPLICE_F_NONBLOCK | SPLICE_F_MOVE) /* every splice(2) */

/* The pipe budget; every worker reads and writes these with atomics. */
static uint64_t		 relay_pipe_max;	/* node.pipe_memory_max_mb in bytes */
static uint64_t		 relay_pipe_bytes;	/* enlarged pipe bytes directions hold now */
static uint64_t		 relay_pipe_peak;	/* most relay_pipe_bytes ever, since relay_init */
static uint64_t		 relay_pipe_fallbacks;	/* pipes handed out at the default size */
static uint64_t		 relay_pipe_refused;	/* F_SETPIPE_SZ failures */

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
		log_limited(&w->pipe_limit, clock_now_ms(), RELAY_LOG_INTERVAL_MS,
		    LOG_LEVEL_INFO, "relay: pipe memory budget spent "
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
		if (clock_now_ms() < w->grow_after_ms) {
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
		w->grow_after_ms = clock_now_ms() + RELAY_GROW_RETRY_MS;
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
	fds_use(2);
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
			fds_use(-2);
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
		fds_use(-2);
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

/* Makes close(fd) send a RST instead of a FIN: passes a reset on. */
static void
relay_set_reset(int fd)
{
	struct linger	 l = { .l_onoff = 1, .l_linger = 0 };

	if (fd != -1)
		(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
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
int
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
			/* A FIN's state is not mirrored: this pair's FINs pass the fence from now on. */
			mirror_conn_stop(c);
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
			log_limited(&w->limit, clock_now_ms(), RELAY_LOG_INTERVAL_MS,
			    LOG_LEVEL_INFO, "relay: no pipe for the connection from "
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
		/* Mirrored before forwarded (mirrored pairs copy: the bytes are in the bounce buffer). */
		if (c->m != NULL)
			mirror_conn_read(c, di, w->bounce, d->pending);
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

/* ---------------------------------------------------------------- closing */

/*
 * Worker: c ended (why, err): its sockets close (a pipe holding bytes is
 * closed, not pooled) and the main thread finishes it, at once when the
 * worker runs inline, else through the done queue.
 */
void
relay_close(struct conn *c, enum relay_why why, int err)
{
	struct relay_worker	*w = c->w;
	int			 i;

	/*
	 * close() takes an fd out of the epoll set, unless a copy of it lives
	 * on; a stale pair's sockets live on until the main thread kicked them.
	 */
	if ((c->watch & CONN_ADOPTED) || why == RELAY_WHY_STALE) {
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
	mirror_conn_free(c);		/* its mark lifted: this close's FIN or RST passes the fence */
	for (i = 0; i < 2; i++)
		relay_dir_release(w, &c->dir[i]);
	if (why != RELAY_WHY_STALE) {
		if (c->cfd != -1)
			close(c->cfd);
		if (c->bfd != -1)
			close(c->bfd);
		c->cfd = c->bfd = -1;
	}
	TAILQ_REMOVE(&w->conns, c, wentry);
	c->why = (uint8_t)why;
	c->err = err;
	if (!w->threaded) {
		w->finish(c, NULL);
		return;
	}
	/* Posted once this loop iteration's callbacks are done: one lock, one wakeup. */
	TAILQ_INSERT_TAIL(&w->ended, c, wentry);
	event_active(w->flush_ev, EV_TIMEOUT, 0);
}

void
relay_reset(struct conn *c, enum relay_why why)
{
	relay_set_reset(c->cfd);
	relay_set_reset(c->bfd);
	relay_close(c, why, 0);
}

/* ---------------------------------------------------------------- budget */

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

/* Closes w's spare pipes (w is being freed). */
void
relay_pipe_pool_free(struct relay_worker *w)
{
	while (w->npool > 0) {
		w->npool--;
		close(w->pool[w->npool].r);
		close(w->pool[w->npool].w);
		fds_use(-2);
	}
}

/* relay_init: the counters start over; relay_pipe_bytes is 0 here (every pipe was given back). */
void
relay_pipe_init(const struct lbd_config *conf)
{
	__atomic_store_n(&relay_pipe_peak, __atomic_load_n(&relay_pipe_bytes,
	    __ATOMIC_RELAXED), __ATOMIC_RELAXED);
	__atomic_store_n(&relay_pipe_fallbacks, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&relay_pipe_refused, 0, __ATOMIC_RELAXED);
	relay_pipe_budget_set(conf, true);
}
