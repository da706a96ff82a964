/*
 * probe.c - the rig's client-visible outage meter: every INTERVAL ms it opens
 * a TCP connection to ADDR:PORT and reads the FTP "220" greeting, with up to
 * PROBE_MAX_INFLIGHT attempts overlapping, each bounded by TIMEOUT ms; at the
 * end (DURATION passed, or SIGTERM/SIGINT) it prints one summary line.
 *
 *   probe -a 192.168.86.87 [-p 21] [-i 10] [-t 50] -d 20 [-s SRC]... [-r READYFILE] [-v]
 *
 * Summary (stdout, one line, key=value):
 *   probe: attempts=N ok=N failures=N refused=N timeout=N reset=N
 *          unreachable=N other=N skipped=N outages=N outage_max_ms=N
 *          outage_max_at_ms=N outage_max_wall_ms=N open=0|1 duration_ms=N
 * An outage is a run of failed attempts; its length is the time from the
 * start of the last successful attempt before it to the start of the first
 * successful attempt after it (to the end of the run if none followed:
 * open=1).  outage_max_at_ms is when the longest one began, in ms since the
 * probe started (outage_max_wall_ms: the same as wall-clock ms since the
 * epoch, to line up with the rig's clock).  Attempts bind the -s source addresses in turn (sticky
 * load balancing then spreads them over the real servers).  READYFILE is
 * created after the first success.  With -v
 * every failure is printed to stderr as "fail T_MS KIND WALL_MS".
 *
 * Built by tests/rig/lib.sh (rig_probe_build) into the run's temp dir.
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PROBE_MAX_INFLIGHT	64	/* attempts open at once; more are skipped */
#define PROBE_MAX_SOURCES	8	/* -s addresses, used in turn */
#define PROBE_BUF		512	/* greeting buffer */
#define PROBE_MAX_DURATION_S	3600	/* hard bound on -d */

/* Why one attempt failed. */
enum probe_kind {
	PROBE_OK = 0,			/* read a line starting with "220" */
	PROBE_REFUSED,			/* RST to our SYN */
	PROBE_TIMEOUT,			/* no greeting within the timeout */
	PROBE_RESET,			/* connected, then reset or closed early */
	PROBE_UNREACHABLE,		/* no route / host unreachable (ARP failed) */
	PROBE_OTHER,			/* anything else, bad greeting included */
	PROBE_KINDS
};

static const char *probe_kind_names[PROBE_KINDS] = {
	"ok", "refused", "timeout", "reset", "unreachable", "other"
};

/* One attempt in flight. */
struct attempt {
	int		 fd;		/* -1: slot free */
	uint64_t	 start_ms;	/* when it began */
	bool		 connected;	/* connect() completed */
	size_t		 len;		/* greeting bytes so far */
	char		 buf[PROBE_BUF]; /* greeting */
};

/* One finished attempt. */
struct result {
	uint64_t	 start_ms;	/* when it began */
	bool		 ok;		/* got the greeting */
};

/* What the whole run measured. */
struct probe_stats {
	uint64_t	 counts[PROBE_KINDS];	/* attempts by outcome */
	uint64_t	 attempts;	/* started */
	uint64_t	 skipped;	/* not started: every slot busy */
	struct result	*results;	/* every finished attempt, in finishing order */
	size_t		 nresults;	/* used */
	size_t		 cap;		/* allocated */
	uint64_t	 outages;	/* failure runs */
	uint64_t	 outage_max_ms;	/* longest */
	uint64_t	 outage_max_at_ms; /* when it began (since start) */
	bool		 open;		/* the longest one never ended */
};

static volatile sig_atomic_t probe_stop;	/* SIGTERM/SIGINT seen */

static void
probe_on_signal(int sig)
{
	(void)sig;
	probe_stop = 1;
}

