/*
 * stickyfill.c - the benchmark's sticky-table filler: puts N entries in a
 * running lbd through its control socket with `sticky set`, the operator
 * command, so every entry is versioned and replicated like a client's.
 *
 *   stickyfill -s SOCKET -b BACKEND[,BACKEND...] -S SERVICE -n N
 *              [-c CONC] [-r RATE] [-d SECS] [-o OFFSET] [-a FIRST_IPV4]
 *              [-H TABLE]
 *
 * Client i (OFFSET <= i < OFFSET + N) is FIRST_IPV4 + i (default 10.0.0.0,
 * so up to 16M distinct clients in 10/8), pinned to the backends of -b in
 * turn.  CONC connections run at once (default 16; lbd serves 64 control
 * clients at a time and turns the rest away); each carries one request
 * line and reads the one JSON reply before lbd closes it.  With
 * -r, request i starts no earlier than i/RATE s after the first (the lag
 * rows); without it, as fast as lbd answers.  A request lbd turned away
 * ("too many control connections") or whose connect found the backlog full
 * is retried; any other failure counts as an error.  -d bounds the run
 * (default 300 s).
 *
 * With -H TABLE the socket is HAProxy's stats socket instead and each
 * request is "set table TABLE key IP data.server_id 1" (-b and -S are
 * then ignored): the same load, one update per connection, for both
 * daemons' replication lag rows.  HAProxy answers a good `set table`
 * with an empty reply and closes.
 *
 * Prints one line: "fill: n=N ok=N errors=N retries=N secs=S rate=R
 * p50_us=T p99_us=T max_us=T" (latency: connect to the reply's end), and
 * the first few error replies on stderr.  Exit 0 when every request
 * succeeded, 1 otherwise.  Built by `make bench-tools`.
 */
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FILL_MAX_CONC		256		/* most concurrent requests */
#define FILL_MAX_N		(16u << 20)	/* most entries: 10/8 */
#define FILL_MAX_SECS		3600		/* hard bound on -d */
#define FILL_MAX_BACKENDS	64		/* backends in -b */
#define FILL_EVENTS		256		/* epoll_wait batch */
#define FILL_REQ_TIMEOUT_MS	5000		/* one request's deadline */
#define FILL_RETRY_US		1000		/* wait before a retried request */
#define FILL_REPLY_MAX		1024		/* reply bytes kept (a `sticky set` reply is ~100) */
#define FILL_SHOW_ERRORS	5		/* error replies printed */
#define FILL_BUSY		"too many control connections" /* lbd turned us away */

/* One request in flight. */
struct fill_slot {
	int		 fd;		/* -1: idle */
	uint32_t	 index;		/* client number (OFFSET-relative) */
	uint64_t	 start_us;	/* connect() began */
	size_t		 got;		/* reply bytes in buf */
	char		 buf[FILL_REPLY_MAX];	/* the reply so far */
};

/* The run. */
struct fill {
	const char	*path;		/* control socket */
	const char	*service;	/* SERVICE argument */
	const char	*hap_table;	/* -H: HAProxy stick table; NULL: lbd */
	char		*backends[FILL_MAX_BACKENDS];	/* -b, split */
	int		 nbackends;
	uint32_t	 n;		/* entries to set */
	uint32_t	 offset;	/* first client number */
	uint32_t	 first_ip;	/* client 0, host order */
	double		 rate;		/* requests/s; 0: unpaced */
	int		 conc;		/* concurrent requests */
	uint64_t	 deadline_us;	/* stop here */
	uint64_t	 t0_us;		/* start */
	uint32_t	 next;		/* next new client number to start */
	uint32_t	*retry;		/* client numbers to start again (a stack) */
	uint32_t	 nretry;
	uint64_t	 retry_at_us;	/* not before this */
	uint64_t	 ok, errors, retries;
	uint32_t	*lat_us;	/* one per success */
	int		 ep;		/* epoll */
	struct fill_slot slots[FILL_MAX_CONC];
	int		 active;	/* slots with a request */
};

static volatile sig_atomic_t fill_stop;		/* SIGTERM/SIGINT seen */

