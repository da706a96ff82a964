/*
 * loadgen.c - the benchmark's small TCP load tool: the servers it runs on
 * the real servers and the clients it runs in a client namespace, for
 * connections per second, request/reply latency and idle connections.
 *
 *   loadgen rr-server   -a ADDR -p PORT -d SECS    accept, read REQ bytes, echo them, close
 *   loadgen hold-server -a ADDR -p PORT -d SECS    accept, send a "220" greeting, keep open
 *   loadgen rr   -a ADDR -p PORT -c CONC -d SECS   CONC loops of connect, send REQ bytes,
 *                                                 read them back and the server's close
 *   loadgen idle -a ADDR -p PORT -n N -d SECS [-r READYFILE]
 *                                                 open N connections, read each greeting,
 *                                                 hold them SECS (or until SIGTERM)
 *   loadgen ctl  -a ADDR -p PORT -n N -d SECS [-r READYFILE] [-R RATE | -t TRIGGER]
 *                                                 N control-port sessions: open each, read
 *                                                 its "220"; with -R, RATE NOOP round trips
 *                                                 a second spread over them until SECS; with
 *                                                 -t, hold them idle until TRIGGER exists (or
 *                                                 SIGUSR1), then one NOOP on each: a "200"
 *                                                 on the same connection is a survivor
 *
 * rr prints one line, key=value:
 *   rr: conns=N failed=N secs=S cps=N p50_us=N p90_us=N p99_us=N max_us=N
 * where a latency is connect() start to the reply's last byte and the
 * server's FIN.  idle prints "idle: open=N failed=N ms=N" once the
 * connections are open (and creates READYFILE), then holds them.  ctl
 * prints "ctl: open=N failed=N ms=N" (then READYFILE), and then either
 *   ctl-rr: exchanges=N failed=N secs=S rate=N p50_us=N p99_us=N max_us=N
 * or, after the trigger,
 *   ctl-check: sessions=N survived=N reset=N timeout=N wrong=N ms=N
 * (reset: the connection ended or failed; timeout: no reply in
 * LOADGEN_CHECK_MS; wrong: a reply that is not "200").  hold-server
 * answers every line it reads with "200", so ctl runs against it as
 * against an FTP server's NOOP.
 *
 * Every mode is bounded by -d; built by `make bench-tools`.
 */
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOADGEN_REQ		64		/* request and reply size, bytes */
#define LOADGEN_MAX_CONC	4096		/* most concurrent rr loops */
#define LOADGEN_MAX_IDLE	100000		/* most idle connections */
#define LOADGEN_MAX_SECS	3600		/* hard bound on -d */
#define LOADGEN_EVENTS		256		/* epoll_wait batch */
#define LOADGEN_CONN_TIMEOUT_MS	2000		/* one rr connection's deadline */
#define LOADGEN_MAX_SAMPLES	(8u << 20)	/* latency samples kept */
#define LOADGEN_GREETING	"220 loadgen\r\n" /* hold-server's greeting */
#define LOADGEN_BACKLOG		4096		/* listen(2) backlog */
#define LOADGEN_NOOP		"NOOP\r\n"	/* ctl's request */
#define LOADGEN_NOOP_REPLY	"200 NOOP ok\r\n" /* hold-server's answer to a line */
#define LOADGEN_CHECK_MS	5000		/* ctl: a survivor's reply deadline */
#define LOADGEN_CTL_RR_TIMEOUT_MS 2000		/* ctl -R: one exchange's deadline */

/* One rr client loop's connection. */
struct rr_slot {
	int		 fd;		/* -1: none */
	uint64_t	 start_us;	/* connect() began */
	bool		 sent;		/* request written */
	size_t		 got;		/* reply bytes read */
};

/* One server-side connection. */
struct srv_conn {
	int		 fd;		/* accepted socket */
	size_t		 got;		/* request bytes read (rr-server) */
};

static volatile sig_atomic_t loadgen_stop;	/* SIGTERM/SIGINT seen */
static volatile sig_atomic_t loadgen_trigger;	/* SIGUSR1 seen (ctl -t) */

static void
loadgen_on_signal(int sig)
{
	if (sig == SIGUSR1)
		loadgen_trigger = 1;
	else
		loadgen_stop = 1;
}

