/*
 * test_metrics.c - unit tests of the Prometheus endpoint: the exposition's
 * format, its values against control_status()'s JSON for the same lbd, label
 * escaping, replication figures, and real HTTP on 127.0.0.1 (GET, 404, 405,
 * garbage, oversized headers, the connection cap, slow clients' deadline, a
 * port already in use).
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <setjmp.h>
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
#include "hasync.h"
#include "testlbd.h"

#define HTTP_DEADLINE_MS	3000		/* an HTTP exchange gives up after this */
#define HTTP_REPLY_MAX		(1 << 20)	/* largest reply read */
#define CAP_CONNS		32		/* metrics.c's METRICS_MAX_CONNS */

/* The daemon under test, built by hand as in test_control.c. */
struct fixture {
	struct lbd	 lbd;		/* what metrics_* and control_* see */
	struct lbd_config conf;		/* its configuration */
	struct metrics	*metrics;	/* the endpoint, when a test opens it */
};

static int
setup(void **state)
{
	struct fixture	*f = calloc(1, sizeof(*f));

	assert_non_null(f);
	tl_node_init(&f->lbd, &f->conf);
	/* The endpoint on loopback, a port of the kernel's choosing. */
	f->conf.metrics_on = true;
	assert_int_equal(addr_parse("127.0.0.1", &f->conf.metrics_addr), 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture	*f = *state;

	metrics_close(f->metrics);
	tl_node_free(&f->lbd);
	free(f);
	return 0;
}

/* ---------------------------------------------------------------- exposition helpers */

/*
 * The value of series (e.g. "lbd_up" or "lbd_role{role=\"MASTER\"}") in
 * text; fails the test when the series is absent or appears twice.
 */
static double
value(const char *text, const char *series)
{
	size_t		 n = strlen(series);
	const char	*p, *hit = NULL;
	char		*end;
	double		 v;

	for (p = text; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, series, n) == 0 && p[n] == ' ') {
			if (hit != NULL)
				fail_msg("series %s appears twice", series);
			hit = p;
		}
	}
	if (hit == NULL)
		fail_msg("series %s missing in:\n%s", series, text);
	v = strtod(hit + n + 1, &end);
	if (end == hit + n + 1 || *end != '\n')
		fail_msg("series %s: bad value", series);
	return v;
}

static bool
has_series(const char *text, const char *series)
{
	size_t		 n = strlen(series);
	const char	*p;

	for (p = text; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, series, n) == 0 && p[n] == ' ')
			return true;
	return false;
}

/* "name{service=\"S\",backend=\"B\"}" into buf. */
static const char *
be_series(char *buf, size_t len, const char *name, const char *svc, const char *be)
{
	snprintf(buf, len, "%s{service=\"%s\",backend=\"%s\"}", name, svc, be);
	return buf;
}

/*
 * Checks the text format: every line ends in \n; each family has exactly
 * one HELP then one TYPE (counter or gauge) before its samples; every
 * sample belongs to the family declared last and has a numeric value;
 * counters end in _total. Returns the number of samples.
 */
static int
check_format(const char *text)
{
	char		 family[160] = "", line[1024], name[128];
	const char	*p = text, *nl;
	char		 seen[8192] = " ";
	int		 samples = 0;
	bool		 help = false;

	assert_true(strlen(text) > 0);
	assert_int_equal(text[strlen(text) - 1], '\n');
	for (; *p != '\0'; p = nl + 1) {
		nl = strchr(p, '\n');
		assert_non_null(nl);
		assert_true((size_t)(nl - p) < sizeof(line));
		memcpy(line, p, (size_t)(nl - p));
		line[nl - p] = '\0';
		if (strncmp(line, "# HELP ", 7) == 0) {
			assert_int_equal(sscanf(line + 7, "%127s", name), 1);
			snprintf(family, sizeof(family), " %s ", name);
			if (strstr(seen, family) != NULL)
				fail_msg("family %s declared twice", name);
			strncat(seen, family + 1, sizeof(seen) - strlen(seen) - 1);
			snprintf(family, sizeof(family), "%s", name);
			help = true;
			continue;
		}
		if (strncmp(line, "# TYPE ", 7) == 0) {
			char	 type[32];

			assert_true(help);
			help = false;
			assert_int_equal(sscanf(line + 7, "%127s %31s", name, type), 2);
			assert_string_equal(name, family);
			assert_true(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0);
			if (strcmp(type, "counter") == 0)
				assert_non_null(strstr(name, "_total"));
			continue;
		}
		assert_false(line[0] == '#');
		{
			size_t	 k = strcspn(line, "{ ");
			char	*sp = strrchr(line, ' '), *end;

			assert_true(strncmp(line, family, k) == 0 && family[k] == '\0');
			assert_true(strncmp(line, "lbd_", 4) == 0);
			assert_non_null(sp);
			strtod(sp + 1, &end);
			assert_true(end != sp + 1 && *end == '\0');
		}
		samples++;
	}
	return samples;
}