static void
fill_on_signal(int sig)
{
	(void)sig;
	fill_stop = 1;
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
	fprintf(stderr, "usage: stickyfill -s SOCKET -b BACKEND[,BACKEND...] -S SERVICE -n N "
	    "[-c CONC] [-r RATE] [-d SECS] [-o OFFSET] [-a FIRST_IPV4] [-H TABLE]\n");
	exit(2);
}

static void
fill_close(struct fill *f, struct fill_slot *s)
{
	if (epoll_ctl(f->ep, EPOLL_CTL_DEL, s->fd, NULL) == -1 && errno != EBADF)
		perror("stickyfill: epoll_ctl del");
	close(s->fd);
	s->fd = -1;
	f->active--;
}

/* Client number idx goes back on the retry stack. */
static void
fill_requeue(struct fill *f, uint32_t idx)
{
	f->retry[f->nretry++] = idx;
	f->retries++;
	f->retry_at_us = now_us() + FILL_RETRY_US;
}

static void
fill_error(struct fill *f, uint32_t idx, const char *what)
{
	if (f->errors++ < FILL_SHOW_ERRORS)
		fprintf(stderr, "stickyfill: client #%u: %s\n", idx, what);
}

/*
 * Starts the request of client idx in slot s: connect, send the line.
 * Returns: 1 in flight, 0 requeued (backlog full), -1 failed (counted).
 */
static int
fill_start(struct fill *f, struct fill_slot *s, uint32_t idx)
{
	struct sockaddr_un sun;
	struct epoll_event ev;
	struct in_addr	 a;
	char		 line[256], ip[INET_ADDRSTRLEN];
	const char	*backend = f->backends[idx % (uint32_t)f->nbackends];
	ssize_t		 w;
	int		 len, fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", f->path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1) {
		fill_error(f, idx, strerror(errno));
		return -1;
	}
	s->start_us = now_us();
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		/* A UNIX stream socket never connects "in progress": EAGAIN is a full backlog. */
		int	 e = errno;

		close(fd);
		if (e == EAGAIN || e == EWOULDBLOCK) {
			fill_requeue(f, idx);
			return 0;
		}
		fill_error(f, idx, strerror(e));
		return -1;
	}
	a.s_addr = htonl(f->first_ip + f->offset + idx);
	inet_ntop(AF_INET, &a, ip, sizeof(ip));
	if (f->hap_table != NULL)
		len = snprintf(line, sizeof(line), "set table %s key %s data.server_id 1\n",
		    f->hap_table, ip);
	else
		len = snprintf(line, sizeof(line), "sticky set %s %s %s\n", ip, backend, f->service);
	/* A fresh socket takes one short line at once; anything less is a failure. */
	if ((w = send(fd, line, (size_t)len, MSG_NOSIGNAL)) != len) {
		fill_error(f, idx, w == -1 ? strerror(errno) : "short send");
		close(fd);
		return -1;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | EPOLLRDHUP;
	ev.data.ptr = s;
	if (epoll_ctl(f->ep, EPOLL_CTL_ADD, fd, &ev) == -1) {
		fill_error(f, idx, strerror(errno));
		close(fd);
		return -1;
	}
	s->fd = fd;
	s->index = idx;
	s->got = 0;
	f->active++;
	return 1;
}

/* The reply of slot s is complete (EOF when eof, or newline): judge it. */
static void
fill_done(struct fill *f, struct fill_slot *s, bool eof)
{
	uint32_t idx = s->index;
	uint64_t lat = now_us() - s->start_us;

	s->buf[s->got < sizeof(s->buf) ? s->got : sizeof(s->buf) - 1] = '\0';
	s->buf[strcspn(s->buf, "\n")] = '\0';
	fill_close(f, s);
	if (f->hap_table != NULL && eof && s->buf[strspn(s->buf, " \r\n")] == '\0') {
		f->lat_us[f->ok++] = lat > UINT32_MAX ? UINT32_MAX : (uint32_t)lat;
		return;
	}
	if (f->hap_table == NULL && strncmp(s->buf, "{\"client\"", 9) == 0 && strstr(s->buf, "\"error\"") == NULL) {
		f->lat_us[f->ok++] = lat > UINT32_MAX ? UINT32_MAX : (uint32_t)lat;
		return;
	}
	if (strstr(s->buf, FILL_BUSY) != NULL) {
		fill_requeue(f, idx);
		return;
	}
	fill_error(f, idx, s->got > 0 ? s->buf : "closed without a reply");
}

