/*
 * test_control.c - unit tests of the control socket: the JSON shape of every
 * command, sticky and admin round trips, bad input, and the real UNIX
 * socket (mode, request/reply, garbage, monitor, the monitor cap, a slow
 * client's deadline, stale and live sockets).
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
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
#include "hasync.h"
#include "testlbd.h"

#define REPLY_MAX	(1 << 20)	/* largest reply a socket test reads */
#define LOOP_DEADLINE_MS 3000		/* a socket test gives up after this */
#define PEER_UID	65534		/* the forked clients of the access test (nobody) */

/* The daemon under test: built by hand, no sockets unless a test opens them. */
struct fixture {
	struct lbd	 lbd;		/* what control_* sees */
	struct lbd_config conf;		/* its configuration */
	char		 dir[64];	/* temp dir of the socket tests, or "" */
};

static int
setup(void **state)
{
	struct fixture	*f = calloc(1, sizeof(*f));

	assert_non_null(f);
	tl_node_init(&f->lbd, &f->conf);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture	*f = *state;

	if (f->lbd.control != NULL)
		control_close(f->lbd.control);
	tl_node_free(&f->lbd);
	if (f->dir[0] != '\0') {
		/* Leftovers of a test that failed half-way. */
		char	 sub[128];

		snprintf(sub, sizeof(sub), "%s/run/s", f->dir);
		unlink(sub);
		snprintf(sub, sizeof(sub), "%s/run", f->dir);
		unlink(sub);
		rmdir(sub);
		rmdir(f->dir);
	}
	free(f);
	return 0;
}

/* Runs line; returns the reply, asserting it is an object. */
static json_t *
run(struct fixture *f, const char *line)
{
	bool	 monitor = true;
	json_t	*r = control_handle(&f->lbd, line, &monitor);

	assert_non_null(r);
	assert_true(json_is_object(r));
	if (!json_is_string(json_object_get(r, "monitor")))
		assert_false(monitor);
	return r;
}

/* Asserts line fails with an error that contains want; frees the reply. */
static void
expect_error(struct fixture *f, const char *line, const char *want)
{
	json_t		*r = run(f, line);
	json_t		*e = json_object_get(r, "error");

	assert_true(json_is_string(e));
	if (strstr(json_string_value(e), want) == NULL)
		fail_msg("\"%s\": error \"%s\" lacks \"%s\"", line, json_string_value(e), want);
	json_decref(r);
}

static struct lbd_ip
ip(const char *s)
{
	struct lbd_ip	 a;

	assert_int_equal(ip_parse(s, &a), 0);
	return a;
}

/* o[key] exists and has JSON type t. */
static void
expect_type(json_t *o, const char *key, json_type t)
{
	json_t	*v = json_object_get(o, key);

	if (v == NULL)
		fail_msg("key \"%s\" missing", key);
	if (json_typeof(v) != t)
		fail_msg("key \"%s\" has type %d, want %d", key, json_typeof(v), t);
}

/* ---------------------------------------------------------------- status */

static void
test_status_shape(void **state)
{
	struct fixture	*f = *state;
	json_t		*r, *vip, *peer, *sync, *svc, *b;
	struct lbd_ip	 a = ip("10.0.0.1");

	sticky_set(f->lbd.services[0].sticky, &a, 1, now_s());
	f->lbd.services[0].backends[0].active = 3;
	f->lbd.services[0].backends[0].total = 7;
	f->lbd.services[0].backends[1].up = false;
	f->lbd.services[0].backends[1].last_result = CHECK_RESULT_CONNECT_REFUSED;

	r = run(f, "status");
	expect_type(r, "node", JSON_STRING);
	assert_string_equal(json_string_value(json_object_get(r, "node")), "lb1");
	expect_type(r, "role", JSON_STRING);
	assert_string_equal(json_string_value(json_object_get(r, "role")), "MASTER");
	expect_type(r, "priority", JSON_INTEGER);
	assert_int_equal(json_integer_value(json_object_get(r, "priority")), 150);
	expect_type(r, "uptime_s", JSON_INTEGER);
	expect_type(r, "relay_threads", JSON_INTEGER);	/* no relay_init here: 0 */
	assert_int_equal(json_integer_value(json_object_get(r, "relay_threads")), 0);
	expect_type(r, "pipes", JSON_OBJECT);	/* the pipe memory budget */
	{
		const char *keys[] = { "bytes", "max", "peak", "fallbacks", "refused",
		    "pipe_size" };
		size_t	 k;

		for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
			expect_type(json_object_get(r, "pipes"), keys[k], JSON_INTEGER);
	}
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "pipes"),
	    "pipe_size")), 1024 * 1024);

	expect_type(r, "vip", JSON_OBJECT);
	vip = json_object_get(r, "vip");
	expect_type(vip, "address", JSON_STRING);
	assert_string_equal(json_string_value(json_object_get(vip, "address")), "192.168.86.87/24");
	expect_type(vip, "interface", JSON_STRING);
	expect_type(vip, "held", JSON_FALSE);

	expect_type(r, "peer", JSON_OBJECT);
	peer = json_object_get(r, "peer");
	expect_type(peer, "name", JSON_NULL);
	expect_type(peer, "state", JSON_STRING);
	assert_string_equal(json_string_value(json_object_get(peer, "state")), "none");
	expect_type(peer, "priority", JSON_NULL);
	expect_type(peer, "last_advert_ms", JSON_NULL);

	expect_type(r, "sync", JSON_OBJECT);
	sync = json_object_get(r, "sync");
	expect_type(sync, "state", JSON_STRING);
	expect_type(sync, "entries", JSON_INTEGER);
	assert_int_equal(json_integer_value(json_object_get(sync, "entries")), 1);
	expect_type(sync, "lag_ms", JSON_NULL);

	expect_type(r, "services", JSON_ARRAY);
	assert_int_equal(json_array_size(json_object_get(r, "services")), 1);
	svc = json_array_get(json_object_get(r, "services"), 0);
	expect_type(svc, "name", JSON_STRING);
	assert_string_equal(json_string_value(json_object_get(svc, "name")), "FTPS_VIP");
	expect_type(svc, "ports", JSON_ARRAY);
	assert_int_equal(json_array_size(json_object_get(svc, "ports")), 3);
	assert_string_equal(json_string_value(json_array_get(json_object_get(svc, "ports"), 2)),
	    "1025-1052");
	expect_type(svc, "scheduler", JSON_STRING);
	expect_type(svc, "active", JSON_INTEGER);
	expect_type(svc, "total", JSON_INTEGER);
	expect_type(svc, "refused", JSON_INTEGER);
	expect_type(svc, "sticky_entries", JSON_INTEGER);
	expect_type(svc, "sticky_evictions", JSON_INTEGER);
	expect_type(svc, "backends", JSON_ARRAY);
	assert_int_equal(json_array_size(json_object_get(svc, "backends")), 2);

	b = json_array_get(json_object_get(svc, "backends"), 0);
	expect_type(b, "name", JSON_STRING);
	assert_string_equal(json_string_value(json_object_get(b, "name")), "FTP_SVR1");
	expect_type(b, "address", JSON_STRING);
	assert_string_equal(json_string_value(json_object_get(b, "address")), "192.168.86.50");
	expect_type(b, "state", JSON_STRING);
	assert_string_equal(json_string_value(json_object_get(b, "state")), "up");
	expect_type(b, "admin", JSON_STRING);
	expect_type(b, "active", JSON_INTEGER);
	assert_int_equal(json_integer_value(json_object_get(b, "active")), 3);
	expect_type(b, "total", JSON_INTEGER);
	assert_int_equal(json_integer_value(json_object_get(b, "total")), 7);
	expect_type(b, "bytes_in", JSON_INTEGER);
	expect_type(b, "bytes_out", JSON_INTEGER);
	expect_type(b, "last_check", JSON_STRING);
	expect_type(b, "weight", JSON_INTEGER);

	b = json_array_get(json_object_get(svc, "backends"), 1);
	assert_string_equal(json_string_value(json_object_get(b, "state")), "down");
	assert_string_equal(json_string_value(json_object_get(b, "last_check")), "connect refused");
	json_decref(r);

	/* With a peer in the config, before the heartbeat has started. */
	hasync_free(f->lbd.ha);
	f->lbd.ha = NULL;
	f->conf.has_peer = true;
	snprintf(f->conf.peer_name, sizeof(f->conf.peer_name), "lb2");
	r = run(f, "status");
	peer = json_object_get(r, "peer");
	assert_string_equal(json_string_value(json_object_get(peer, "name")), "lb2");
	assert_string_equal(json_string_value(json_object_get(peer, "state")), "unknown");
	json_decref(r);
}

