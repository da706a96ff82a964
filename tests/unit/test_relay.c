/*
 * test_relay.c - unit tests of listener.c and relay.c with real sockets on
 * loopback: bytes both ways, half-close, connect failure and timeout, idle
 * timeout, max_connections, EMFILE backoff, resets, adoption, copy mode,
 * no fd leaks, the pipe memory budget (its fallback to default-size pipes,
 * and a kernel refusing to grow them), and the throughput of a 256 MiB
 * transfer (printed).
 *
 * VIP 127.0.0.1:P, node address 127.0.0.3, one backend 127.0.0.2:P. The
 * relay's event loop runs in the test thread; peers that move many bytes
 * run in helper threads on blocking sockets with 5 s timeouts.
 *
 * Every test runs twice: with node.relay_threads = 0 (bytes move in the
 * test thread's loop) and with 2 worker threads (the test thread's loop
 * accepts and finishes; the workers move bytes).
 */
#include <sys/resource.h>
#include <sys/syscall.h>
#include <fcntl.h>
#include <sched.h>
#include <dirent.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "lbd.h"

#define MIB		(1024 * 1024)	/* bytes */
#define STEP_MS		5		/* event loop tick while waiting */
#define WAIT_MS		5000		/* longest wait for anything */
#define IO_TIMEOUT_S	5		/* helper threads' socket timeouts */

/* One test's world: daemon state, backend listener, fd baseline. */
struct env {
	struct lbd	 lbd;		/* the daemon state under test */
	struct lbd_config conf;		/* its configuration */
	struct service	*svc;		/* lbd.services[0] */
	struct event	*tick;		/* keeps EVLOOP_ONCE from sleeping long */
	int		 bl;		/* backend listener on 127.0.0.2:P, -1 closed */
	int		 fds_before;	/* fd_count_open() before the test */
};

/* A helper thread that writes a pattern or reads and checks one. */
struct xfer {
	pthread_t	 tid;		/* the thread */
	int		 fd;		/* its socket */
	int		 write;		/* 1: write n bytes then SHUT_WR; 0: read to EOF */
	size_t		 n;		/* bytes to write / expected */
	uint8_t		 seed;		/* pattern seed */
	int		 check;		/* reader: compare every byte; writer: write the pattern */
	size_t		 done_bytes;	/* bytes moved */
	int		 ok;		/* 1: all moved (and matched) */
	volatile int	 finished;	/* set last */
};

static uint16_t	 test_port;		/* P: service port == backend port */
static int	 test_threads;		/* node.relay_threads of this run */
static const char *test_peer;		/* peer.address for env_open; NULL: standalone */
static int	 test_pipe_mb = LBD_PIPE_MEMORY_AUTO; /* node.pipe_memory_max_mb for env_open */

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
}

static void
sin_set(struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	assert_int_equal(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
}

static int
backend_listen(int backlog)
{
	struct sockaddr_storage	 ss;
	int			 fd, one = 1;

	sin_set(&ss, "127.0.0.2", test_port);
	assert_int_not_equal(fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), -1);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)), 0);
	assert_int_equal(listen(fd, backlog), 0);
	return fd;
}

static void
env_open(struct env *e, enum source_mode source, int max_conn, int idle_s, int connect_ms)
{
	struct service_config	*sc;
	struct service		*svc;
	struct backend		*be;
	struct timeval		 tv = { 0, STEP_MS * 1000 };

	memset(e, 0, sizeof(*e));
	e->fds_before = fd_count_open();
	sin_set(&e->conf.vip_addr, "127.0.0.1", 0);
	e->conf.vip_prefixlen = 8;
	sin_set(&e->conf.node_addr, "127.0.0.3", 0);
	e->conf.nservices = 1;
	sc = &e->conf.services[0];
	snprintf(sc->name, sizeof(sc->name), "TEST");
	sc->ranges[0].first = sc->ranges[0].last = test_port;
	sc->nranges = 1;
	sc->sched = SCHED_LEASTCONN;
	sc->sticky_timeout_s = 60;
	sc->sticky_size = 1000;
	sc->connect_timeout_ms = connect_ms;
	sc->idle_timeout_s = idle_s;
	sc->max_connections = max_conn;
	sc->source = source;
	sc->nbackends = 1;
	snprintf(sc->backends[0].name, sizeof(sc->backends[0].name), "B1");
	sin_set(&sc->backends[0].addr, "127.0.0.2", 0);
	sc->backends[0].weight = 1;

	e->conf.relay_threads = test_threads;
	e->conf.pipe_memory_max_mb = test_pipe_mb;
	test_pipe_mb = LBD_PIPE_MEMORY_AUTO;	/* one env only, even when an assert stops its test */
	if (test_peer != NULL) {
		e->conf.has_peer = true;
		snprintf(e->conf.peer_name, sizeof(e->conf.peer_name), "peer");
		sin_set(&e->conf.peer_addr[0], test_peer, 0);
		e->conf.npeer_addr = 1;
	}
	e->lbd.conf = &e->conf;
	assert_non_null(e->lbd.base = event_base_new());
	e->lbd.nservices = 1;
	svc = e->svc = &e->lbd.services[0];
	svc->conf = *sc;
	svc->lbd = &e->lbd;
	TAILQ_INIT(&svc->conns);
	assert_non_null(svc->sticky = sticky_new(1000, 60));
	svc->nbackends = 1;
	be = &svc->backends[0];
	be->conf = sc->backends[0];
	be->service = svc;
	be->index = 0;
	be->admin = BACKEND_ENABLED;
	be->up = true;

	assert_int_equal(relay_init(&e->lbd), 0);
	assert_int_equal(relay_threads(), test_threads);
	assert_int_equal(listener_open_all(&e->lbd), 0);
	assert_int_equal(svc->nlisteners, 1);
	e->bl = backend_listen(128);
	e->tick = event_new(e->lbd.base, -1, EV_PERSIST, tick_cb, NULL);
	event_add(e->tick, &tv);
}

static void
env_close(struct env *e)
{
	struct relay_pipe_stats	 st;

	if (e->bl != -1)
		close(e->bl);
	listener_close_all(&e->lbd);
	relay_shutdown(&e->lbd);
	/* Every pipe a connection held gave its bytes back to the budget. */
	relay_pipe_stats(&st);
	assert_int_equal(st.bytes, 0);
	assert_int_equal(e->svc->active, 0);
	assert_int_equal(relay_active(), 0);
	assert_true(TAILQ_EMPTY(&e->svc->conns));
	sticky_free(e->svc->sticky);
	event_free(e->tick);
	event_base_free(e->lbd.base);
	/* Every socket, pipe and event fd is gone again. */
	assert_int_equal(fd_count_open(), e->fds_before);
}

/* Runs the event loop until cond(arg) holds or ms pass. Returns cond's last value. */
static int
loop_until(struct env *e, int (*cond)(void *), void *arg, int ms)
{
	uint64_t	 end = clock_now_ms() + (uint64_t)ms;

	while (!cond(arg)) {
		if (clock_now_ms() >= end)
			return 0;
		event_base_loop(e->lbd.base, EVLOOP_ONCE);
	}
	return 1;
}