static uint64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void
usage(void)
{
	fprintf(stderr, "usage: loadgen rr-server|hold-server -a ADDR -p PORT -d SECS\n"
	    "       loadgen rr -a ADDR -p PORT -c CONC -d SECS\n"
	    "       loadgen idle -a ADDR -p PORT -n N -d SECS [-r READYFILE]\n"
	    "       loadgen ctl -a ADDR -p PORT -n N -d SECS [-r READYFILE] [-R RATE | -t TRIGGER]\n");
	exit(2);
}

/* Raises the open-files soft limit to the hard one (idle needs many fds). */
static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		perror("loadgen: setrlimit");
}

/* Returns: a non-blocking listening socket on sin, or -1. */
static int
listen_on(const struct sockaddr_in *sin)
{
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		perror("loadgen: socket");
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    bind(fd, (const struct sockaddr *)sin, sizeof(*sin)) == -1 ||
	    listen(fd, LOADGEN_BACKLOG) == -1) {
		perror("loadgen: bind/listen");
		close(fd);
		return -1;
	}
	return fd;
}

static void
srv_close(int ep, struct srv_conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c);
}

/* Reads what the peer sent; rr-server answers a full request and closes. */
static void
srv_readable(int ep, struct srv_conn *c, bool hold)
{
	char buf[4096];
	ssize_t n;

	for (;;) {
		n = read(c->fd, buf, sizeof(buf));
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {			/* peer closed or failed */
			srv_close(ep, c);
			return;
		}
		if (hold) {
			/* Every line is a command: answered "200", as an FTP NOOP. */
			for (ssize_t i = 0; i < n; i++)
				if (buf[i] == '\n' &&
				    write(c->fd, LOADGEN_NOOP_REPLY, strlen(LOADGEN_NOOP_REPLY)) == -1)
					perror("loadgen: reply");
			continue;
		}
		c->got += (size_t)n;
		if (c->got >= LOADGEN_REQ) {
			/* 64 bytes always fit an empty socket buffer. */
			if (write(c->fd, buf, LOADGEN_REQ) != LOADGEN_REQ)
				perror("loadgen: reply");
			srv_close(ep, c);
			return;
		}
	}
}

/* rr-server and hold-server: one epoll loop until the deadline. */
static int
run_server(const struct sockaddr_in *sin, bool hold, uint64_t end_us)
{
	struct epoll_event ev, evs[LOADGEN_EVENTS];
	struct srv_conn *c;
	int lfd, ep, n, i, fd;

	if ((lfd = listen_on(sin)) == -1)
		return 1;
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1) {
		perror("loadgen: epoll_create1");
		return 1;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;			/* NULL: the listener */
	if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) == -1) {
		perror("loadgen: epoll_ctl");
		return 1;
	}
	printf("%s: listening\n", hold ? "hold-server" : "rr-server");
	fflush(stdout);
	while (!loadgen_stop && now_us() < end_us) {
		n = epoll_wait(ep, evs, LOADGEN_EVENTS, 1000);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			perror("loadgen: epoll_wait");
			return 1;
		}
		for (i = 0; i < n; i++) {
			if (evs[i].data.ptr != NULL) {
				srv_readable(ep, evs[i].data.ptr, hold);
				continue;
			}
			while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) != -1) {
				if ((c = calloc(1, sizeof(*c))) == NULL) {
					close(fd);
					continue;
				}
				c->fd = fd;
				if (hold && write(fd, LOADGEN_GREETING, strlen(LOADGEN_GREETING)) == -1) {
					close(fd);
					free(c);
					continue;
				}
				ev.events = EPOLLIN;
				ev.data.ptr = c;
				if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == -1) {
					close(fd);
					free(c);
				}
			}
		}
	}
	return 0;
}

/* Returns: 0 started (s->fd open), -1 failed at once. */
static int
rr_start(int ep, struct rr_slot *s, const struct sockaddr_in *sin)
{
	struct epoll_event ev;
	int fd, one = 1;

	s->start_us = now_us();
	s->sent = false;
	s->got = 0;
	s->fd = -1;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (const struct sockaddr *)sin, sizeof(*sin)) == -1 &&
	    errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | EPOLLOUT;
	ev.data.ptr = s;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == -1) {
		close(fd);
		return -1;
	}
	s->fd = fd;
	return 0;
}