/* JSON integer at a path of object keys (NULL-terminated). */
static json_int_t
jint(json_t *o, ...)
{
	va_list		 ap;
	const char	*k;

	va_start(ap, o);
	while ((k = va_arg(ap, const char *)) != NULL)
		o = json_object_get(o, k);
	va_end(ap);
	assert_true(json_is_integer(o));
	return json_integer_value(o);
}

/* ---------------------------------------------------------------- rendering */

static void
test_render_matches_status(void **state)
{
	struct fixture	*f = *state;
	struct service	*svc = &f->lbd.services[0];
	struct service	*svc2;
	struct lbd_ip	 ip;
	json_t		*st, *bes, *b;
	char		*text, s[256], client[32];
	size_t		 i, j;

	/* Traffic and admin states as relay.c and lbctl would leave them. */
	svc->backends[0].active = 3;
	svc->backends[0].total = 10;
	svc->backends[0].bytes_in = 12345;
	svc->backends[0].bytes_out = 6789012345ULL;
	svc->backends[0].connect_failures = 2;
	svc->backends[1].admin = BACKEND_DRAIN;
	svc->backends[1].total = 4;
	svc->active = 3;
	svc->total = 15;
	svc->refused = 1;
	for (i = 0; i < 7; i++) {
		snprintf(client, sizeof(client), "10.0.0.%zu", i + 1);
		assert_int_equal(ip_parse(client, &ip), 0);
		sticky_set(svc->sticky, &ip, (int)(i % 2), now_s());
	}
	svc2 = tl_add_service(&f->lbd, &f->conf, "OTHER", 1);
	svc2->backends[0].up = false;
	assert_int_equal(ip_parse("2001:db8::1", &ip), 0);
	sticky_set(svc2->sticky, &ip, 0, now_s());

	text = metrics_render(&f->lbd);
	assert_non_null(text);
	st = control_status(&f->lbd);
	assert_non_null(st);
	assert_true(check_format(text) > 40);

	assert_int_equal(value(text, "lbd_up"), 1);
	/* Role and VIP as lbctl status says. */
	assert_string_equal(json_string_value(json_object_get(st, "role")), "MASTER");
	assert_int_equal(value(text, "lbd_role{role=\"MASTER\"}"), 1);
	assert_int_equal(value(text, "lbd_role{role=\"BACKUP\"}"), 0);
	assert_int_equal(value(text, "lbd_role{role=\"INIT\"}"), 0);
	assert_int_equal(value(text, "lbd_role{role=\"FAULT\"}"), 0);
	assert_int_equal(value(text, "lbd_vip_held"),
	    json_is_true(json_object_get(json_object_get(st, "vip"), "held")));
	assert_int_equal(value(text, "lbd_role_changes_total"), jint(st, "ha", "role_changes", NULL));
	assert_int_equal(value(text, "lbd_heartbeat_adverts_sent_total"),
	    jint(st, "ha", "adverts_sent", NULL));
	assert_int_equal(value(text, "lbd_heartbeat_adverts_paced_total"),
	    jint(st, "ha", "adverts_paced", NULL));
	assert_int_equal(value(text, "lbd_auth_failures_total{channel=\"heartbeat\"}"),
	    jint(st, "ha", "auth_failures", NULL));
	assert_int_equal(value(text, "lbd_auth_failures_total{channel=\"sync\"}"), 0);
	assert_int_equal(value(text, "lbd_replays_total{channel=\"heartbeat\"}"),
	    jint(st, "ha", "replays", NULL));
	assert_int_equal(value(text, "lbd_malformed_total{channel=\"heartbeat\"}"),
	    jint(st, "ha", "malformed", NULL));
	/* Standalone: no peer, no replication, no lag samples. */
	assert_string_equal(json_string_value(json_object_get(json_object_get(st, "peer"),
	    "state")), "none");
	assert_int_equal(value(text, "lbd_peer_up"), 0);
	assert_false(has_series(text, "lbd_peer_last_advert_ms"));
	assert_int_equal(value(text, "lbd_sync_up"), 0);
	assert_int_equal(value(text, "lbd_sync_state{state=\"none\"}"), 1);
	assert_int_equal(value(text, "lbd_sync_state{state=\"synced\"}"), 0);
	assert_false(has_series(text, "lbd_sync_lag_ms"));
	assert_false(has_series(text, "lbd_sync_lag_p99_ms"));
	assert_string_equal(json_string_value(json_object_get(json_object_get(st, "sync"),
	    "state")), "none");
	assert_int_equal(value(text, "lbd_info{node=\"lb1\"}"), 1);
	/* The pipe memory budget, as status "pipes" says. */
	assert_int_equal(value(text, "lbd_pipe_memory_bytes"), jint(st, "pipes", "bytes", NULL));
	assert_int_equal(value(text, "lbd_pipe_memory_max_bytes"), jint(st, "pipes", "max", NULL));
	assert_int_equal(value(text, "lbd_pipe_memory_peak_bytes"),
	    jint(st, "pipes", "peak", NULL));
	assert_int_equal(value(text, "lbd_pipe_fallbacks_total"),
	    jint(st, "pipes", "fallbacks", NULL));
	assert_int_equal(value(text, "lbd_pipe_resize_refused_total"),
	    jint(st, "pipes", "refused", NULL));

	/* Every backend of every service against the JSON, field by field. */
	bes = json_object_get(st, "services");
	assert_int_equal(json_array_size(bes), 2);
	for (i = 0; i < json_array_size(bes); i++) {
		json_t		*so = json_array_get(bes, i);
		const char	*sn = json_string_value(json_object_get(so, "name"));
		json_t		*bl = json_object_get(so, "backends");

		snprintf(s, sizeof(s), "lbd_service_active_connections{service=\"%s\"}", sn);
		assert_int_equal(value(text, s), jint(so, "active", NULL));
		snprintf(s, sizeof(s), "lbd_service_connections_total{service=\"%s\"}", sn);
		assert_int_equal(value(text, s), jint(so, "total", NULL));
		snprintf(s, sizeof(s), "lbd_service_refused_total{service=\"%s\"}", sn);
		assert_int_equal(value(text, s), jint(so, "refused", NULL));
		snprintf(s, sizeof(s), "lbd_sticky_entries{service=\"%s\"}", sn);
		assert_int_equal(value(text, s), jint(so, "sticky_entries", NULL));
		snprintf(s, sizeof(s), "lbd_sticky_evictions_total{service=\"%s\"}", sn);
		assert_int_equal(value(text, s), jint(so, "sticky_evictions", NULL));
		for (j = 0; j < json_array_size(bl); j++) {
			const char *bn, *bstate;
			const char *const states[] = { "up", "down", "drain", "disabled" };
			int	 k;

			b = json_array_get(bl, j);
			bn = json_string_value(json_object_get(b, "name"));
			bstate = json_string_value(json_object_get(b, "state"));
			assert_int_equal(value(text, be_series(s, sizeof(s),
			    "lbd_backend_active_connections", sn, bn)), jint(b, "active", NULL));
			assert_int_equal(value(text, be_series(s, sizeof(s),
			    "lbd_backend_connections_total", sn, bn)), jint(b, "total", NULL));
			assert_int_equal(value(text, be_series(s, sizeof(s),
			    "lbd_backend_bytes_in_total", sn, bn)), jint(b, "bytes_in", NULL));
			assert_true(value(text, be_series(s, sizeof(s),
			    "lbd_backend_bytes_out_total", sn, bn)) ==
			    (double)jint(b, "bytes_out", NULL));
			assert_int_equal(value(text, be_series(s, sizeof(s),
			    "lbd_backend_connect_failures_total", sn, bn)),
			    jint(b, "connect_failures", NULL));
			for (k = 0; k < 4; k++) {
				snprintf(s, sizeof(s), "lbd_backend_state{service=\"%s\","
				    "backend=\"%s\",state=\"%s\"}", sn, bn, states[k]);
				assert_int_equal(value(text, s), strcmp(states[k], bstate) == 0);
			}
		}
	}
	/* The figures set above, so the comparison is not 0 == 0. */
	assert_int_equal(value(text, be_series(s, sizeof(s), "lbd_backend_active_connections",
	    "FTPS_VIP", "FTP_SVR1")), 3);
	assert_true(value(text, be_series(s, sizeof(s), "lbd_backend_bytes_out_total",
	    "FTPS_VIP", "FTP_SVR1")) == 6789012345.0);
	assert_int_equal(value(text, "lbd_sticky_entries{service=\"FTPS_VIP\"}"), 7);
	assert_int_equal(value(text, "lbd_sticky_entries{service=\"OTHER\"}"), 1);
	assert_int_equal(jint(st, "sync", "entries", NULL), 8);
	assert_int_equal(value(text, "lbd_backend_state{service=\"FTPS_VIP\",backend=\"FTP_SVR2\","
	    "state=\"drain\"}"), 1);
	assert_int_equal(value(text, "lbd_backend_up{service=\"FTPS_VIP\",backend=\"FTP_SVR2\"}"), 1);
	assert_int_equal(value(text, "lbd_backend_up{service=\"OTHER\",backend=\"FTP_SVR1\"}"), 0);
	assert_int_equal(value(text, "lbd_backend_state{service=\"OTHER\",backend=\"FTP_SVR1\","
	    "state=\"down\"}"), 1);
	json_decref(st);
	free(text);
}

