/*
 * check.c - periodic health checks of backends (tcp connect, ftp 220
 * greeting) from the node's own address, with rise/fall accounting.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "lbd.h"

#define CHECK_LINE_MAX		512	/* greeting line bytes kept; the rest is skipped */
#define CHECK_READ_CHUNK	512	/* bytes read from the socket at a time */
#define CHECK_QUIT		"QUIT\r\n"	/* sent after a good ftp greeting */
#define CHECK_SKIP_LOG_MS	5000	/* at most one "check skipped" line per this, all backends */

/* The running check of one backend; backend->check points to it. */
struct check {
	struct backend	*backend;	/* what is checked */
	struct lbd	*lbd;		/* owner of the event base and config */
	struct event	*timer;		/* fires at the start of each check */
	struct event	*ev;		/* EV_WRITE (connect) then EV_READ (greeting) */
	struct event	*deadline;	/* timeout_ms after the start of a check */
	int		 fd;		/* check socket, -1 between checks */
	bool		 connected;	/* connect finished in this check */
	bool		 multiline;	/* inside a "220-" multi-line greeting */
	char		 line[CHECK_LINE_MAX]; /* current greeting line, truncated */
	size_t		 linelen;	/* bytes in line */
	uint64_t	 started_ms;	/* monotonic start of this check */
};

static void	 check_on_timer(evutil_socket_t, short, void *);
static void	 check_on_deadline(evutil_socket_t, short, void *);
static void	 check_on_connect(evutil_socket_t, short, void *);
static void	 check_on_read(evutil_socket_t, short, void *);
static void	 check_run(struct check *);
static void	 check_done(struct check *, enum check_result);
static void	 check_skipped(struct check *, enum check_result, const char *what);
static void	 check_connected(struct check *);
static int	 check_line(struct check *);
static void	 check_reset(struct check *);
static void	 check_notify(struct check *, enum check_result, int count);
static struct timeval check_tv(int ms);

static struct log_limit check_skip_limit;	/* the "check of X skipped" lines */

const char *
check_result_str(enum check_result r)
{
	switch (r) {
	case CHECK_RESULT_NONE:
		return "none";
	case CHECK_RESULT_OK:
		return "ok";
	case CHECK_RESULT_CONNECT_REFUSED:
		return "connect refused";
	case CHECK_RESULT_CONNECT_TIMEOUT:
		return "connect timeout";
	case CHECK_RESULT_CONNECT_ERROR:
		return "connect error";
	case CHECK_RESULT_READ_TIMEOUT:
		return "read timeout";
	case CHECK_RESULT_BAD_GREETING:
		return "bad greeting";
	case CHECK_RESULT_CLOSED:
		return "closed before greeting";
	case CHECK_RESULT_INTERNAL:
		return "internal error";
	case CHECK_RESULT_SKIPPED_FDS:
		return "skipped: lbd out of file descriptors";
	case CHECK_RESULT_SKIPPED_MEMORY:
		return "skipped: out of memory";
	}
	return "unknown";
}

bool
check_result_skipped(enum check_result r)
{
	return r == CHECK_RESULT_SKIPPED_FDS || r == CHECK_RESULT_SKIPPED_MEMORY;
}

/*
 * Returns: the skipped result when err says lbd itself (or the kernel) is
 * short of a resource, CHECK_RESULT_INTERNAL otherwise. A check that could
 * not get a socket says nothing about the backend: with 30 clients under
 * nofile=40, counting it as a failure marked every backend down and
 * refused every client until rise checks passed.
 */
static enum check_result
check_local_error(int err)
{
	switch (err) {
	case EMFILE:
	case ENFILE:
		return CHECK_RESULT_SKIPPED_FDS;
	case ENOBUFS:
	case ENOMEM:
		return CHECK_RESULT_SKIPPED_MEMORY;
	default:
		return CHECK_RESULT_INTERNAL;
	}
}