static void
rr_close(int ep, struct rr_slot *s)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
	close(s->fd);
	s->fd = -1;
}

/*
 * Progress on one rr connection.
 * Returns: 0 still going, 1 done (reply and FIN read), -1 failed.
 */
static int
rr_progress(int ep, struct rr_slot *s, uint32_t events)
{
	char req[LOADGEN_REQ], buf[512];
	struct epoll_event ev;
	ssize_t n;
	int err = 0;
	socklen_t elen = sizeof(err);

	if (events & EPOLLERR) {
		getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &elen);
		return -1;
	}
	if (!s->sent && (events & EPOLLOUT)) {
		memset(req, 'q', sizeof(req));
		if (write(s->fd, req, sizeof(req)) != (ssize_t)sizeof(req))
			return -1;
		s->sent = true;
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN;
		ev.data.ptr = s;
		if (epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev) == -1)
			return -1;
	}
	if (!(events & (EPOLLIN | EPOLLHUP)))
		return 0;
	for (;;) {
		n = read(s->fd, buf, sizeof(buf));
		if (n == -1)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		if (n == 0)
			return s->got == LOADGEN_REQ ? 1 : -1;
		s->got += (size_t)n;
		if (s->got > LOADGEN_REQ)
			return -1;
	}
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* The p-th percentile (0-100) of n sorted samples. */
static uint32_t
percentile(const uint32_t *v, size_t n, double p)
{
	size_t i;

	if (n == 0)
		return 0;
	i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

/* rr client: CONC loops until the deadline, then the summary line. */
static int
run_rr(const struct sockaddr_in *sin, int conc, uint64_t end_us)
{
	struct epoll_event evs[LOADGEN_EVENTS];
	struct rr_slot *slots;
	uint32_t *lat;
	uint64_t t0, now, conns = 0, failed = 0;
	size_t nlat = 0;
	int ep, n, i, rc, live = 0;

	slots = calloc((size_t)conc, sizeof(*slots));
	lat = malloc(LOADGEN_MAX_SAMPLES * sizeof(*lat));
	if (slots == NULL || lat == NULL) {
		perror("loadgen: malloc");
		return 1;
	}
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1) {
		perror("loadgen: epoll_create1");
		return 1;
	}
	t0 = now_us();
	for (i = 0; i < conc; i++) {
		if (rr_start(ep, &slots[i], sin) == 0)
			live++;
		else
			failed++;
	}
	while (live > 0) {
		n = epoll_wait(ep, evs, LOADGEN_EVENTS, 100);
		if (n == -1 && errno != EINTR) {
			perror("loadgen: epoll_wait");
			return 1;
		}
		now = now_us();
		for (i = 0; i < n; i++) {
			struct rr_slot *s = evs[i].data.ptr;

			rc = rr_progress(ep, s, evs[i].events);
			if (rc == 0)
				continue;
			if (rc == 1) {
				conns++;
				if (nlat < LOADGEN_MAX_SAMPLES)
					lat[nlat++] = (uint32_t)(now - s->start_us);
			} else {
				failed++;
			}
			rr_close(ep, s);
			live--;
			if (!loadgen_stop && now < end_us) {
				if (rr_start(ep, s, sin) == 0)
					live++;
				else
					failed++;
			}
		}
		/* Time out stuck connections; restart their loops while time is left. */
		now = now_us();
		for (i = 0; i < conc; i++) {
			struct rr_slot *s = &slots[i];

			if (s->fd == -1 || now < s->start_us + LOADGEN_CONN_TIMEOUT_MS * 1000ULL)
				continue;
			failed++;
			rr_close(ep, s);
			live--;
			if (!loadgen_stop && now < end_us && rr_start(ep, s, sin) == 0)
				live++;
		}
		if (loadgen_stop && now >= end_us + LOADGEN_CONN_TIMEOUT_MS * 1000ULL)
			break;
	}
	now = now_us();
	qsort(lat, nlat, sizeof(*lat), cmp_u32);
	printf("rr: conns=%llu failed=%llu secs=%.2f cps=%.0f p50_us=%u p90_us=%u p99_us=%u max_us=%u\n",
	    (unsigned long long)conns, (unsigned long long)failed, (double)(now - t0) / 1e6,
	    (double)conns * 1e6 / (double)(now - t0), percentile(lat, nlat, 50),
	    percentile(lat, nlat, 90), percentile(lat, nlat, 99),
	    nlat > 0 ? lat[nlat - 1] : 0);
	free(lat);
	free(slots);
	close(ep);
	return 0;
}