static int
fd_readable(void *arg)
{
	struct pollfd	 pfd = { .fd = *(int *)arg, .events = POLLIN };

	return poll(&pfd, 1, 0) > 0;
}

static int
svc_idle(void *arg)
{
	return ((struct service *)arg)->active == 0;
}

static int
svc_two(void *arg)
{
	return ((struct service *)arg)->active == 2;
}

static int
xfers_done(void *arg)
{
	struct xfer	**x = arg;

	for (; *x != NULL; x++)
		if (!__atomic_load_n(&(*x)->finished, __ATOMIC_ACQUIRE))
			return 0;
	return 1;
}

static int
never(void *arg)
{
	return 0;
}

/* Sleeps ms while the relay keeps running. */
static void
loop_for(struct env *e, int ms)
{
	loop_until(e, never, NULL, ms);
}

/* A blocking client connected to the VIP (the kernel completes it from the backlog). */
static int
client_connect(void)
{
	struct sockaddr_storage	 ss;
	struct timeval		 tv = { IO_TIMEOUT_S, 0 };
	int			 fd;

	sin_set(&ss, "127.0.0.1", test_port);
	assert_int_not_equal(fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), -1);
	assert_int_equal(connect(fd, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

/* The same from source address src (127.0.0.0/8 is all local). */
static int
client_connect_from(const char *src)
{
	struct sockaddr_storage	 ss, from;
	struct timeval		 tv = { IO_TIMEOUT_S, 0 };
	int			 fd;

	sin_set(&ss, "127.0.0.1", test_port);
	sin_set(&from, src, 0);
	assert_int_not_equal(fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), -1);
	assert_int_equal(bind(fd, (struct sockaddr *)&from, sizeof(struct sockaddr_in)), 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

/* The relay's backend connection, accepted; *peer gets its source address. */
static int
backend_accept(struct env *e, struct sockaddr_in *peer)
{
	struct sockaddr_in	 sin;
	socklen_t		 len = sizeof(sin);
	struct timeval		 tv = { IO_TIMEOUT_S, 0 };
	int			 fd;

	assert_true(loop_until(e, fd_readable, &e->bl, WAIT_MS));
	assert_int_not_equal(fd = accept4(e->bl, (struct sockaddr *)&sin, &len,
	    SOCK_CLOEXEC), -1);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (peer != NULL)
		*peer = sin;
	return fd;
}

/* Reads exactly n bytes from fd while the relay runs. */
static void
read_exact(struct env *e, int fd, char *buf, size_t n)
{
	size_t	 got = 0;
	ssize_t	 r;

	while (got < n) {
		assert_true(loop_until(e, fd_readable, &fd, WAIT_MS));
		r = recv(fd, buf + got, n - got, MSG_DONTWAIT);
		assert_true(r > 0);
		got += (size_t)r;
	}
}

/* Waits for EOF (returns 0) or an error (returns -errno) on fd. */
static int
read_eof(struct env *e, int fd)
{
	char	 c;
	ssize_t	 r;

	assert_true(loop_until(e, fd_readable, &fd, WAIT_MS));
	r = recv(fd, &c, 1, MSG_DONTWAIT);
	assert_true(r <= 0);
	return r == 0 ? 0 : -errno;
}

static uint8_t
pattern(size_t i, uint8_t seed)
{
	return (uint8_t)(((i * 2654435761u) >> 11) ^ (i >> 20) ^ seed);
}

static void *
xfer_main(void *arg)
{
	struct xfer	*x = arg;
	static __thread uint8_t buf[256 * 1024];
	size_t		 i, chunk;
	ssize_t		 r;

	x->ok = 0;
	if (x->write) {
		memset(buf, x->seed, sizeof(buf));
		while (x->done_bytes < x->n) {
			chunk = x->n - x->done_bytes;
			if (chunk > sizeof(buf))
				chunk = sizeof(buf);
			for (i = 0; x->check && i < chunk; i++)
				buf[i] = pattern(x->done_bytes + i, x->seed);
			r = send(x->fd, buf, chunk, MSG_NOSIGNAL);
			if (r <= 0)
				goto out;
			x->done_bytes += (size_t)r;
			/* a short send: resend the rest from the pattern */
		}
		x->ok = shutdown(x->fd, SHUT_WR) == 0;
	} else {
		for (;;) {
			r = recv(x->fd, buf, sizeof(buf), 0);
			if (r < 0)
				goto out;
			if (r == 0)
				break;
			if (x->check)
				for (i = 0; i < (size_t)r; i++)
					if (buf[i] != pattern(x->done_bytes + i, x->seed))
						goto out;
			x->done_bytes += (size_t)r;
		}
		x->ok = x->done_bytes == x->n;
	}
out:
	__atomic_store_n(&x->finished, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void
xfer_start(struct xfer *x, int fd, int write, size_t n, uint8_t seed, int check)
{
	memset(x, 0, sizeof(*x));
	x->fd = fd;
	x->write = write;
	x->n = n;
	x->seed = seed;
	x->check = check;
	assert_int_equal(pthread_create(&x->tid, NULL, xfer_main, x), 0);
}

/* 8 MiB each way at once, checked byte by byte; both FINs pass through. */
static void
bidirectional(enum source_mode source, const char *want_src)
{
	struct env		 e;
	struct xfer		 x[4], *all[5] = { &x[0], &x[1], &x[2], &x[3], NULL };
	struct sockaddr_in	 peer;
	char			 a[INET_ADDRSTRLEN];
	struct backend		*be;
	int			 c, b, i;

	env_open(&e, source, 100, 60, 2000);
	be = &e.svc->backends[0];
	c = client_connect();
	b = backend_accept(&e, &peer);
	inet_ntop(AF_INET, &peer.sin_addr, a, sizeof(a));
	assert_string_equal(a, want_src);
	assert_int_equal(ntohs(peer.sin_port) != 0, 1);

	xfer_start(&x[0], c, 1, 8 * MIB, 1, 1);
	xfer_start(&x[1], b, 0, 8 * MIB, 1, 1);
	xfer_start(&x[2], b, 1, 8 * MIB, 2, 1);
	xfer_start(&x[3], c, 0, 8 * MIB, 2, 1);
	assert_true(loop_until(&e, xfers_done, all, WAIT_MS));
	for (i = 0; i < 4; i++) {
		pthread_join(x[i].tid, NULL);
		assert_true(x[i].ok);
	}
	/* Both sides sent FIN: the relay closes the pair by itself. */
	assert_true(loop_until(&e, svc_idle, e.svc, WAIT_MS));
	assert_int_equal(be->bytes_in, 8 * MIB);
	assert_int_equal(be->bytes_out, 8 * MIB);
	assert_int_equal(be->total, 1);
	assert_int_equal(be->active, 0);
	assert_int_equal(e.svc->total, 1);
	close(c);
	close(b);
	env_close(&e);
}

static void
test_bidirectional_node(void **state)
{
	bidirectional(SOURCE_NODE, "127.0.0.3");
}

static void
test_bidirectional_vip(void **state)
{
	bidirectional(SOURCE_VIP, "127.0.0.1");
}

static int
copy_mode_on(void **state)
{
	relay_set_splice(false);
	return 0;
}

/* Runs even when the test's asserts fail: later tests splice again. */
static int
copy_mode_off(void **state)
{
	relay_set_splice(true);
	return 0;
}

/* The same with recv/send copy mode instead of splice (setup copy_mode_on). */
static void
test_bidirectional_copy(void **state)
{
	bidirectional(SOURCE_NODE, "127.0.0.3");
}

/* Client shuts its write side, still receives the backend's reply. */
static void
test_half_close_client(void **state)
{
	struct env	 e;
	char		 buf[16];
	int		 c, b;

	env_open(&e, SOURCE_NODE, 100, 60, 2000);
	c = client_connect();
	b = backend_accept(&e, NULL);
	assert_int_equal(send(c, "QUIT\r\n", 6, 0), 6);
	assert_int_equal(shutdown(c, SHUT_WR), 0);
	read_exact(&e, b, buf, 6);
	assert_memory_equal(buf, "QUIT\r\n", 6);
	assert_int_equal(read_eof(&e, b), 0);
	assert_int_equal(e.svc->active, 1);	/* the other direction still runs */
	assert_int_equal(send(b, "221 Bye\r\n", 9, 0), 9);
	read_exact(&e, c, buf, 9);
	assert_memory_equal(buf, "221 Bye\r\n", 9);
	close(b);
	assert_int_equal(read_eof(&e, c), 0);
	assert_true(loop_until(&e, svc_idle, e.svc, WAIT_MS));
	close(c);
	env_close(&e);
}

/* Backend shuts its write side, still receives what the client sends. */
static void
test_half_close_backend(void **state)
{
	struct env	 e;
	char		 buf[16];
	int		 c, b;

	env_open(&e, SOURCE_NODE, 100, 60, 2000);
	c = client_connect();
	b = backend_accept(&e, NULL);
	assert_int_equal(send(b, "220 hi\r\n", 8, 0), 8);
	assert_int_equal(shutdown(b, SHUT_WR), 0);
	read_exact(&e, c, buf, 8);
	assert_memory_equal(buf, "220 hi\r\n", 8);
	assert_int_equal(read_eof(&e, c), 0);
	assert_int_equal(e.svc->active, 1);
	assert_int_equal(send(c, "USER x\r\n", 8, 0), 8);
	read_exact(&e, b, buf, 8);
	assert_memory_equal(buf, "USER x\r\n", 8);
	close(c);
	assert_int_equal(read_eof(&e, b), 0);
	assert_true(loop_until(&e, svc_idle, e.svc, WAIT_MS));
	close(b);
	env_close(&e);
}

/*
 * A direction holds a pipe only while bytes are in flight: after bulk
 * traffic (more than the bounce buffer, so splice) on two connections,
 * both idle, one pooled pipe (two fds) per worker exists, not one per
 * connection: one in all when inline, two with 2 workers (round robin
 * gave each worker one connection).
 */
static void
test_idle_holds_no_pipe(void **state)
{
	static char	 bulk[64 * 1024];
	struct env	 e;
	char		 buf[8];
	int		 c[2], b[2], i, base, pipes = test_threads == 0 ? 1 : 2;

	env_open(&e, SOURCE_NODE, 100, 60, 2000);
	for (i = 0; i < 2; i++) {
		c[i] = client_connect();
		b[i] = backend_accept(&e, NULL);
	}
	loop_for(&e, 20);
	base = fd_count_open();
	for (i = 0; i < 2; i++) {
		assert_int_equal(send(b[i], "220 x\r\n", 7, 0), 7);
		read_exact(&e, c[i], buf, 7);
		assert_int_equal(send(c[i], "USER\r\n", 6, 0), 6);
		read_exact(&e, b[i], buf, 6);
	}
	loop_for(&e, 20);
	assert_int_equal(fd_count_open(), base);	/* small replies: no pipe at all */
	for (i = 0; i < 2; i++) {
		assert_int_equal(send(b[i], bulk, sizeof(bulk), 0), (ssize_t)sizeof(bulk));
		read_exact(&e, c[i], bulk, sizeof(bulk));
	}
	loop_for(&e, 20);
	assert_int_equal(e.svc->active, 2);
	assert_int_equal(fd_count_open(), base + 2 * pipes);
	for (i = 0; i < 2; i++) {
		close(c[i]);
		close(b[i]);
	}
	assert_true(loop_until(&e, svc_idle, e.svc, WAIT_MS));
	env_close(&e);
}

/* Nothing listens on the backend port: the client is closed, the failure counted. */
static void
test_connect_refused(void **state)
{
	struct env	 e;
	struct backend	*be;
	uint64_t	 t0;
	int		 c;

	env_open(&e, SOURCE_NODE, 100, 60, 2000);
	be = &e.svc->backends[0];
	close(e.bl);
	e.bl = -1;
	t0 = clock_now_ms();
	c = client_connect();
	assert_true(read_eof(&e, c) <= 0);
	assert_true(clock_now_ms() - t0 < 1000);	/* the RST, not the 2 s timeout */
	assert_true(loop_until(&e, svc_idle, e.svc, WAIT_MS));
	assert_int_equal(be->connect_failures, 1);
	assert_int_equal(be->active, 0);
	assert_int_equal(be->total, 1);
	assert_int_equal(e.svc->total, 1);
	assert_int_equal(clients_size(e.svc->clients), 0);	/* counted, then given back */
	close(c);
	env_close(&e);
}

/*
 * The backend's accept queue is full (backlog 0, one connection waiting),
 * so the kernel drops the relay's SYN: the 200 ms connect timeout fires.
 */
static void
test_connect_timeout(void **state)
{
	struct env		 e;
	struct sockaddr_storage	 ss;
	struct backend		*be;
	uint64_t		 t0, dt;
	int			 c, filler;

	env_open(&e, SOURCE_NODE, 100, 60, 200);
	be = &e.svc->backends[0];
	close(e.bl);
	e.bl = backend_listen(0);
	sin_set(&ss, "127.0.0.2", test_port);
	assert_int_not_equal(filler = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), -1);
	assert_int_equal(connect(filler, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)), 0);
	loop_for(&e, 50);

	t0 = clock_now_ms();
	c = client_connect();
	assert_true(read_eof(&e, c) <= 0);
	dt = clock_now_ms() - t0;
	printf("connect timeout: client closed after %llu ms\n", (unsigned long long)dt);
	assert_true(dt >= 180 && dt < 1000);
	assert_true(loop_until(&e, svc_idle, e.svc, WAIT_MS));
	assert_int_equal(be->connect_failures, 1);
	assert_int_equal(be->active, 0);
	close(c);
	close(filler);
	env_close(&e);
}

/* 1 s idle timeout; traffic at 0.6 s pushes the close to about 1.6 s. */
static void
test_idle_timeout(void **state)
{
	struct env	 e;
	uint64_t	 t0, dt;
	char		 buf[4];
	int		 c, b;

	env_open(&e, SOURCE_NODE, 100, 1, 2000);
	c = client_connect();
	b = backend_accept(&e, NULL);
	t0 = clock_now_ms();
	loop_for(&e, 600);
	assert_int_equal(send(c, "x", 1, 0), 1);
	read_exact(&e, b, buf, 1);
	assert_int_equal(e.svc->active, 1);
	assert_int_equal(read_eof(&e, c), 0);
	dt = clock_now_ms() - t0;
	printf("idle timeout: closed after %llu ms (1000 ms idle after traffic at 600 ms)\n",
	    (unsigned long long)dt);
	assert_true(dt >= 1500 && dt < 2500);
	assert_int_equal(read_eof(&e, b), 0);
	/* A worker posts the closed connection; the loop finishes it next. */
	assert_true(loop_until(&e, svc_idle, e.svc, WAIT_MS));
	close(c);
	close(b);
	env_close(&e);
}

/* max_connections 1: the second client waits in the backlog until the first leaves. */
static void
test_max_connections(void **state)
{
	struct env	 e;
	char		 buf[4];
	int		 c1, b1, c2, b2;

	env_open(&e, SOURCE_NODE, 1, 60, 2000);
	c1 = client_connect();
	b1 = backend_accept(&e, NULL);
	assert_int_equal(e.svc->active, 1);
	assert_true(e.svc->listeners[0].paused);

	c2 = client_connect();		/* completes in the kernel backlog */
	loop_for(&e, 200);
	assert_int_equal(e.svc->active, 1);
	assert_int_equal(e.svc->total, 1);
	assert_false(fd_readable(&e.bl));

	close(c1);
	close(b1);
	b2 = backend_accept(&e, NULL);
	assert_int_equal(e.svc->total, 2);
	assert_int_equal(e.svc->active, 1);
	assert_true(e.svc->listeners[0].paused);
	assert_int_equal(send(c2, "ok", 2, 0), 2);
	read_exact(&e, b2, buf, 2);
	assert_memory_equal(buf, "ok", 2);
	close(c2);
	close(b2);
	assert_true(loop_until(&e, svc_idle, e.svc, WAIT_MS));
	assert_false(e.svc->listeners[0].paused);
	env_close(&e);
}

/*
 * Out of descriptors: accept fails with EMFILE, the service stops accepting
 * for 100 ms instead of spinning, then takes the waiting client.
 */
static void
test_emfile_backoff(void **state)
{
	struct env	 e;
	struct rlimit	 old, low;
	int		 c, b, fill[64], nfill = 0, fd, i;
	uint64_t	 t0;

	env_open(&e, SOURCE_NODE, 100, 60, 2000);
	c = client_connect();
	/* Fill every hole below c, then forbid any descriptor above it. */
	while (nfill < 64 && (fd = dup(c)) != -1 && fd < c)
		fill[nfill++] = fd;
	if (fd > c)
		close(fd);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)c + 1;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	t0 = clock_now_ms();
	event_base_loop(e.lbd.base, EVLOOP_ONCE);
	assert_true(e.svc->listeners[0].paused);
	assert_int_equal(e.svc->total, 0);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	for (i = 0; i < nfill; i++)
		close(fill[i]);

	b = backend_accept(&e, NULL);
	printf("emfile: accepted after %llu ms\n", (unsigned long long)(clock_now_ms() - t0));
	assert_true(clock_now_ms() - t0 >= 90);
	assert_false(e.svc->listeners[0].paused);
	assert_int_equal(e.svc->total, 1);
	close(c);
	close(b);
	assert_true(loop_until(&e, svc_idle, e.svc, WAIT_MS));
	env_close(&e);
}

/*
 * The descriptor reserve (fds.c): with room for one connection beyond
 * lbd's own descriptors and the reserve, a second client waits in the
 * kernel backlog (counted), and is taken as soon as the first closes,
 * without waiting for the backoff timer.
 */
static void
test_fd_reserve(void **state)
{
	struct env	 e;
	char		 buf[4];
	int		 c1, b1, c2, b2;
	uint64_t	 t0;

	env_open(&e, SOURCE_NODE, 100, 60, 2000);
	/* lbd holds 100, 10 are kept: 112 leaves room for one client and its backend. */
	fds_budget_set(112, 100, 10);
	assert_true(fds_room(2));
	c1 = client_connect();
	b1 = backend_accept(&e, NULL);
	assert_int_equal(e.svc->active, 1);
	assert_false(fds_room(2));

	c2 = client_connect();		/* completes in the kernel backlog */
	loop_for(&e, 200);
	assert_int_equal(e.svc->total, 1);
	assert_true(e.svc->listeners[0].paused);
	assert_int_equal(e.svc->fd_reserve_pauses, 1);
	assert_false(fd_readable(&e.bl));
	/* The first connection still relays (no pipe past the budget: copies). */
	assert_int_equal(send(c1, "ab", 2, 0), 2);
	read_exact(&e, b1, buf, 2);
	assert_memory_equal(buf, "ab", 2);

	t0 = clock_now_ms();
	close(c1);
	close(b1);
	b2 = backend_accept(&e, NULL);
	printf("fd reserve: second client taken %llu ms after the first closed\n",
	    (unsigned long long)(clock_now_ms() - t0));
	assert_true(clock_now_ms() - t0 < 90);	/* on the close, not on the 100 ms timer */
	assert_int_equal(e.svc->total, 2);
	assert_int_equal(send(c2, "ok", 2, 0), 2);
	read_exact(&e, b2, buf, 2);
	assert_memory_equal(buf, "ok", 2);
	close(c2);
	close(b2);
	assert_true(loop_until(&e, svc_idle, e.svc, WAIT_MS));
	fds_budget_set(0, 0, 0);
	env_close(&e);
}

/*
 * max_connections_per_client 2: a client's third connection is closed at
 * once and counted while another client is served; once one of its
 * connections ends (the count is exact), the first client gets a slot again.
 */
static void
test_per_client_cap(void **state)
{
	struct env	 e;
	struct lbd_ip	 a;
	char		 buf[4];
	int		 c[3], b[3], o, ob;

	env_open(&e, SOURCE_NODE, 100, 60, 2000);
	e.svc->conf.max_connections_per_client = 2;
	assert_int_equal(ip_parse("127.0.0.1", &a), 0);
	c[0] = client_connect();
	b[0] = backend_accept(&e, NULL);
	c[1] = client_connect();
	b[1] = backend_accept(&e, NULL);
	assert_int_equal(clients_count(e.svc->clients, &a), 2);

	c[2] = client_connect();	/* the kernel completes it; lbd closes it */
	assert_int_equal(read_eof(&e, c[2]), 0);
	close(c[2]);
	assert_int_equal(e.svc->refused_per_client, 1);
	assert_int_equal(e.svc->refused, 0);
	assert_int_equal(e.svc->total, 2);
	assert_false(fd_readable(&e.bl));	/* no backend connection for it */

	/* Another client is served meanwhile. */
	o = client_connect_from("127.0.0.5");
	ob = backend_accept(&e, NULL);
	assert_int_equal(send(o, "hi", 2, 0), 2);
	read_exact(&e, ob, buf, 2);
	assert_memory_equal(buf, "hi", 2);
	assert_int_equal(clients_size(e.svc->clients), 2);

	/* One of the first client's connections ends: it may open one again. */
	close(c[0]);
	close(b[0]);
	assert_true(loop_until(&e, svc_two, e.svc, WAIT_MS));
	assert_int_equal(clients_count(e.svc->clients, &a), 1);
	c[0] = client_connect();
	b[0] = backend_accept(&e, NULL);
	assert_int_equal(send(c[0], "ok", 2, 0), 2);
	read_exact(&e, b[0], buf, 2);
	assert_memory_equal(buf, "ok", 2);
	assert_int_equal(e.svc->refused_per_client, 1);

	/* 0: no cap. */
	e.svc->conf.max_connections_per_client = 0;
	c[2] = client_connect();
	b[2] = backend_accept(&e, NULL);
	assert_int_equal(clients_count(e.svc->clients, &a), 3);
	for (int i = 0; i < 3; i++) {
		close(c[i]);
		close(b[i]);
	}
	close(o);
	close(ob);
	assert_true(loop_until(&e, svc_idle, e.svc, WAIT_MS));
	assert_int_equal(clients_size(e.svc->clients), 0);
	env_close(&e);
}

/* No usable backend: the client is closed and counted as refused. */
static void
test_no_backend(void **state)
{
	struct env	 e;
	int		 c;

	env_open(&e, SOURCE_NODE, 100, 60, 2000);
	e.svc->backends[0].up = false;
	c = client_connect();
	assert_true(read_eof(&e, c) <= 0);
	assert_int_equal(e.svc->refused, 1);
	assert_int_equal(e.svc->total, 0);
	assert_int_equal(e.svc->active, 0);
	close(c);
	env_close(&e);
}

/* A client that resets: the backend gets a reset too, not a FIN. */
static void
test_reset_passed_on(void **state)
{
	struct env	 e;
	struct linger	 l = { 1, 0 };
	char		 buf[4];
	int		 c, b;

	env_open(&e, SOURCE_NODE, 100, 60, 2000);
	c = client_connect();
	b = backend_accept(&e, NULL);
	assert_int_equal(send(c, "a", 1, 0), 1);
	read_exact(&e, b, buf, 1);
	assert_int_equal(setsockopt(c, SOL_SOCKET, SO_LINGER, &l, sizeof(l)), 0);
	close(c);
	assert_int_equal(read_eof(&e, b), -ECONNRESET);
	assert_true(loop_until(&e, svc_idle, e.svc, WAIT_MS));
	close(b);
	env_close(&e);
}

/* An already connected pair (SPEC 11) relays like an accepted one. */
static void
test_adopt(void **state)
{
	struct env		 e;
	struct sockaddr_storage	 ss;
	struct backend		*be;
	char			 buf[8];
	int			 lc, c_peer, c_ours, b_peer, b_ours;

	env_open(&e, SOURCE_NODE, 100, 60, 2000);
	be = &e.svc->backends[0];
	/* The "client" pair: through the service listener is not wanted here. */
	listener_pause(e.svc);
	lc = e.svc->listeners[0].fd;
	c_peer = client_connect();
	assert_int_not_equal(c_ours = accept4(lc, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), -1);
	sin_set(&ss, "127.0.0.2", test_port);
	assert_int_not_equal(b_ours = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0), -1);
	assert_true(connect(b_ours, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)) == 0 ||
	    errno == EINPROGRESS);
	b_peer = backend_accept(&e, NULL);

	/* An adopted session is counted for its client, never refused by the cap. */
	e.svc->conf.max_connections_per_client = 1;
	assert_int_equal(relay_adopt(e.svc, be, c_ours, b_ours), 0);
	assert_int_equal(e.svc->active, 1);
	assert_int_equal(be->active, 1);
	assert_int_equal(relay_active(), 1);
	assert_int_equal(clients_size(e.svc->clients), 1);
	assert_int_equal(send(b_peer, "220\r\n", 5, 0), 5);
	read_exact(&e, c_peer, buf, 5);
	assert_memory_equal(buf, "220\r\n", 5);
	assert_int_equal(send(c_peer, "QUIT\r\n", 6, 0), 6);
	read_exact(&e, b_peer, buf, 6);
	assert_memory_equal(buf, "QUIT\r\n", 6);
	close(c_peer);
	close(b_peer);
	assert_true(loop_until(&e, svc_idle, e.svc, WAIT_MS));
	assert_int_equal(be->active, 0);
	assert_int_equal(clients_size(e.svc->clients), 0);
	listener_resume(e.svc);
	env_close(&e);
}