static void
test_backends_shape(void **state)
{
	struct fixture	*f = *state;
	json_t		*r, *list, *b;
	const char	*keys[] = { "service", "name", "address", "state", "admin", "removed",
			    "active", "total", "bytes_in", "bytes_out", "connect_failures",
			    "last_check", "last_check_age_ms", "weight" };
	size_t		 i;

	f->lbd.services[0].backends[1].bytes_in = 12345678901ULL;
	f->lbd.services[0].backends[1].checked = false;
	r = run(f, "backends");
	list = json_object_get(r, "backends");
	assert_true(json_is_array(list));
	assert_int_equal(json_array_size(list), 2);
	b = json_array_get(list, 0);
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (json_object_get(b, keys[i]) == NULL)
			fail_msg("backends: key \"%s\" missing", keys[i]);
	assert_string_equal(json_string_value(json_object_get(b, "service")), "FTPS_VIP");
	assert_true(json_is_integer(json_object_get(b, "last_check_age_ms")));
	b = json_array_get(list, 1);
	assert_int_equal(json_integer_value(json_object_get(b, "bytes_in")), 12345678901LL);
	assert_true(json_is_null(json_object_get(b, "last_check_age_ms")));
	json_decref(r);

	expect_error(f, "backends extra", "takes no arguments");
	expect_error(f, "status now", "takes no arguments");
}

/* A backend a reload removed is listed while its connections finish, then not. */
static void
test_backends_removed(void **state)
{
	struct fixture	*f = *state;
	struct service	*svc = &f->lbd.services[0];
	json_t		*r, *list, *b;

	svc->conf.nbackends = 1;		/* FTP_SVR2 left the config */
	svc->backends[1].admin = BACKEND_DISABLED;
	svc->backends[1].active = 2;
	r = run(f, "backends");
	list = json_object_get(r, "backends");
	assert_int_equal(json_array_size(list), 2);
	assert_true(json_is_false(json_object_get(json_array_get(list, 0), "removed")));
	b = json_array_get(list, 1);
	assert_string_equal(json_string_value(json_object_get(b, "name")), "FTP_SVR2");
	assert_true(json_is_true(json_object_get(b, "removed")));
	json_decref(r);

	svc->backends[1].active = 0;		/* its last connection ended */
	r = run(f, "backends");
	list = json_object_get(r, "backends");
	assert_int_equal(json_array_size(list), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "name")),
	    "FTP_SVR1");
	json_decref(r);
	r = run(f, "status");
	list = json_object_get(json_array_get(json_object_get(r, "services"), 0), "backends");
	assert_int_equal(json_array_size(list), 1);
	json_decref(r);
	svc->conf.nbackends = 2;
}

/* ---------------------------------------------------------------- sticky */

static void
test_sticky_round_trip(void **state)
{
	struct fixture	*f = *state;
	struct sticky_table *t = f->lbd.services[0].sticky;
	struct lbd_ip	 a = ip("10.0.0.1"), b6 = ip("2001:db8::7");
	json_t		*r, *e;

	r = run(f, "sticky list");
	assert_int_equal(json_array_size(json_object_get(r, "entries")), 0);
	json_decref(r);

	sticky_set(t, &a, 0, now_s());
	sticky_set(t, &b6, 1, now_s());

	r = run(f, "sticky list");
	assert_int_equal(json_array_size(json_object_get(r, "entries")), 2);
	assert_true(json_is_false(json_object_get(r, "truncated")));
	assert_null(json_object_get(r, "next"));	/* one page */
	/* Most recently used first. */
	e = json_array_get(json_object_get(r, "entries"), 0);
	assert_string_equal(json_string_value(json_object_get(e, "client")), "2001:db8::7");
	assert_string_equal(json_string_value(json_object_get(e, "backend")), "FTP_SVR2");
	assert_string_equal(json_string_value(json_object_get(e, "service")), "FTPS_VIP");
	assert_true(json_is_integer(json_object_get(e, "expires_in_s")));
	assert_in_range(json_integer_value(json_object_get(e, "expires_in_s")), 1798, 1800);
	json_decref(r);

	r = run(f, "sticky list FTPS_VIP");
	assert_int_equal(json_array_size(json_object_get(r, "entries")), 2);
	json_decref(r);
	expect_error(f, "sticky list NOPE", "no service named NOPE; services: FTPS_VIP");

	r = run(f, "sticky get 10.0.0.1");
	assert_string_equal(json_string_value(json_object_get(r, "client")), "10.0.0.1");
	assert_string_equal(json_string_value(json_object_get(r, "backend")), "FTP_SVR1");
	assert_string_equal(json_string_value(json_object_get(r, "service")), "FTPS_VIP");
	assert_true(json_is_integer(json_object_get(r, "expires_in_s")));
	json_decref(r);
	r = run(f, "sticky get ::ffff:10.0.0.1 FTPS_VIP");
	assert_string_equal(json_string_value(json_object_get(r, "backend")), "FTP_SVR1");
	json_decref(r);

	r = run(f, "sticky clear 10.0.0.1");
	assert_int_equal(json_integer_value(json_object_get(r, "cleared")), 1);
	json_decref(r);
	assert_int_equal(sticky_lookup(t, &a, now_s()), -1);
	expect_error(f, "sticky get 10.0.0.1", "no sticky entry for 10.0.0.1");
	r = run(f, "sticky clear 10.0.0.1");
	assert_int_equal(json_integer_value(json_object_get(r, "cleared")), 0);
	json_decref(r);

	r = run(f, "sticky flush");
	assert_int_equal(json_integer_value(json_object_get(r, "flushed")), 1);
	json_decref(r);
	assert_int_equal(sticky_count(t), 0);
	r = run(f, "sticky flush FTPS_VIP");
	assert_int_equal(json_integer_value(json_object_get(r, "flushed")), 0);
	json_decref(r);

	expect_error(f, "sticky get 10.0.0.999", "not an IP address: 10.0.0.999");
	expect_error(f, "sticky clear bogus", "not an IP address: bogus");
	expect_error(f, "sticky get", "missing IP address");
	expect_error(f, "sticky", "sticky needs a subcommand");
	expect_error(f, "sticky frob", "unknown sticky subcommand \"frob\"");
	expect_error(f, "sticky list FTPS_VIP more", "too many arguments for sticky list");
}

/* sticky set: pins a client the way a connection's pick does; get returns it. */
static void
test_sticky_set(void **state)
{
	struct fixture	*f = *state;
	struct service	*svc = &f->lbd.services[0];
	struct lbd_ip	 a = ip("10.0.0.1"), b6 = ip("2001:db8::7");
	json_t		*r;

	r = run(f, "sticky set 10.0.0.1 FTP_SVR2");
	assert_string_equal(json_string_value(json_object_get(r, "client")), "10.0.0.1");
	assert_string_equal(json_string_value(json_object_get(r, "backend")), "FTP_SVR2");
	assert_string_equal(json_string_value(json_object_get(r, "service")), "FTPS_VIP");
	assert_true(json_is_integer(json_object_get(r, "expires_in_s")));
	assert_in_range(json_integer_value(json_object_get(r, "expires_in_s")), 1799, 1800);
	assert_null(json_object_get(r, "warning"));
	json_decref(r);
	assert_int_equal(sticky_lookup(svc->sticky, &a, now_s()), 1);
	r = run(f, "sticky get 10.0.0.1");
	assert_string_equal(json_string_value(json_object_get(r, "backend")), "FTP_SVR2");
	json_decref(r);

	/* v6 and v4-mapped literals, SERVICE named. */
	r = run(f, "sticky set 2001:db8::7 FTP_SVR1 FTPS_VIP");
	assert_string_equal(json_string_value(json_object_get(r, "client")), "2001:db8::7");
	json_decref(r);
	assert_int_equal(sticky_lookup(svc->sticky, &b6, now_s()), 0);

	/* Overwrite: an existing entry (here made by a connection) moves. */
	sticky_set(svc->sticky, &a, 0, now_s());
	r = run(f, "sticky set ::ffff:10.0.0.1 FTP_SVR2");
	assert_string_equal(json_string_value(json_object_get(r, "client")), "10.0.0.1");
	assert_string_equal(json_string_value(json_object_get(r, "backend")), "FTP_SVR2");
	json_decref(r);
	r = run(f, "sticky get 10.0.0.1 FTPS_VIP");
	assert_string_equal(json_string_value(json_object_get(r, "backend")), "FTP_SVR2");
	json_decref(r);
	assert_int_equal(sticky_count(svc->sticky), 2);

	/* Drain keeps sticky clients: allowed. Down: allowed, with a warning. */
	svc->backends[0].admin = BACKEND_DRAIN;
	r = run(f, "sticky set 10.0.0.2 FTP_SVR1");
	assert_string_equal(json_string_value(json_object_get(r, "backend")), "FTP_SVR1");
	json_decref(r);
	svc->backends[0].admin = BACKEND_ENABLED;
	svc->backends[0].up = false;
	r = run(f, "sticky set 10.0.0.3 FTP_SVR1");
	assert_string_equal(json_string_value(json_object_get(r, "backend")), "FTP_SVR1");
	assert_non_null(strstr(json_string_value(json_object_get(r, "warning")), "is down"));
	json_decref(r);
	svc->backends[0].up = true;
	assert_int_equal(sticky_count(svc->sticky), 4);

	/* Refused, and nothing written. */
	svc->backends[1].admin = BACKEND_DISABLED;
	expect_error(f, "sticky set 10.0.0.9 FTP_SVR2",
	    "backend FTP_SVR2 is disabled and would not keep the client; "
	    "enable it first (backend FTP_SVR2 enable FTPS_VIP)");
	svc->backends[1].admin = BACKEND_ENABLED;
	expect_error(f, "sticky set 10.0.0.9 FTP_SVR9",
	    "no backend named FTP_SVR9; backends: FTP_SVR1, FTP_SVR2");
	expect_error(f, "sticky set 10.0.0.9 FTP_SVR9 FTPS_VIP",
	    "no backend named FTP_SVR9 in service FTPS_VIP; backends: FTP_SVR1, FTP_SVR2");
	expect_error(f, "sticky set 10.0.0.9 FTP_SVR1 NOPE", "no service named NOPE; services: FTPS_VIP");
	expect_error(f, "sticky set 10.0.0.999 FTP_SVR1", "not an IP address: 10.0.0.999");
	expect_error(f, "sticky set FTP_SVR1 10.0.0.9", "not an IP address: FTP_SVR1");
	expect_error(f, "sticky set 10.0.0.9", "missing backend name; usage: sticky set IP BACKEND");
	expect_error(f, "sticky set", "missing IP address");
	expect_error(f, "sticky set 10.0.0.9 FTP_SVR1 FTPS_VIP x", "too many arguments for sticky set");
	expect_error(f, "sticky set 10.0.0.9 \xc3\x28", "no backend named ?(");
	/* A backend the last reload removed (its slot kept for its connections). */
	svc->conf.nbackends = 1;
	expect_error(f, "sticky set 10.0.0.9 FTP_SVR2", "was removed from the configuration");
	svc->conf.nbackends = 2;
	assert_int_equal(sticky_count(svc->sticky), 4);
	expect_error(f, "sticky get 10.0.0.9", "no sticky entry for 10.0.0.9");

	r = run(f, "help");
	assert_string_equal(json_string_value(json_array_get(json_object_get(r, "commands"), 4)),
	    "sticky set IP BACKEND [SERVICE]");
	json_decref(r);
	expect_error(f, "sticky frob", "valid: list, get, set, clear, flush");
}