/* Reads what slot s has; finishes it on a full line, EOF or an error. */
static void
fill_read(struct fill *f, struct fill_slot *s)
{
	ssize_t	 r;

	for (;;) {
		if (s->got >= sizeof(s->buf) - 1) {
			fill_done(f, s, false);
			return;
		}
		r = recv(s->fd, s->buf + s->got, sizeof(s->buf) - 1 - s->got, 0);
		if (r == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			fill_close(f, s);
			fill_error(f, s->index, strerror(errno));
			return;
		}
		if (r == 0) {
			fill_done(f, s, true);
			return;
		}
		s->got += (size_t)r;
		/* HAProxy's reply may be a lone newline: its end is the EOF. */
		if (f->hap_table == NULL && memchr(s->buf, '\n', s->got) != NULL) {
			fill_done(f, s, false);
			return;
		}
	}
}

/* When request k (0 = the first) may start under -r. */
static uint64_t
fill_due_us(const struct fill *f, uint64_t k)
{
	return f->t0_us + (uint64_t)((double)k * 1e6 / f->rate);
}

/* Work is left that has not been started yet. */
static bool
fill_pending(const struct fill *f)
{
	return f->next < f->n || f->nretry > 0;
}

/*
 * Starts what may start now in free slots.
 * Returns: 0 look again now; > 0 µs until the next may start; -1 nothing
 * to start before a reply arrives (every slot busy, or all started).
 */