/* Connections open at shutdown are closed by relay_shutdown, none leaks. */
static void
test_shutdown_closes(void **state)
{
	struct env	 e;
	int		 c[3], b[3], i;

	env_open(&e, SOURCE_NODE, 100, 60, 2000);
	for (i = 0; i < 3; i++) {
		c[i] = client_connect();
		b[i] = backend_accept(&e, NULL);
	}
	assert_int_equal(send(c[0], "pending", 7, 0), 7);
	loop_for(&e, 20);
	assert_int_equal(e.svc->active, 3);
	assert_int_equal(relay_active(), 3);
	for (i = 0; i < 3; i++) {
		close(c[i]);
		close(b[i]);
	}
	env_close(&e);		/* closes the three, asserts nothing is left */
}

#define MANY_CONNS	2000		/* short connections of test_many_short */
#define MANY_CLIENTS	4		/* client threads, MANY_CONNS / MANY_CLIENTS each */

/* The backend of test_many_short: echoes each request after its FIN, then closes. */
struct echo {
	pthread_t	 tid;		/* the thread */
	int		 fd;		/* listener (SO_RCVTIMEO bounds accept) */
	int		 n;		/* connections to serve */
	int		 served;	/* echoed in full */
	volatile int	 finished;	/* set last */
};

/* A client thread of test_many_short: n request/echo exchanges, one per connection. */
struct many {
	pthread_t	 tid;		/* the thread */
	int		 id;		/* client number, in each request */
	int		 n;		/* connections to make */
	int		 ok;		/* echoes that matched byte for byte */
	uint64_t	 bytes;		/* request bytes sent */
	volatile int	 finished;	/* set last */
};