/* A backend a reload removed is exported while its connections finish, then not. */
static void
test_render_removed_backend(void **state)
{
	struct fixture	*f = *state;
	struct service	*svc = &f->lbd.services[0];
	char		*text;

	svc->conf.nbackends = 1;		/* FTP_SVR2 left the config */
	svc->backends[1].admin = BACKEND_DISABLED;
	svc->backends[1].active = 1;
	assert_non_null(text = metrics_render(&f->lbd));
	check_format(text);
	assert_int_equal(value(text, "lbd_backend_up{service=\"FTPS_VIP\",backend=\"FTP_SVR2\"}"), 1);
	free(text);
	svc->backends[1].active = 0;
	assert_non_null(text = metrics_render(&f->lbd));
	check_format(text);
	assert_null(strstr(text, "backend=\"FTP_SVR2\""));
	assert_int_equal(value(text, "lbd_backend_up{service=\"FTPS_VIP\",backend=\"FTP_SVR1\"}"), 1);
	free(text);
	svc->conf.nbackends = 2;
}

/* Without a heartbeat (before cluster_open): role INIT, nothing held. */
static void
test_render_without_ha(void **state)
{
	struct fixture	*f = *state;
	char		*text;

	hasync_free(f->lbd.ha);
	f->lbd.ha = NULL;
	text = metrics_render(&f->lbd);
	assert_non_null(text);
	check_format(text);
	assert_int_equal(value(text, "lbd_role{role=\"INIT\"}"), 1);
	assert_int_equal(value(text, "lbd_role{role=\"MASTER\"}"), 0);
	assert_int_equal(value(text, "lbd_vip_held"), 0);
	assert_int_equal(value(text, "lbd_peer_up"), 0);
	free(text);
}