static uint64_t
probe_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static enum probe_kind
probe_kind_of_errno(int e)
{
	switch (e) {
	case ECONNREFUSED:
		return PROBE_REFUSED;
	case ECONNRESET:
	case EPIPE:
		return PROBE_RESET;
	case EHOSTUNREACH:
	case ENETUNREACH:
	case EHOSTDOWN:
		return PROBE_UNREACHABLE;
	case ETIMEDOUT:
		return PROBE_TIMEOUT;
	default:
		return PROBE_OTHER;
	}
}

/* Accounts one finished attempt; outages are worked out at the end. */
static void
probe_account(struct probe_stats *st, uint64_t t0, uint64_t wall0, uint64_t start,
    enum probe_kind k, bool verbose)
{
	struct result *r;

	st->counts[k]++;
	if (k != PROBE_OK && verbose)
		fprintf(stderr, "fail %llu %s %llu\n", (unsigned long long)(start - t0),
		    probe_kind_names[k], (unsigned long long)(start - t0 + wall0));
	if (st->nresults == st->cap) {
		size_t cap = st->cap ? st->cap * 2 : 4096;
		r = realloc(st->results, cap * sizeof(*r));
		if (r == NULL) {
			perror("probe: realloc");
			exit(2);
		}
		st->results = r;
		st->cap = cap;
	}
	st->results[st->nresults].start_ms = start;
	st->results[st->nresults].ok = k == PROBE_OK;
	st->nresults++;
}

static int
probe_result_cmp(const void *a, const void *b)
{
	const struct result *x = a, *y = b;

	return x->start_ms < y->start_ms ? -1 : x->start_ms > y->start_ms;
}

/*
 * Outages from the results in start order: each run of failures lasts from
 * the start of the success before it (or its first failure when none) to
 * the start of the success after it (or END: open).  Slow successes count
 * as successes, so the deadline per attempt does not change the lengths.
 */
static void
probe_outages(struct probe_stats *st, uint64_t t0, uint64_t end)
{
	size_t i, first;
	uint64_t from, to, len;
	bool have_ok = false, open;

	qsort(st->results, st->nresults, sizeof(*st->results), probe_result_cmp);
	for (i = 0; i < st->nresults; ) {
		if (st->results[i].ok) {
			have_ok = true;
			i++;
			continue;
		}
		first = i;
		while (i < st->nresults && !st->results[i].ok)
			i++;
		from = have_ok ? st->results[first - 1].start_ms : st->results[first].start_ms;
		open = i == st->nresults;
		to = open ? end : st->results[i].start_ms;
		len = to - from;
		st->outages++;
		if (len > st->outage_max_ms) {
			st->outage_max_ms = len;
			st->outage_max_at_ms = from - t0;
			st->open = open;
		}
	}
}

static void
probe_close(struct attempt *a)
{
	if (a->fd != -1)
		close(a->fd);
	a->fd = -1;
}

/* Returns: 0 started (a->fd open), or the failure kind of a failed start. */
static enum probe_kind
probe_start(struct attempt *a, const struct sockaddr_storage *sin,
    const struct sockaddr_storage *src, uint64_t now)
{
	socklen_t len = sin->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in);
	int fd;

	a->start_ms = now;
	a->connected = false;
	a->len = 0;
	fd = socket(sin->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return PROBE_OTHER;
	if (src != NULL && bind(fd, (const struct sockaddr *)src, len) == -1) {
		close(fd);
		return PROBE_OTHER;
	}
	if (connect(fd, (const struct sockaddr *)sin, len) == -1 &&
	    errno != EINPROGRESS) {
		int e = errno;
		close(fd);
		return probe_kind_of_errno(e);
	}
	a->fd = fd;
	return PROBE_OK;
}

/* An IPv4 or IPv6 literal and a port into *ss. Returns 0, -1 not an address. */
static int
probe_addr(const char *s, uint16_t port, struct sockaddr_storage *ss)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, s, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		return 0;
	}
	if (inet_pton(AF_INET6, s, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		return 0;
	}
	return -1;
}

/*
 * Progress on one attempt after poll said so.
 * Returns: -1 still going, else the outcome (PROBE_OK: got "220").
 */
