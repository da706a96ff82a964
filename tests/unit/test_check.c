/*
 * test_check.c - unit tests of check.c: rise/fall accounting, result
 * strings, and real tcp/ftp checks against fake servers on loopback.
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "lbd.h"

#define FAKE_MAX_CONNS	64	/* connections a fake server keeps track of */
#define TEST_INTERVAL	50	/* check interval_ms in the live tests */
#define TEST_TIMEOUT	100	/* check timeout_ms in the live tests */
#define TEST_MAX_MS	2500	/* bound on any single wait */

struct fake_server;

/* One connection accepted by a fake server. */
struct fake_conn {
	struct fake_server *srv;	/* owner */
	int		 fd;		/* accepted socket, -1 once closed */
	struct event	*ev;		/* EV_READ: collects what the check sends */
	struct event	*later;		/* sends the second greeting part */
	char		 got[64];	/* bytes received from the check */
	size_t		 gotlen;	/* bytes in got */
};

/* A fake FTP (or plain TCP) server on 127.0.0.1 or ::1, port from the kernel. */
struct fake_server {
	struct event_base *base;	/* the test's loop */
	int		 lfd;		/* listening socket */
	uint16_t	 port;		/* its port */
	struct event	*lev;		/* EV_READ on lfd; NULL: never accept */
	const char	*greeting;	/* sent at accept; NULL: say nothing */
	const char	*greeting2;	/* sent 20 ms later, or NULL */
	bool		 close_at_once;	/* close right after accept */
	bool		 close_after;	/* close right after the greeting */
	struct fake_conn conns[FAKE_MAX_CONNS]; /* accepted connections */
	int		 nconns;	/* used entries of conns */
	int		 accepted;	/* connections accepted */
	int		 quits;		/* connections that sent exactly QUIT then EOF */
	struct sockaddr_storage peer;	/* source address of the last connection */
};

/* What each live test works on: one service with one backend. */
struct fixture {
	struct event_base *base;	/* the test's own loop */
	struct lbd_config *conf;	/* node_addr 127.0.0.1 */
	struct lbd	*lbd;		/* the daemon, by hand */
	struct service	*svc;		/* services[0] */
	struct backend	*b;		/* its backends[0] */
	int		 fds;		/* open fds before the test */
};

/* ---------------------------------------------------------------- helpers */

static void
set_addr(struct sockaddr_storage *ss, const char *s, uint16_t port)
{
	assert_int_equal(addr_parse(s, ss), 0);
	addr_set_port(ss, port);
}

static int
fixture_setup(void **state)
{
	struct fixture	*fx;

	fx = calloc(1, sizeof(*fx));
	assert_non_null(fx);
	fx->fds = fd_count_open();
	fx->base = event_base_new();
	fx->conf = calloc(1, sizeof(*fx->conf));
	fx->lbd = calloc(1, sizeof(*fx->lbd));
	assert_non_null(fx->base);
	assert_non_null(fx->conf);
	assert_non_null(fx->lbd);

	set_addr(&fx->conf->node_addr, "127.0.0.1", 0);
	fx->lbd->conf = fx->conf;
	fx->lbd->base = fx->base;
	fx->lbd->nservices = 1;

	fx->svc = &fx->lbd->services[0];
	fx->svc->lbd = fx->lbd;
	snprintf(fx->svc->conf.name, sizeof(fx->svc->conf.name), "FTPS_VIP");
	fx->svc->conf.check.type = CHECK_FTP;
	fx->svc->conf.check.interval_ms = TEST_INTERVAL;
	fx->svc->conf.check.timeout_ms = TEST_TIMEOUT;
	fx->svc->conf.check.rise = 2;
	fx->svc->conf.check.fall = 2;
	fx->svc->nbackends = 1;

	fx->b = &fx->svc->backends[0];
	fx->b->service = fx->svc;
	snprintf(fx->b->conf.name, sizeof(fx->b->conf.name), "FTP_SVR1");
	set_addr(&fx->b->conf.addr, "127.0.0.1", 0);
	fx->b->conf.weight = 1;
	fx->b->up = true;		/* as main sets it before checks start */

	*state = fx;
	return 0;
}

static int
fixture_teardown(void **state)
{
	struct fixture	*fx = *state;

	check_stop(fx->b);
	event_base_free(fx->base);
	free(fx->lbd);
	free(fx->conf);
	/* Every check socket, fake server socket and loop fd is closed. */
	assert_int_equal(fd_count_open(), fx->fds);
	free(fx);
	return 0;
}

static void
fake_conn_close(struct fake_conn *fc)
{
	if (fc->ev != NULL) {
		event_free(fc->ev);
		fc->ev = NULL;
	}
	if (fc->later != NULL) {
		event_free(fc->later);
		fc->later = NULL;
	}
	if (fc->fd != -1) {
		close(fc->fd);
		fc->fd = -1;
	}
}