/* A replication stand-in: counts "the dirty list became non-empty". */
static void
count_notify(void *arg)
{
	(*(int *)arg)++;
}

/*
 * sticky set goes through the same sticky_set as a connection: versioned,
 * on the dirty list, and taken for the peer like any change; with the real
 * replica bridge, status shows it pending.
 */
static void
test_sticky_set_replicated(void **state)
{
	struct fixture	*f = *state;
	struct sticky_table *t = f->lbd.services[0].sticky;
	struct sticky_change c[4];
	struct lbd_ip	 a = ip("10.0.0.1");
	uint64_t	 v1;
	json_t		*r;
	int		 notified = 0;

	sticky_replicate(t, count_notify, &notified);
	r = run(f, "sticky set 10.0.0.1 FTP_SVR2");
	json_decref(r);
	assert_int_equal(notified, 1);
	assert_int_equal(sticky_dirty_count(t), 1);
	assert_int_equal(sticky_take_dirty(t, now_s(), c, 4), 1);
	assert_memory_equal(c[0].ip.bytes, a.bytes, sizeof(a.bytes));
	assert_int_equal(c[0].backend, 1);
	assert_int_equal(c[0].origin, STICKY_ORIGIN_SELF);
	assert_true(c[0].version > 0);
	assert_in_range(c[0].expires_in_ms, 1799000, 1800000);
	v1 = c[0].version;

	/* The same pin again right away is a refresh: coalesced, as for a connection. */
	r = run(f, "sticky set 10.0.0.1 FTP_SVR2");
	json_decref(r);
	assert_int_equal(sticky_dirty_count(t), 0);

	/* Moving the client is a change: a newer version goes out. */
	r = run(f, "sticky set 10.0.0.1 FTP_SVR1");
	json_decref(r);
	assert_int_equal(notified, 2);
	assert_int_equal(sticky_take_dirty(t, now_s(), c, 4), 1);
	assert_int_equal(c[0].backend, 0);
	assert_true(c[0].version > v1);

	/* A refused set changes nothing. */
	expect_error(f, "sticky set 10.0.0.2 NOPE", "no backend named NOPE");
	assert_int_equal(sticky_dirty_count(t), 0);
	sticky_replicate(t, NULL, NULL);

	/* Through replica.c (no channel): the change waits for the peer. */
	snprintf(f->conf.peer_name, sizeof(f->conf.peer_name), "lb2");
	assert_int_equal(replica_init(&f->lbd), 0);
	r = run(f, "sticky set 10.0.0.3 FTP_SVR1");
	json_decref(r);
	r = run(f, "status");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "sync"), "pending")), 1);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "sync"), "entries")), 2);
	assert_true(json_is_integer(json_object_get(json_object_get(r, "sync"), "acks")));
	json_decref(r);
	replica_close(&f->lbd);
}

#define PAGE		10000	/* VIEW_STICKY_PAGE: entries in one reply at most */
#define PAGE_SLOTS	65536	/* VIEW_STICKY_PAGE_SLOTS: slots one page visits at most */

/* Client i of the paging tests: 10.x.y.z. */
static struct lbd_ip
client_n(uint32_t i)
{
	struct lbd_ip	 a = ip("10.0.0.0");

	a.bytes[13] = (uint8_t)(i >> 16);
	a.bytes[14] = (uint8_t)(i >> 8);
	a.bytes[15] = (uint8_t)i;
	return a;
}

/* Which client a listed entry is: its index, checked against the 10/8 form. */
static uint32_t
listed_n(json_t *e)
{
	struct lbd_ip	 a = ip(json_string_value(json_object_get(e, "client")));

	assert_int_equal(a.bytes[12], 10);
	return (uint32_t)a.bytes[13] << 16 | (uint32_t)a.bytes[14] << 8 | a.bytes[15];
}

/*
 * Walks every page of `sticky list [SERVICE]` the way lbctl does, counting
 * how often each client index (< max) is listed into seen; between pages
 * it calls between(page number). Returns: the number of pages.
 */
static int
walk_pages(struct fixture *f, const char *service, uint32_t max, uint8_t *seen,
    void (*between)(struct fixture *, int), uint32_t *total)
{
	char		 line[128];
	json_t		*r, *e, *next;
	size_t		 k;
	int		 pages = 0;

	snprintf(line, sizeof(line), "sticky list%s%s", service ? " " : "", service ? service : "");
	for (;;) {
		r = run(f, line);
		assert_null(json_object_get(r, "error"));
		pages++;
		assert_true(json_array_size(json_object_get(r, "entries")) <= PAGE);
		json_array_foreach(json_object_get(r, "entries"), k, e) {
			uint32_t n = listed_n(e);

			assert_true(n < max);
			assert_true(seen[n] < 255);
			seen[n]++;
		}
		*total = (uint32_t)json_integer_value(json_object_get(r, "total"));
		next = json_object_get(r, "next");
		/* truncated: more pages follow; "next" says where. */
		assert_true(json_is_true(json_object_get(r, "truncated")) == (next != NULL));
		if (next == NULL) {
			json_decref(r);
			return pages;
		}
		assert_true(json_is_string(next));
		snprintf(line, sizeof(line), "sticky list%s%s from %s", service ? " " : "",
		    service ? service : "", json_string_value(next));
		json_decref(r);
		if (between != NULL)
			between(f, pages);
		assert_true(pages < 1000);
	}
}

#define BIG_N		25005	/* entries in the paging test: three pages */
#define BIG_GONE	24000	/* clients deleted after the first page: BIG_GONE.. */

/*
 * Between pages: clients near the end are deleted, some refreshed (an
 * entry keeps its slot: still listed once), newcomers added.
 */
static void
change_table(struct fixture *f, int page)
{
	struct sticky_table *t = f->lbd.services[0].sticky;
	uint32_t	 i;

	if (page != 1)
		return;
	for (i = BIG_GONE; i < BIG_N; i++) {
		struct lbd_ip a = client_n(i);

		assert_int_equal(sticky_delete(t, &a), 1);
	}
	for (i = 20000; i < 20100; i++) {
		struct lbd_ip a = client_n(i);

		sticky_set(t, &a, 1, now_s());
	}
	for (i = BIG_N; i < BIG_N + 10; i++) {
		struct lbd_ip a = client_n(i);

		sticky_set(t, &a, 0, now_s());
	}
}

/*
 * A table bigger than one page comes back complete through the cursor:
 * pages of PAGE entries at most, every client once, entries changed
 * between pages listed once or (deleted) not at all.
 */