/* Label values are escaped: \ as \\, " as \", newline as \n. */
static void
test_label_escaping(void **state)
{
	struct fixture	*f = *state;
	struct service	*svc = &f->lbd.services[0];
	char		*text;

	snprintf(svc->conf.name, sizeof(svc->conf.name), "a\"b\\c\nd");
	svc->backends[0].active = 5;
	text = metrics_render(&f->lbd);
	assert_non_null(text);
	check_format(text);
	assert_int_equal(value(text, "lbd_backend_active_connections{service=\"a\\\"b\\\\c\\nd\","
	    "backend=\"FTP_SVR1\"}"), 5);
	free(text);
}

/* Transport of the sync layer that drops frames (the channel stays "up"). */
static int
drop_send(void *arg, const struct Lbd__SyncFrame *fr)
{
	return 0;
}

static size_t
drop_queued(void *arg)
{
	return 0;
}

/* A paired node: sync figures and the sync channel label against the JSON. */
static void
test_render_sync(void **state)
{
	struct fixture	*f = *state;
	struct sync_transport t = { drop_send, drop_queued };
	struct lbd_ip	 ip;
	json_t		*st, *sj;
	char		*text, s[96];
	const char	*states[] = { "none", "down", "connecting", "bulk", "synced" };
	int		 i;

	f->conf.has_peer = true;
	snprintf(f->conf.peer_name, sizeof(f->conf.peer_name), "lb2");
	for (i = 0; i < 5; i++) {
		char	 c[32];

		snprintf(c, sizeof(c), "10.1.0.%d", i + 1);
		assert_int_equal(ip_parse(c, &ip), 0);
		sticky_set(f->lbd.services[0].sticky, &ip, 0, now_s());
	}
	assert_int_equal(replica_init(&f->lbd), 0);
	sync_set_transport(replica_sync(&f->lbd), &t, NULL);
	sync_on_up(replica_sync(&f->lbd));
	for (i = 0; i < 20; i++)
		event_base_loop(f->lbd.base, EVLOOP_NONBLOCK);

	text = metrics_render(&f->lbd);
	assert_non_null(text);
	st = control_status(&f->lbd);
	sj = json_object_get(st, "sync");
	check_format(text);
	for (i = 0; i < 5; i++) {
		snprintf(s, sizeof(s), "lbd_sync_state{state=\"%s\"}", states[i]);
		assert_int_equal(value(text, s), strcmp(states[i],
		    json_string_value(json_object_get(sj, "state"))) == 0);
	}
	assert_int_equal(value(text, "lbd_sync_up"),
	    strcmp(json_string_value(json_object_get(sj, "state")), "synced") == 0);
	assert_int_equal(value(text, "lbd_sync_entries_sent_total"),
	    jint(sj, "entries_sent", NULL));
	assert_int_equal(jint(sj, "entries_sent", NULL), 5);	/* the bulk went out */
	assert_int_equal(value(text, "lbd_sync_entries_received_total"),
	    jint(sj, "entries_received", NULL));
	/* No ack yet: no lag to show, as JSON's null. */
	assert_true(json_is_null(json_object_get(sj, "lag_ms")));
	assert_false(has_series(text, "lbd_sync_lag_ms"));
	/* A test transport has no channel: the sync channel's counters are 0. */
	assert_int_equal(value(text, "lbd_auth_failures_total{channel=\"sync\"}"), 0);
	json_decref(st);
	free(text);
}