static void
fake_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct fake_conn *fc = arg;
	char		 buf[256];
	ssize_t		 n;

	n = read(fd, buf, sizeof(buf));
	if (n == -1 && errno == EAGAIN)
		return;
	if (n <= 0) {
		if (fc->gotlen == strlen("QUIT\r\n") &&
		    memcmp(fc->got, "QUIT\r\n", fc->gotlen) == 0)
			fc->srv->quits++;
		fake_conn_close(fc);
		return;
	}
	if ((size_t)n > sizeof(fc->got) - fc->gotlen)
		n = sizeof(fc->got) - fc->gotlen;
	memcpy(fc->got + fc->gotlen, buf, n);
	fc->gotlen += n;
}

static void
fake_on_later(evutil_socket_t fd, short what, void *arg)
{
	struct fake_conn *fc = arg;

	if (fc->fd != -1)
		(void)send(fc->fd, fc->srv->greeting2, strlen(fc->srv->greeting2),
		    MSG_NOSIGNAL);
}

static void
fake_on_accept(evutil_socket_t fd, short what, void *arg)
{
	struct fake_server *srv = arg;
	struct fake_conn *fc;
	struct timeval	 tv = { 0, 20 * 1000 };
	socklen_t	 len = sizeof(srv->peer);
	int		 cfd;

	if ((cfd = accept4(fd, (struct sockaddr *)&srv->peer, &len,
	    SOCK_NONBLOCK | SOCK_CLOEXEC)) == -1)
		return;
	srv->accepted++;
	if (srv->close_at_once || srv->nconns == FAKE_MAX_CONNS) {
		close(cfd);
		return;
	}
	fc = &srv->conns[srv->nconns++];
	fc->srv = srv;
	fc->fd = cfd;
	if (srv->greeting != NULL)
		assert_int_equal(send(cfd, srv->greeting, strlen(srv->greeting),
		    MSG_NOSIGNAL), (ssize_t)strlen(srv->greeting));
	if (srv->close_after) {
		fake_conn_close(fc);
		return;
	}
	if (srv->greeting2 != NULL) {
		fc->later = evtimer_new(srv->base, fake_on_later, fc);
		assert_non_null(fc->later);
		evtimer_add(fc->later, &tv);
	}
	fc->ev = event_new(srv->base, cfd, EV_READ | EV_PERSIST, fake_on_read, fc);
	assert_non_null(fc->ev);
	event_add(fc->ev, NULL);
}

/* Opens a listener on addr (port from the kernel); accept: serve it. */
static void
fake_open(struct fake_server *srv, struct event_base *base, const char *addr,
    uint16_t port, int backlog, bool accept)
{
	struct sockaddr_storage ss;
	socklen_t	 len = sizeof(ss);
	int		 on = 1;

	memset(srv, 0, sizeof(*srv));
	srv->base = base;
	set_addr(&ss, addr, port);
	srv->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_int_not_equal(srv->lfd, -1);
	assert_int_equal(setsockopt(srv->lfd, SOL_SOCKET, SO_REUSEADDR, &on,
	    sizeof(on)), 0);
	assert_int_equal(bind(srv->lfd, (struct sockaddr *)&ss,
	    addr_len((struct sockaddr *)&ss)), 0);
	assert_int_equal(listen(srv->lfd, backlog), 0);
	assert_int_equal(getsockname(srv->lfd, (struct sockaddr *)&ss, &len), 0);
	srv->port = addr_port((struct sockaddr *)&ss);
	if (accept) {
		srv->lev = event_new(base, srv->lfd, EV_READ | EV_PERSIST,
		    fake_on_accept, srv);
		assert_non_null(srv->lev);
		event_add(srv->lev, NULL);
	}
}

static void
fake_close(struct fake_server *srv)
{
	int	 i;

	for (i = 0; i < srv->nconns; i++)
		fake_conn_close(&srv->conns[i]);
	if (srv->lev != NULL)
		event_free(srv->lev);
	srv->lev = NULL;
	if (srv->lfd != -1)
		close(srv->lfd);
	srv->lfd = -1;
}

/* What run_until polls. */
struct wait {
	struct event_base *base;	/* loop to break */
	bool		(*pred)(struct fixture *, struct fake_server *);
	struct fixture	*fx;		/* predicate arguments */
	struct fake_server *srv;
	bool		 met;		/* pred became true */
};

static void
wait_on_poll(evutil_socket_t fd, short what, void *arg)
{
	struct wait	*w = arg;

	if (w->pred(w->fx, w->srv)) {
		w->met = true;
		event_base_loopbreak(w->base);
	}
}

static void
wait_on_max(evutil_socket_t fd, short what, void *arg)
{
	struct wait	*w = arg;

	event_base_loopbreak(w->base);
}