/* Returns: a connected blocking socket that read the greeting, or -1. */
static int
idle_open(const struct sockaddr_in *sin)
{
	struct timeval tv = { .tv_sec = 2, .tv_usec = 0 };
	char buf[64];
	ssize_t n;
	int fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (const struct sockaddr *)sin, sizeof(*sin)) == -1)
		goto fail;
	n = read(fd, buf, sizeof(buf));
	if (n < 3 || strncmp(buf, "220", 3) != 0)
		goto fail;
	return fd;
fail:
	close(fd);
	return -1;
}

/* idle client: N connections, held until the deadline or a signal. */
static int
run_idle(const struct sockaddr_in *sin, int count, const char *ready, uint64_t end_us)
{
	int *fds, i, open_n = 0, failed = 0, fd;
	uint64_t t0 = now_us();

	if ((fds = calloc((size_t)count, sizeof(*fds))) == NULL) {
		perror("loadgen: calloc");
		return 1;
	}
	for (i = 0; i < count && !loadgen_stop && now_us() < end_us; i++) {
		if ((fds[open_n] = idle_open(sin)) == -1)
			failed++;
		else
			open_n++;
		if (failed > 20)		/* the proxy refuses: stop hammering it */
			break;
	}
	printf("idle: open=%d failed=%d ms=%llu\n", open_n, failed,
	    (unsigned long long)((now_us() - t0) / 1000));
	fflush(stdout);
	if (ready != NULL && (fd = open(ready, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) != -1)
		close(fd);
	while (!loadgen_stop && now_us() < end_us)
		usleep(50000);
	for (i = 0; i < open_n; i++)
		close(fds[i]);
	free(fds);
	return 0;
}

/* One ctl session. */
struct ctl_sess {
	int		 fd;		/* -1: ended */
	uint64_t	 sent_us;	/* NOOP written (0: none outstanding) */
	size_t		 got;		/* reply bytes so far */
	char		 reply[64];	/* the reply's start */
};

/*
 * Reads what session s has; returns: 1 a whole reply line ("200..." or
 * not: see s->reply), 0 not yet, -1 the connection ended or failed.
 */
static int
ctl_read(struct ctl_sess *s)
{
	char buf[256];
	ssize_t n;

	for (;;) {
		n = read(s->fd, buf, sizeof(buf));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return 0;
		if (n <= 0)
			return -1;
		for (ssize_t i = 0; i < n; i++) {
			if (s->got < sizeof(s->reply) - 1)
				s->reply[s->got] = buf[i];
			s->got++;
			if (buf[i] == '\n') {
				s->reply[s->got < sizeof(s->reply) ? s->got : sizeof(s->reply) - 1] = '\0';
				return 1;
			}
		}
	}
}

static void
ctl_end(int ep, struct ctl_sess *s)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
	close(s->fd);
	s->fd = -1;
}