/* ---------------------------------------------------------------- HTTP */

/* A connected, non-blocking TCP socket to the endpoint. */
static int
http_connect(struct fixture *f)
{
	struct sockaddr_in sin;
	int		 fd;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(metrics_port(f->metrics));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_not_equal(fd, -1);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	return fd;
}

static void
http_send(int fd, const char *req, size_t len)
{
	assert_int_equal(send(fd, req, len, MSG_NOSIGNAL), (ssize_t)len);
}

/*
 * Runs the event loop and reads fd until the server closes it, or, with
 * until != NULL, until that text has arrived. Returns the bytes read
 * (malloc'ed, NUL-terminated).
 */
static char *
http_read(struct fixture *f, int fd, const char *until)
{
	char		*buf = calloc(1, HTTP_REPLY_MAX + 1);
	size_t		 len = 0;
	uint64_t	 deadline = clock_now_ms() + HTTP_DEADLINE_MS;
	ssize_t		 n;
	struct pollfd	 pfd = { .fd = fd, .events = POLLIN };

	assert_non_null(buf);
	while (clock_now_ms() < deadline) {
		event_base_loop(f->lbd.base, EVLOOP_NONBLOCK);
		if (poll(&pfd, 1, 5) == -1)
			break;
		n = recv(fd, buf + len, HTTP_REPLY_MAX - len, MSG_DONTWAIT);
		if (n == 0)
			return buf;
		if (n == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				continue;
			if (errno == ECONNRESET)
				return buf;
			fail_msg("recv: %s", strerror(errno));
		}
		len += (size_t)n;
		buf[len] = '\0';
		assert_true(len < HTTP_REPLY_MAX);
		if (until != NULL && strstr(buf, until) != NULL)
			return buf;
	}
	free(buf);
	fail_msg("no complete reply within %d ms", HTTP_DEADLINE_MS);
	return NULL;
}

/* One request on a new connection; returns the whole reply. */
static char *
http_exchange(struct fixture *f, const char *req, size_t len)
{
	int	 fd = http_connect(f);
	char	*reply;

	http_send(fd, req, len);
	reply = http_read(f, fd, NULL);
	close(fd);
	return reply;
}

/* The status code of an HTTP reply. */
static int
http_status(const char *reply)
{
	int	 code = 0;

	if (sscanf(reply, "HTTP/1.%*d %d", &code) != 1)
		fail_msg("not an HTTP reply: \"%.80s\"", reply);
	return code;
}

static void
open_endpoint(struct fixture *f)
{
	f->metrics = metrics_open(&f->lbd);
	assert_non_null(f->metrics);
	assert_int_not_equal(metrics_port(f->metrics), 0);
}

static void
test_http_get(void **state)
{
	struct fixture	*f = *state;
	static const char req[] = "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n";
	char		*reply, *body;

	f->lbd.services[0].backends[0].total = 42;
	open_endpoint(f);
	reply = http_exchange(f, req, sizeof(req) - 1);
	assert_int_equal(http_status(reply), 200);
	assert_non_null(strstr(reply, "Content-Type: text/plain; version=0.0.4"));
	body = strstr(reply, "\r\n\r\n");
	assert_non_null(body);
	body += 4;
	check_format(body);
	assert_int_equal(value(body, "lbd_up"), 1);
	assert_int_equal(value(body, "lbd_role{role=\"MASTER\"}"), 1);
	assert_int_equal(value(body, "lbd_backend_connections_total{service=\"FTPS_VIP\","
	    "backend=\"FTP_SVR1\"}"), 42);
	free(reply);

	/* A query string is fine; the path decides. */
	reply = http_exchange(f, "GET /metrics?x=1 HTTP/1.0\r\n\r\n", 29);
	assert_int_equal(http_status(reply), 200);
	free(reply);
}