/* Runs the loop until pred holds or max_ms passed. Returns whether it held. */
static bool
run_until(struct fixture *fx, struct fake_server *srv,
    bool (*pred)(struct fixture *, struct fake_server *), int max_ms)
{
	struct wait	 w = { fx->base, pred, fx, srv, false };
	struct timeval	 poll_tv = { 0, 5 * 1000 };
	struct timeval	 max_tv = { max_ms / 1000, (max_ms % 1000) * 1000 };
	struct event	*poll, *max;

	poll = event_new(fx->base, -1, EV_PERSIST, wait_on_poll, &w);
	max = evtimer_new(fx->base, wait_on_max, &w);
	assert_non_null(poll);
	assert_non_null(max);
	event_add(poll, &poll_tv);
	evtimer_add(max, &max_tv);
	event_base_dispatch(fx->base);
	event_free(poll);
	event_free(max);
	return w.met || pred(fx, srv);
}

static bool
never(struct fixture *fx, struct fake_server *srv)
{
	return false;
}

/* Runs the loop for ms milliseconds. */
static void
run_for(struct fixture *fx, int ms)
{
	run_until(fx, NULL, never, ms);
}

static bool
is_checked(struct fixture *fx, struct fake_server *srv)
{
	return fx->b->checked;
}

static bool
checked_and_quit(struct fixture *fx, struct fake_server *srv)
{
	return fx->b->checked && srv->quits >= 1;
}

static bool
is_down(struct fixture *fx, struct fake_server *srv)
{
	return fx->b->checked && !fx->b->up;
}

static bool
is_refused(struct fixture *fx, struct fake_server *srv)
{
	return fx->b->last_result == CHECK_RESULT_CONNECT_REFUSED;
}

static bool
is_ok(struct fixture *fx, struct fake_server *srv)
{
	return fx->b->last_result == CHECK_RESULT_OK;
}

static bool
is_up(struct fixture *fx, struct fake_server *srv)
{
	return fx->b->checked && fx->b->up;
}

/* Starts checks of fx->b against port of the given type. */
static void
start_checks(struct fixture *fx, enum check_type type, uint16_t port)
{
	fx->svc->conf.check.type = type;
	fx->svc->conf.check.port = port;
	fx->b->up = true;
	fx->b->checked = false;
	fx->b->rise_count = 0;
	fx->b->fall_count = 0;
	fx->b->last_result = CHECK_RESULT_NONE;
	assert_int_equal(check_start(fx->lbd, fx->b), 0);
	assert_non_null(fx->b->check);
}

/* One ftp check against a fake server saying greeting; Returns the result. */
static enum check_result
ftp_once(struct fixture *fx, const char *greeting, const char *greeting2,
    int *quits)
{
	struct fake_server srv;
	enum check_result r;
	uint64_t	 t0 = clock_now_ms();

	fake_open(&srv, fx->base, "127.0.0.1", 0, 16, true);
	srv.greeting = greeting;
	srv.greeting2 = greeting2;
	start_checks(fx, CHECK_FTP, srv.port);
	assert_true(run_until(fx, &srv, is_checked, TEST_MAX_MS));
	r = fx->b->last_result;
	check_stop(fx->b);
	assert_null(fx->b->check);
	/* Let the server see the QUIT and the close. */
	run_for(fx, 30);
	if (quits != NULL)
		*quits = srv.quits;
	fake_close(&srv);
	assert_true(clock_now_ms() - t0 < 3000);
	return r;
}

/* ---------------------------------------------------------------- accounting */

/* A backend of a service with the given rise/fall, as main leaves it. */
static void
account_setup(struct service *svc, struct backend *b, int rise, int fall)
{
	memset(svc, 0, sizeof(*svc));
	memset(b, 0, sizeof(*b));
	svc->conf.check.type = CHECK_TCP;
	svc->conf.check.rise = rise;
	svc->conf.check.fall = fall;
	b->service = svc;
	b->up = true;
}