static int
probe_progress(struct attempt *a, short revents)
{
	ssize_t n;
	int err = 0;
	socklen_t elen = sizeof(err);
	char *nl;

	if (!a->connected) {
		if (getsockopt(a->fd, SOL_SOCKET, SO_ERROR, &err, &elen) == -1)
			return PROBE_OTHER;
		if (err != 0)
			return probe_kind_of_errno(err);
		if (!(revents & (POLLOUT | POLLIN)))
			return -1;
		a->connected = true;
	}
	if (!(revents & (POLLIN | POLLHUP | POLLERR)))
		return -1;
	n = read(a->fd, a->buf + a->len, sizeof(a->buf) - 1 - a->len);
	if (n == -1) {
		if (errno == EAGAIN || errno == EINTR)
			return -1;
		return probe_kind_of_errno(errno);
	}
	if (n == 0)
		return PROBE_RESET;
	a->len += (size_t)n;
	a->buf[a->len] = '\0';
	nl = strchr(a->buf, '\n');
	if (nl == NULL)
		return a->len >= sizeof(a->buf) - 1 ? PROBE_OTHER : -1;
	return strncmp(a->buf, "220", 3) == 0 ? PROBE_OK : PROBE_OTHER;
}

static void
probe_usage(void)
{
	fprintf(stderr, "usage: probe -a ADDRESS [-p PORT] [-i INTERVAL_MS] [-t TIMEOUT_MS] "
	    "-d DURATION_S [-s SRC]... [-r READYFILE] [-v]\n");
	exit(2);
}

