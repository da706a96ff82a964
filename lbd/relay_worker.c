/*
 * relay_worker.c - the relay's workers: threads (or, with
 * node.relay_threads = 0, the main loop) that each watch their
 * connections' sockets in one epoll set and run the pump on their events,
 * and the queues that hand connections to them and back.
 *
 * - The main thread hands an accepted connection to one of
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
 *   same list + eventfd, watched by the main loop), for relay_finish.
 * - node.relay_threads = 0 runs the one worker in the main loop: no
 *   handoff, no queue, and a connection ends at once.
 * - Every proxied socket is in the worker's own epoll set (epfd),
 *   added once edge-triggered for read, write and peer shutdown and never
 *   changed; libevent watches that one descriptor (a nested epoll) and
 *   relay_epoll_cb takes its events in batches. The hot path makes no
 *   epoll_ctl call but the two adds: close(2) takes a socket out of the set,
 *   so a connection ends without EPOLL_CTL_DEL (system calls are dear here:
 *   a null one costs about 1 us on a PTI virtual machine). The events of a
 *   connection are embedded in struct conn.
 */
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "relay_int.h"

#define RELAY_EPOLL_EVENTS	(EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) /* every socket's interest */

static void	relay_mirror_tick(struct conn *);

static struct relay_worker **relay_workers;	/* relay_nworkers of them */
static int		 relay_nworkers;	/* entries of relay_workers */
static int		 relay_nthreads;	/* of them threaded; 0: the one runs inline */
static unsigned int	 relay_rr;		/* next worker to hand a connection to */
static pthread_mutex_t	 relay_done_lock = PTHREAD_MUTEX_INITIALIZER; /* guards relay_done */
static struct conn_list	 relay_done = TAILQ_HEAD_INITIALIZER(relay_done); /* ended in workers */
static int		 relay_done_fd = -1;	/* eventfd: relay_done became non-empty */
static struct event	*relay_done_ev;		/* the main loop's read event on it */
static struct event	*relay_hand_ev;		/* activated by relay_hand: moves outboxes to inboxes */

/* ---------------------------------------------------------------- done queue */

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
		c->w->finish(c, NULL);
	}
}

/* ---------------------------------------------------------------- events */

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
	c->last_ms = clock_now_ms();
	if (relay_watch(c, 0) == -1 || relay_watch(c, RELAY_SIDE_B) == -1) {
		relay_close(c, RELAY_WHY_EPOLL, errno);
		return -1;
	}
	relay_timer_set(c, (int64_t)c->idle_s * 1000);
	if (c->m != NULL) {
		mirror_conn_start(c);	/* no-op once started (a rebuilt pair) */
		if (c->m != NULL && (c->m->flags & (MIRROR_PROBATION | MIRROR_RESYNC)))
			relay_tick_soon(c, 1);
	}
	/* Pump what is known readable; the new client event reports the rest. */
	if (relay_pump(c, DIR_B2C) == -1 || relay_pump(c, DIR_C2B) == -1)
		return -1;
	relay_mirror_tick(c);
	return 0;
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
	/* Both sockets up: its mirroring starts MIRROR_LAZY_MS from now. */
	if (c->m != NULL && (what & EV_READ))
		mirror_conn_start(c);
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
	c->last_ms = clock_now_ms();
	if (what & EV_WRITE) {
		c->dir[!rd].flags &= (uint8_t)~DIR_BLOCKED;
		if (c->dir[!rd].pending > 0 && relay_pump(c, !rd) == -1)
			return;
	}
	if (what & EV_READ) {
		c->dir[rd].flags |= DIR_READABLE;
		if (relay_pump(c, rd) == -1)
			return;
	}
	relay_mirror_tick(c);
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
		c->last_ms = clock_now_ms();
		if (relay_pump(c, DIR_C2B) == -1 || relay_pump(c, DIR_B2C) == -1)
			continue;
		relay_mirror_tick(c);
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
	uint64_t	 idle, now, left;
	int		 mt = 0;

	if (c->state == CONN_CONNECTING) {
		relay_close(c, RELAY_WHY_CONNECT_TIMEOUT, 0);
		return;
	}
	now = clock_now_ms();
	if (c->m != NULL) {
		c->m->tick_ms = 0;
		if ((mt = mirror_conn_tick(c, now)) == MIRROR_TICK_RESET) {
			relay_close(c, RELAY_WHY_STALE, 0);	/* the main thread kicks its sockets */
			return;
		}
	}
	/* Activity does not re-arm the timer: re-arm here for what is left. */
	idle = (uint64_t)c->idle_s * 1000;
	if (now - c->last_ms < idle) {
		left = idle - (now - c->last_ms);
		if (mt > 0 && (uint64_t)mt < left) {
			left = (uint64_t)mt;
			c->m->tick_ms = now + left;
		}
		relay_timer_set(c, (int64_t)left);
		return;
	}
	relay_close(c, RELAY_WHY_IDLE, 0);
}