static void
test_account_rise2_fall2(void **state)
{
	static struct service svc;
	struct backend	 b;

	account_setup(&svc, &b, 2, 2);

	/* First result OK: up stays up, no transition. */
	assert_int_equal(check_account(&b, CHECK_RESULT_OK, 10), 0);
	assert_true(b.checked);
	assert_true(b.up);
	assert_int_equal(b.last_result, CHECK_RESULT_OK);
	assert_int_equal(b.last_check_ms, 10);

	/* One failure is not enough; an OK in between resets the fall. */
	assert_int_equal(check_account(&b, CHECK_RESULT_CONNECT_REFUSED, 20), 0);
	assert_true(b.up);
	assert_int_equal(b.fall_count, 1);
	assert_int_equal(check_account(&b, CHECK_RESULT_OK, 30), 0);
	assert_int_equal(b.fall_count, 0);
	assert_int_equal(check_account(&b, CHECK_RESULT_READ_TIMEOUT, 40), 0);
	assert_true(b.up);

	/* Second failure in a row: down. */
	assert_int_equal(check_account(&b, CHECK_RESULT_CONNECT_TIMEOUT, 50), 1);
	assert_false(b.up);
	assert_int_equal(b.fall_count, 0);
	assert_int_equal(b.rise_count, 0);
	assert_int_equal(b.last_result, CHECK_RESULT_CONNECT_TIMEOUT);

	/* More failures while down change nothing. */
	assert_int_equal(check_account(&b, CHECK_RESULT_CLOSED, 60), 0);
	assert_false(b.up);

	/* OK, failure (resets the rise), OK, OK: up on the last one. */
	assert_int_equal(check_account(&b, CHECK_RESULT_OK, 70), 0);
	assert_int_equal(b.rise_count, 1);
	assert_int_equal(check_account(&b, CHECK_RESULT_BAD_GREETING, 80), 0);
	assert_int_equal(b.rise_count, 0);
	assert_false(b.up);
	assert_int_equal(check_account(&b, CHECK_RESULT_OK, 90), 0);
	assert_false(b.up);
	assert_int_equal(check_account(&b, CHECK_RESULT_OK, 100), 1);
	assert_true(b.up);
	assert_int_equal(b.rise_count, 0);
	assert_int_equal(b.last_check_ms, 100);

	assert_int_equal(check_account(&b, CHECK_RESULT_OK, 110), 0);
	assert_true(b.up);
}

static void
test_account_rise3_fall1(void **state)
{
	static struct service svc;
	struct backend	 b;
	int		 i;

	account_setup(&svc, &b, 3, 1);

	assert_int_equal(check_account(&b, CHECK_RESULT_OK, 1), 0);
	assert_true(b.up);

	/* fall = 1: the first failure takes it down. */
	assert_int_equal(check_account(&b, CHECK_RESULT_INTERNAL, 2), 1);
	assert_false(b.up);

	/* Two OKs, a failure, then exactly three OKs to come back. */
	assert_int_equal(check_account(&b, CHECK_RESULT_OK, 3), 0);
	assert_int_equal(check_account(&b, CHECK_RESULT_OK, 4), 0);
	assert_int_equal(b.rise_count, 2);
	assert_int_equal(check_account(&b, CHECK_RESULT_CONNECT_ERROR, 5), 0);
	assert_int_equal(b.rise_count, 0);
	for (i = 0; i < 2; i++) {
		assert_int_equal(check_account(&b, CHECK_RESULT_OK, 6 + i), 0);
		assert_false(b.up);
	}
	assert_int_equal(check_account(&b, CHECK_RESULT_OK, 8), 1);
	assert_true(b.up);

	/* And down again at once. */
	assert_int_equal(check_account(&b, CHECK_RESULT_READ_TIMEOUT, 9), 1);
	assert_false(b.up);
	assert_int_equal(b.last_result, CHECK_RESULT_READ_TIMEOUT);
}

static void
test_account_first_result(void **state)
{
	static struct service svc;
	struct backend	 b;

	/* The first result decides at once, whatever rise/fall say. */
	account_setup(&svc, &b, 3, 3);
	assert_int_equal(check_account(&b, CHECK_RESULT_CONNECT_REFUSED, 5), 1);
	assert_true(b.checked);
	assert_false(b.up);
	assert_int_equal(b.fall_count, 0);
	assert_int_equal(b.rise_count, 0);

	/* Starting down (not main's default): a first OK is a transition too. */
	account_setup(&svc, &b, 3, 3);
	b.up = false;
	assert_int_equal(check_account(&b, CHECK_RESULT_OK, 5), 1);
	assert_true(b.up);

	/* Stale counters are reset by the first result. */
	account_setup(&svc, &b, 2, 2);
	b.fall_count = 1;
	assert_int_equal(check_account(&b, CHECK_RESULT_OK, 5), 0);
	assert_int_equal(check_account(&b, CHECK_RESULT_CLOSED, 6), 0);
	assert_true(b.up);
}