int
check_account(struct backend *b, enum check_result r, uint64_t now)
{
	const struct check_config *cc = &b->service->conf.check;
	bool	 ok = (r == CHECK_RESULT_OK);
	bool	 was_up = b->up;

	b->last_result = r;
	b->last_check_ms = now;

	if (check_result_skipped(r)) {
		/* No verdict: state, first-check flag and counts stay as they are. */
		b->checks_skipped++;
		return 0;
	}
	if (!b->checked) {
		/* The first result decides at once: no waiting for rise/fall. */
		b->checked = true;
		b->up = ok;
		b->rise_count = 0;
		b->fall_count = 0;
		return b->up != was_up;
	}

	if (b->up) {
		if (ok) {
			b->fall_count = 0;
			return 0;
		}
		if (++b->fall_count < cc->fall)
			return 0;
		b->up = false;
	} else {
		if (!ok) {
			b->rise_count = 0;
			return 0;
		}
		if (++b->rise_count < cc->rise)
			return 0;
		b->up = true;
	}
	b->rise_count = 0;
	b->fall_count = 0;
	return 1;
}

int
check_start(struct lbd *lbd, struct backend *b)
{
	struct check	*c;
	struct timeval	 now = { 0, 0 };

	if (b->service->conf.check.type == CHECK_NONE) {
		b->up = true;
		b->checked = true;
		return 0;
	}
	if (b->service->conf.check.interval_ms <= 0 ||
	    b->service->conf.check.timeout_ms <= 0) {
		log_warnx("check %s/%s: interval_ms and timeout_ms must be > 0",
		    b->service->conf.name, b->conf.name);
		return -1;
	}

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		log_warn("check %s/%s: calloc", b->service->conf.name, b->conf.name);
		return -1;
	}
	c->backend = b;
	c->lbd = lbd;
	c->fd = -1;
	if ((c->timer = evtimer_new(lbd->base, check_on_timer, c)) == NULL ||
	    (c->deadline = evtimer_new(lbd->base, check_on_deadline, c)) == NULL) {
		log_warnx("check %s/%s: cannot create timers",
		    b->service->conf.name, b->conf.name);
		goto fail;
	}
	/* The first check runs on the next loop iteration. */
	if (evtimer_add(c->timer, &now) == -1) {
		log_warnx("check %s/%s: cannot add timer",
		    b->service->conf.name, b->conf.name);
		goto fail;
	}
	b->check = c;
	return 0;

fail:
	if (c->timer != NULL)
		event_free(c->timer);
	if (c->deadline != NULL)
		event_free(c->deadline);
	free(c);
	return -1;
}

void
check_stop(struct backend *b)
{
	struct check	*c = b->check;

	if (c == NULL)
		return;
	check_reset(c);
	event_free(c->timer);
	event_free(c->deadline);
	free(c);
	b->check = NULL;
}

static struct timeval
check_tv(int ms)
{
	struct timeval	 tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	return tv;
}

/* Periodic tick: re-arms itself, then starts a check unless one still runs. */
static void
check_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct check	*c = arg;
	struct backend	*b = c->backend;
	struct timeval	 tv = check_tv(b->service->conf.check.interval_ms);

	if (evtimer_add(c->timer, &tv) == -1)
		log_warnx("check %s/%s: cannot re-arm the timer, checks stop",
		    b->service->conf.name, b->conf.name);
	if (c->fd != -1) {
		log_debug("check %s/%s: previous check still running, skipped",
		    b->service->conf.name, b->conf.name);
		return;
	}
	check_run(c);
}