static void
test_sticky_list_pages(void **state)
{
	struct fixture	*f = *state;
	struct sticky_table *t;
	uint8_t		*seen = calloc(BIG_N + 10, 1);
	uint32_t	 i, total = 0, now = now_s(), extra = 0;
	json_t		*r;
	int		 pages;

	assert_non_null(seen);
	sticky_free(f->lbd.services[0].sticky);
	t = f->lbd.services[0].sticky = sticky_new(BIG_N + 10, 1800);
	assert_non_null(t);
	for (i = 0; i < BIG_N; i++) {
		struct lbd_ip a = client_n(i);

		sticky_set(t, &a, (int)(i % 2), now);
	}
	/* The first page: PAGE entries, latest expiry first, and where to go on. */
	r = run(f, "sticky list");
	assert_int_equal(json_array_size(json_object_get(r, "entries")), PAGE);
	assert_true(json_is_true(json_object_get(r, "truncated")));
	assert_int_equal(json_integer_value(json_object_get(r, "total")), BIG_N);
	assert_string_equal(json_string_value(json_object_get(r, "next")), "0.10000");
	json_decref(r);

	pages = walk_pages(f, NULL, BIG_N + 10, seen, NULL, &total);
	assert_int_equal(pages, 3);
	assert_int_equal(total, BIG_N);
	for (i = 0; i < BIG_N; i++)
		if (seen[i] != 1)
			fail_msg("client %u listed %u times", i, seen[i]);

	/* The same with the table changing between the pages. */
	memset(seen, 0, BIG_N + 10);
	pages = walk_pages(f, "FTPS_VIP", BIG_N + 10, seen, change_table, &total);
	assert_int_equal(pages, 3);
	for (i = 0; i < BIG_GONE; i++)
		if (seen[i] != 1)
			fail_msg("client %u listed %u times", i, seen[i]);
	for (i = BIG_GONE; i < BIG_N; i++)
		assert_int_equal(seen[i], 0);	/* deleted before their page */
	for (i = BIG_N; i < BIG_N + 10; i++) {
		assert_true(seen[i] <= 1);	/* newcomers: maybe, never twice */
		extra += seen[i];
	}
	print_message("sticky list in %d pages; %u of 10 newcomers listed\n", pages, extra);

	/* Cursors are checked. */
	expect_error(f, "sticky list from x", "bad sticky list cursor \"x\"");
	expect_error(f, "sticky list from 1.0", "bad sticky list cursor");
	expect_error(f, "sticky list from 0.", "bad sticky list cursor");
	expect_error(f, "sticky list from -1.5", "bad sticky list cursor");
	expect_error(f, "sticky list from 0.99999999999", "bad sticky list cursor");
	expect_error(f, "sticky list FTPS_VIP to 0.0", "too many arguments for sticky list");
	expect_error(f, "sticky list NOPE from 0.0", "no service named NOPE");
	/* A cursor past the end: an empty last page. */
	r = run(f, "sticky list from 0.4000000000");
	assert_int_equal(json_array_size(json_object_get(r, "entries")), 0);
	assert_null(json_object_get(r, "next"));
	json_decref(r);
	free(seen);
}

#define SPARSE_DEAD	150000	/* dead, unswept entries before the live ones */
#define SPARSE_LIVE	50	/* live entries after them */

/* Pages visit a bounded number of slots: mostly dead slots take several (empty) pages. */
static void
test_sticky_list_sparse(void **state)
{
	struct fixture	*f = *state;
	struct sticky_table *t;
	uint8_t		*seen = calloc(SPARSE_DEAD + SPARSE_LIVE, 1);
	uint32_t	 i, total = 0, now = now_s();
	int		 pages;

	assert_non_null(seen);
	sticky_free(f->lbd.services[0].sticky);
	t = f->lbd.services[0].sticky = sticky_new(SPARSE_DEAD + SPARSE_LIVE, 100);
	assert_non_null(t);
	for (i = 0; i < SPARSE_DEAD + SPARSE_LIVE; i++) {
		struct lbd_ip a = client_n(i);

		sticky_set(t, &a, 0, i < SPARSE_DEAD ? now - 200 : now);
	}
	pages = walk_pages(f, NULL, SPARSE_DEAD + SPARSE_LIVE, seen, NULL, &total);
	assert_int_equal(pages, (SPARSE_DEAD + SPARSE_LIVE + PAGE_SLOTS - 1) / PAGE_SLOTS);
	for (i = 0; i < SPARSE_DEAD + SPARSE_LIVE; i++)
		assert_int_equal(seen[i], i < SPARSE_DEAD ? 0 : 1);
	free(seen);
}

/* Two services: a page ends inside the second one, and SERVICE lists its own. */
static void
test_sticky_list_pages_services(void **state)
{
	struct fixture	*f = *state;
	struct service	*svc2 = tl_add_service(&f->lbd, &f->conf, "FTP_PLAIN", 1);
	uint8_t		*seen = calloc(12000, 1);
	uint32_t	 i, total = 0, now = now_s();
	json_t		*r, *e;

	assert_non_null(seen);
	sticky_free(f->lbd.services[0].sticky);
	f->lbd.services[0].sticky = sticky_new(6000, 1800);
	sticky_free(svc2->sticky);
	svc2->sticky = sticky_new(6000, 1800);
	assert_non_null(f->lbd.services[0].sticky);
	assert_non_null(svc2->sticky);
	for (i = 0; i < 12000; i++) {
		struct lbd_ip a = client_n(i);

		sticky_set(i < 6000 ? f->lbd.services[0].sticky : svc2->sticky, &a, 0, now);
	}
	r = run(f, "sticky list");
	assert_int_equal(json_array_size(json_object_get(r, "entries")), PAGE);
	assert_string_equal(json_string_value(json_object_get(r, "next")), "1.4000");
	/* Grouped by service in service order. */
	e = json_array_get(json_object_get(r, "entries"), 0);
	assert_string_equal(json_string_value(json_object_get(e, "service")), "FTPS_VIP");
	e = json_array_get(json_object_get(r, "entries"), PAGE - 1);
	assert_string_equal(json_string_value(json_object_get(e, "service")), "FTP_PLAIN");
	json_decref(r);
	assert_int_equal(walk_pages(f, NULL, 12000, seen, NULL, &total), 2);
	assert_int_equal(total, 12000);
	for (i = 0; i < 12000; i++)
		assert_int_equal(seen[i], 1);
	/* One service of 6000: a single page, most recently used first, no cursor. */
	r = run(f, "sticky list FTP_PLAIN");
	assert_int_equal(json_array_size(json_object_get(r, "entries")), 6000);
	assert_null(json_object_get(r, "next"));
	assert_true(json_is_false(json_object_get(r, "truncated")));
	json_decref(r);
	expect_error(f, "sticky list FTP_PLAIN from 0.0", "bad sticky list cursor");
	r = run(f, "sticky list FTP_PLAIN from 1.5990");
	assert_int_equal(json_array_size(json_object_get(r, "entries")), 10);
	json_decref(r);
	free(seen);
}

/* ---------------------------------------------------------------- admin */

static void
test_backend_admin(void **state)
{
	struct fixture	*f = *state;
	struct backend	*b = &f->lbd.services[0].backends[0];
	json_t		*r;

	r = run(f, "backend FTP_SVR1 drain");
	assert_int_equal(b->admin, BACKEND_DRAIN);
	assert_string_equal(json_string_value(json_object_get(r, "backend")), "FTP_SVR1");
	assert_string_equal(json_string_value(json_object_get(r, "admin")), "drain");
	json_decref(r);

	r = run(f, "backend FTP_SVR1 disable FTPS_VIP");
	assert_int_equal(b->admin, BACKEND_DISABLED);
	assert_string_equal(json_string_value(json_object_get(r, "admin")), "disabled");
	json_decref(r);
	r = run(f, "backends");
	assert_string_equal(json_string_value(json_object_get(
	    json_array_get(json_object_get(r, "backends"), 0), "state")), "disabled");
	json_decref(r);

	r = run(f, "backend FTP_SVR1 enable");
	assert_int_equal(b->admin, BACKEND_ENABLED);
	assert_string_equal(json_string_value(json_object_get(r, "admin")), "enabled");
	json_decref(r);
	assert_int_equal(f->lbd.services[0].backends[1].admin, BACKEND_ENABLED);

	expect_error(f, "backend FTP_SVR9 drain", "no backend named FTP_SVR9; backends: FTP_SVR1, FTP_SVR2");
	expect_error(f, "backend FTP_SVR1 pause", "unknown admin state \"pause\"");
	expect_error(f, "backend FTP_SVR1", "usage: backend NAME enable|disable|drain");
	expect_error(f, "backend", "usage: backend NAME");
	expect_error(f, "backend FTP_SVR1 drain NOPE", "no service named NOPE");
	assert_int_equal(b->admin, BACKEND_ENABLED);
}