/* A skipped check is recorded and counted, and is no verdict either way. */
static void
test_account_skipped(void **state)
{
	static struct service svc;
	struct backend	 b;
	int		 i;

	/* Before the first check: still unchecked, still up. */
	account_setup(&svc, &b, 2, 2);
	assert_int_equal(check_account(&b, CHECK_RESULT_SKIPPED_FDS, 1), 0);
	assert_false(b.checked);
	assert_true(b.up);
	assert_int_equal(b.last_result, CHECK_RESULT_SKIPPED_FDS);
	assert_int_equal(b.last_check_ms, 1);

	/* Up with one failure counted: the skips neither add to it nor clear it. */
	assert_int_equal(check_account(&b, CHECK_RESULT_OK, 2), 0);
	assert_int_equal(check_account(&b, CHECK_RESULT_CONNECT_REFUSED, 3), 0);
	for (i = 0; i < 10; i++)
		assert_int_equal(check_account(&b, i % 2 ? CHECK_RESULT_SKIPPED_FDS :
		    CHECK_RESULT_SKIPPED_MEMORY, 4 + i), 0);
	assert_true(b.up);
	assert_int_equal(b.fall_count, 1);
	assert_int_equal(check_account(&b, CHECK_RESULT_CONNECT_REFUSED, 20), 1);
	assert_false(b.up);

	/* Down with one success counted: the same. */
	assert_int_equal(check_account(&b, CHECK_RESULT_OK, 21), 0);
	assert_int_equal(check_account(&b, CHECK_RESULT_SKIPPED_FDS, 22), 0);
	assert_false(b.up);
	assert_int_equal(b.rise_count, 1);
	assert_int_equal(check_account(&b, CHECK_RESULT_OK, 23), 1);
	assert_true(b.up);
	assert_int_equal(b.checks_skipped, 12);
	assert_true(check_result_skipped(CHECK_RESULT_SKIPPED_MEMORY));
	assert_false(check_result_skipped(CHECK_RESULT_INTERNAL));
}

static void
test_result_str(void **state)
{
	const char	*s[CHECK_RESULT_SKIPPED_MEMORY + 1];
	int		 i, j;

	for (i = CHECK_RESULT_NONE; i <= CHECK_RESULT_SKIPPED_MEMORY; i++) {
		s[i] = check_result_str((enum check_result)i);
		assert_non_null(s[i]);
		assert_true(strlen(s[i]) > 0);
		assert_string_not_equal(s[i], "unknown");
		for (j = 0; j < i; j++)
			assert_string_not_equal(s[i], s[j]);
	}
	assert_string_equal(check_result_str(CHECK_RESULT_OK), "ok");
	assert_string_equal(check_result_str(CHECK_RESULT_CONNECT_REFUSED),
	    "connect refused");
	assert_string_equal(check_result_str(CHECK_RESULT_CLOSED),
	    "closed before greeting");
	assert_non_null(check_result_str((enum check_result)99));
}

/* ---------------------------------------------------------------- live checks */

static void
test_none(void **state)
{
	struct fixture	*fx = *state;

	fx->svc->conf.check.type = CHECK_NONE;
	fx->b->up = false;
	assert_int_equal(check_start(fx->lbd, fx->b), 0);
	assert_null(fx->b->check);
	assert_true(fx->b->up);
	assert_true(fx->b->checked);
	check_stop(fx->b);		/* harmless without a check */
}

static void
test_ftp_ok(void **state)
{
	struct fixture	*fx = *state;
	struct fake_server srv;
	char		 buf[ADDR_STRLEN];

	/* Checks leave from the node address, not the kernel's choice. */
	set_addr(&fx->conf->node_addr, "127.0.0.2", 0);
	fake_open(&srv, fx->base, "127.0.0.1", 0, 16, true);
	srv.greeting = "220 ready\r\n";
	start_checks(fx, CHECK_FTP, srv.port);
	assert_true(run_until(fx, &srv, checked_and_quit, TEST_MAX_MS));
	assert_string_equal(sockaddr_str((struct sockaddr *)&srv.peer, buf,
	    sizeof(buf)), "127.0.0.2");
	/* Two more intervals: still up, every check OK. */
	run_for(fx, 2 * TEST_INTERVAL + 20);
	assert_true(fx->b->up);
	assert_int_equal(fx->b->last_result, CHECK_RESULT_OK);
	assert_int_equal(fx->b->fall_count, 0);
	assert_true(srv.accepted >= 2);
	assert_true(srv.quits >= 1);
	check_stop(fx->b);
	assert_null(fx->b->check);
	fake_close(&srv);
}

static void
test_ftp_bad_greeting(void **state)
{
	struct fixture	*fx = *state;

	assert_int_equal(ftp_once(fx, "421 busy\r\n", NULL, NULL),
	    CHECK_RESULT_BAD_GREETING);
	assert_false(fx->b->up);
}

static void
test_ftp_bad_multiline(void **state)
{
	struct fixture	*fx = *state;

	assert_int_equal(ftp_once(fx, "421-busy\r\n421 go away\r\n", NULL, NULL),
	    CHECK_RESULT_BAD_GREETING);
	assert_false(fx->b->up);
}

static void
test_ftp_garbage(void **state)
{
	struct fixture	*fx = *state;

	assert_int_equal(ftp_once(fx, "SSH-2.0-OpenSSH\r\n", NULL, NULL),
	    CHECK_RESULT_BAD_GREETING);
}

