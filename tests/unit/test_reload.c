/*
 * test_reload.c - live reload: backends keep their slots by name, sticky
 * entries survive, bad or restart-only configs are refused unchanged.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "lbd.h"

/* A service with backends A and B, weight and timeout placeholders. */
#define CONF_HEAD \
    "node = { name = \"lb1\"; address = \"127.0.0.1\"; };\n" \
    "vip = { address = \"127.0.0.87/8\"; interface = \"lo\"; };\n" \
    "control = { socket = \"/tmp/test_reload.sock\"; };\n"

/* The daemon under test and its temporary config file. */
struct fixture {
	char		 path[64];	/* /tmp/test_reload.XXXXXX */
	struct lbd	 lbd;		/* services built from path */
};

static void
write_conf(const char *path, const char *ports, int weight_b, const char *extra_backend,
    int connect_ms, bool with_a)
{
	FILE	*f = fopen(path, "w");

	assert_non_null(f);
	fprintf(f, CONF_HEAD
	    "services = ( {\n"
	    "  name = \"S\";\n"
	    "  ports = [ %s ];\n"
	    "  sticky_timeout_s = 600;\n"
	    "  connect_timeout_ms = %d;\n"
	    "  check = { type = \"none\"; };\n"
	    "  backends = (\n"
	    "%s"
	    "    { name = \"B\"; address = \"127.0.0.51\"; weight = %d; }%s\n"
	    "  );\n"
	    "} );\n", ports, connect_ms,
	    with_a ? "    { name = \"A\"; address = \"127.0.0.50\"; weight = 1; },\n" : "",
	    weight_b, extra_backend);
	assert_int_equal(fclose(f), 0);
}