static void
test_http_errors(void **state)
{
	struct fixture	*f = *state;
	static const char nf[] = "GET /x HTTP/1.0\r\n\r\n";
	static const char root[] = "GET / HTTP/1.0\r\n\r\n";
	static const char post[] = "POST /metrics HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc";
	static const char put[] = "PUT /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n";
	static const char opt[] = "OPTIONS /metrics HTTP/1.0\r\n\r\n";
	static const char head[] = "HEAD /metrics HTTP/1.0\r\n\r\n";
	static const char ok[] = "GET /metrics HTTP/1.0\r\n\r\n";
	char		*reply;

	open_endpoint(f);
	reply = http_exchange(f, nf, sizeof(nf) - 1);
	assert_int_equal(http_status(reply), 404);
	free(reply);
	reply = http_exchange(f, root, sizeof(root) - 1);
	assert_int_equal(http_status(reply), 404);
	free(reply);
	reply = http_exchange(f, post, sizeof(post) - 1);
	assert_int_equal(http_status(reply), 405);
	assert_non_null(strstr(reply, "Allow: GET"));
	free(reply);
	reply = http_exchange(f, put, sizeof(put) - 1);
	assert_int_equal(http_status(reply), 405);
	free(reply);
	reply = http_exchange(f, opt, sizeof(opt) - 1);
	assert_int_equal(http_status(reply), 405);
	free(reply);
	reply = http_exchange(f, head, sizeof(head) - 1);
	assert_int_equal(http_status(reply), 405);
	free(reply);
	/* Still serving. */
	reply = http_exchange(f, ok, sizeof(ok) - 1);
	assert_int_equal(http_status(reply), 200);
	free(reply);
}

/* Garbage, binary, oversized and half-sent requests: no crash, still serving. */
static void
test_http_garbage(void **state)
{
	struct fixture	*f = *state;
	static const char ok[] = "GET /metrics HTTP/1.0\r\n\r\n";
	static const char bin[] = "\x01\x02\xff\xfe\r\n\r\n\x00zz";
	static const char bad1[] = "hello there\r\n\r\n";
	static const char bad2[] = "GET /metrics HTTP/9.9\r\n\r\n";
	static const char bad3[] = "GET /metrics HTTP/1.0\r\nno colon here\r\n\r\n";
	static const char bigbody[] = "POST /metrics HTTP/1.0\r\nContent-Length: 99999999\r\n\r\n";
	char		*reply, *big;
	size_t		 n = 16384;
	int		 fd;

	open_endpoint(f);
	free(http_exchange(f, bin, sizeof(bin) - 1));
	free(http_exchange(f, bad1, sizeof(bad1) - 1));
	free(http_exchange(f, bad2, sizeof(bad2) - 1));
	free(http_exchange(f, bad3, sizeof(bad3) - 1));
	/* A body over the limit is refused before it is read. */
	reply = http_exchange(f, bigbody, sizeof(bigbody) - 1);
	assert_true(reply[0] == '\0' || http_status(reply) == 413 || http_status(reply) == 405);
	free(reply);
	/* Headers over 8 KiB: refused, connection closed. */
	big = malloc(n + 64);
	assert_non_null(big);
	memcpy(big, "GET /metrics HTTP/1.0\r\nX-Big: ", 30);
	memset(big + 30, 'a', n);
	memcpy(big + 30 + n, "\r\n\r\n", 4);
	fd = http_connect(f);
	/* The server may close before reading everything: a short send is fine. */
	(void)send(fd, big, 30 + n + 4, MSG_NOSIGNAL | MSG_DONTWAIT);
	reply = http_read(f, fd, NULL);
	assert_true(reply[0] == '\0' || http_status(reply) >= 400);
	assert_null(strstr(reply, "lbd_up"));
	free(reply);
	close(fd);
	free(big);
	/* A client that connects, sends half a line and leaves. */
	fd = http_connect(f);
	http_send(fd, "GET /met", 8);
	event_base_loop(f->lbd.base, EVLOOP_NONBLOCK);
	close(fd);
	event_base_loop(f->lbd.base, EVLOOP_NONBLOCK);
	reply = http_exchange(f, ok, sizeof(ok) - 1);
	assert_int_equal(http_status(reply), 200);
	free(reply);
}

/*
 * Keep-alive connections past the cap: accept pauses, so the next one waits
 * in the backlog; it is served once a counted connection closes.
 */