static int64_t
fill_feed(struct fill *f)
{
	uint64_t	 now = now_us();
	uint32_t	 idx;
	int		 i, rc;

	for (i = 0; i < f->conc; i++) {
		struct fill_slot *s = &f->slots[i];

		if (s->fd != -1)
			continue;
		if (f->nretry > 0 && now >= f->retry_at_us)
			idx = f->retry[--f->nretry];
		else if (f->next < f->n) {
			/* Pacing counts first attempts only: retries do not push the schedule. */
			if (f->rate > 0 && fill_due_us(f, f->next) > now)
				return (int64_t)(fill_due_us(f, f->next) - now);
			idx = f->next++;
		} else if (f->nretry > 0)
			return (int64_t)(f->retry_at_us - now);
		else
			return -1;	/* all started: wait for the replies */
		if ((rc = fill_start(f, s, idx)) == 0)
			return FILL_RETRY_US;	/* backlog full: let lbd catch up */
	}
	/* A slot left free by a failed start: try again at once. */
	return fill_pending(f) && f->active < f->conc ? 0 : -1;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	struct fill	*f;
	struct epoll_event evs[FILL_EVENTS];
	struct in_addr	 a;
	const char	*first = "10.0.0.0";
	char		*blist = NULL, *tok, *save = NULL;
	char		 hap_blist[] = "1";
	double		 secs;
	long		 maxsecs = 300;
	int64_t		 wait_us;
	int		 ch, i, nev, timeout_ms;
	uint64_t	 now;

	if ((f = calloc(1, sizeof(*f))) == NULL) {
		perror("stickyfill: calloc");
		return 2;
	}
	f->conc = 16;
	while ((ch = getopt(argc, argv, "s:b:S:n:c:r:d:o:a:H:")) != -1) {
		switch (ch) {
		case 's':
			f->path = optarg;
			break;
		case 'b':
			blist = optarg;
			break;
		case 'S':
			f->service = optarg;
			break;
		case 'n':
			f->n = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'c':
			f->conc = atoi(optarg);
			break;
		case 'r':
			f->rate = atof(optarg);
			break;
		case 'd':
			maxsecs = atol(optarg);
			break;
		case 'o':
			f->offset = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'a':
			first = optarg;
			break;
		case 'H':
			f->hap_table = optarg;
			break;
		default:
			usage();
		}
	}
	if (f->hap_table != NULL && blist == NULL) {
		blist = hap_blist;	/* unused: the table's server_id is 1 */
		f->service = "-";
	}
	if (f->path == NULL || blist == NULL || f->service == NULL || f->n == 0 ||
	    f->n > FILL_MAX_N || f->conc < 1 || f->conc > FILL_MAX_CONC || f->rate < 0 ||
	    maxsecs < 1 || maxsecs > FILL_MAX_SECS ||
	    strlen(f->path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		usage();
	if (inet_pton(AF_INET, first, &a) != 1) {
		fprintf(stderr, "stickyfill: -a %s is not an IPv4 address\n", first);
		return 2;
	}
	f->first_ip = ntohl(a.s_addr);
	if ((uint64_t)f->first_ip + f->offset + f->n - 1 > UINT32_MAX) {
		fprintf(stderr, "stickyfill: the clients run past 255.255.255.255\n");
		return 2;
	}
	for (tok = strtok_r(blist, ",", &save); tok != NULL && f->nbackends < FILL_MAX_BACKENDS;
	    tok = strtok_r(NULL, ",", &save))
		f->backends[f->nbackends++] = tok;
	if (f->nbackends == 0)
		usage();
	if ((f->lat_us = calloc(f->n, sizeof(*f->lat_us))) == NULL ||
	    (f->retry = calloc(f->n, sizeof(*f->retry))) == NULL) {
		perror("stickyfill: calloc");
		return 2;
	}
	for (i = 0; i < FILL_MAX_CONC; i++)
		f->slots[i].fd = -1;
	if ((f->ep = epoll_create1(EPOLL_CLOEXEC)) == -1) {
		perror("stickyfill: epoll_create1");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, fill_on_signal);
	signal(SIGTERM, fill_on_signal);

	f->t0_us = now_us();
	f->deadline_us = f->t0_us + (uint64_t)maxsecs * 1000000;
	for (;;) {
		wait_us = fill_feed(f);
		if (f->active == 0 && !fill_pending(f))
			break;			/* all done */
		now = now_us();
		if (fill_stop || now >= f->deadline_us)
			break;
		/* Wake for replies, at the latest when the next request is due. */
		if (wait_us < 0)
			timeout_ms = FILL_REQ_TIMEOUT_MS;
		else
			timeout_ms = (int)((wait_us + 999) / 1000);
		if ((nev = epoll_wait(f->ep, evs, FILL_EVENTS, timeout_ms)) == -1) {
			if (errno == EINTR)
				continue;
			perror("stickyfill: epoll_wait");
			break;
		}
		for (i = 0; i < nev; i++)
			fill_read(f, evs[i].data.ptr);
		/* A request lbd never answers must not hold its slot for ever. */
		now = now_us();
		for (i = 0; i < f->conc; i++) {
			struct fill_slot *s = &f->slots[i];

			if (s->fd != -1 && now - s->start_us > FILL_REQ_TIMEOUT_MS * 1000ULL) {
				fill_close(f, s);
				fill_error(f, s->index, "no reply in time");
			}
		}
	}
	secs = (double)(now_us() - f->t0_us) / 1e6;
	/* Unfinished (deadline or signal): in flight and never started count as errors. */
	for (i = 0; i < f->conc; i++)
		if (f->slots[i].fd != -1) {
			fill_close(f, &f->slots[i]);
			f->errors++;
		}
	f->errors += (uint64_t)(f->n - f->next) + f->nretry;
	qsort(f->lat_us, f->ok, sizeof(*f->lat_us), cmp_u32);
	printf("fill: n=%u ok=%llu errors=%llu retries=%llu secs=%.3f rate=%.0f "
	    "p50_us=%u p99_us=%u max_us=%u\n",
	    f->n, (unsigned long long)f->ok, (unsigned long long)f->errors,
	    (unsigned long long)f->retries, secs, secs > 0 ? (double)f->ok / secs : 0.0,
	    f->ok ? f->lat_us[(f->ok - 1) / 2] : 0,
	    f->ok ? f->lat_us[(f->ok - 1) * 99 / 100] : 0,
	    f->ok ? f->lat_us[f->ok - 1] : 0);
	close(f->ep);
	i = f->ok == f->n ? 0 : 1;
	free(f->lat_us);
	free(f->retry);
	free(f);
	return i;
}