static void *
echo_main(void *arg)
{
	struct echo	*x = arg;
	struct timeval	 tv = { IO_TIMEOUT_S, 0 };
	char		 buf[512];
	size_t		 got;
	ssize_t		 r;
	int		 fd;

	while (x->served < x->n) {
		if ((fd = accept4(x->fd, NULL, NULL, SOCK_CLOEXEC)) == -1)
			break;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		got = 0;
		while (got < sizeof(buf) && (r = recv(fd, buf + got, sizeof(buf) - got, 0)) > 0)
			got += (size_t)r;
		/* The client's FIN came through (read 0): echo, then our FIN. */
		if (got == sizeof(buf) || r != 0 ||
		    send(fd, buf, got, MSG_NOSIGNAL) != (ssize_t)got) {
			close(fd);
			break;
		}
		close(fd);
		x->served++;
	}
	__atomic_store_n(&x->finished, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void *
many_main(void *arg)
{
	struct many		*m = arg;
	struct sockaddr_in	 sin;
	struct timeval		 tv = { IO_TIMEOUT_S, 0 };
	char			 req[256], buf[512];
	size_t			 got;
	ssize_t			 r;
	int			 i, fd, len;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(test_port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (i = 0; i < m->n; i++) {
		if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
			break;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		/* Lengths 20-220: a different request every time. */
		len = snprintf(req, sizeof(req), "client %d request %d %.*s", m->id, i,
		    i % 200, "................................................................"
		    "................................................................"
		    "........................................................................");
		if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
		    send(fd, req, (size_t)len, MSG_NOSIGNAL) != len ||
		    shutdown(fd, SHUT_WR) == -1) {
			close(fd);
			break;
		}
		m->bytes += (uint64_t)len;
		got = 0;
		while (got < sizeof(buf) && (r = recv(fd, buf + got, sizeof(buf) - got, 0)) > 0)
			got += (size_t)r;
		close(fd);
		if (got != (size_t)len || memcmp(buf, req, (size_t)len) != 0)
			break;
		m->ok++;
	}
	__atomic_store_n(&m->finished, 1, __ATOMIC_RELEASE);
	return NULL;
}

static int
many_done(void *arg)
{
	struct many	*m = arg;
	int		 i;

	for (i = 0; i < MANY_CLIENTS; i++)
		if (!__atomic_load_n(&m[i].finished, __ATOMIC_ACQUIRE))
			return 0;
	return 1;
}

/*
 * MANY_CONNS short connections from MANY_CLIENTS threads at once: each
 * sends a request and its FIN, the backend echoes it and closes (a
 * half-close each way), the echo matches byte for byte; the counters add
 * up and go back to 0 active.
 */
static void
test_many_short(void **state)
{
	struct env	 e;
	struct echo	 x;
	struct many	 m[MANY_CLIENTS];
	struct backend	*be;
	struct timeval	 tv = { IO_TIMEOUT_S, 0 };
	uint64_t	 t0, dt, bytes = 0;
	int		 i, ok = 0;

	env_open(&e, SOURCE_NODE, 4096, 60, 2000);
	be = &e.svc->backends[0];
	memset(&x, 0, sizeof(x));
	x.fd = e.bl;
	x.n = MANY_CONNS;
	setsockopt(e.bl, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	assert_int_equal(pthread_create(&x.tid, NULL, echo_main, &x), 0);
	memset(m, 0, sizeof(m));
	t0 = clock_now_ms();
	for (i = 0; i < MANY_CLIENTS; i++) {
		m[i].id = i;
		m[i].n = MANY_CONNS / MANY_CLIENTS;
		assert_int_equal(pthread_create(&m[i].tid, NULL, many_main, &m[i]), 0);
	}
	assert_true(loop_until(&e, many_done, m, 60000));
	dt = clock_now_ms() - t0;
	for (i = 0; i < MANY_CLIENTS; i++) {
		pthread_join(m[i].tid, NULL);
		ok += m[i].ok;
		bytes += m[i].bytes;
	}
	pthread_join(x.tid, NULL);
	printf("many short: %d connections in %llu ms through %d worker thread(s) "
	    "(ASan, informational)\n", ok, (unsigned long long)dt, test_threads);
	assert_int_equal(ok, MANY_CONNS);
	assert_int_equal(x.served, MANY_CONNS);
	assert_true(loop_until(&e, svc_idle, e.svc, WAIT_MS));
	assert_int_equal(relay_active(), 0);
	assert_int_equal(be->active, 0);
	assert_int_equal(be->total, MANY_CONNS);
	assert_int_equal(e.svc->total, MANY_CONNS);
	assert_int_equal(be->connect_failures, 0);
	assert_int_equal(be->bytes_in, bytes);
	assert_int_equal(be->bytes_out, bytes);
	assert_true(TAILQ_EMPTY(&e.svc->conns));
	env_close(&e);
}

#define BUDGET_CONNS	6		/* connections of pipe_budget, each moving BUDGET_BYTES */
#define BUDGET_BYTES	(8 * MIB)	/* backend -> client per connection */

static int
pipe_bytes_are(void *arg)
{
	struct relay_pipe_stats	 st;

	relay_pipe_stats(&st);
	return st.bytes == *(uint64_t *)arg;
}

/*
 * BUDGET_CONNS backends each send BUDGET_BYTES to a client that does not
 * read yet, so every backend->client direction holds a full pipe. With a
 * budget of mb MiB (LBD_PIPE_MEMORY_AUTO: the default), want_big of them
 * hold 1 MiB pipes and the budget is never passed; the others got
 * default-size pipes (counted). Then the clients read: every byte arrives,
 * checked, and with all connections closed the budget is whole again.
 */
static void
pipe_budget(int mb, int want_big)
{
	struct env		 e;
	struct xfer		 x[2 * BUDGET_CONNS], *all[2 * BUDGET_CONNS + 1];
	struct relay_pipe_stats	 st;
	uint64_t		 want = (uint64_t)want_big * MIB, zero = 0;
	int			 c[BUDGET_CONNS], b[BUDGET_CONNS], i;
	int			 rcvbuf = 64 * 1024, sndbuf = 4 * MIB;

	test_pipe_mb = mb;
	env_open(&e, SOURCE_NODE, 100, 60, 2000);
	relay_pipe_stats(&st);
	if (mb != LBD_PIPE_MEMORY_AUTO)
		assert_int_equal(st.max, (uint64_t)mb * MIB);
	assert_int_equal(st.bytes, 0);
	assert_int_equal(st.pipe_size, MIB);
	for (i = 0; i < BUDGET_CONNS; i++) {
		c[i] = client_connect();
		b[i] = backend_accept(&e, NULL);
		/*
		 * A fixed small client buffer (no autotuning) fills fast; a big
		 * backend send buffer sends full segments from the start, so the
		 * relay's first read fills its bounce buffer and it splices: a
		 * trickle of small segments (tcp_wmem's 16 KiB start) would keep
		 * it on recv/send, blocked with its bytes in a buffer, no pipe.
		 */
		assert_int_equal(setsockopt(c[i], SOL_SOCKET, SO_RCVBUF, &rcvbuf,
		    sizeof(rcvbuf)), 0);
		assert_int_equal(setsockopt(b[i], SOL_SOCKET, SO_SNDBUF, &sndbuf,
		    sizeof(sndbuf)), 0);
		xfer_start(&x[i], b[i], 1, BUDGET_BYTES, (uint8_t)(10 + i), 1);
	}
	/* Every direction blocks on its client with its pipe full. */
	assert_true(loop_until(&e, pipe_bytes_are, &want, WAIT_MS));
	loop_for(&e, 100);
	relay_pipe_stats(&st);
	assert_int_equal(st.bytes, want);
	assert_true(st.peak <= st.max);
	assert_int_equal(st.peak, want);
	if (want_big < BUDGET_CONNS)
		assert_true(st.fallbacks >= (uint64_t)(BUDGET_CONNS - want_big));
	else
		assert_int_equal(st.fallbacks, 0);
	assert_int_equal(st.refused, 0);
	assert_int_equal(e.svc->active, BUDGET_CONNS);

	for (i = 0; i < BUDGET_CONNS; i++) {
		xfer_start(&x[BUDGET_CONNS + i], c[i], 0, BUDGET_BYTES, (uint8_t)(10 + i), 1);
		all[i] = &x[i];
		all[BUDGET_CONNS + i] = &x[BUDGET_CONNS + i];
	}
	all[2 * BUDGET_CONNS] = NULL;
	assert_true(loop_until(&e, xfers_done, all, 4 * WAIT_MS));
	for (i = 0; i < 2 * BUDGET_CONNS; i++) {
		pthread_join(x[i].tid, NULL);
		assert_true(x[i].ok);
	}
	relay_pipe_stats(&st);
	assert_true(st.peak <= st.max);
	assert_int_equal(e.svc->backends[0].bytes_out, (uint64_t)BUDGET_CONNS * BUDGET_BYTES);
	for (i = 0; i < BUDGET_CONNS; i++) {
		close(c[i]);
		close(b[i]);
	}
	assert_true(loop_until(&e, svc_idle, e.svc, WAIT_MS));
	/* Pooled pipes are empty: they hold nothing of the budget. */
	assert_true(loop_until(&e, pipe_bytes_are, &zero, WAIT_MS));
	env_close(&e);
}

/* A 2 MiB budget: two transfers get 1 MiB pipes, four default-size ones. */
static void
test_pipe_budget_small(void **state)
{
	pipe_budget(2, 2);
}

/* No budget: every pipe keeps the default size, and bytes still flow. */
static void
test_pipe_budget_zero(void **state)
{
	pipe_budget(0, 0);
}

/* The default budget: a normal number of transfers all get 1 MiB pipes, as before. */
static void
test_pipe_budget_default(void **state)
{
	pipe_budget(LBD_PIPE_MEMORY_AUTO, BUDGET_CONNS);
}

#define HOG_MAX		1024		/* pipes test_pipe_refused grows to use up the soft limit */
#define HOG_UID		65534		/* nobody: the unprivileged user it runs as */

static int	 hog[HOG_MAX][2];	/* those pipes */
static int	 nhog;			/* open entries of hog */
static bool	 hog_setuid;		/* the test thread runs as HOG_UID */
static struct env hog_env;		/* test_pipe_refused's world */
static bool	 hog_env_open;		/* not closed yet: a failed assert left it */

/*
 * Teardown of test_pipe_refused, also after a failed assert: root again,
 * hogs closed, and its world gone, so that later tests can still listen.
 */
static int
pipe_refused_restore(void **state)
{
	if (hog_setuid && syscall(SYS_setresuid, 0, 0, 0) == 0)
		hog_setuid = false;
	while (nhog > 0) {
		nhog--;
		close(hog[nhog][0]);
		close(hog[nhog][1]);
	}
	if (hog_env_open) {
		hog_env_open = false;
		close(hog_env.bl);
		listener_close_all(&hog_env.lbd);
		relay_shutdown(&hog_env.lbd);
		sticky_free(hog_env.svc->sticky);
		event_free(hog_env.tick);
		event_base_free(hog_env.lbd.base);
	}
	return hog_setuid ? -1 : 0;
}

/*
 * An unprivileged lbd past fs.pipe-user-pages-soft: F_SETPIPE_SZ fails
 * with EPERM. The relay falls back to the default pipe, counts it, holds
 * nothing of the budget, and the bytes still all arrive. Root is made
 * unprivileged for this thread only (setresuid(2) itself, not glibc's,
 * which would change every thread), and pipes of its own use up the soft
 * limit first. Inline only: the test thread is the one that grows pipes.
 */
static void
test_pipe_refused(void **state)
{
	struct env		*ep = &hog_env;
	struct xfer		 x[2], *all[3] = { &x[0], &x[1], NULL };
	struct relay_pipe_stats	 st;
	long			 soft = 0;
	FILE			*f;
	int			 c, b;

	if (test_threads != 0)
		skip();
	if ((f = fopen("/proc/sys/fs/pipe-user-pages-soft", "r")) != NULL) {
		if (fscanf(f, "%ld", &soft) != 1)
			soft = 0;
		fclose(f);
	}
	if (soft == 0)
		skip();		/* no soft limit (the sysctl lbd ships lifts it): nothing refuses */
	env_open(ep, SOURCE_NODE, 100, 60, 2000);
	hog_env_open = true;
	if (geteuid() == 0) {
		/* Saved uid 0: the teardown can come back; effective caps are dropped. */
		assert_int_equal(syscall(SYS_setresuid, HOG_UID, HOG_UID, 0), 0);
		hog_setuid = true;
	}
	for (nhog = 0; nhog < HOG_MAX; ) {
		assert_int_equal(pipe2(hog[nhog], O_CLOEXEC), 0);
		nhog++;
		if (fcntl(hog[nhog - 1][0], F_SETPIPE_SZ, MIB) == -1) {
			assert_int_equal(errno, EPERM);
			break;
		}
	}
	assert_true(nhog < HOG_MAX);	/* the kernel refused one */

	c = client_connect();
	b = backend_accept(ep, NULL);
	xfer_start(&x[0], b, 1, BUDGET_BYTES, 7, 1);
	xfer_start(&x[1], c, 0, BUDGET_BYTES, 7, 1);
	assert_true(loop_until(ep, xfers_done, all, 4 * WAIT_MS));
	pthread_join(x[0].tid, NULL);
	pthread_join(x[1].tid, NULL);
	assert_true(x[0].ok && x[1].ok);
	relay_pipe_stats(&st);
	assert_true(st.refused >= 1);
	assert_true(st.fallbacks >= st.refused);
	assert_int_equal(st.peak, 0);		/* no pipe was counted as enlarged */
	assert_int_equal(st.bytes, 0);
	close(c);
	close(b);
	assert_true(loop_until(ep, svc_idle, ep->svc, WAIT_MS));
	hog_env_open = false;
	assert_int_equal(pipe_refused_restore(NULL), 0);
	env_close(ep);
}

/* Informational: 256 MiB client -> backend through the relay. */
static void
test_throughput(void **state)
{
	struct env	 e;
	struct xfer	 x[2], *all[3] = { &x[0], &x[1], NULL };
	uint64_t	 t0, dt;
	int		 c, b;

	env_open(&e, SOURCE_NODE, 100, 60, 2000);
	c = client_connect();
	b = backend_accept(&e, NULL);
	t0 = clock_now_ms();
	xfer_start(&x[0], c, 1, 256 * MIB, 3, 0);
	xfer_start(&x[1], b, 0, 256 * MIB, 3, 0);
	assert_true(loop_until(&e, xfers_done, all, 20000));
	dt = clock_now_ms() - t0;
	pthread_join(x[0].tid, NULL);
	pthread_join(x[1].tid, NULL);
	assert_true(x[0].ok && x[1].ok);
	printf("throughput: 256 MiB in %llu ms = %.0f MB/s (loopback, test threads "
	    "under ASan, informational)\n", (unsigned long long)dt,
	    dt ? 256.0 * MIB / 1e6 / ((double)dt / 1000) : 0.0);
	close(c);
	close(b);
	env_close(&e);
}

/*
 * In a pair, backend connections from the VIP take this node's half of
 * the ephemeral ports (the lower node address the lower half), so the
 * new MASTER of a handover never reuses a port of the old one's.
 */
static void
ports_half(const char *peer, bool lower)
{
	struct env		 e;
	struct sockaddr_in	 src;
	unsigned		 lo, hi, mid, port;
	FILE			*f;
	int			 c[20], b[20], i, fd;
	uint32_t		 range = 1 | 2u << 16;

	/* Kernels before 6.3 have no per-socket range: lbd warns; nothing to check. */
	assert_int_not_equal(fd = socket(AF_INET, SOCK_STREAM, 0), -1);
	if (setsockopt(fd, IPPROTO_IP, 51 /* IP_LOCAL_PORT_RANGE */, &range,
	    sizeof(range)) == -1) {
		close(fd);
		skip();
	}
	close(fd);
	assert_non_null(f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r"));
	assert_int_equal(fscanf(f, "%u %u", &lo, &hi), 2);
	fclose(f);
	mid = lo + (hi - lo) / 2;
	test_peer = peer;
	env_open(&e, SOURCE_VIP, 100, 60, 2000);
	test_peer = NULL;
	for (i = 0; i < 20; i++) {
		c[i] = client_connect();
		b[i] = backend_accept(&e, &src);
		port = ntohs(src.sin_port);
		if (lower)
			assert_true(port >= lo && port <= mid);
		else
			assert_true(port > mid && port <= hi);
	}
	for (i = 0; i < 20; i++) {
		close(c[i]);
		close(b[i]);
	}
	assert_true(loop_until(&e, svc_idle, e.svc, WAIT_MS));
	env_close(&e);
}

static void
test_ports_lower_half(void **state)
{
	ports_half("127.0.0.9", true);		/* node 127.0.0.3 < peer */
}

static void
test_ports_upper_half(void **state)
{
	ports_half("127.0.0.2", false);		/* node 127.0.0.3 > peer */
}

/* Scheduling policy of thread tid of this process (/proc stat field 41), or -1. */
static int
thread_policy(const char *tid)
{
	char	 path[64], line[1024], *p;
	FILE	*f;
	int	 i, policy = -1;

	snprintf(path, sizeof(path), "/proc/self/task/%s/stat", tid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	if (fgets(line, sizeof(line), f) != NULL && (p = strrchr(line, ')')) != NULL) {
		/* Field 3 follows ") "; field 41 is 38 spaces on. */
		for (i = 3, p += 2; i < 41 && (p = strchr(p, ' ')) != NULL; i++)
			p++;
		if (p != NULL)
			policy = atoi(p);
	}
	fclose(f);
	return policy;
}

/*
 * A paired lbd runs SCHED_RR; its relay workers must not inherit it
 * (real-time workers starve the peers they relay for).
 */
static void
test_workers_not_realtime(void **state)
{
	struct sched_param	 rt = { .sched_priority = 1 }, other = { .sched_priority = 0 };
	struct env		 e;
	struct dirent		*de;
	DIR			*d;
	char			 self[16];
	int			 workers = 0;

	if (test_threads == 0)
		skip();
	if (sched_setscheduler(0, SCHED_RR, &rt) == -1)
		skip();		/* not root, or no RT budget: nothing to inherit */
	env_open(&e, SOURCE_VIP, 100, 60, 2000);
	snprintf(self, sizeof(self), "%d", (int)gettid());
	assert_non_null(d = opendir("/proc/self/task"));
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || strcmp(de->d_name, self) == 0)
			continue;
		assert_int_equal(thread_policy(de->d_name), SCHED_OTHER);
		workers++;
	}
	closedir(d);
	assert_int_equal(thread_policy(self), SCHED_RR);
	assert_true(workers >= test_threads);
	env_close(&e);
	assert_int_equal(sched_setscheduler(0, SCHED_OTHER, &other), 0);
}

static void
test_conn_size(void **state)
{
	printf("connection record: %zu bytes\n", relay_conn_size());
	assert_true(relay_conn_size() <= 768);
}

int
main(void)
{
	int	 rc;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conn_size),
		cmocka_unit_test(test_bidirectional_node),
		cmocka_unit_test(test_bidirectional_vip),
		cmocka_unit_test_setup_teardown(test_bidirectional_copy, copy_mode_on,
		    copy_mode_off),
		cmocka_unit_test(test_half_close_client),
		cmocka_unit_test(test_half_close_backend),
		cmocka_unit_test(test_idle_holds_no_pipe),
		cmocka_unit_test(test_connect_refused),
		cmocka_unit_test(test_connect_timeout),
		cmocka_unit_test(test_idle_timeout),
		cmocka_unit_test(test_max_connections),
		cmocka_unit_test(test_emfile_backoff),
		cmocka_unit_test(test_fd_reserve),
		cmocka_unit_test(test_per_client_cap),
		cmocka_unit_test(test_no_backend),
		cmocka_unit_test(test_reset_passed_on),
		cmocka_unit_test(test_adopt),
		cmocka_unit_test(test_shutdown_closes),
		cmocka_unit_test(test_many_short),
		cmocka_unit_test(test_pipe_budget_small),
		cmocka_unit_test(test_pipe_budget_zero),
		cmocka_unit_test(test_pipe_budget_default),
		cmocka_unit_test_teardown(test_pipe_refused, pipe_refused_restore),
		cmocka_unit_test(test_throughput),
		cmocka_unit_test(test_ports_lower_half),
		cmocka_unit_test(test_ports_upper_half),
		cmocka_unit_test(test_workers_not_realtime),
	};

	signal(SIGPIPE, SIG_IGN);
	log_init(getenv("LBD_DEBUG") != NULL, "test_relay");
	test_port = (uint16_t)(24000 + getpid() % 1500);	/* below the ephemeral range */
	test_threads = 0;
	rc = cmocka_run_group_tests_name("relay in the main loop", tests, NULL, NULL);
	test_threads = 2;
	rc += cmocka_run_group_tests_name("relay with 2 worker threads", tests, NULL, NULL);
	return rc;
}