/* Starts one check: socket, bind to the node address, non-blocking connect. */
static void
check_run(struct check *c)
{
	struct backend		*b = c->backend;
	const struct check_config *cc = &b->service->conf.check;
	const struct sockaddr_storage *node = &c->lbd->conf->node_addr;
	struct sockaddr_storage	 src, dst;
	struct timeval		 tv = check_tv(cc->timeout_ms);
	int			 family = b->conf.addr.ss_family, on = 1;
	const char		*what;
	enum check_result	 r;

	c->started_ms = clock_now_ms();
	c->connected = false;
	c->multiline = false;
	c->linelen = 0;

	what = "socket";
	if ((c->fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    IPPROTO_TCP)) == -1)
		goto internal;

	/*
	 * Checks leave from the node's own address, the same on both nodes;
	 * a backend of the other family leaves from the kernel's choice.
	 */
	if (node->ss_family == family) {
		src = *node;
		addr_set_port(&src, 0);
		/* FREEBIND: a node address still coming up is not a check failure. */
		what = "setsockopt FREEBIND";
		if ((family == AF_INET6 ?
		    setsockopt(c->fd, IPPROTO_IPV6, IPV6_FREEBIND, &on, sizeof(on)) :
		    setsockopt(c->fd, IPPROTO_IP, IP_FREEBIND, &on, sizeof(on))) == -1)
			goto internal;
		what = "bind to the node address";
		if (bind(c->fd, (struct sockaddr *)&src,
		    addr_len((struct sockaddr *)&src)) == -1)
			goto internal;
	}

	what = "event_new";
	if ((c->ev = event_new(c->lbd->base, c->fd, EV_WRITE, check_on_connect,
	    c)) == NULL)
		goto nomem;
	what = "evtimer_add";
	if (evtimer_add(c->deadline, &tv) == -1)
		goto nomem;

	dst = b->conf.addr;
	addr_set_port(&dst, cc->port);
	if (connect(c->fd, (struct sockaddr *)&dst,
	    addr_len((struct sockaddr *)&dst)) == -1) {
		if (errno == EINPROGRESS) {
			what = "event_add";
			if (event_add(c->ev, NULL) == -1)
				goto nomem;
			return;
		}
		what = "connect";
		if (check_result_skipped(check_local_error(errno)))
			goto internal;
		check_done(c, errno == ECONNREFUSED ?
		    CHECK_RESULT_CONNECT_REFUSED : CHECK_RESULT_CONNECT_ERROR);
		return;
	}
	check_connected(c);
	return;

nomem:
	/* libevent's failures are allocations: errno may be stale, say ENOMEM. */
	errno = ENOMEM;
internal:
	r = check_local_error(errno);
	if (check_result_skipped(r)) {
		check_skipped(c, r, what);
		return;
	}
	/* Warn when the backend enters this state, not at every interval. */
	if (b->last_result != CHECK_RESULT_INTERNAL)
		log_warn("check %s/%s: %s", b->service->conf.name,
		    b->conf.name, what);
	check_done(c, CHECK_RESULT_INTERNAL);
}

/*
 * A check lbd could not run for want of descriptors or memory: logged
 * (rate-limited over all backends), counted, no verdict (check_account).
 */
static void
check_skipped(struct check *c, enum check_result r, const char *what)
{
	struct backend	*b = c->backend;
	int		 err = errno;

	check_reset(c);
	log_limited(&check_skip_limit, clock_now_ms(), CHECK_SKIP_LOG_MS,
	    LOG_LEVEL_WARNING, "check of %s/%s skipped: lbd is out of %s (%s: %s); "
	    "the backend stays %s until a check can run%s", b->service->conf.name, b->conf.name,
	    r == CHECK_RESULT_SKIPPED_FDS ? "file descriptors" : "memory", what,
	    strerror(err), backend_state_str(b),
	    r == CHECK_RESULT_SKIPPED_FDS ? " (raise LimitNOFILE or lower max_connections)" : "");
	(void)check_account(b, r, clock_now_ms());
}

/* The whole check's deadline passed. */
static void
check_on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct check	*c = arg;

	check_done(c, c->connected ? CHECK_RESULT_READ_TIMEOUT :
	    CHECK_RESULT_CONNECT_TIMEOUT);
}

/* The socket became writable: the connect finished, well or not. */
static void
check_on_connect(evutil_socket_t fd, short what, void *arg)
{
	struct check	*c = arg;
	int		 err = 0;
	socklen_t	 len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err != 0) {
		log_debug("check %s/%s: connect: %s", c->backend->service->conf.name,
		    c->backend->conf.name, strerror(err));
		check_done(c, err == ECONNREFUSED ?
		    CHECK_RESULT_CONNECT_REFUSED : CHECK_RESULT_CONNECT_ERROR);
		return;
	}
	check_connected(c);
}

/* Connected: a tcp check is done, an ftp check waits for its greeting. */
static void
check_connected(struct check *c)
{
	c->connected = true;
	if (c->backend->service->conf.check.type != CHECK_FTP) {
		check_done(c, CHECK_RESULT_OK);
		return;
	}
	event_free(c->ev);
	if ((c->ev = event_new(c->lbd->base, c->fd, EV_READ | EV_PERSIST,
	    check_on_read, c)) == NULL || event_add(c->ev, NULL) == -1) {
		/* libevent could not allocate: lbd's shortage, not the backend's. */
		errno = ENOMEM;
		check_skipped(c, CHECK_RESULT_SKIPPED_MEMORY, "waiting for the greeting");
	}
}