/* A backend name used by two services needs SERVICE; so does an IP sticky in both. */
static void
test_two_services(void **state)
{
	struct fixture	*f = *state;
	struct service	*s2 = tl_add_service(&f->lbd, &f->conf, "OTHER", 1);
	struct lbd_ip	 a = ip("10.0.0.1");
	json_t		*r;

	expect_error(f, "backend FTP_SVR1 drain", "exists in several services (FTPS_VIP, OTHER)");
	r = run(f, "backend FTP_SVR1 drain OTHER");
	json_decref(r);
	assert_int_equal(s2->backends[0].admin, BACKEND_DRAIN);
	assert_int_equal(f->lbd.services[0].backends[0].admin, BACKEND_ENABLED);
	r = run(f, "backend FTP_SVR2 disable");
	json_decref(r);
	assert_int_equal(f->lbd.services[0].backends[1].admin, BACKEND_DISABLED);

	sticky_set(f->lbd.services[0].sticky, &a, 1, now_s());
	r = run(f, "sticky get 10.0.0.1");
	assert_string_equal(json_string_value(json_object_get(r, "service")), "FTPS_VIP");
	json_decref(r);
	sticky_set(s2->sticky, &a, 0, now_s());
	expect_error(f, "sticky get 10.0.0.1", "several services");
	r = run(f, "sticky get 10.0.0.1 OTHER");
	assert_string_equal(json_string_value(json_object_get(r, "service")), "OTHER");
	json_decref(r);
	r = run(f, "sticky list");
	assert_int_equal(json_array_size(json_object_get(r, "entries")), 2);
	json_decref(r);
	r = run(f, "sticky list OTHER");
	assert_int_equal(json_array_size(json_object_get(r, "entries")), 1);
	json_decref(r);
	r = run(f, "sticky clear 10.0.0.1");
	assert_int_equal(json_integer_value(json_object_get(r, "cleared")), 2);
	json_decref(r);

	/* sticky set of a backend name in both services needs SERVICE. */
	r = run(f, "backend FTP_SVR1 enable OTHER");
	json_decref(r);
	expect_error(f, "sticky set 10.0.0.5 FTP_SVR1",
	    "backend FTP_SVR1 exists in several services (FTPS_VIP, OTHER); "
	    "name one: sticky set 10.0.0.5 FTP_SVR1 SERVICE");
	assert_int_equal(sticky_count(s2->sticky), 0);
	r = run(f, "sticky set 10.0.0.5 FTP_SVR1 OTHER");
	assert_string_equal(json_string_value(json_object_get(r, "service")), "OTHER");
	json_decref(r);
	assert_int_equal(sticky_lookup(s2->sticky, &(struct lbd_ip){ .bytes = {
	    [10] = 0xff, [11] = 0xff, [12] = 10, [15] = 5 } }, now_s()), 0);
	/* A name in one service only needs none. */
	r = run(f, "backend FTP_SVR2 enable");
	json_decref(r);
	r = run(f, "sticky set 10.0.0.5 FTP_SVR2");
	assert_string_equal(json_string_value(json_object_get(r, "service")), "FTPS_VIP");
	json_decref(r);
	expect_error(f, "sticky set 10.0.0.5 FTP_SVR2 OTHER",
	    "no backend named FTP_SVR2 in service OTHER; backends: FTP_SVR1");
	r = run(f, "sticky flush");
	json_decref(r);

	r = run(f, "status");
	assert_int_equal(json_array_size(json_object_get(r, "services")), 2);
	json_decref(r);
}

/* ---------------------------------------------------------------- other commands, bad input */

static void
test_misc_commands(void **state)
{
	struct fixture	*f = *state;
	bool		 monitor = false;
	json_t		*r;

	r = control_handle(&f->lbd, "monitor\n", &monitor);
	assert_true(monitor);
	assert_string_equal(json_string_value(json_object_get(r, "monitor")), "started");
	json_decref(r);

	r = run(f, "help");
	assert_true(json_is_array(json_object_get(r, "commands")));
	assert_true(json_array_size(json_object_get(r, "commands")) >= 8);
	json_decref(r);

	expect_error(f, "failover", "standalone node: there is no peer to hand the VIP to");

	/* Surrounding blanks and CRLF are fine. */
	r = run(f, "  \tstatus \r\n");
	assert_non_null(json_object_get(r, "node"));
	json_decref(r);

	/* bus_publish must be harmless without a socket (and steals obj). */
	bus_publish(&f->lbd, "backend", json_pack("{s:s}", "backend", "FTP_SVR1"));
	bus_publish(NULL, "backend", json_pack("{s:s}", "backend", "FTP_SVR1"));
	bus_publish(&f->lbd, "backend", NULL);
}

/* The command list lbd/command.c quotes after "valid commands: " (from its command table). */
#define BAD_VALID	"status, backends, sticky list|get|set|clear|flush, " \
			"backend NAME enable|disable|drain, failover, reload, monitor, help"
#define BAD_ECHO_MAX	64	/* view.c's REPLY_ECHO_MAX: input quoted back, then "..." */

/* Asserts line fails with exactly the error want; frees the reply. */
static void
expect_error_exact(struct fixture *f, const char *line, const char *want)
{
	json_t		*r = run(f, line);
	json_t		*e = json_object_get(r, "error");

	assert_true(json_is_string(e));
	if (strcmp(json_string_value(e), want) != 0)
		fail_msg("\"%s\": error \"%s\", want \"%s\"", line, json_string_value(e), want);
	assert_int_equal(json_object_size(r), 1);	/* the error and nothing else */
	json_decref(r);
}

static void
test_bad_input(void **state)
{
	struct fixture	*f = *state;
	char		 junk[256], want[256], *big;
	int		 i;

	expect_error_exact(f, "frobnicate",
	    "unknown command \"frobnicate\"; valid commands: " BAD_VALID);
	expect_error_exact(f, "STATUS", "unknown command \"STATUS\"; valid commands: " BAD_VALID);
	expect_error_exact(f, "", "empty request; valid commands: " BAD_VALID);
	expect_error_exact(f, "   \t ", "empty request; valid commands: " BAD_VALID);
	expect_error_exact(f, "\n", "empty request; valid commands: " BAD_VALID);
	expect_error_exact(f, "a b c d e f g h i j", "too many words in request");
	expect_error_exact(f, "status\001", "request contains control characters");

	/* Bytes that are not UTF-8 are echoed as '?', and the reply still serialises. */
	expect_error_exact(f, "\xff\xfe\x80zz",
	    "unknown command \"???zz\"; valid commands: " BAD_VALID);
	expect_error_exact(f, "sticky get \xc3\x28", "not an IP address: ?(");

	/* Every byte value but NUL: the first, 0x01, is a control character. */
	for (i = 0; i < (int)sizeof(junk) - 1; i++)
		junk[i] = (char)(1 + (i * 37) % 255);
	junk[sizeof(junk) - 1] = '\0';
	expect_error_exact(f, junk, "request contains control characters");

	big = malloc(4 * LBD_CONTROL_LINE_MAX);
	assert_non_null(big);
	memset(big, 'a', 4 * LBD_CONTROL_LINE_MAX - 1);
	big[4 * LBD_CONTROL_LINE_MAX - 1] = '\0';
	expect_error_exact(f, big, "request too long");
	/* Just short enough: a long unknown command, quoted cut short. */
	big[LBD_CONTROL_LINE_MAX] = '\0';
	snprintf(want, sizeof(want), "unknown command \"%.*s...\"; valid commands: " BAD_VALID,
	    BAD_ECHO_MAX, big);
	expect_error_exact(f, big, want);
	free(big);
}

/* ---------------------------------------------------------------- the real socket */