static int
setup(void **state)
{
	struct fixture	*fx = calloc(1, sizeof(*fx));
	char		 err[1024];
	int		 fd;

	assert_non_null(fx);
	snprintf(fx->path, sizeof(fx->path), "/tmp/test_reload.XXXXXX");
	assert_true((fd = mkstemp(fx->path)) != -1);
	close(fd);
	write_conf(fx->path, "\"2121\"", 1, "", 3000, true);
	assert_non_null(fx->lbd.conf = malloc(sizeof(*fx->lbd.conf)));
	if (config_load(fx->path, fx->lbd.conf, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	assert_non_null(fx->lbd.base = event_base_new());
	assert_int_equal(reload_services_init(&fx->lbd), 0);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture	*fx = *state;

	reload_services_free(&fx->lbd);
	event_base_free(fx->lbd.base);
	free(fx->lbd.conf);
	unlink(fx->path);
	free(fx);
	return 0;
}

/* Weight changed, a backend added, a timeout changed: applied, sticky intact. */
static void
test_reload_live(void **state)
{
	struct fixture	*fx = *state;
	struct service	*svc = &fx->lbd.services[0];
	struct backend	*b = &svc->backends[1];
	struct lbd_ip	 ip;
	char		 err[1024];
	int		 idx;

	assert_string_equal(b->conf.name, "B");
	assert_int_equal(ip_parse("10.0.0.7", &ip), 0);
	sticky_set(svc->sticky, &ip, b->index, now_s());
	b->active = 2;		/* as if two connections were open on B */

	write_conf(fx->path, "\"2121\"", 5, ",\n    { name = \"C\"; address = \"127.0.0.52\"; }",
	    1234, true);
	assert_int_equal(reload_apply(&fx->lbd, err, sizeof(err)), 0);

	assert_ptr_equal(&svc->backends[1], b);
	assert_string_equal(b->conf.name, "B");
	assert_int_equal(b->conf.weight, 5);
	assert_int_equal(b->active, 2);
	assert_int_equal(svc->conf.connect_timeout_ms, 1234);
	assert_int_equal(fx->lbd.conf->services[0].connect_timeout_ms, 1234);
	assert_int_equal(svc->nbackends, 3);
	assert_string_equal(svc->backends[2].conf.name, "C");
	assert_true(svc->backends[2].up);
	assert_int_equal(svc->backends[2].admin, BACKEND_ENABLED);
	idx = sticky_lookup(svc->sticky, &ip, now_s());
	assert_int_equal(idx, 1);
	assert_string_equal(svc->backends[idx].conf.name, "B");
	b->active = 0;
}

/* A removed backend keeps its slot, disabled; back in the config, it is enabled again. */
static void
test_reload_remove(void **state)
{
	struct fixture	*fx = *state;
	struct service	*svc = &fx->lbd.services[0];
	struct backend	*a = &svc->backends[0];
	struct lbd_ip	 ip;
	char		 err[1024];

	assert_int_equal(ip_parse("10.0.0.8", &ip), 0);
	sticky_set(svc->sticky, &ip, a->index, now_s());
	write_conf(fx->path, "\"2121\"", 1, "", 3000, false);
	assert_int_equal(reload_apply(&fx->lbd, err, sizeof(err)), 0);
	assert_int_equal(svc->nbackends, 2);
	assert_string_equal(a->conf.name, "A");
	assert_int_equal(a->admin, BACKEND_DISABLED);
	assert_true(reload_backend_removed(a));
	assert_false(reload_backend_removed(&svc->backends[1]));
	/* Its sticky client re-picks: B is the only usable backend. */
	assert_ptr_equal(sched_select(svc, &ip, now_s()), &svc->backends[1]);

	write_conf(fx->path, "\"2121\"", 1, "", 3000, true);
	assert_int_equal(reload_apply(&fx->lbd, err, sizeof(err)), 0);
	assert_int_equal(svc->nbackends, 2);
	assert_int_equal(a->admin, BACKEND_ENABLED);
	assert_false(reload_backend_removed(a));
}

/* ",\n { X<i> }" for i in [first, last) except skip, and then extra (may be ""). */
static void
extra_backends(char *buf, size_t len, int first, int last, int skip, const char *extra)
{
	size_t	 n = 0;
	int	 i;

	buf[0] = '\0';
	for (i = first; i < last; i++)
		if (i != skip)
			n += (size_t)snprintf(buf + n, len - n,
			    ",\n    { name = \"X%d\"; address = \"127.0.1.%d\"; }", i, i);
	snprintf(buf + n, len - n, "%s", extra);
}

/*
 * All 64 slots taken and one backend removed: a new backend reuses its
 * slot, and the removed one's sticky entries go first (reload_forget),
 * the others stay.
 */
static void
test_reload_reuse_slot(void **state)
{
	struct fixture	*fx = *state;
	struct service	*svc = &fx->lbd.services[0];
	struct lbd_ip	 ip;
	char		 err[1024], *more = malloc(8192);
	int		 i, slot;

	assert_non_null(more);
	extra_backends(more, 8192, 0, LBD_MAX_BACKENDS - 2, -1, "");
	write_conf(fx->path, "\"2121\"", 1, more, 3000, true);
	assert_int_equal(reload_apply(&fx->lbd, err, sizeof(err)), 0);
	assert_int_equal(svc->nbackends, LBD_MAX_BACKENDS);
	slot = 2 + 5;		/* X5, after A and B */
	assert_string_equal(svc->backends[slot].conf.name, "X5");
	for (i = 0; i < 300; i++) {
		assert_int_equal(ip_parse("10.1.0.0", &ip), 0);
		ip.bytes[14] = (uint8_t)(i >> 8);
		ip.bytes[15] = (uint8_t)i;
		sticky_set(svc->sticky, &ip, i % 3 == 0 ? slot : 1, now_s());
	}
	/* X5 leaves: its slot stays, removed. */
	extra_backends(more, 8192, 0, LBD_MAX_BACKENDS - 2, 5, "");
	write_conf(fx->path, "\"2121\"", 1, more, 3000, true);
	assert_int_equal(reload_apply(&fx->lbd, err, sizeof(err)), 0);
	assert_true(reload_backend_removed(&svc->backends[slot]));
	assert_int_equal(sticky_count(svc->sticky), 300);
	/* Y comes: no free slot but X5's. */
	extra_backends(more, 8192, 0, LBD_MAX_BACKENDS - 2, 5,
	    ",\n    { name = \"Y\"; address = \"127.0.2.1\"; }");
	write_conf(fx->path, "\"2121\"", 1, more, 3000, true);
	assert_int_equal(reload_apply(&fx->lbd, err, sizeof(err)), 0);
	assert_string_equal(svc->backends[slot].conf.name, "Y");
	assert_int_equal(sticky_count(svc->sticky), 200);
	for (i = 0; i < 300; i++) {
		assert_int_equal(ip_parse("10.1.0.0", &ip), 0);
		ip.bytes[14] = (uint8_t)(i >> 8);
		ip.bytes[15] = (uint8_t)i;
		assert_int_equal(sticky_lookup(svc->sticky, &ip, now_s()), i % 3 == 0 ? -1 : 1);
	}
	free(more);
}

/* A syntax error: FILE:LINE in err, the old config keeps running. */
static void
test_reload_invalid(void **state)
{
	struct fixture	*fx = *state;
	struct lbd_config *before = fx->lbd.conf;
	char		 err[1024], want[128];
	FILE		*f;

	assert_non_null(f = fopen(fx->path, "w"));
	fprintf(f, CONF_HEAD "services = ( { name = \"S\"; ports = [ \"2121\" ]\n");
	fclose(f);
	assert_int_equal(reload_apply(&fx->lbd, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:", fx->path);
	assert_non_null(strstr(err, want));
	assert_true(strlen(err) > strlen(want) && err[strlen(want)] >= '0' &&
	    err[strlen(want)] <= '9');
	assert_ptr_equal(fx->lbd.conf, before);
	assert_int_equal(fx->lbd.services[0].nbackends, 2);
	assert_int_equal(fx->lbd.services[0].conf.connect_timeout_ms, 3000);
}

/* Ports cannot change live: refused, nothing changed. */
static void
test_reload_ports(void **state)
{
	struct fixture	*fx = *state;
	struct lbd_config *before = fx->lbd.conf;
	char		 err[1024];

	write_conf(fx->path, "\"2121\", \"2122\"", 7, ",\n    { name = \"C\"; address = \"127.0.0.52\"; }",
	    99, true);
	assert_int_equal(reload_apply(&fx->lbd, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "needs a restart"));
	assert_non_null(strstr(err, "ports"));
	assert_ptr_equal(fx->lbd.conf, before);
	assert_int_equal(fx->lbd.services[0].nbackends, 2);
	assert_int_equal(fx->lbd.services[0].backends[1].conf.weight, 1);
	assert_int_equal(fx->lbd.services[0].conf.connect_timeout_ms, 3000);
}

/* Node settings cannot change live: refused with what changed. */
static void
test_reload_node(void **state)
{
	struct fixture	*fx = *state;
	char		 err[1024];
	FILE		*f;

	assert_non_null(f = fopen(fx->path, "w"));
	fprintf(f, "node = { name = \"lb9\"; address = \"127.0.0.1\"; };\n"
	    "vip = { address = \"127.0.0.87/8\"; interface = \"lo\"; };\n"
	    "control = { socket = \"/tmp/test_reload.sock\"; };\n"
	    "services = ( { name = \"S\"; ports = [ \"2121\" ]; sticky_timeout_s = 600;\n"
	    "  backends = ( { name = \"A\"; address = \"127.0.0.50\"; } ); } );\n");
	fclose(f);
	assert_int_equal(reload_apply(&fx->lbd, err, sizeof(err)), -1);
	assert_string_equal(err, "needs a restart: node settings changed");

	/* The relay's thread count is a node setting too. */
	assert_non_null(f = fopen(fx->path, "w"));
	fprintf(f, "node = { name = \"lb1\"; address = \"127.0.0.1\"; relay_threads = 3; };\n"
	    "vip = { address = \"127.0.0.87/8\"; interface = \"lo\"; };\n"
	    "control = { socket = \"/tmp/test_reload.sock\"; };\n"
	    "services = ( { name = \"S\"; ports = [ \"2121\" ]; sticky_timeout_s = 600;\n"
	    "  backends = ( { name = \"A\"; address = \"127.0.0.50\"; } ); } );\n");
	fclose(f);
	assert_int_equal(reload_apply(&fx->lbd, err, sizeof(err)), -1);
	assert_string_equal(err, "needs a restart: node settings changed");

	/* The socket's groups are set when it is made: a restart too. */
	assert_non_null(f = fopen(fx->path, "w"));
	fprintf(f, "node = { name = \"lb1\"; address = \"127.0.0.1\"; };\n"
	    "vip = { address = \"127.0.0.87/8\"; interface = \"lo\"; };\n"
	    "control = { socket = \"/tmp/test_reload.sock\"; readonly_group = \"lbdview\"; };\n"
	    "services = ( { name = \"S\"; ports = [ \"2121\" ]; sticky_timeout_s = 600;\n"
	    "  backends = ( { name = \"A\"; address = \"127.0.0.50\"; } ); } );\n");
	fclose(f);
	assert_int_equal(reload_apply(&fx->lbd, err, sizeof(err)), -1);
	assert_string_equal(err, "needs a restart: control settings changed");
}

/* log_level changes live, both ways; everything else stays. */
static void
test_reload_log_level(void **state)
{
	struct fixture	*fx = *state;
	char		 err[1024];
	FILE		*f;

	assert_int_equal(fx->lbd.conf->log_level, LOG_LEVEL_INFO);
	assert_non_null(f = fopen(fx->path, "a"));
	fprintf(f, "log_level = \"warning\";\n");
	fclose(f);
	assert_int_equal(reload_apply(&fx->lbd, err, sizeof(err)), 0);
	assert_int_equal(fx->lbd.conf->log_level, LOG_LEVEL_WARNING);
	assert_int_equal(log_getlevel(), LOG_LEVEL_WARNING);

	write_conf(fx->path, "\"2121\"", 1, "", 3000, true);
	assert_int_equal(reload_apply(&fx->lbd, err, sizeof(err)), 0);
	assert_int_equal(fx->lbd.conf->log_level, LOG_LEVEL_INFO);
	assert_int_equal(log_getlevel(), LOG_LEVEL_INFO);
}

/*
 * node.pipe_memory_max_mb changes live, unlike the rest of node: the
 * relay's budget follows at once, and unset again means the default.
 */
static void
test_reload_pipe_memory(void **state)
{
	struct fixture		*fx = *state;
	struct relay_pipe_stats	 st;
	char			 err[1024];
	uint64_t		 def;
	FILE			*f;

	relay_pipe_budget(fx->lbd.conf);
	relay_pipe_stats(&st);
	def = st.max;
	assert_true(def > 0 && def <= 256ull * 1024 * 1024);
	assert_non_null(f = fopen(fx->path, "w"));
	fprintf(f, "node = { name = \"lb1\"; address = \"127.0.0.1\";\n"
	    "  pipe_memory_max_mb = 7; };\n"
	    "vip = { address = \"127.0.0.87/8\"; interface = \"lo\"; };\n"
	    "control = { socket = \"/tmp/test_reload.sock\"; };\n"
	    "services = ( { name = \"S\"; ports = [ \"2121\" ]; sticky_timeout_s = 600;\n"
	    "  connect_timeout_ms = 3000; check = { type = \"none\"; };\n"
	    "  backends = ( { name = \"A\"; address = \"127.0.0.50\"; },\n"
	    "    { name = \"B\"; address = \"127.0.0.51\"; } ); } );\n");
	fclose(f);
	if (reload_apply(&fx->lbd, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_int_equal(fx->lbd.conf->pipe_memory_max_mb, 7);
	relay_pipe_stats(&st);
	assert_int_equal(st.max, 7ull * 1024 * 1024);
	write_conf(fx->path, "\"2121\"", 1, "", 3000, true);
	assert_int_equal(reload_apply(&fx->lbd, err, sizeof(err)), 0);
	relay_pipe_stats(&st);
	assert_int_equal(st.max, def);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_reload_live, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_reuse_slot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_invalid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_ports, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_node, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_log_level, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_pipe_memory, setup, teardown),
	};

	log_init(0, "test_reload");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