/*
 * Judges one complete greeting line (c->line, without its newline).
 * Returns: -1 bad greeting, 0 need more lines, 1 good "220 " greeting.
 */
static int
check_line(struct check *c)
{
	const char	*l = c->line;
	size_t		 n = c->linelen;

	if (n > 0 && l[n - 1] == '\r')
		n--;
	if (c->multiline) {
		/* RFC 959: the reply ends with a line "220 " (same code, space). */
		if (n >= 3 && memcmp(l, "220", 3) == 0 && (n == 3 || l[3] == ' '))
			return 1;
		return 0;
	}
	if (n < 3 || memcmp(l, "220", 3) != 0)
		return -1;
	if (n == 3 || l[3] == ' ')
		return 1;
	if (l[3] == '-') {
		c->multiline = true;
		return 0;
	}
	return -1;
}

/* Greeting bytes arrived: collect lines (long ones truncated) and judge them. */
static void
check_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct check	*c = arg;
	char		 buf[CHECK_READ_CHUNK];
	ssize_t		 n, i;
	int		 verdict;

	if ((n = read(c->fd, buf, sizeof(buf))) == -1) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		log_debug("check %s/%s: read: %s", c->backend->service->conf.name,
		    c->backend->conf.name, strerror(errno));
		check_done(c, CHECK_RESULT_CLOSED);
		return;
	}
	if (n == 0) {
		check_done(c, CHECK_RESULT_CLOSED);
		return;
	}
	for (i = 0; i < n; i++) {
		if (buf[i] != '\n') {
			if (c->linelen < sizeof(c->line))
				c->line[c->linelen++] = buf[i];
			continue;
		}
		verdict = check_line(c);
		c->linelen = 0;
		if (verdict == -1) {
			check_done(c, CHECK_RESULT_BAD_GREETING);
			return;
		}
		if (verdict == 1) {
			/* Best effort: a server that logs QUIT is happier. */
			(void)send(c->fd, CHECK_QUIT, strlen(CHECK_QUIT),
			    MSG_NOSIGNAL | MSG_DONTWAIT);
			check_done(c, CHECK_RESULT_OK);
			return;
		}
	}
}

/* Closes this check's socket and events; the periodic timer stays. */
static void
check_reset(struct check *c)
{
	if (c->ev != NULL) {
		event_free(c->ev);
		c->ev = NULL;
	}
	evtimer_del(c->deadline);
	if (c->fd != -1) {
		close(c->fd);
		c->fd = -1;
	}
}

/* The one end of every check: account the result, announce a transition. */
static void
check_done(struct check *c, enum check_result r)
{
	struct backend	*b = c->backend;
	int		 count;

	check_reset(c);
	log_debug("check %s/%s: %s in %llu ms", b->service->conf.name,
	    b->conf.name, check_result_str(r),
	    (unsigned long long)(clock_now_ms() - c->started_ms));

	/* The count that a transition would reach, for the log line. */
	if (!b->checked)
		count = 0;
	else if (b->up)
		count = b->fall_count + 1;
	else
		count = b->rise_count + 1;

	if (check_account(b, r, clock_now_ms()) == 1)
		check_notify(c, r, count);
}

/* Logs a backend's up/down transition and tells `monitor` clients. */
static void
check_notify(struct check *c, enum check_result r, int count)
{
	struct backend	*b = c->backend;
	const struct check_config *cc = &b->service->conf.check;
	const char	*state = b->up ? "up" : "down";
	json_t		*obj;

	if (count == 0)
		log_info("backend %s/%s is %s: %s (first check)",
		    b->service->conf.name, b->conf.name, state,
		    check_result_str(r));
	else
		log_info("backend %s/%s is %s: %s (%s %d/%d)",
		    b->service->conf.name, b->conf.name, state,
		    check_result_str(r), b->up ? "rise" : "fall", count,
		    b->up ? cc->rise : cc->fall);

	obj = json_pack("{s:s, s:s, s:s, s:s}",
	    "service", b->service->conf.name,
	    "backend", b->conf.name,
	    "state", state,
	    "reason", check_result_str(r));
	if (obj == NULL) {
		log_warnx("check %s/%s: cannot build the monitor event",
		    b->service->conf.name, b->conf.name);
		return;
	}
	bus_publish(c->lbd, "backend", obj);
}