/* Opens the control socket in a fresh temp dir (one level that does not exist yet). */
static void
open_socket(struct fixture *f)
{
	snprintf(f->dir, sizeof(f->dir), "/tmp/lbdtest-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->conf.control_socket, sizeof(f->conf.control_socket), "%s/run/s", f->dir);
	f->lbd.control = control_open(&f->lbd);
	assert_non_null(f->lbd.control);
}

/* Closes the socket and removes the directories open_socket made. */
static void
close_socket(struct fixture *f)
{
	char	 sub[128];

	control_close(f->lbd.control);
	assert_null(f->lbd.control);
	assert_int_equal(access(f->conf.control_socket, F_OK), -1);
	snprintf(sub, sizeof(sub), "%s/run", f->dir);
	assert_int_equal(rmdir(sub), 0);
}

static int
client_connect(struct fixture *f)
{
	struct sockaddr_un sun;
	int		 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", f->conf.control_socket);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_int_not_equal(fd, -1);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	return fd;
}

/*
 * Runs the event loop until fd has delivered want_lines lines (0: until
 * EOF) or the deadline passes. Returns: bytes read into buf (NUL-terminated);
 * *eof set when the server closed.
 */
static size_t
client_read(struct fixture *f, int fd, char *buf, size_t len, int want_lines, bool *eof)
{
	uint64_t	 deadline = clock_now_ms() + LOOP_DEADLINE_MS;
	size_t		 n = 0;
	ssize_t		 r;
	int		 lines = 0;

	*eof = false;
	while (clock_now_ms() < deadline && !*eof && (want_lines == 0 || lines < want_lines)) {
		event_base_loop(f->lbd.base, EVLOOP_NONBLOCK);
		r = read(fd, buf + n, len - 1 - n);
		if (r == 0)
			*eof = true;
		else if (r > 0) {
			for (ssize_t i = 0; i < r; i++)
				lines += buf[n + (size_t)i] == '\n';
			n += (size_t)r;
		} else if (errno == EAGAIN)
			poll(NULL, 0, 1);
		else
			fail_msg("read: %s", strerror(errno));
		assert_true(n < len - 1);
	}
	buf[n] = '\0';
	return n;
}

/* Sends request and returns the parsed reply; the server must close after it. */
static json_t *
client_request(struct fixture *f, const char *request, size_t len, bool half_close)
{
	char		*buf = malloc(REPLY_MAX);
	json_error_t	 jerr;
	json_t		*r;
	bool		 eof;
	size_t		 n;
	int		 fd = client_connect(f);

	assert_non_null(buf);
	assert_int_equal(write(fd, request, len), (ssize_t)len);
	if (half_close)
		assert_int_equal(shutdown(fd, SHUT_WR), 0);
	n = client_read(f, fd, buf, REPLY_MAX, 0, &eof);
	assert_true(eof);
	assert_true(n > 0);
	assert_int_equal(buf[n - 1], '\n');
	assert_null(memchr(buf, '\n', n - 1));	/* one line */
	r = json_loads(buf, 0, &jerr);
	if (r == NULL)
		fail_msg("reply is not JSON (%s): %s", jerr.text, buf);
	assert_true(json_is_object(r));
	close(fd);
	free(buf);
	return r;
}

static void
test_socket(void **state)
{
	struct fixture	*f = *state;
	struct stat	 st;
	json_t		*r;
	char		 junk[600], *big;
	size_t		 i;

	open_socket(f);
	assert_int_equal(stat(f->conf.control_socket, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0660);

	r = client_request(f, "status\n", 7, false);
	assert_string_equal(json_string_value(json_object_get(r, "node")), "lb1");
	assert_true(json_is_array(json_object_get(r, "services")));
	json_decref(r);

	/* CRLF, and socat-style half close. */
	r = client_request(f, "backends\r\n", 10, true);
	assert_true(json_is_array(json_object_get(r, "backends")));
	json_decref(r);

	/* No newline at all: EOF ends the request. */
	r = client_request(f, "help", 4, true);
	assert_true(json_is_array(json_object_get(r, "commands")));
	json_decref(r);

	for (i = 0; i < sizeof(junk); i++)
		junk[i] = (char)((i * 131 + 7) % 256);
	junk[sizeof(junk) - 1] = '\n';
	r = client_request(f, junk, sizeof(junk), false);
	assert_true(json_is_string(json_object_get(r, "error")));
	json_decref(r);

	r = client_request(f, "nonsense\n", 9, false);
	assert_true(json_is_string(json_object_get(r, "error")));
	json_decref(r);

	/* A line longer than the limit, without a newline, is refused at once. */
	big = malloc(3 * LBD_CONTROL_LINE_MAX);
	assert_non_null(big);
	memset(big, 'x', 3 * LBD_CONTROL_LINE_MAX);
	r = client_request(f, big, 3 * LBD_CONTROL_LINE_MAX, false);
	assert_string_equal(json_string_value(json_object_get(r, "error")), "request too long");
	json_decref(r);
	free(big);

	/* Empty request closed at once: still a reply. */
	r = client_request(f, "", 0, true);
	assert_true(json_is_string(json_object_get(r, "error")));
	json_decref(r);

	close_socket(f);
}

static void
test_socket_monitor(void **state)
{
	struct fixture	*f = *state;
	char		 buf[4096];
	json_t		*r;
	bool		 eof;
	int		 fd, fd2;

	open_socket(f);
	fd = client_connect(f);
	assert_int_equal(write(fd, "monitor\n", 8), 8);
	client_read(f, fd, buf, sizeof(buf), 1, &eof);
	assert_false(eof);
	assert_string_equal(buf, "{\"monitor\":\"started\"}\n");

	/* An admin change is an event; a plain request client does not get it. */
	fd2 = client_connect(f);
	r = run(f, "backend FTP_SVR2 drain");
	json_decref(r);
	client_read(f, fd, buf, sizeof(buf), 1, &eof);
	assert_false(eof);
	r = json_loads(buf, 0, NULL);
	assert_non_null(r);
	assert_string_equal(json_string_value(json_object_get(r, "event")), "backend");
	assert_string_equal(json_string_value(json_object_get(r, "backend")), "FTP_SVR2");
	assert_string_equal(json_string_value(json_object_get(r, "admin")), "drain");
	assert_true(json_is_string(json_object_get(r, "time")));
	assert_true(json_is_integer(json_object_get(r, "time_ms")));
	json_decref(r);
	close(fd2);

	bus_publish(&f->lbd, "role", json_pack("{s:s}", "role", "BACKUP"));
	client_read(f, fd, buf, sizeof(buf), 1, &eof);
	assert_non_null(strstr(buf, "\"event\":\"role\""));

	/* The monitor leaves; the next event finds nobody, and close frees all. */
	close(fd);
	event_base_loop(f->lbd.base, EVLOOP_NONBLOCK);
	bus_publish(&f->lbd, "role", json_pack("{s:s}", "role", "MASTER"));

	/* A second monitor still open at control_close is freed too. */
	fd = client_connect(f);
	assert_int_equal(write(fd, "monitor\n", 8), 8);
	client_read(f, fd, buf, sizeof(buf), 1, &eof);
	close_socket(f);
	client_read(f, fd, buf, sizeof(buf), 0, &eof);
	assert_true(eof);
	close(fd);
}

/*
 * A big `sticky list` is written in slices: the loop keeps turning, the
 * reply is the same as control_handle's, and only CONTROL_MAX_STREAMS (4)
 * run at once.
 */
static void
test_socket_sticky_stream(void **state)
{
	struct fixture	*f = *state;
	struct sticky_table *t;
	struct lbd_ip	 a = ip("10.0.0.0");
	json_t		*r, *direct, *e;
	char		*buf = malloc(16 << 20);
	uint64_t	 deadline, t0, stall = 0;
	uint32_t	 i, n = 100005, now = now_s();
	size_t		 len[6] = { 0 };
	ssize_t		 got;
	bool		 eof[6] = { false };
	int		 fd[6], k, done = 0, busy = 0, ok = 0;

	assert_non_null(buf);
	sticky_free(f->lbd.services[0].sticky);
	t = f->lbd.services[0].sticky = sticky_new(n, 1800);
	assert_non_null(t);
	for (i = 0; i < n; i++) {
		a.bytes[13] = (uint8_t)(i >> 16);
		a.bytes[14] = (uint8_t)(i >> 8);
		a.bytes[15] = (uint8_t)i;
		sticky_set(t, &a, (int)(i % 2), now);
	}
	open_socket(f);
	for (k = 0; k < 6; k++) {
		fd[k] = client_connect(f);
		assert_int_equal(write(fd[k], "sticky list\n", 12), 12);
	}
	/* Read client 0 in full (into buf); the others are only drained. */
	deadline = clock_now_ms() + 20 * LOOP_DEADLINE_MS;
	while (done < 6 && clock_now_ms() < deadline) {
		t0 = clock_now_ms();
		event_base_loop(f->lbd.base, EVLOOP_NONBLOCK);
		if (clock_now_ms() - t0 > stall)
			stall = clock_now_ms() - t0;
		for (k = 0; k < 6; k++) {
			char	 tmp[65536];

			if (eof[k])
				continue;
			got = read(fd[k], k == 0 ? buf + len[0] : tmp,
			    k == 0 ? (16 << 20) - 1 - len[0] : sizeof(tmp));
			if (got == 0) {
				eof[k] = true;
				done++;
				if (k != 0 && len[k] > 1000)
					ok++;
				continue;
			}
			if (got < 0)
				continue;
			/* The refusal is the first and only line of a client. */
			if (k != 0 && len[k] == 0 &&
			    memmem(tmp, (size_t)got, "too many sticky lists", 21) != NULL)
				busy++;
			len[k] += (size_t)got;
		}
	}
	print_message("sticky list of %u entries: longest event-loop turn %llu ms\n",
	    n, (unsigned long long)stall);
	assert_int_equal(done, 6);
	assert_int_equal(busy, 2);		/* 6 asked, 4 served */
	assert_int_equal(ok, 3);
	assert_true(len[0] > 0 && buf[len[0] - 1] == '\n');
	assert_true(stall < 1000);
	buf[len[0]] = '\0';
	r = json_loads(buf, 0, NULL);
	assert_non_null(r);
	/* One page of the table, and where the next one starts. */
	assert_int_equal(json_array_size(json_object_get(r, "entries")), PAGE);
	assert_int_equal(json_integer_value(json_object_get(r, "total")), n);
	assert_true(json_is_true(json_object_get(r, "truncated")));
	assert_string_equal(json_string_value(json_object_get(r, "next")), "0.10000");
	e = json_array_get(json_object_get(r, "entries"), 0);
	assert_string_equal(json_string_value(json_object_get(e, "service")), "FTPS_VIP");
	assert_string_equal(json_string_value(json_object_get(e, "backend")), "FTP_SVR1");

	direct = run(f, "sticky list");
	assert_true(json_equal(json_object_get(json_array_get(json_object_get(direct, "entries"), PAGE - 1), "client"),
	    json_object_get(json_array_get(json_object_get(r, "entries"), PAGE - 1), "client")));
	json_decref(direct);
	json_decref(r);
	for (k = 0; k < 6; k++)
		close(fd[k]);
	free(buf);
	close_socket(f);
}

/* A monitor that does not read is dropped once its backlog passes the cap; lbd goes on. */
static void
test_socket_slow_monitor(void **state)
{
	struct fixture	*f = *state;
	char		 pad[1024], buf[65536];
	uint64_t	 deadline;
	size_t		 got = 0;
	ssize_t		 r;
	bool		 eof = false;
	int		 fd, i;
	json_t		*reply;

	open_socket(f);
	fd = client_connect(f);
	assert_int_equal(write(fd, "monitor\n", 8), 8);
	for (i = 0; i < 20; i++)
		event_base_loop(f->lbd.base, EVLOOP_NONBLOCK);

	memset(pad, 'x', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	/* 4 MB of events against a 1 MiB cap plus the socket buffer. */
	for (i = 0; i < 4000; i++) {
		bus_publish(&f->lbd, "test", json_pack("{s:s}", "pad", pad));
		if (i % 100 == 0)
			event_base_loop(f->lbd.base, EVLOOP_NONBLOCK);
	}

	/* The daemon still answers others. */
	reply = client_request(f, "status\n", 7, false);
	json_decref(reply);

	deadline = clock_now_ms() + LOOP_DEADLINE_MS;
	while (!eof && clock_now_ms() < deadline) {
		event_base_loop(f->lbd.base, EVLOOP_NONBLOCK);
		r = read(fd, buf, sizeof(buf));
		if (r == 0)
			eof = true;
		else if (r > 0)
			got += (size_t)r;
		else if (errno == EAGAIN)
			poll(NULL, 0, 1);
		else
			break;
	}
	assert_true(eof);
	assert_true(got < 4000 * sizeof(pad) / 2);
	close(fd);
	close_socket(f);
}

/*
 * 65 `lbctl monitor` clients (one more than every control slot): 16 stream,
 * the others get an error and are closed, and `status` still answers.
 */
static void
test_socket_monitor_cap(void **state)
{
	struct fixture	*f = *state;
	struct control_status cs;
	char		 buf[4096];
	json_t		*r, *c;
	bool		 eof;
	int		 fds[65], i, started = 0, refused = 0;

	open_socket(f);
	for (i = 0; i < 65; i++) {
		fds[i] = client_connect(f);
		assert_int_equal(write(fds[i], "monitor\n", 8), 8);
		client_read(f, fds[i], buf, sizeof(buf), 1, &eof);
		if (strcmp(buf, "{\"monitor\":\"started\"}\n") == 0) {
			assert_false(eof);
			started++;
		} else {
			r = json_loads(buf, 0, NULL);
			assert_non_null(r);
			assert_non_null(strstr(json_string_value(json_object_get(r, "error")),
			    "too many monitors"));
			json_decref(r);
			/* Refused monitors are closed, so they free their slot. */
			if (!eof)
				client_read(f, fds[i], buf, sizeof(buf), 0, &eof);
			assert_true(eof);
			refused++;
		}
	}
	assert_int_equal(started, 16);
	assert_int_equal(refused, 65 - 16);

	/* Commands still have their slots. */
	r = client_request(f, "status\n", 7, false);
	assert_string_equal(json_string_value(json_object_get(r, "node")), "lb1");
	c = json_object_get(r, "control");
	assert_non_null(c);
	assert_int_equal(json_integer_value(json_object_get(c, "monitors")), 16);
	assert_int_equal(json_integer_value(json_object_get(c, "max_monitors")), 16);
	assert_int_equal(json_integer_value(json_object_get(c, "max_clients")), 64);
	assert_int_equal(json_integer_value(json_object_get(c, "monitors_refused")), 49);
	assert_int_equal(json_integer_value(json_object_get(c, "refused")), 0);
	json_decref(r);

	/* Events still reach the 16. */
	bus_publish(&f->lbd, "role", json_pack("{s:s}", "role", "BACKUP"));
	for (i = 0; i < 65; i++) {
		client_read(f, fds[i], buf, sizeof(buf), 1, &eof);
		if (!eof)
			assert_non_null(strstr(buf, "\"event\":\"role\""));
	}
	/* A monitor that leaves gives its slot to the next one. */
	for (i = 0; i < 65; i++)
		close(fds[i]);
	for (i = 0; i < 10; i++)
		event_base_loop(f->lbd.base, EVLOOP_NONBLOCK);
	control_get_status(f->lbd.control, &cs);
	assert_int_equal(cs.monitors, 0);
	assert_int_equal(cs.clients, 0);
	fds[0] = client_connect(f);
	assert_int_equal(write(fds[0], "monitor\n", 8), 8);
	client_read(f, fds[0], buf, sizeof(buf), 1, &eof);
	assert_string_equal(buf, "{\"monitor\":\"started\"}\n");
	close(fds[0]);
	close_socket(f);
}

/*
 * A client that sends a byte every 100 ms and never a newline is closed at
 * the deadline from accept (500 ms here), not kept alive by each byte.
 */
static void
test_socket_slow_client(void **state)
{
	struct fixture	*f = *state;
	static const char trickle[] = "statusstatusstatusstatus";
	struct control_status cs;
	char		 buf[256];
	size_t		 n = 0, sent = 0;
	uint64_t	 start, next, closed_ms = 0;
	ssize_t		 r;
	json_t		*reply;
	int		 fd;

	f->conf.control_request_timeout_ms = 500;
	open_socket(f);
	fd = client_connect(f);
	start = clock_now_ms();
	next = start;
	while (clock_now_ms() < start + 2000 && closed_ms == 0) {
		if (clock_now_ms() >= next && sent < sizeof(trickle) - 1) {
			/* The server may have closed already: EPIPE is fine. */
			(void)send(fd, trickle + sent++, 1, MSG_NOSIGNAL);
			next += 100;
		}
		event_base_loop(f->lbd.base, EVLOOP_NONBLOCK);
		r = read(fd, buf + n, sizeof(buf) - 1 - n);
		if (r == 0 || (r == -1 && errno == ECONNRESET))
			closed_ms = clock_now_ms();
		else if (r > 0)
			n += (size_t)r;
		else
			poll(NULL, 0, 5);
	}
	buf[n] = '\0';
	assert_int_not_equal(closed_ms, 0);
	/* At the deadline, not before and not much after (loaded machine: slack). */
	assert_true(closed_ms - start >= 450);
	assert_true(closed_ms - start < 1200);
	assert_true(sent >= 4);
	reply = json_loads(buf, 0, NULL);
	assert_non_null(reply);
	assert_string_equal(json_string_value(json_object_get(reply, "error")),
	    "timed out waiting for a request line");
	json_decref(reply);
	close(fd);
	control_get_status(f->lbd.control, &cs);
	assert_int_equal(cs.timeouts, 1);
	assert_int_equal(cs.request_timeout_ms, 500);
	close_socket(f);
}

/* A live socket is another lbd's; a dead one is a leftover and goes. */
static void
test_socket_stale_and_live(void **state)
{
	struct fixture	*f = *state;
	struct sockaddr_un sun;
	struct control	*second;
	json_t		*r;
	char		 sub[128];
	int		 fd;

	open_socket(f);
	second = control_open(&f->lbd);
	assert_null(second);
	assert_int_equal(access(f->conf.control_socket, F_OK), 0);	/* left alone */
	close_socket(f);

	/* A stale socket file from a crashed run. */
	snprintf(sub, sizeof(sub), "%s/run", f->dir);
	assert_int_equal(mkdir(sub, 0755), 0);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", f->conf.control_socket);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);
	f->lbd.control = control_open(&f->lbd);
	assert_non_null(f->lbd.control);
	r = client_request(f, "status\n", 7, false);
	json_decref(r);
	close_socket(f);

	/* A regular file in the way is not removed. */
	assert_int_equal(mkdir(sub, 0755), 0);
	fd = open(f->conf.control_socket, O_CREAT | O_WRONLY, 0644);
	assert_int_not_equal(fd, -1);
	close(fd);
	assert_null(control_open(&f->lbd));
	assert_int_equal(unlink(f->conf.control_socket), 0);
	assert_int_equal(rmdir(sub), 0);

	/* A directory that cannot be made: a file sits where it should be. */
	fd = open(sub, O_CREAT | O_WRONLY, 0644);
	assert_int_not_equal(fd, -1);
	close(fd);
	assert_null(control_open(&f->lbd));
	assert_int_equal(unlink(sub), 0);

	/* An empty path. */
	f->conf.control_socket[0] = '\0';
	assert_null(control_open(&f->lbd));
}

/* Two groups of this machine (not root's, not nobody's) for the access test. */
static void
pick_groups(struct group *a, struct group *b, char *na, char *nb, size_t len)
{
	struct group	*g;
	int		 found = 0;

	setgrent();
	while (found < 2 && (g = getgrent()) != NULL) {
		if (g->gr_gid == 0 || g->gr_gid == PEER_UID || strlen(g->gr_name) >= len)
			continue;
		snprintf(found == 0 ? na : nb, len, "%s", g->gr_name);
		(found == 0 ? a : b)->gr_gid = g->gr_gid;
		found++;
	}
	endgrent();
	assert_int_equal(found, 2);
	a->gr_name = na;
	b->gr_name = nb;
}

/*
 * Sends request from a forked child that is user PEER_UID in exactly the
 * groups given, while this process runs lbd's loop; the child's
 * SO_PEERCRED/SO_PEERGROUPS are what lbd judges. Returns: the reply.
 */
static json_t *
peer_request(struct fixture *f, const gid_t *groups, size_t ngroups, const char *request)
{
	char		 buf[65536];
	json_error_t	 jerr;
	uint64_t	 deadline = clock_now_ms() + LOOP_DEADLINE_MS;
	json_t		*r;
	ssize_t		 n;
	size_t		 got = 0;
	pid_t		 pid;
	int		 p[2], status, done = 0;

	assert_int_equal(pipe(p), 0);
	fflush(NULL);
	if ((pid = fork()) == 0) {
		struct sockaddr_un sun;
		int	 fd;

		close(p[0]);
		if (setgroups(ngroups, groups) == -1 || setgid(PEER_UID) == -1 ||
		    setuid(PEER_UID) == -1)
			_exit(2);
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", f->conf.control_socket);
		if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1 ||
		    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
			_exit(3);
		if (write(fd, request, strlen(request)) != (ssize_t)strlen(request) ||
		    write(fd, "\n", 1) != 1)
			_exit(4);
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			if (write(p[1], buf, (size_t)n) != n)
				_exit(5);
		_exit(n == 0 ? 0 : 6);
	}
	assert_true(pid > 0);
	close(p[1]);
	while (!done && clock_now_ms() < deadline) {
		event_base_loop(f->lbd.base, EVLOOP_NONBLOCK);
		if (waitpid(pid, &status, WNOHANG) == pid)
			done = 1;
		else
			poll(NULL, 0, 1);
	}
	if (!done) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		fail_msg("the client (%s) got no reply in time", request);
	}
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	while ((n = read(p[0], buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)n;
	close(p[0]);
	buf[got] = '\0';
	if ((r = json_loads(buf, 0, &jerr)) == NULL)
		fail_msg("reply to %s is not JSON (%s): %s", request, jerr.text, buf);
	return r;
}

/* The "error" of r, or NULL when r is no error. */
static const char *
error_of(json_t *r)
{
	return json_string_value(json_object_get(r, "error"));
}

/*
 * Who may run what, from the peer's credentials: control.group every
 * command, control.readonly_group only commands that change nothing,
 * anyone else nothing; each refusal names the group needed. As root: the
 * children need setgroups/setuid.
 */
static void
test_socket_access(void **state)
{
	static const char *const readonly_ok[] = {
		"status", "backends", "sticky list", "sticky get 10.0.0.1", "help",
	};
	static const char *const mutating[] = {
		"failover", "reload", "sticky flush", "sticky clear 10.0.0.1",
		"sticky set 10.0.0.1 FTP_SVR1", "backend FTP_SVR1 disable",
	};
	struct fixture	*f = *state;
	struct group	 full, ro;
	struct stat	 st;
	char		 nfull[LBD_NAME_MAX], nro[LBD_NAME_MAX], want[512];
	json_t		*r;
	size_t		 i;

	if (geteuid() != 0)
		skip();
	pick_groups(&full, &ro, nfull, nro, sizeof(nfull));
	snprintf(f->conf.control_group, sizeof(f->conf.control_group), "%s", nfull);
	f->conf.control_group_set = true;
	snprintf(f->conf.control_readonly_group, sizeof(f->conf.control_readonly_group),
	    "%s", nro);
	open_socket(f);
	assert_int_equal(chmod(f->dir, 0755), 0);
	assert_int_equal(stat(f->conf.control_socket, &st), 0);
	assert_int_equal(st.st_gid, full.gr_gid);
	/* Open to all: readonly_group members must connect; credentials decide. */
	assert_int_equal(st.st_mode & 07777, 0666);

	for (i = 0; i < sizeof(readonly_ok) / sizeof(readonly_ok[0]); i++) {
		r = peer_request(f, &ro.gr_gid, 1, readonly_ok[i]);
		if (error_of(r) != NULL && strstr(error_of(r), "permission denied") != NULL)
			fail_msg("read-only peer refused %s: %s", readonly_ok[i], error_of(r));
		json_decref(r);
	}
	for (i = 0; i < sizeof(mutating) / sizeof(mutating[0]); i++) {
		char	 cmd[32];

		/* The command as refused: "failover", "sticky flush", "backend". */
		snprintf(cmd, sizeof(cmd), "%s", mutating[i]);
		*strchrnul(strncmp(cmd, "sticky ", 7) == 0 ? cmd + 7 : cmd, ' ') = '\0';
		snprintf(want, sizeof(want), "permission denied: \"%s\" needs group %s; group %s "
		    "may run only status, backends, sticky list|get, monitor, help", cmd, nfull, nro);
		r = peer_request(f, &ro.gr_gid, 1, mutating[i]);
		assert_non_null(error_of(r));
		assert_string_equal(error_of(r), want);
		json_decref(r);
	}
	/* The flush never ran: the entry is still there. */
	{
		struct lbd_ip	 a = ip("10.0.0.1");

		sticky_set(f->lbd.services[0].sticky, &a, 0, now_s());
	}
	r = peer_request(f, &ro.gr_gid, 1, "sticky flush");
	assert_non_null(error_of(r));
	json_decref(r);
	assert_int_equal(sticky_count(f->lbd.services[0].sticky), 1);

	/* A control.group member (among other groups) may change things. */
	{
		gid_t	 both[2] = { ro.gr_gid, full.gr_gid };

		r = peer_request(f, both, 2, "sticky flush");
		assert_null(error_of(r));
		json_decref(r);
		assert_int_equal(sticky_count(f->lbd.services[0].sticky), 0);
	}

	/* Neither group: nothing, and told which groups would do. */
	snprintf(want, sizeof(want), "permission denied: lbctl needs group %s (every command) "
	    "or %s (status, backends, sticky list|get, monitor, help); root can add you: "
	    "usermod -aG %s NAME", nfull, nro, nfull);
	r = peer_request(f, NULL, 0, "status");
	assert_non_null(error_of(r));
	assert_string_equal(error_of(r), want);
	json_decref(r);
	close_socket(f);

	/* Without a read-only group the socket is 0660, group control.group. */
	f->conf.control_readonly_group[0] = '\0';
	open_socket(f);
	assert_int_equal(stat(f->conf.control_socket, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0660);
	assert_int_equal(st.st_gid, full.gr_gid);
	close_socket(f);
	rmdir(f->dir);

	/* A group that does not exist, when configured, stops lbd. */
	snprintf(f->conf.control_group, sizeof(f->conf.control_group), "no-such-group-lbd");
	snprintf(f->dir, sizeof(f->dir), "/tmp/lbdtest-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->conf.control_socket, sizeof(f->conf.control_socket), "%s/run/s", f->dir);
	assert_null(control_open(&f->lbd));
	/* The default group missing only warns: root and lbd's user still get in. */
	f->conf.control_group_set = false;
	f->lbd.control = control_open(&f->lbd);
	assert_non_null(f->lbd.control);
	r = client_request(f, "status\n", 7, false);
	assert_null(error_of(r));
	json_decref(r);
	close_socket(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_status_shape, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backends_shape, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backends_removed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sticky_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sticky_set, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sticky_set_replicated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sticky_list_pages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sticky_list_sparse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sticky_list_pages_services, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backend_admin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_services, setup, teardown),
		cmocka_unit_test_setup_teardown(test_misc_commands, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket_monitor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket_sticky_stream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket_slow_monitor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket_monitor_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket_slow_client, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket_stale_and_live, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket_access, setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN);	/* as lbd does: a client that leaves is an EPIPE */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