/* ctl -R: RATE NOOP exchanges a second over the open sessions until the deadline. */
static int
ctl_rr(int ep, struct ctl_sess *ss, int n, long rate, uint64_t end_us)
{
	struct epoll_event evs[LOADGEN_EVENTS];
	uint32_t *lat;
	size_t nlat = 0;
	uint64_t t0 = now_us(), issued = 0, due, t;
	long failed = 0;
	int next = 0, i, k, r;

	if ((lat = malloc(LOADGEN_MAX_SAMPLES * sizeof(*lat))) == NULL) {
		perror("loadgen: malloc");
		return 1;
	}
	while (!loadgen_stop && (t = now_us()) < end_us) {
		due = (t - t0) * (uint64_t)rate / 1000000;
		/* Issue what is due on sessions with nothing outstanding. */
		for (k = 0; issued < due && k < n; k++) {
			struct ctl_sess *s = &ss[next];

			next = (next + 1) % n;
			if (s->fd == -1 || s->sent_us != 0)
				continue;
			if (write(s->fd, LOADGEN_NOOP, strlen(LOADGEN_NOOP)) != (ssize_t)strlen(LOADGEN_NOOP)) {
				failed++;
				ctl_end(ep, s);
				continue;
			}
			s->sent_us = now_us();
			s->got = 0;
			issued++;
		}
		if (issued < due)
			issued = due;		/* every session busy: do not burst later */
		r = epoll_wait(ep, evs, LOADGEN_EVENTS, 1);
		for (i = 0; i < r; i++) {
			struct ctl_sess *s = evs[i].data.ptr;

			if (s->fd == -1)
				continue;
			k = ctl_read(s);
			if (k == -1) {
				failed++;
				ctl_end(ep, s);
			} else if (k == 1 && s->sent_us != 0) {
				if (strncmp(s->reply, "200", 3) != 0)
					failed++;
				else if (nlat < LOADGEN_MAX_SAMPLES)
					lat[nlat++] = (uint32_t)(now_us() - s->sent_us);
				s->sent_us = 0;
				s->got = 0;
			}
		}
		t = now_us();
		for (k = 0; k < n; k++)
			if (ss[k].fd != -1 && ss[k].sent_us != 0 &&
			    t - ss[k].sent_us > LOADGEN_CTL_RR_TIMEOUT_MS * 1000ull) {
				failed++;
				ss[k].sent_us = 0;
			}
	}
	qsort(lat, nlat, sizeof(*lat), cmp_u32);
	t = now_us() - t0;
	printf("ctl-rr: exchanges=%zu failed=%ld secs=%.1f rate=%.0f p50_us=%u p99_us=%u max_us=%u\n",
	    nlat, failed, (double)t / 1e6, (double)nlat * 1e6 / (double)(t ? t : 1),
	    percentile(lat, nlat, 50), percentile(lat, nlat, 99), nlat > 0 ? lat[nlat - 1] : 0);
	free(lat);
	return 0;
}

/* ctl -t: once TRIGGER exists (or SIGUSR1), one NOOP on every session. */
static int
ctl_check(int ep, struct ctl_sess *ss, int n, const char *trigger, uint64_t end_us)
{
	struct epoll_event evs[LOADGEN_EVENTS];
	int survived = 0, reset = 0, wrong = 0, pending = 0, i, k, r;
	uint64_t t0, stop;

	while (!loadgen_stop && !loadgen_trigger && now_us() < end_us &&
	    (trigger == NULL || access(trigger, F_OK) == -1))
		usleep(20000);
	t0 = now_us();
	for (i = 0; i < n; i++) {
		if (ss[i].fd == -1) {
			reset++;		/* ended while idle */
			continue;
		}
		ss[i].got = 0;
		if (write(ss[i].fd, LOADGEN_NOOP, strlen(LOADGEN_NOOP)) != (ssize_t)strlen(LOADGEN_NOOP)) {
			reset++;
			ctl_end(ep, &ss[i]);
			continue;
		}
		ss[i].sent_us = t0;
		pending++;
	}
	stop = t0 + LOADGEN_CHECK_MS * 1000ull;
	while (pending > 0 && !loadgen_stop && now_us() < stop) {
		r = epoll_wait(ep, evs, LOADGEN_EVENTS, 10);
		for (i = 0; i < r; i++) {
			struct ctl_sess *s = evs[i].data.ptr;

			if (s->fd == -1 || s->sent_us == 0)
				continue;
			k = ctl_read(s);
			if (k == 0)
				continue;
			pending--;
			s->sent_us = 0;
			if (k == -1) {
				reset++;
				ctl_end(ep, s);
			} else if (strncmp(s->reply, "200", 3) == 0) {
				survived++;
			} else {
				wrong++;
			}
		}
	}
	printf("ctl-check: sessions=%d survived=%d reset=%d timeout=%d wrong=%d ms=%llu\n",
	    n, survived, reset, pending, wrong, (unsigned long long)((now_us() - t0) / 1000));
	return 0;
}