static void
test_ftp_silent(void **state)
{
	struct fixture	*fx = *state;
	uint64_t	 t0 = clock_now_ms();

	assert_int_equal(ftp_once(fx, NULL, NULL, NULL), CHECK_RESULT_READ_TIMEOUT);
	assert_false(fx->b->up);
	assert_true(clock_now_ms() - t0 >= TEST_TIMEOUT);
}

static void
test_ftp_partial_line(void **state)
{
	struct fixture	*fx = *state;

	/* A greeting without its newline is not a greeting. */
	assert_int_equal(ftp_once(fx, "220 ready", NULL, NULL),
	    CHECK_RESULT_READ_TIMEOUT);
}

static void
test_ftp_closed(void **state)
{
	struct fixture	*fx = *state;
	struct fake_server srv;

	fake_open(&srv, fx->base, "127.0.0.1", 0, 16, true);
	srv.close_at_once = true;
	start_checks(fx, CHECK_FTP, srv.port);
	assert_true(run_until(fx, &srv, is_checked, TEST_MAX_MS));
	assert_int_equal(fx->b->last_result, CHECK_RESULT_CLOSED);
	assert_false(fx->b->up);
	check_stop(fx->b);
	fake_close(&srv);
}

static void
test_ftp_half_line(void **state)
{
	struct fixture	*fx = *state;
	struct fake_server srv;

	/* Half a greeting line, then the server closes. */
	fake_open(&srv, fx->base, "127.0.0.1", 0, 16, true);
	srv.greeting = "220 rea";
	srv.close_after = true;
	start_checks(fx, CHECK_FTP, srv.port);
	assert_true(run_until(fx, &srv, is_checked, TEST_MAX_MS));
	assert_int_equal(fx->b->last_result, CHECK_RESULT_CLOSED);
	assert_false(fx->b->up);
	check_stop(fx->b);
	fake_close(&srv);
}

static void
test_ftp_multiline(void **state)
{
	struct fixture	*fx = *state;
	int		 quits = 0;

	assert_int_equal(ftp_once(fx, "220-hello\r\n220 ok\r\n", NULL, &quits),
	    CHECK_RESULT_OK);
	assert_true(fx->b->up);
	assert_int_equal(quits, 1);
}

static void
test_ftp_multiline_body(void **state)
{
	struct fixture	*fx = *state;
	int		 quits = 0;

	/* Lines inside a multi-line reply may say anything, even "421 ". */
	assert_int_equal(ftp_once(fx,
	    "220-welcome\r\n  to the server\r\n421 not the end\r\n220 ok\r\n",
	    NULL, &quits), CHECK_RESULT_OK);
	assert_int_equal(quits, 1);
}

static void
test_ftp_split(void **state)
{
	struct fixture	*fx = *state;
	int		 quits = 0;

	/* The greeting arrives in two segments 20 ms apart, mid-line. */
	assert_int_equal(ftp_once(fx, "22", "0-x\r\n220 ok\n", &quits),
	    CHECK_RESULT_OK);
	assert_int_equal(quits, 1);
}

static void
test_ftp_long_lines(void **state)
{
	struct fixture	*fx = *state;
	char		*g;
	size_t		 n = 5000;
	int		 quits = 0;

	/* A multi-line greeting whose first line is 10x the buffer. */
	g = malloc(n + 64);
	assert_non_null(g);
	memcpy(g, "220-", 4);
	memset(g + 4, 'x', n);
	strcpy(g + 4 + n, "\r\n220 ok\r\n");
	assert_int_equal(ftp_once(fx, g, NULL, &quits), CHECK_RESULT_OK);
	assert_int_equal(quits, 1);

	/* A long line with a bad code stays bad, an endless one times out. */
	memcpy(g, "421 ", 4);
	assert_int_equal(ftp_once(fx, g, NULL, NULL), CHECK_RESULT_BAD_GREETING);
	memset(g, '2', n);
	g[n] = '\0';
	assert_int_equal(ftp_once(fx, g, NULL, NULL), CHECK_RESULT_READ_TIMEOUT);
	free(g);
}

static void
test_refused(void **state)
{
	struct fixture	*fx = *state;
	struct fake_server srv;
	uint16_t	 port;

	/* A port that was just free: nothing listens there now. */
	fake_open(&srv, fx->base, "127.0.0.1", 0, 1, false);
	port = srv.port;
	fake_close(&srv);

	start_checks(fx, CHECK_FTP, port);
	assert_true(run_until(fx, NULL, is_checked, TEST_MAX_MS));
	assert_int_equal(fx->b->last_result, CHECK_RESULT_CONNECT_REFUSED);
	assert_false(fx->b->up);
	check_stop(fx->b);

	start_checks(fx, CHECK_TCP, port);
	assert_true(run_until(fx, NULL, is_checked, TEST_MAX_MS));
	assert_int_equal(fx->b->last_result, CHECK_RESULT_CONNECT_REFUSED);
	assert_false(fx->b->up);
}