/* The mirror wants c's timer within ms: moved up unless it fires sooner already. */
void
relay_tick_soon(struct conn *c, int ms)
{
	uint64_t	 at = clock_now_ms() + (uint64_t)ms;

	if (c->m == NULL || c->state != CONN_RELAYING ||
	    (c->m->tick_ms != 0 && c->m->tick_ms <= at))
		return;
	c->m->tick_ms = at;
	relay_timer_set(c, ms);
}

/* After c's mirror had its say (a read, a resync): the tick it asked for. */
static void
relay_mirror_tick(struct conn *c)
{
	if (c->m != NULL && c->m->tick_in > 0) {
		relay_tick_soon(c, c->m->tick_in);
		c->m->tick_in = 0;
	}
}

/* Worker: the peer forgot every pair (mirror_peer_up). */
static void
relay_worker_resync(struct relay_worker *w)
{
	struct conn	*c, *next;

	for (c = TAILQ_FIRST(&w->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, wentry);
		if (c->m != NULL && c->state == CONN_RELAYING) {
			mirror_conn_resync(c);
			relay_mirror_tick(c);
		}
	}
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
void
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

void
relay_mirror_resync_all(void)
{
	struct relay_worker	*w;
	int			 i;

	if (relay_nthreads == 0) {
		if (relay_nworkers > 0)
			relay_worker_resync(relay_workers[0]);
		return;
	}
	for (i = 0; i < relay_nthreads; i++) {
		w = relay_workers[i];
		pthread_mutex_lock(&w->lock);
		w->resync = true;
		pthread_mutex_unlock(&w->lock);
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
	bool			 stop, resync;

	if (read(w->efd, &n, sizeof(n)) == -1 && errno != EAGAIN)
		log_warn("relay: cannot read a worker's eventfd");
	TAILQ_INIT(&in);
	pthread_mutex_lock(&w->lock);
	TAILQ_CONCAT(&in, &w->inbox, wentry);
	stop = w->stop;
	resync = w->resync;
	w->resync = false;
	pthread_mutex_unlock(&w->lock);
	while ((c = TAILQ_FIRST(&in)) != NULL) {
		TAILQ_REMOVE(&in, c, wentry);
		relay_take(w, c);
	}
	if (resync && !stop)
		relay_worker_resync(w);
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
	relay_pipe_pool_free(w);
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
 * A worker with its epoll set, whose ended connections go to finish: run
 * by main_base (inline), or, main_base NULL, with an event loop and an
 * inbox of its own, its thread not started yet. Returns it, or NULL logged.
 */
static struct relay_worker *
relay_worker_new(struct event_base *main_base, relay_finish_fn *finish)
{
	struct relay_worker	*w;

	if ((w = calloc(1, sizeof(*w))) == NULL) {
		log_warn("relay: cannot allocate a worker");
		return NULL;
	}
	w->epfd = w->efd = -1;
	w->finish = finish;
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

int
relay_worker_init(struct lbd *lbd, relay_finish_fn *finish)
{
	int	 n, i;

	n = relay_threads_wanted(lbd->conf);
	if ((relay_workers = calloc(n > 0 ? (size_t)n : 1, sizeof(*relay_workers))) == NULL) {
		log_warn("relay: cannot allocate the workers");
		return -1;
	}
	relay_rr = 0;
	if (n == 0) {
		if ((relay_workers[0] = relay_worker_new(lbd->base, finish)) == NULL)
			return -1;
		relay_nworkers = 1;
		log_info("relay: in the main thread (node.relay_threads = 0)");
		return 0;
	}
	if ((relay_done_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1) {
		log_warn("relay: eventfd");
		return -1;
	}
	if ((relay_done_ev = event_new(lbd->base, relay_done_fd, EV_READ | EV_PERSIST,
	    relay_done_cb, NULL)) == NULL || event_add(relay_done_ev, NULL) == -1) {
		log_warnx("relay: cannot watch the done queue");
		return -1;
	}
	if ((relay_hand_ev = event_new(lbd->base, -1, 0, relay_hand_cb, NULL)) == NULL) {
		log_warnx("relay: cannot make the handoff event");
		return -1;
	}
	for (i = 0; i < n; i++) {
		if ((relay_workers[i] = relay_worker_new(NULL, finish)) == NULL)
			return -1;
		relay_nworkers++;
		if (relay_worker_start(relay_workers[i]) == -1)
			return -1;
		relay_nthreads++;
	}
	log_info("relay: %d worker thread%s", n, n == 1 ? "" : "s");
	return 0;
}

void
relay_worker_shutdown(void)
{
	struct relay_worker	*w;
	int			 i;

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
}

bool
relay_worker_up(void)
{
	return relay_workers != NULL;
}

int
relay_threads(void)
{
	return relay_nthreads;
}