static void
test_http_connection_cap(void **state)
{
	struct fixture	*f = *state;
	static const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
	int		 fds[CAP_CONNS], extra, i;
	char		*reply;
	uint64_t	 until;

	open_endpoint(f);
	for (i = 0; i < CAP_CONNS; i++) {
		fds[i] = http_connect(f);
		http_send(fds[i], req, sizeof(req) - 1);
		reply = http_read(f, fds[i], "lbd_sticky_evictions_total{service=\"FTPS_VIP\"}");
		assert_int_equal(http_status(reply), 200);
		free(reply);
	}
	extra = http_connect(f);
	http_send(extra, req, sizeof(req) - 1);
	until = clock_now_ms() + 300;
	while (clock_now_ms() < until) {
		char	 c;

		event_base_loop(f->lbd.base, EVLOOP_NONBLOCK);
		assert_int_equal(recv(extra, &c, 1, MSG_DONTWAIT | MSG_PEEK), -1);
		assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
		usleep(5000);
	}
	close(fds[0]);
	reply = http_read(f, extra, "lbd_sticky_evictions_total{service=\"FTPS_VIP\"}");
	assert_int_equal(http_status(reply), 200);
	free(reply);
	close(extra);
	for (i = 1; i < CAP_CONNS; i++)
		close(fds[i]);
	for (i = 0; i < 10; i++)
		event_base_loop(f->lbd.base, EVLOOP_NONBLOCK);
}

/* Descriptors open in this process. */
static int
count_fds(void)
{
	int	 fd, n = 0;

	for (fd = 0; fd < 4096; fd++)
		if (fcntl(fd, F_GETFD) != -1)
			n++;
	return n;
}

/* A non-blocking TCP connect to the endpoint, possibly still in progress. */
static int
http_connect_nb(struct fixture *f)
{
	struct sockaddr_in sin;
	int		 fd;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(metrics_port(f->metrics));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_int_not_equal(fd, -1);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1)
		assert_int_equal(errno, EINPROGRESS);
	return fd;
}

/*
 * SLOW_CLIENTS clients trickle a request a byte every 200 ms and never end
 * it. Counted from accept, at most CAP_CONNS are open at once (the rest wait
 * in the backlog); each is closed at its deadline from accept (1 s here)
 * whatever it sends; a normal scrape that arrives meanwhile is served.
 */