static void
test_tcp_ok(void **state)
{
	struct fixture	*fx = *state;
	struct fake_server srv;

	/* The kernel completes the handshake; nobody even accepts. */
	fake_open(&srv, fx->base, "127.0.0.1", 0, 16, false);
	start_checks(fx, CHECK_TCP, srv.port);
	assert_true(run_until(fx, &srv, is_checked, TEST_MAX_MS));
	run_for(fx, 2 * TEST_INTERVAL);
	assert_true(fx->b->up);
	assert_int_equal(fx->b->last_result, CHECK_RESULT_OK);
	check_stop(fx->b);
	fake_close(&srv);
}

static void
test_tcp_ipv6(void **state)
{
	struct fixture	*fx = *state;
	struct fake_server srv;
	int		 fd;

	fd = socket(AF_INET6, SOCK_STREAM, 0);
	if (fd == -1) {
		skip();
		return;
	}
	close(fd);
	set_addr(&fx->conf->node_addr, "::1", 0);
	set_addr(&fx->b->conf.addr, "::1", 0);
	fake_open(&srv, fx->base, "::1", 0, 16, true);
	srv.greeting = "220 v6\r\n";
	start_checks(fx, CHECK_FTP, srv.port);
	assert_true(run_until(fx, &srv, checked_and_quit, TEST_MAX_MS));
	assert_true(fx->b->up);
	assert_int_equal(fx->b->last_result, CHECK_RESULT_OK);
	check_stop(fx->b);
	fake_close(&srv);
}

static void
test_connect_timeout(void **state)
{
	struct fixture	*fx = *state;
	struct fake_server srv;
	struct sockaddr_storage ss;
	int		 fill[4], i;

	/*
	 * A listener with a full accept queue drops SYNs: the check's
	 * connect never completes.
	 */
	fake_open(&srv, fx->base, "127.0.0.1", 0, 0, false);
	set_addr(&ss, "127.0.0.1", srv.port);
	for (i = 0; i < 4; i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		assert_int_not_equal(fill[i], -1);
		(void)connect(fill[i], (struct sockaddr *)&ss,
		    addr_len((struct sockaddr *)&ss));
	}
	run_for(fx, 20);

	start_checks(fx, CHECK_TCP, srv.port);
	assert_true(run_until(fx, &srv, is_checked, TEST_MAX_MS));
	assert_int_equal(fx->b->last_result, CHECK_RESULT_CONNECT_TIMEOUT);
	assert_false(fx->b->up);
	check_stop(fx->b);
	for (i = 0; i < 4; i++)
		close(fill[i]);
	fake_close(&srv);
}

/* Forbids every new descriptor: the lowest free one becomes the limit. */
static void
fds_forbid(struct rlimit *saved)
{
	struct rlimit	 low;
	int		 next;

	assert_int_equal(getrlimit(RLIMIT_NOFILE, saved), 0);
	next = dup(0);
	assert_int_not_equal(next, -1);
	close(next);
	low = *saved;
	low.rlim_cur = (rlim_t)next;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
}

/*
 * No fd left for socket() before the first check: no verdict. The backend
 * stays up (as main starts it) and unchecked, the skips are counted; the
 * first check that can run decides.
 */
static void
test_internal(void **state)
{
	struct fixture	*fx = *state;
	struct rlimit	 saved;

	start_checks(fx, CHECK_TCP, 1);
	fds_forbid(&saved);
	/* Several intervals: logged once, counted every time. */
	run_for(fx, 3 * TEST_INTERVAL);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
	assert_false(fx->b->checked);
	assert_true(fx->b->up);
	assert_int_equal(fx->b->last_result, CHECK_RESULT_SKIPPED_FDS);
	assert_true(fx->b->checks_skipped >= 2);

	/* Fds again: the next check runs (nothing listens on port 1). */
	assert_true(run_until(fx, NULL, is_refused, TEST_MAX_MS));
	assert_true(fx->b->checked);
	assert_false(fx->b->up);
	check_stop(fx->b);
}

/*
 * EMFILE in a check changes no backend state (issue 13): an up backend
 * with a fall under way stays up with its count, a down one half-way up
 * keeps its rise count, through several intervals without descriptors.
 */