int
main(int argc, char *argv[])
{
	struct attempt slots[PROBE_MAX_INFLIGHT];
	struct pollfd pfd[PROBE_MAX_INFLIGHT];
	int map[PROBE_MAX_INFLIGHT];
	struct probe_stats st;
	struct sockaddr_storage sin, srcs[PROBE_MAX_SOURCES];
	struct sigaction sa;
	const char *addr = NULL, *ready = NULL;
	long port = 21, interval = 10, timeout = 50, duration = 0;
	bool verbose = false, ready_done = false;
	uint64_t t0, wall0, now, next, end;
	struct timespec wts;
	int c, i, n, rc, wait_ms, nsrc = 0;
	uint64_t turn = 0;

	while ((c = getopt(argc, argv, "a:p:i:t:d:s:r:v")) != -1) {
		switch (c) {
		case 'a': addr = optarg; break;
		case 'p': port = strtol(optarg, NULL, 10); break;
		case 'i': interval = strtol(optarg, NULL, 10); break;
		case 't': timeout = strtol(optarg, NULL, 10); break;
		case 'd': duration = strtol(optarg, NULL, 10); break;
		case 's':
			if (nsrc == PROBE_MAX_SOURCES)
				probe_usage();
			if (probe_addr(optarg, 0, &srcs[nsrc]) == -1) {
				fprintf(stderr, "probe: %s is not an IP address\n", optarg);
				return 2;
			}
			nsrc++;
			break;
		case 'r': ready = optarg; break;
		case 'v': verbose = true; break;
		default: probe_usage();
		}
	}
	if (addr == NULL || port < 1 || port > 65535 || interval < 1 || interval > 10000 ||
	    timeout < 1 || timeout > 60000 || duration < 1 || duration > PROBE_MAX_DURATION_S)
		probe_usage();
	if (probe_addr(addr, (uint16_t)port, &sin) == -1) {
		fprintf(stderr, "probe: %s is not an IP address\n", addr);
		return 2;
	}
	for (i = 0; i < nsrc; i++)
		if (srcs[i].ss_family != sin.ss_family) {
			fprintf(stderr, "probe: a source address is not of %s's family\n", addr);
			return 2;
		}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = probe_on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	memset(&st, 0, sizeof(st));
	for (i = 0; i < PROBE_MAX_INFLIGHT; i++)
		slots[i].fd = -1;
	t0 = now = probe_now_ms();
	clock_gettime(CLOCK_REALTIME, &wts);
	wall0 = (uint64_t)wts.tv_sec * 1000 + (uint64_t)wts.tv_nsec / 1000000;
	next = t0;
	end = t0 + (uint64_t)duration * 1000;

	while (!probe_stop && now < end) {
		/* Start the attempts that are due (at most one per period missed). */
		if (now >= next) {
			for (i = 0; i < PROBE_MAX_INFLIGHT && slots[i].fd != -1; i++)
				;
			if (i == PROBE_MAX_INFLIGHT) {
				st.skipped++;
			} else {
				st.attempts++;
				rc = probe_start(&slots[i], &sin,
				    nsrc > 0 ? &srcs[turn++ % (uint64_t)nsrc] : NULL, now);
				if (rc != PROBE_OK)
					probe_account(&st, t0, wall0, now, (enum probe_kind)rc, verbose);
			}
			next += (uint64_t)interval;
			if (next <= now)	/* we were late: do not burst */
				next = now + (uint64_t)interval;
		}
		/* Time out the old ones. */
		for (i = 0; i < PROBE_MAX_INFLIGHT; i++) {
			if (slots[i].fd != -1 && now - slots[i].start_ms >= (uint64_t)timeout) {
				probe_close(&slots[i]);
				probe_account(&st, t0, wall0, slots[i].start_ms, PROBE_TIMEOUT, verbose);
			}
		}
		n = 0;
		for (i = 0; i < PROBE_MAX_INFLIGHT; i++) {
			if (slots[i].fd == -1)
				continue;
			pfd[n].fd = slots[i].fd;
			pfd[n].events = slots[i].connected ? POLLIN : POLLOUT | POLLIN;
			pfd[n].revents = 0;
			map[n++] = i;
		}
		wait_ms = next > now ? (int)(next - now) : 0;
		if (poll(pfd, (nfds_t)n, wait_ms) == -1 && errno != EINTR) {
			perror("probe: poll");
			return 2;
		}
		for (c = 0; c < n; c++) {
			if (pfd[c].revents == 0)
				continue;
			i = map[c];
			rc = probe_progress(&slots[i], pfd[c].revents);
			if (rc == -1)
				continue;
			probe_close(&slots[i]);
			probe_account(&st, t0, wall0, slots[i].start_ms, (enum probe_kind)rc, verbose);
			if (rc == PROBE_OK && !ready_done && ready != NULL) {
				int fd = open(ready, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
				if (fd != -1)
					close(fd);
				ready_done = true;
			}
		}
		now = probe_now_ms();
	}
	/* Attempts still open at the end are not counted either way. */
	for (i = 0; i < PROBE_MAX_INFLIGHT; i++) {
		if (slots[i].fd != -1) {
			probe_close(&slots[i]);
			st.attempts--;
		}
	}
	probe_outages(&st, t0, now);
	printf("probe: attempts=%llu ok=%llu failures=%llu refused=%llu timeout=%llu "
	    "reset=%llu unreachable=%llu other=%llu skipped=%llu outages=%llu "
	    "outage_max_ms=%llu outage_max_at_ms=%llu outage_max_wall_ms=%llu open=%d "
	    "duration_ms=%llu\n",
	    (unsigned long long)st.attempts, (unsigned long long)st.counts[PROBE_OK],
	    (unsigned long long)(st.attempts - st.counts[PROBE_OK]),
	    (unsigned long long)st.counts[PROBE_REFUSED],
	    (unsigned long long)st.counts[PROBE_TIMEOUT],
	    (unsigned long long)st.counts[PROBE_RESET],
	    (unsigned long long)st.counts[PROBE_UNREACHABLE],
	    (unsigned long long)st.counts[PROBE_OTHER], (unsigned long long)st.skipped,
	    (unsigned long long)st.outages, (unsigned long long)st.outage_max_ms,
	    (unsigned long long)st.outage_max_at_ms,
	    (unsigned long long)(st.outage_max_at_ms + wall0), st.open ? 1 : 0,
	    (unsigned long long)(now - t0));
	fflush(stdout);
	free(st.results);
	return 0;
}