#define SLOW_CLIENTS	60		/* slowloris clients */
#define SLOW_DEADLINE_MS 1000		/* metrics_request_timeout_ms for this test */
static void
test_http_slow_clients(void **state)
{
	struct fixture	*f = *state;
	static const char head[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ";
	static const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
	struct metrics_status ms;
	int		 fds[SLOW_CLIENTS], sent[SLOW_CLIENTS], i, nclosed = 0, early = 0;
	int		 closed_first = 0, normal, normal_sent = 0, max_open = 0, fds_before;
	uint64_t	 closed_at[SLOW_CLIENTS], start, next, normal_done = 0, normal_at = 0;
	char		 c, *reply = calloc(1, HTTP_REPLY_MAX + 1);
	size_t		 rlen = 0;
	ssize_t		 n;
	char		*text;

	assert_non_null(reply);
	f->conf.metrics_request_timeout_ms = SLOW_DEADLINE_MS;
	open_endpoint(f);
	fds_before = count_fds();
	for (i = 0; i < SLOW_CLIENTS; i++) {
		fds[i] = http_connect_nb(f);
		sent[i] = 0;
		closed_at[i] = 0;
		event_base_loop(f->lbd.base, EVLOOP_NONBLOCK);
	}
	start = clock_now_ms();
	next = start;
	normal = -1;
	while (clock_now_ms() < start + 6000 && (nclosed < SLOW_CLIENTS || normal_done == 0)) {
		uint64_t now = clock_now_ms();

		/* The normal scrape comes once the slow clients hold every slot. */
		metrics_get_status(f->metrics, &ms);
		if (normal == -1 && ms.connections == CAP_CONNS) {
			normal = http_connect_nb(f);
			normal_at = now;
		}
		if (now >= next) {
			/* One byte more from every slow client still open. */
			for (i = 0; i < SLOW_CLIENTS; i++) {
				if (closed_at[i] != 0)
					continue;
				c = sent[i] < (int)sizeof(head) - 1 ? head[sent[i]] : 'a';
				if (send(fds[i], &c, 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1)
					sent[i]++;
			}
			next += 200;
		}
		event_base_loop(f->lbd.base, EVLOOP_NONBLOCK);
		metrics_get_status(f->metrics, &ms);
		if ((int)ms.connections > max_open)
			max_open = (int)ms.connections;
		for (i = 0; i < SLOW_CLIENTS; i++) {
			if (closed_at[i] != 0)
				continue;
			n = recv(fds[i], &c, 1, MSG_DONTWAIT);
			if (n == 0 || (n == -1 && (errno == ECONNRESET || errno == EPIPE))) {
				closed_at[i] = clock_now_ms();
				nclosed++;
				if (closed_at[i] - start < SLOW_DEADLINE_MS - 100)
					early++;
				if (closed_at[i] - start < SLOW_DEADLINE_MS + 600)
					closed_first++;
			} else
				assert_int_equal(n, -1);	/* no reply to a request never finished */
		}
		if (normal != -1 && normal_done == 0) {
			if (!normal_sent && send(normal, req, sizeof(req) - 1,
			    MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)sizeof(req) - 1)
				normal_sent = 1;
			n = recv(normal, reply + rlen, HTTP_REPLY_MAX - rlen, MSG_DONTWAIT);
			if (n > 0)
				rlen += (size_t)n;
			else if (n == 0)
				normal_done = clock_now_ms();
		}
		usleep(2000);
	}
	/* Never more than the cap open, counted from accept. */
	assert_true(max_open <= CAP_CONNS);
	assert_int_equal(max_open, CAP_CONNS);
	/* The first CAP_CONNS went at their deadline, although each kept sending. */
	assert_int_equal(early, 0);
	assert_true(closed_first >= CAP_CONNS);
	assert_int_equal(nclosed, SLOW_CLIENTS);
	/* The scrape that queued behind them got its reply. */
	assert_int_not_equal(normal, -1);
	assert_int_not_equal(normal_done, 0);
	/* It waited in the backlog for a slot: the cap held. */
	assert_true(normal_done - start >= SLOW_DEADLINE_MS - 100);
	print_message("slow clients: all %d slots held at %" PRIu64 " ms, the scrape behind "
	    "them served at %" PRIu64 " ms, the last slow client closed at %" PRIu64 " ms\n",
	    CAP_CONNS, normal_at - start, normal_done - start, clock_now_ms() - start);
	reply[rlen] = '\0';
	assert_int_equal(http_status(reply), 200);
	assert_non_null(strstr(reply, "lbd_metrics_timeouts_total "));
	metrics_get_status(f->metrics, &ms);
	assert_int_equal(ms.timeouts, SLOW_CLIENTS);
	assert_true(ms.cap_reached >= 1);
	assert_int_equal(ms.max_connections, CAP_CONNS);
	assert_int_equal(ms.request_timeout_ms, SLOW_DEADLINE_MS);
	free(reply);
	close(normal);
	for (i = 0; i < SLOW_CLIENTS; i++)
		close(fds[i]);
	for (i = 0; i < 10; i++)
		event_base_loop(f->lbd.base, EVLOOP_NONBLOCK);
	metrics_get_status(f->metrics, &ms);
	assert_int_equal(ms.connections, 0);
	/* Every server-side descriptor was closed too. */
	assert_int_equal(count_fds(), fds_before);
	/* The counters in the exposition and in status. */
	f->lbd.metrics = f->metrics;
	text = metrics_render(&f->lbd);
	assert_non_null(text);
	assert_int_equal(value(text, "lbd_metrics_timeouts_total"), SLOW_CLIENTS);
	assert_int_equal(value(text, "lbd_metrics_connections"), 0);
	free(text);
	f->lbd.metrics = NULL;
}

/* A port in use: metrics_open fails (lbd then refuses to start). */
static void
test_port_in_use(void **state)
{
	struct fixture	*f = *state;
	struct metrics	*second;

	open_endpoint(f);
	addr_set_port(&f->conf.metrics_addr, metrics_port(f->metrics));
	second = metrics_open(&f->lbd);
	assert_null(second);
	addr_set_port(&f->conf.metrics_addr, 0);
}

/* [::1] works too; without an IPv6 loopback the test fails. */
static void
test_ipv6(void **state)
{
	struct fixture	*f = *state;
	struct sockaddr_in6 sin6;
	char		*reply;
	int		 fd;

	assert_int_equal(addr_parse("::1", &f->conf.metrics_addr), 0);
	f->metrics = metrics_open(&f->lbd);
	/* The test machines and CI have ::1 on lo: a failure here is a failure, not a skip. */
	if (f->metrics == NULL)
		fail_msg("metrics_open on [::1] failed: IPv6 loopback missing on lo? "
		    "(ip -6 addr show lo should list ::1/128)");
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(metrics_port(f->metrics));
	sin6.sin6_addr = in6addr_loopback;
	fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_not_equal(fd, -1);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin6, sizeof(sin6)), 0);
	assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	http_send(fd, "GET /metrics HTTP/1.0\r\n\r\n", 25);
	reply = http_read(f, fd, NULL);
	assert_int_equal(http_status(reply), 200);
	free(reply);
	close(fd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_render_matches_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_render_without_ha, setup, teardown),
		cmocka_unit_test_setup_teardown(test_render_removed_backend, setup, teardown),
		cmocka_unit_test_setup_teardown(test_label_escaping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_render_sync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_http_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_http_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_http_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_http_connection_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_http_slow_clients, setup, teardown),
		cmocka_unit_test_setup_teardown(test_port_in_use, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ipv6, setup, teardown),
	};

	log_init(1, "test_metrics");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