static void
test_emfile_keeps_state(void **state)
{
	struct fixture	*fx = *state;
	struct fake_server srv;
	struct rlimit	 saved;
	uint64_t	 skipped;

	fake_open(&srv, fx->base, "127.0.0.1", 0, 16, true);
	srv.greeting = "220 ready\r\n";
	fx->svc->conf.check.fall = 3;
	start_checks(fx, CHECK_FTP, srv.port);
	assert_true(run_until(fx, &srv, is_checked, TEST_MAX_MS));
	assert_true(fx->b->up);
	fx->b->fall_count = 1;	/* one failure already counted */

	fds_forbid(&saved);
	run_for(fx, 4 * TEST_INTERVAL);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
	assert_true(fx->b->up);
	assert_true(fx->b->checked);
	assert_int_equal(fx->b->fall_count, 1);
	assert_int_equal(fx->b->rise_count, 0);
	assert_int_equal(fx->b->last_result, CHECK_RESULT_SKIPPED_FDS);
	assert_true(fx->b->checks_skipped >= 3);
	assert_int_equal(strcmp(check_result_str(fx->b->last_result),
	    "skipped: lbd out of file descriptors"), 0);
	/* Fds again: the next check runs and is good. */
	assert_true(run_until(fx, &srv, is_ok, TEST_MAX_MS));
	assert_true(fx->b->up);
	assert_int_equal(fx->b->fall_count, 0);
	check_stop(fx->b);

	/* Down and one good check into rise = 2: the skips keep that count. */
	start_checks(fx, CHECK_FTP, srv.port);
	fx->b->checked = true;
	fx->b->up = false;
	fx->b->rise_count = 1;
	skipped = fx->b->checks_skipped;
	fds_forbid(&saved);
	run_for(fx, 4 * TEST_INTERVAL);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
	assert_false(fx->b->up);
	assert_int_equal(fx->b->rise_count, 1);
	assert_true(fx->b->checks_skipped >= skipped + 3);
	/* One good check completes the rise. */
	assert_true(run_until(fx, &srv, is_up, TEST_MAX_MS));
	assert_true(srv.accepted <= 4);
	check_stop(fx->b);
	fake_close(&srv);
}

static void
test_skip_while_running(void **state)
{
	struct fixture	*fx = *state;
	struct fake_server srv;

	/* Each check lasts 200 ms, ticks come every 50 ms: most are skipped. */
	fx->svc->conf.check.timeout_ms = 200;
	fake_open(&srv, fx->base, "127.0.0.1", 0, 16, true);
	start_checks(fx, CHECK_FTP, srv.port);
	run_for(fx, 500);
	assert_true(srv.accepted >= 2);
	assert_true(srv.accepted <= 4);
	assert_int_equal(fx->b->last_result, CHECK_RESULT_READ_TIMEOUT);
	check_stop(fx->b);
	fake_close(&srv);
}

static void
test_fall_and_rise(void **state)
{
	struct fixture	*fx = *state;
	struct fake_server srv;
	uint16_t	 port;
	uint64_t	 t0;

	fake_open(&srv, fx->base, "127.0.0.1", 0, 16, true);
	srv.greeting = "220 ready\r\n";
	port = srv.port;
	start_checks(fx, CHECK_FTP, port);
	assert_true(run_until(fx, &srv, is_checked, TEST_MAX_MS));
	assert_true(fx->b->up);

	/* Server gone: down after fall = 2 refused checks. */
	fake_close(&srv);
	t0 = clock_now_ms();
	assert_true(run_until(fx, &srv, is_down, TEST_MAX_MS));
	assert_int_equal(fx->b->last_result, CHECK_RESULT_CONNECT_REFUSED);
	assert_true(clock_now_ms() - t0 >= TEST_INTERVAL);

	/* Back on the same port: up after rise = 2 good checks. */
	fake_open(&srv, fx->base, "127.0.0.1", port, 16, true);
	srv.greeting = "220 back\r\n";
	assert_true(run_until(fx, &srv, is_up, TEST_MAX_MS));
	assert_int_equal(fx->b->last_result, CHECK_RESULT_OK);
	assert_true(srv.accepted >= 2);
	check_stop(fx->b);
	fake_close(&srv);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_account_rise2_fall2),
		cmocka_unit_test(test_account_rise3_fall1),
		cmocka_unit_test(test_account_first_result),
		cmocka_unit_test(test_account_skipped),
		cmocka_unit_test(test_result_str),
		cmocka_unit_test_setup_teardown(test_none, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_ftp_ok, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_ftp_bad_greeting, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_ftp_bad_multiline, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_ftp_garbage, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_ftp_silent, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_ftp_partial_line, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_ftp_closed, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_ftp_half_line, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_ftp_multiline, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_ftp_multiline_body, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_ftp_split, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_ftp_long_lines, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_refused, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_tcp_ok, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_tcp_ipv6, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_connect_timeout, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_internal, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_emfile_keeps_state, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_skip_while_running, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_fall_and_rise, fixture_setup, fixture_teardown),
	};

	log_init(0, "test_check");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