/* ctl: N sessions, each past its "220", then ctl_rr or ctl_check. */
static int
run_ctl(const struct sockaddr_in *sin, int count, const char *ready, long rate,
    const char *trigger, uint64_t end_us)
{
	struct epoll_event ev;
	struct ctl_sess *ss;
	int i, n = 0, failed = 0, fd, rc;
	uint64_t t0 = now_us();

	if ((ss = calloc((size_t)count, sizeof(*ss))) == NULL) {
		perror("loadgen: calloc");
		return 1;
	}
	if ((fd = epoll_create1(EPOLL_CLOEXEC)) == -1) {
		perror("loadgen: epoll_create1");
		return 1;
	}
	for (i = 0; i < count && !loadgen_stop && now_us() < end_us; i++) {
		if ((ss[n].fd = idle_open(sin)) == -1) {
			if (++failed > 20)	/* the proxy refuses: stop hammering it */
				break;
			continue;
		}
		if (fcntl(ss[n].fd, F_SETFL, O_NONBLOCK) == -1) {
			close(ss[n].fd);
			failed++;
			continue;
		}
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN | EPOLLRDHUP;
		ev.data.ptr = &ss[n];
		if (epoll_ctl(fd, EPOLL_CTL_ADD, ss[n].fd, &ev) == -1) {
			close(ss[n].fd);
			failed++;
			continue;
		}
		n++;
	}
	printf("ctl: open=%d failed=%d ms=%llu\n", n, failed,
	    (unsigned long long)((now_us() - t0) / 1000));
	fflush(stdout);
	if (ready != NULL && (i = open(ready, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) != -1)
		close(i);
	if (n == 0)
		rc = 1;
	else if (rate > 0)
		rc = ctl_rr(fd, ss, n, rate, end_us);
	else
		rc = ctl_check(fd, ss, n, trigger, end_us);
	fflush(stdout);
	for (i = 0; i < n; i++)
		if (ss[i].fd != -1)
			close(ss[i].fd);
	close(fd);
	free(ss);
	return rc;
}

int
main(int argc, char *argv[])
{
	struct sockaddr_in sin;
	struct sigaction sa;
	const char *mode, *addr = NULL, *ready = NULL, *trigger = NULL;
	long port = 0, conc = 1, count = 0, secs = 0, rate = 0;
	uint64_t end_us;
	int c;

	if (argc < 2)
		usage();
	mode = argv[1];
	optind = 2;
	while ((c = getopt(argc, argv, "a:p:c:n:d:r:R:t:")) != -1) {
		switch (c) {
		case 'a': addr = optarg; break;
		case 'p': port = strtol(optarg, NULL, 10); break;
		case 'c': conc = strtol(optarg, NULL, 10); break;
		case 'n': count = strtol(optarg, NULL, 10); break;
		case 'd': secs = strtol(optarg, NULL, 10); break;
		case 'r': ready = optarg; break;
		case 'R': rate = strtol(optarg, NULL, 10); break;
		case 't': trigger = optarg; break;
		default: usage();
		}
	}
	if (addr == NULL || port < 1 || port > 65535 || secs < 1 || secs > LOADGEN_MAX_SECS ||
	    conc < 1 || conc > LOADGEN_MAX_CONC || count < 0 || count > LOADGEN_MAX_IDLE ||
	    rate < 0 || rate > 1000000)
		usage();
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
		fprintf(stderr, "loadgen: %s is not an IPv4 address\n", addr);
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = loadgen_on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	end_us = now_us() + (uint64_t)secs * 1000000;

	if (strcmp(mode, "rr-server") == 0)
		return run_server(&sin, false, end_us);
	if (strcmp(mode, "hold-server") == 0)
		return run_server(&sin, true, end_us);
	if (strcmp(mode, "rr") == 0)
		return run_rr(&sin, (int)conc, end_us);
	if (strcmp(mode, "idle") == 0) {
		if (count < 1)
			usage();
		return run_idle(&sin, (int)count, ready, end_us);
	}
	if (strcmp(mode, "ctl") == 0) {
		if (count < 1)
			usage();
		return run_ctl(&sin, (int)count, ready, rate, trigger, end_us);
	}
	usage();
	return 2;
}
