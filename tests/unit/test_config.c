/*
 * test_config.c - config_load(): the SPEC section 4 example, defaults, the
 * deploy/ examples, and a FILE:LINE: message for every class of mistake.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lbd.h"

#define ERR_MAX		1024	/* message buffer given to config_load */

/* The SPEC section 4 example, verbatim. */
static const char spec_example[] =
    "node    = { name = \"lb1\"; address = \"192.168.86.2\"; priority = 150; };\n"
    "peer    = { name = \"lb2\"; address = \"192.168.86.3\"; };   # omit for a standalone node\n"
    "cluster = {\n"
    "  key_file = \"/etc/lbd/cluster.key\";   # made by `lbd --genkey`\n"
    "  heartbeat_port = 7411;               # UDP\n"
    "  sync_port = 7412;                    # TCP\n"
    "  advert_interval_ms = 100;\n"
    "  preempt = true;\n"
    "};\n"
    "vip     = { address = \"192.168.86.87/24\"; interface = \"eth0\"; };\n"
    "control = { socket = \"/run/lbd/lbd.sock\"; };\n"
    "services = (\n"
    "  {\n"
    "    name = \"FTPS_VIP\";\n"
    "    ports = [ \"21\", \"990\", \"1025-1052\" ];\n"
    "    scheduler = \"leastconn\";            # or \"roundrobin\"\n"
    "    sticky_timeout_s = 1800;\n"
    "    connect_timeout_ms = 3000;\n"
    "    idle_timeout_s = 1800;\n"
    "    source = \"vip\";                     # backend connections leave from the VIP\n"
    "    check = { type = \"ftp\"; port = 21; interval_ms = 1000; timeout_ms = 1000; rise = 2; fall = 2; };\n"
    "    backends = (\n"
    "      { name = \"FTP_SVR1\"; address = \"192.168.86.50\"; weight = 1; },\n"
    "      { name = \"FTP_SVR2\"; address = \"192.168.86.51\"; weight = 1; }\n"
    "    );\n"
    "  }\n"
    ");\n";

/* Lines 1-2 of most error cases: a valid node and VIP. */
#define NODE_VIP \
    "node = { name = \"lb1\"; address = \"192.168.86.2\"; };\n" \
    "vip = { address = \"192.168.86.87/24\"; interface = \"eth0\"; };\n"

/* A minimal valid backends list, for one line. */
#define ONE_BACKEND \
    "backends = ( { name = \"B1\"; address = \"192.168.86.50\"; } );"

/* Temporary config file and the result of loading it. */
struct fixture {
	char		 path[64];	/* /tmp/test_config.XXXXXX */
	struct lbd_config *conf;	/* heap: the struct is large */
	char		 err[ERR_MAX];	/* config_load's message */
};

static int
setup(void **state)
{
	struct fixture	*f;

	f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->conf = malloc(sizeof(*f->conf));
	assert_non_null(f->conf);
	/* config_load gets uninitialised memory: make that visible. */
	memset(f->conf, 0xa5, sizeof(*f->conf));
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture	*f = *state;

	if (f->path[0] != '\0')
		unlink(f->path);
	free(f->conf);
	free(f);
	return 0;
}

/* Writes text to a new temporary file whose name goes to f->path. */
static void
write_conf(struct fixture *f, const char *text)
{
	size_t	 len = strlen(text);
	int	 fd;

	snprintf(f->path, sizeof(f->path), "/tmp/test_config.XXXXXX");
	fd = mkstemp(f->path);
	assert_int_not_equal(fd, -1);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

/* Loads text and expects success. */
static struct lbd_config *
load_ok(struct fixture *f, const char *text)
{
	write_conf(f, text);
	if (config_load(f->path, f->conf, f->err, sizeof(f->err)) != 0)
		fail_msg("config_load failed: %s", f->err);
	assert_string_equal(f->conf->path, f->path);
	return f->conf;
}

/*
 * Loads text and expects failure with "PATH:LINE: " (line > 0) or
 * "PATH: " (line 0) in front of a message containing substr.
 */
static void
load_err(struct fixture *f, const char *text, int line, const char *substr)
{
	char	 prefix[128];

	write_conf(f, text);
	assert_int_equal(config_load(f->path, f->conf, f->err, sizeof(f->err)), -1);
	if (line > 0)
		snprintf(prefix, sizeof(prefix), "%s:%d: ", f->path, line);
	else
		snprintf(prefix, sizeof(prefix), "%s: ", f->path);
	if (strncmp(f->err, prefix, strlen(prefix)) != 0)
		fail_msg("expected prefix \"%s\", got \"%s\"", prefix, f->err);
	if (strstr(f->err, substr) == NULL)
		fail_msg("expected \"%s\" in \"%s\"", substr, f->err);
}

/* Asserts ss holds the address text s, port 0. */
static void
assert_addr(const struct sockaddr_storage *ss, const char *s)
{
	char	 buf[INET6_ADDRSTRLEN];

	sockaddr_str((const struct sockaddr *)ss, buf, sizeof(buf));
	assert_string_equal(buf, s);
	assert_int_equal(addr_port((const struct sockaddr *)ss), 0);
}

static void
test_spec_example(void **state)
{
	struct fixture		*f = *state;
	struct lbd_config	*c = load_ok(f, spec_example);
	struct service_config	*s = &c->services[0];

	assert_string_equal(c->node_name, "lb1");
	assert_addr(&c->node_addr, "192.168.86.2");
	assert_int_equal(c->node_priority, 150);
	assert_true(c->has_peer);
	assert_string_equal(c->peer_name, "lb2");
	assert_int_equal(c->npeer_addr, 1);
	assert_addr(&c->peer_addr[0], "192.168.86.3");
	assert_string_equal(c->key_file, "/etc/lbd/cluster.key");
	assert_int_equal(c->heartbeat_port, 7411);
	assert_int_equal(c->sync_port, 7412);
	assert_int_equal(c->advert_interval_ms, 100);
	assert_true(c->preempt);
	assert_addr(&c->vip_addr, "192.168.86.87");
	assert_int_equal(c->vip_prefixlen, 24);
	assert_string_equal(c->vip_interface, "eth0");
	assert_string_equal(c->control_socket, "/run/lbd/lbd.sock");

	assert_int_equal(c->nservices, 1);
	assert_string_equal(s->name, "FTPS_VIP");
	assert_int_equal(s->line, 13);
	assert_int_equal(s->nranges, 3);
	assert_int_equal(s->ranges[0].first, 21);
	assert_int_equal(s->ranges[0].last, 21);
	assert_int_equal(s->ranges[1].first, 990);
	assert_int_equal(s->ranges[1].last, 990);
	assert_int_equal(s->ranges[2].first, 1025);
	assert_int_equal(s->ranges[2].last, 1052);
	assert_int_equal(s->sched, SCHED_LEASTCONN);
	assert_int_equal(s->sticky_timeout_s, 1800);
	assert_int_equal(s->sticky_size, 262144);
	assert_int_equal(s->connect_timeout_ms, 3000);
	assert_int_equal(s->idle_timeout_s, 1800);
	assert_int_equal(s->max_connections, 4096);
	assert_int_equal(s->source, SOURCE_VIP);
	assert_int_equal(s->check.type, CHECK_FTP);
	assert_int_equal(s->check.port, 21);
	assert_int_equal(s->check.interval_ms, 1000);
	assert_int_equal(s->check.timeout_ms, 1000);
	assert_int_equal(s->check.rise, 2);
	assert_int_equal(s->check.fall, 2);
	assert_int_equal(s->nbackends, 2);
	assert_string_equal(s->backends[0].name, "FTP_SVR1");
	assert_addr(&s->backends[0].addr, "192.168.86.50");
	assert_int_equal(s->backends[0].weight, 1);
	assert_int_equal(s->backends[0].line, 23);
	assert_string_equal(s->backends[1].name, "FTP_SVR2");
	assert_addr(&s->backends[1].addr, "192.168.86.51");
	assert_int_equal(s->backends[1].weight, 1);
	assert_int_equal(s->backends[1].line, 24);
}

/* Only the required keys: every other field takes its default. */
static void
test_minimal_defaults(void **state)
{
	struct fixture		*f = *state;
	struct lbd_config	*c;
	struct service_config	*s;

	c = load_ok(f, NODE_VIP
	    "services = ( { name = \"S1\"; ports = [ \"2121\", \"21\" ];\n"
	    ONE_BACKEND " } );\n");
	s = &c->services[0];
	assert_int_equal(c->node_priority, 100);
	assert_int_equal(c->relay_threads, LBD_RELAY_THREADS_AUTO);	/* relay_init picks */
	assert_int_equal(c->pipe_memory_max_mb, LBD_PIPE_MEMORY_AUTO);	/* 256, <= RAM / 8 */
	assert_false(c->has_peer);
	assert_int_equal(c->npeer_addr, 0);
	assert_string_equal(c->peer_name, "");
	assert_string_equal(c->key_file, "/etc/lbd/cluster.key");
	assert_int_equal(c->heartbeat_port, 7411);
	assert_int_equal(c->sync_port, 7412);
	assert_int_equal(c->advert_interval_ms, 100);
	assert_true(c->preempt);
	assert_int_equal(c->handover_drain_s, 60);
	assert_string_equal(c->control_socket, "/run/lbd/lbd.sock");
	assert_string_equal(c->control_group, "lbdctl");
	assert_false(c->control_group_set);
	assert_string_equal(c->control_readonly_group, "");
	assert_int_equal(c->nservices, 1);
	assert_int_equal(s->line, 3);
	assert_int_equal(s->nranges, 2);
	assert_int_equal(s->sched, SCHED_LEASTCONN);
	assert_int_equal(s->sticky_timeout_s, 1800);
	assert_int_equal(s->sticky_size, 262144);
	assert_int_equal(s->connect_timeout_ms, 3000);
	assert_int_equal(s->idle_timeout_s, 1800);
	assert_int_equal(s->max_connections, 4096);
	assert_int_equal(s->max_connections_per_client, 128);
	assert_int_equal(s->source, SOURCE_VIP);
	assert_int_equal(s->check.type, CHECK_TCP);
	assert_int_equal(s->check.port, 2121);	/* the first port as written */
	assert_int_equal(s->check.interval_ms, 1000);
	assert_int_equal(s->check.timeout_ms, 1000);
	assert_int_equal(s->check.rise, 2);
	assert_int_equal(s->check.fall, 2);
	assert_int_equal(s->nbackends, 1);
	assert_int_equal(s->backends[0].weight, 1);
	assert_int_equal(s->backends[0].line, 4);
}

/* Non-default values everywhere, IPv6, integer ports, several peer paths. */
static void
test_all_settings_ipv6(void **state)
{
	struct fixture		*f = *state;
	struct lbd_config	*c;
	struct service_config	*s;

	c = load_ok(f,
	    "node = { name = \"a-1.x\"; address = \"2001:db8::2\"; priority = 254;"
	    " relay_threads = 64; };\n"
	    "peer = { name = \"b_2\"; address = [ \"2001:db8::3\", \"fd00::3\" ]; };\n"
	    "cluster = { key_file = \"/k\"; heartbeat_port = 1; sync_port = 65535;\n"
	    "  advert_interval_ms = 10000; preempt = false; handover_drain_s = 0; };\n"
	    "vip = { address = \"2001:db8::87/64\"; interface = \"br0.10\"; };\n"
	    "control = { socket = \"/tmp/x.sock\"; };\n"
	    "services = (\n"
	    "  { name = \"A\"; ports = [ 80, 443 ]; scheduler = \"roundrobin\";\n"
	    "    sticky_timeout_s = 604800; sticky_size = 16; connect_timeout_ms = 10;\n"
	    "    idle_timeout_s = 1; max_connections = 1000000; source = \"node\";\n"
	    "    check = { type = \"none\"; interval_ms = 500; rise = 100; fall = 1; };\n"
	    "    backends = ( { name = \"X\"; address = \"2001:db8::50\"; weight = 256; },\n"
	    "                 { name = \"Y\"; address = \"2001:db8::51\"; } ); },\n"
	    "  { name = \"B\"; ports = ( \"8000-8009\", 8010 ); check = { port = 9; };\n"
	    "    backends = ( { name = \"X\"; address = \"2001:db8::52\"; } ); }\n"
	    ");\n");
	assert_string_equal(c->node_name, "a-1.x");
	assert_int_equal(c->node_addr.ss_family, AF_INET6);
	assert_int_equal(c->node_priority, 254);
	assert_int_equal(c->relay_threads, 64);
	assert_int_equal(c->npeer_addr, 2);
	assert_addr(&c->peer_addr[0], "2001:db8::3");
	assert_addr(&c->peer_addr[1], "fd00::3");
	assert_string_equal(c->key_file, "/k");
	assert_int_equal(c->heartbeat_port, 1);
	assert_int_equal(c->sync_port, 65535);
	assert_int_equal(c->advert_interval_ms, 10000);
	assert_false(c->preempt);
	assert_int_equal(c->handover_drain_s, 0);
	assert_addr(&c->vip_addr, "2001:db8::87");
	assert_int_equal(c->vip_prefixlen, 64);
	assert_string_equal(c->vip_interface, "br0.10");
	assert_string_equal(c->control_socket, "/tmp/x.sock");
	assert_int_equal(c->nservices, 2);
	s = &c->services[0];
	assert_int_equal(s->ranges[0].first, 80);
	assert_int_equal(s->ranges[1].last, 443);
	assert_int_equal(s->sched, SCHED_ROUNDROBIN);
	assert_int_equal(s->sticky_timeout_s, 604800);
	assert_int_equal(s->sticky_size, 16);
	assert_int_equal(s->connect_timeout_ms, 10);
	assert_int_equal(s->idle_timeout_s, 1);
	assert_int_equal(s->max_connections, 1000000);
	assert_int_equal(s->source, SOURCE_NODE);
	assert_int_equal(s->check.type, CHECK_NONE);
	assert_int_equal(s->check.port, 80);
	assert_int_equal(s->check.interval_ms, 500);
	assert_int_equal(s->check.timeout_ms, 500);	/* follows the short interval */
	assert_int_equal(s->check.rise, 100);
	assert_int_equal(s->check.fall, 1);
	assert_int_equal(s->backends[0].weight, 256);
	assert_int_equal(s->backends[1].weight, 1);
	s = &c->services[1];
	assert_int_equal(s->line, 14);
	assert_int_equal(s->nranges, 2);
	assert_int_equal(s->ranges[0].first, 8000);
	assert_int_equal(s->ranges[0].last, 8009);
	assert_int_equal(s->ranges[1].first, 8010);
	assert_int_equal(s->check.type, CHECK_TCP);
	assert_int_equal(s->check.port, 9);
	/* Backend names are unique per service, not globally. */
	assert_string_equal(s->backends[0].name, "X");
}

/* Loads deploy/NAME (tests run from the repo root). */
static struct lbd_config *
load_deploy(struct fixture *f, const char *name)
{
	char	 path[64];

	snprintf(path, sizeof(path), "deploy/%s", name);
	if (config_load(path, f->conf, f->err, sizeof(f->err)) != 0)
		fail_msg("%s: %s", path, f->err);
	assert_string_equal(f->conf->path, path);
	return f->conf;
}

/* The seed deployment's shared parts, as in lb1.conf and lb2.conf. */
static void
assert_seed_service(const struct lbd_config *c)
{
	const struct service_config *s = &c->services[0];

	assert_addr(&c->vip_addr, "192.168.86.87");
	assert_int_equal(c->vip_prefixlen, 24);
	assert_string_equal(c->vip_interface, "eth0");
	assert_int_equal(c->nservices, 1);
	assert_string_equal(s->name, "FTPS_VIP");
	assert_int_equal(s->nranges, 3);
	assert_int_equal(s->ranges[0].first, 21);
	assert_int_equal(s->ranges[1].first, 990);
	assert_int_equal(s->ranges[2].first, 1025);
	assert_int_equal(s->ranges[2].last, 1052);
	assert_int_equal(s->check.type, CHECK_FTP);
	assert_int_equal(s->check.port, 21);
	assert_int_equal(s->source, SOURCE_VIP);
	assert_int_equal(s->nbackends, 2);
	assert_string_equal(s->backends[0].name, "FTP_SVR1");
	assert_addr(&s->backends[0].addr, "192.168.86.50");
	assert_string_equal(s->backends[1].name, "FTP_SVR2");
	assert_addr(&s->backends[1].addr, "192.168.86.51");
}

static void
test_deploy_lb1(void **state)
{
	struct lbd_config *c = load_deploy(*state, "lb1.conf");

	assert_string_equal(c->node_name, "lb1");
	assert_addr(&c->node_addr, "192.168.86.2");
	assert_int_equal(c->node_priority, 150);
	assert_true(c->has_peer);
	assert_string_equal(c->peer_name, "lb2");
	assert_addr(&c->peer_addr[0], "192.168.86.3");
	assert_seed_service(c);
}

static void
test_deploy_lb2(void **state)
{
	struct lbd_config *c = load_deploy(*state, "lb2.conf");

	assert_string_equal(c->node_name, "lb2");
	assert_addr(&c->node_addr, "192.168.86.3");
	assert_int_equal(c->node_priority, 100);
	assert_true(c->has_peer);
	assert_string_equal(c->peer_name, "lb1");
	assert_addr(&c->peer_addr[0], "192.168.86.2");
	assert_seed_service(c);
}

static void
test_deploy_standalone(void **state)
{
	struct lbd_config *c = load_deploy(*state, "standalone.conf");

	assert_false(c->has_peer);
	assert_string_equal(c->node_name, "lb1");
	assert_seed_service(c);
}

static void
test_missing_file(void **state)
{
	struct fixture	*f = *state;

	assert_int_equal(config_load("/nonexistent/lbd.conf", f->conf, f->err,
	    sizeof(f->err)), -1);
	assert_string_equal(f->err,
	    "/nonexistent/lbd.conf: cannot open: No such file or directory");
	assert_int_equal(config_load("/tmp", f->conf, f->err, sizeof(f->err)), -1);
	assert_string_equal(f->err, "/tmp: cannot open: Is a directory");
}

static void
test_syntax_error(void **state)
{
	load_err(*state, NODE_VIP
	    "services = (\n"
	    "  { name = \"S1\"; ports = [ \"21\" ; }\n"
	    ");\n", 4, "syntax error");
}

static void
test_libconfig_duplicate_setting(void **state)
{
	load_err(*state,
	    "node = { name = \"lb1\"; address = \"192.168.86.2\";\n"
	    "  name = \"lb2\"; };\n", 2, "duplicate setting");
}

/* Connection mirroring: off by default; mirror_ports default to the control ports present. */
static void
test_mirror(void **state)
{
	struct fixture		*f = *state;
	struct lbd_config	*c;

	c = load_ok(f, NODE_VIP
	    "services = ( { name = \"S1\"; ports = [ \"21\", \"1025-1052\" ];\n"
	    ONE_BACKEND " },\n"
	    "  { name = \"S2\"; ports = [ 2121 ]; " ONE_BACKEND " } );\n");
	assert_false(c->mirror);
	assert_int_equal(c->mirror_mark, LBD_MIRROR_MARK_DEF);
	assert_int_equal(c->services[0].nmirror, 1);
	assert_int_equal(c->services[0].mirror[0].first, 21);
	assert_int_equal(c->services[1].nmirror, 0);
	unlink(f->path);
	c = load_ok(f, NODE_VIP
	    "cluster = { mirror = true; mirror_mark = 0x77; };\n"
	    "services = ( { name = \"S1\"; ports = [ \"21\", \"990\", \"1025-1052\" ];\n"
	    "  mirror_ports = ( 990, \"1025-1030\" ); " ONE_BACKEND " } );\n");
	assert_true(c->mirror);
	assert_int_equal(c->mirror_mark, 0x77);
	assert_int_equal(c->services[0].nmirror, 2);
	assert_int_equal(c->services[0].mirror[0].first, 990);
	assert_int_equal(c->services[0].mirror[1].last, 1030);
	unlink(f->path);
	load_err(f, NODE_VIP
	    "services = ( { name = \"S1\"; ports = [ \"21\" ];\n"
	    "  mirror_ports = [ \"21\", \"990\" ]; " ONE_BACKEND " } );\n", 4,
	    "services[0].mirror_ports[1]: \"990\" is not among the service's ports");
	unlink(f->path);
	load_err(f, NODE_VIP "cluster = { mirror_mark = 0; };\n", 3,
	    "cluster.mirror_mark: 0 is out of range; use 1-2147483646 (not 0: every "
	    "unmarked socket carries it;");
	unlink(f->path);
	/* mirror_mark + 1 is the release mark: INT32_MAX has none. */
	load_err(f, NODE_VIP "cluster = { mirror_mark = 2147483647; };\n", 3,
	    "cluster.mirror_mark: 2147483647 is out of range; use 1-2147483646 (not 0: "
	    "every unmarked socket carries it; the fence also uses mirror_mark + 1, the "
	    "mark lbd gives a mirrored socket before it closes it)");
	unlink(f->path);
	c = load_ok(f, NODE_VIP "cluster = { mirror_mark = 2147483646; };\n"
	    "services = ( { name = \"S1\"; ports = [ 21 ]; " ONE_BACKEND " } );\n");
	assert_int_equal(c->mirror_mark, 2147483646);
}

static void
test_unknown_key_top(void **state)
{
	load_err(*state, NODE_VIP "nodes = 1;\n", 3,
	    "unknown top-level key \"nodes\"; valid keys: node, peer, cluster, "
	    "vip, control, metrics, log_level, services");
}

static void
test_unknown_key_nested(void **state)
{
	struct fixture	*f = *state;

	load_err(f, NODE_VIP
	    "services = ( { name = \"S1\"; ports = [ \"21\" ];\n"
	    "  check = { type = \"tcp\";\n"
	    "    intervall_ms = 5; };\n"
	    ONE_BACKEND " } );\n", 5,
	    "services[0].check: unknown key \"intervall_ms\"; valid keys: type, "
	    "port, interval_ms, timeout_ms, rise, fall");
	unlink(f->path);
	load_err(f, NODE_VIP
	    "services = ( { name = \"S1\"; ports = [ \"21\" ];\n"
	    "  backends = ( { name = \"B1\"; address = \"192.168.86.50\"; },\n"
	    "    { name = \"B2\"; address = \"192.168.86.51\"; port = 21; } ); } );\n",
	    5, "services[0].backends[1]: unknown key \"port\"; valid keys: name, "
	    "address, weight");
	unlink(f->path);
	load_err(f, "node = { name = \"lb1\"; address = \"192.168.86.2\";\n"
	    "  prio = 3; };\n", 2, "node: unknown key \"prio\"");
}

static void
test_wrong_type(void **state)
{
	struct fixture	*f = *state;

	load_err(f, "node = { name = \"lb1\"; address = \"192.168.86.2\";\n"
	    "  priority = \"150\"; };\n", 2, "node.priority: expected an integer");
	unlink(f->path);
	load_err(f, NODE_VIP "cluster = { preempt = 1; };\n", 3,
	    "cluster.preempt: expected true or false");
	unlink(f->path);
	load_err(f, NODE_VIP "cluster = { advert_interval_ms = 1.5; };\n", 3,
	    "cluster.advert_interval_ms: expected an integer");
	unlink(f->path);
	load_err(f, "node = { name = lb1; };\n", 1, "syntax error");
	unlink(f->path);
	load_err(f, "node = { name = 7; address = \"192.168.86.2\"; };\n", 1,
	    "node.name: expected a string");
	unlink(f->path);
	load_err(f, "node = \"lb1\";\n", 1, "node: expected a group");
}

static void
test_bad_address(void **state)
{
	struct fixture	*f = *state;

	load_err(f, NODE_VIP
	    "services = ( { name = \"S1\"; ports = [ \"21\" ];\n"
	    "  backends = ( { name = \"B1\";\n"
	    "    address = \"192.168.86.500\"; } ); } );\n", 5,
	    "services[0].backends[0].address: \"192.168.86.500\" is not an IPv4 "
	    "or IPv6 address");
	unlink(f->path);
	load_err(f, NODE_VIP
	    "services = ( { name = \"S1\"; ports = [ \"21\" ];\n"
	    "  backends = ( { name = \"B1\"; address = \"192.168.86.50:21\"; } ); } );\n",
	    4, "without a port");
	unlink(f->path);
	load_err(f, "node = { name = \"lb1\"; address = \"lb1.example\"; };\n", 1,
	    "node.address: \"lb1.example\" is not an IPv4 or IPv6 address");
	unlink(f->path);
	load_err(f, "node = { name = \"lb1\"; address = \"0.0.0.0\"; };\n", 1,
	    "wildcard");
}

static void
test_vip_without_prefix(void **state)
{
	struct fixture	*f = *state;

	load_err(f, "node = { name = \"lb1\"; address = \"192.168.86.2\"; };\n"
	    "vip = { interface = \"eth0\";\n"
	    "  address = \"192.168.86.87\"; };\n", 3,
	    "vip.address: \"192.168.86.87\" has no prefix length");
	unlink(f->path);
	load_err(f, "node = { name = \"lb1\"; address = \"192.168.86.2\"; };\n"
	    "vip = { address = \"192.168.86.87/33\"; interface = \"eth0\"; };\n", 2,
	    "vip.address: \"192.168.86.87/33\" is not an address with a prefix");
}

static void
test_vip_family_mismatch(void **state)
{
	load_err(*state, "node = { name = \"lb1\"; address = \"192.168.86.2\"; };\n"
	    "vip = { address = \"2001:db8::87/64\"; interface = \"eth0\"; };\n", 2,
	    "vip.address: \"2001:db8::87/64\" is IPv6 but node.address is IPv4");
}

static void
test_backend_is_vip(void **state)
{
	load_err(*state, NODE_VIP
	    "services = ( { name = \"S1\"; ports = [ \"21\" ];\n"
	    "  backends = ( { name = \"B1\"; address = \"192.168.86.87\"; } ); } );\n",
	    4, "\"192.168.86.87\" is the VIP");
}

static void
test_port_out_of_range(void **state)
{
	struct fixture	*f = *state;

	load_err(f, NODE_VIP
	    "services = ( { name = \"S1\";\n"
	    "  ports = [ \"21\", \"65536\" ];\n"
	    ONE_BACKEND " } );\n", 4,
	    "services[0].ports[1]: port 65536 is out of range; use 1-65535");
	unlink(f->path);
	load_err(f, NODE_VIP
	    "services = ( { name = \"S1\"; ports = [ 0 ];\n"
	    ONE_BACKEND " } );\n", 3, "services[0].ports[0]: port 0 is out of range");
	unlink(f->path);
	load_err(f, NODE_VIP
	    "services = ( { name = \"S1\"; ports = [ \"21x\" ];\n"
	    ONE_BACKEND " } );\n", 3, "\"21x\" is not a port or range");
	unlink(f->path);
	load_err(f, NODE_VIP
	    "services = ( { name = \"S1\"; ports = [ \"21\" ];\n"
	    "  check = { port = 70000; };\n"
	    ONE_BACKEND " } );\n", 4,
	    "services[0].check.port: 70000 is out of range; use 1-65535");
}

static void
test_reversed_range(void **state)
{
	load_err(*state, NODE_VIP
	    "services = ( { name = \"S1\";\n"
	    "  ports = [ \"21\",\n"
	    "    \"1052-1025\" ];\n"
	    ONE_BACKEND " } );\n", 5,
	    "services[0].ports[1]: range \"1052-1025\" is reversed; write the lower "
	    "port first: \"1025-1052\"");
}

static void
test_overlap_same_service(void **state)
{
	load_err(*state, NODE_VIP
	    "services = ( { name = \"S1\";\n"
	    "  ports = [ \"1025-1052\",\n"
	    "    \"21\", \"1030\" ];\n"
	    ONE_BACKEND " } );\n", 5,
	    "services[0].ports[2]: \"1030\" overlaps \"1025-1052\" (ports[0], line 4)");
}

static void
test_overlap_across_services(void **state)
{
	load_err(*state, NODE_VIP
	    "services = (\n"
	    "  { name = \"FTPS\"; ports = [ \"21\", \"1025-1052\" ];\n"
	    "    " ONE_BACKEND " },\n"
	    "  { name = \"OTHER\";\n"
	    "    ports = [ \"1000-1025\" ];\n"
	    "    " ONE_BACKEND " }\n"
	    ");\n", 7,
	    "services[1].ports[0]: \"1000-1025\" overlaps \"1025-1052\" of service "
	    "\"FTPS\" (services[0].ports[1], line 4)");
}

static void
test_duplicate_backend(void **state)
{
	load_err(*state, NODE_VIP
	    "services = ( { name = \"S1\"; ports = [ \"21\" ];\n"
	    "  backends = (\n"
	    "    { name = \"FTP_SVR1\"; address = \"192.168.86.50\"; },\n"
	    "    { name = \"FTP_SVR1\"; address = \"192.168.86.51\"; }\n"
	    "  ); } );\n", 6,
	    "services[0].backends[1]: duplicate backend name \"FTP_SVR1\" "
	    "(also backends[0], line 5)");
}

static void
test_duplicate_backend_address(void **state)
{
	load_err(*state, NODE_VIP
	    "services = ( { name = \"S1\"; ports = [ \"21\" ];\n"
	    "  backends = (\n"
	    "    { name = \"A\"; address = \"192.168.86.50\"; },\n"
	    "    { name = \"B\"; address = \"192.168.86.50\"; }\n"
	    "  ); } );\n", 6, "is also the address of backends[0] \"A\"");
}

static void
test_duplicate_service(void **state)
{
	load_err(*state, NODE_VIP
	    "services = (\n"
	    "  { name = \"S1\"; ports = [ \"21\" ]; " ONE_BACKEND " },\n"
	    "  { name = \"S1\"; ports = [ \"22\" ]; " ONE_BACKEND " }\n"
	    ");\n", 5,
	    "services[1]: duplicate service name \"S1\" (also services[0], line 4)");
}

static void
test_missing_required(void **state)
{
	struct fixture	*f = *state;

	load_err(f, "vip = { address = \"192.168.86.87/24\"; interface = \"eth0\"; };\n",
	    0, "missing required section \"node\"");
	unlink(f->path);
	load_err(f, "node = { name = \"lb1\"; address = \"192.168.86.2\"; };\n", 0,
	    "missing required section \"vip\"");
	unlink(f->path);
	load_err(f, NODE_VIP, 0, "missing required section \"services\"");
	unlink(f->path);
	load_err(f, "node = { address = \"192.168.86.2\"; };\n", 1,
	    "node: missing required key \"name\"");
	unlink(f->path);
	load_err(f, NODE_VIP "services = ( { name = \"S1\"; ports = [ \"21\" ]; } );\n",
	    3, "services[0]: missing required key \"backends\"");
	unlink(f->path);
	load_err(f, NODE_VIP "services = ( );\n", 3,
	    "services: the list is empty");
	unlink(f->path);
	load_err(f, NODE_VIP "services = ( { name = \"S1\"; " ONE_BACKEND " } );\n",
	    3, "services[0]: missing required key \"ports\"");
	unlink(f->path);
	load_err(f, NODE_VIP "peer = { name = \"lb2\"; };\n", 3,
	    "peer: missing required key \"address\"");
}

static void
test_priority_out_of_range(void **state)
{
	struct fixture	*f = *state;

	load_err(f, "node = { name = \"lb1\"; address = \"192.168.86.2\";\n"
	    "  priority = 255; };\n", 2,
	    "node.priority: 255 is out of range; use 1-254");
	unlink(f->path);
	load_err(f, "node = { name = \"lb1\"; address = \"192.168.86.2\";\n"
	    "  priority = 0; };\n", 2, "node.priority: 0 is out of range");
}

/* max_connections_per_client: 0 (no cap) to 1000000, FILE:LINE otherwise. */
static void
test_max_connections_per_client(void **state)
{
	struct fixture	*f = *state;
	struct lbd_config *c;

	c = load_ok(f, NODE_VIP
	    "services = ( { name = \"S1\"; ports = [ \"21\" ];\n"
	    "  max_connections_per_client = 2;\n" ONE_BACKEND " } );\n");
	assert_int_equal(c->services[0].max_connections_per_client, 2);
	unlink(f->path);
	c = load_ok(f, NODE_VIP
	    "services = ( { name = \"S1\"; ports = [ \"21\" ];\n"
	    "  max_connections_per_client = 0;\n" ONE_BACKEND " } );\n");
	assert_int_equal(c->services[0].max_connections_per_client, 0);
	unlink(f->path);
	load_err(f, NODE_VIP
	    "services = ( { name = \"S1\"; ports = [ \"21\" ];\n"
	    "  max_connections_per_client = -1;\n" ONE_BACKEND " } );\n", 4,
	    "services[0].max_connections_per_client: -1 is out of range; use 0-1000000");
	unlink(f->path);
	load_err(f, NODE_VIP
	    "services = ( { name = \"S1\"; ports = [ \"21\" ];\n"
	    "  max_connections_per_client = 1000001;\n" ONE_BACKEND " } );\n", 4,
	    "out of range; use 0-1000000");
	unlink(f->path);
	load_err(f, NODE_VIP
	    "services = ( { name = \"S1\"; ports = [ \"21\" ];\n"
	    "  max_connections_per_client = \"64\";\n" ONE_BACKEND " } );\n", 4,
	    "max_connections_per_client");
	unlink(f->path);
	/* A misspelt key is an error, not ignored. */
	load_err(f, NODE_VIP
	    "services = ( { name = \"S1\"; ports = [ \"21\" ];\n"
	    "  max_connection_per_client = 64;\n" ONE_BACKEND " } );\n", 4,
	    "max_connection_per_client");
}

/*
 * Integer literals past 32 bits: libconfig 1.5 wraps them (4294967446 is
 * 150), so config.c reads the line back and refuses them by their text.
 */
static void
test_int_literal_wrap(void **state)
{
	struct fixture		*f = *state;
	struct lbd_config	*c;
	char			 inc[80], text[512];
	FILE			*fp;

	static const struct {
		const char	*text;		/* after the node's first line */
		const char	*msg;		/* in the error, at line 2 */
	} cases[] = {
		{ "priority = 4294967446; };", "node.priority: 4294967446 does not fit in "
		    "32 bits (libconfig reads it as 150); use 1-254" },
		{ "priority = -4294967146; };", "-4294967146 does not fit in 32 bits" },
		{ "priority = 0x100000096; };", "0x100000096 does not fit in 32 bits" },
		/* The literal of this key, not a neighbour's on the same line. */
		{ "priority = 150; relay_threads = 4294967297; };",
		    "node.relay_threads: 4294967297 does not fit" },
		/* Big numbers in comments, an L literal, 2^31 - 1 and -2^31 are not wraps. */
		{ "priority = 4294967446L; };", "node.priority: 4294967446 is out of range" },
		{ "priority = 2147483647; /* 99999999999 */ };",
		    "node.priority: 2147483647 is out of range" },
		{ "priority = -2147483648; # 99999999999\n };",
		    "node.priority: -2147483648 is out of range" },
	};
	size_t			 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "node = { name = \"lb4294967446\"; "
		    "address = \"192.168.86.2\";\n  %s\n", cases[i].text);
		load_err(f, text, 2, cases[i].msg);
		unlink(f->path);
	}
	/* A list element: any bare literal on its line. */
	load_err(f, NODE_VIP
	    "services = ( { name = \"S1\"; ports = [ 21, 4294967317 ];\n"
	    ONE_BACKEND " } );\n", 3,
	    "4294967317 on this line does not fit in 32 bits (libconfig misreads it); "
	    "use 1-65535");
	unlink(f->path);
	/* An @include'd file is read back too, and a good one still loads. */
	snprintf(inc, sizeof(inc), "%s.inc", f->path);
	assert_non_null(fp = fopen(inc, "w"));
	fputs("node = { name = \"lb1\"; address = \"192.168.86.2\";\n"
	    "  priority = 4294967297; };\n", fp);
	fclose(fp);
	snprintf(text, sizeof(text), "@include \"%s\"\n", strrchr(inc, '/') + 1);
	write_conf(f, text);
	assert_int_equal(config_load(f->path, f->conf, f->err, sizeof(f->err)), -1);
	assert_non_null(strstr(f->err, ".inc:2: node.priority: 4294967297 does not fit"));
	unlink(inc);
	unlink(f->path);
	c = load_ok(f, NODE_VIP "services = ( { name = \"S1\"; ports = [ 21 ]; "
	    "sticky_size = 1024; # 4294967296\n" ONE_BACKEND " } );\n");
	assert_int_equal(c->services[0].sticky_size, 1024);
}

/* node.relay_threads: 0 (relay in the main loop) to 64; no other type. */
static void
test_relay_threads(void **state)
{
	struct fixture		*f = *state;
	struct lbd_config	*c;

	c = load_ok(f, "node = { name = \"lb1\"; address = \"192.168.86.2\";\n"
	    "  relay_threads = 0; };\n"
	    "vip = { address = \"192.168.86.87/24\"; interface = \"eth0\"; };\n"
	    "services = ( { name = \"S1\"; ports = [ \"21\" ]; " ONE_BACKEND " } );\n");
	assert_int_equal(c->relay_threads, 0);
	unlink(f->path);
	load_err(f, "node = { name = \"lb1\"; address = \"192.168.86.2\";\n"
	    "  relay_threads = 65; };\n", 2,
	    "node.relay_threads: 65 is out of range; use 0-64");
	unlink(f->path);
	load_err(f, "node = { name = \"lb1\"; address = \"192.168.86.2\";\n"
	    "  relay_threads = -1; };\n", 2,
	    "node.relay_threads: -1 is out of range; use 0-64");
	unlink(f->path);
	load_err(f, "node = { name = \"lb1\"; address = \"192.168.86.2\";\n"
	    "  relay_threads = \"auto\"; };\n", 2,
	    "node.relay_threads: expected an integer");
}

/* node.pipe_memory_max_mb: 0 (pipes never grown) to 1048576 MiB; no other type. */
static void
test_pipe_memory_max(void **state)
{
	struct fixture		*f = *state;
	struct lbd_config	*c;
	static const int	 ok[] = { 0, 1, 64, LBD_PIPE_MEMORY_MAX_MB };
	char			 text[512];
	size_t			 i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(text, sizeof(text), "node = { name = \"lb1\"; address = "
		    "\"192.168.86.2\";\n  pipe_memory_max_mb = %d; };\n"
		    "vip = { address = \"192.168.86.87/24\"; interface = \"eth0\"; };\n"
		    "services = ( { name = \"S1\"; ports = [ \"21\" ]; " ONE_BACKEND
		    " } );\n", ok[i]);
		c = load_ok(f, text);
		assert_int_equal(c->pipe_memory_max_mb, ok[i]);
		unlink(f->path);
	}
	load_err(f, "node = { name = \"lb1\"; address = \"192.168.86.2\";\n"
	    "  pipe_memory_max_mb = 1048577; };\n", 2,
	    "node.pipe_memory_max_mb: 1048577 is out of range; use 0-1048576");
	unlink(f->path);
	load_err(f, "node = { name = \"lb1\"; address = \"192.168.86.2\";\n"
	    "  pipe_memory_max_mb = -1; };\n", 2,
	    "node.pipe_memory_max_mb: -1 is out of range; use 0-1048576");
	unlink(f->path);
	load_err(f, "node = { name = \"lb1\"; address = \"192.168.86.2\";\n"
	    "  pipe_memory_max_mb = \"256M\"; };\n", 2,
	    "node.pipe_memory_max_mb: expected an integer");
	unlink(f->path);
	/* 2^32 + 256 would read as 256 without the literal check. */
	load_err(f, "node = { name = \"lb1\"; address = \"192.168.86.2\";\n"
	    "  pipe_memory_max_mb = 4294967552; };\n", 2,
	    "node.pipe_memory_max_mb: 4294967552 does not fit in 32 bits");
	unlink(f->path);
	load_err(f, "node = { name = \"lb1\"; address = \"192.168.86.2\";\n"
	    "  pipe_memory_max = 256; };\n", 2, "node: unknown key \"pipe_memory_max\"");
}

static void
test_bad_scheduler(void **state)
{
	struct fixture	*f = *state;

	load_err(f, NODE_VIP
	    "services = ( { name = \"S1\"; ports = [ \"21\" ];\n"
	    "  scheduler = \"random\";\n"
	    ONE_BACKEND " } );\n", 4,
	    "services[0].scheduler: unknown scheduler \"random\"; valid: "
	    "leastconn, roundrobin");
	unlink(f->path);
	load_err(f, NODE_VIP
	    "services = ( { name = \"S1\"; ports = [ \"21\" ]; source = \"any\";\n"
	    ONE_BACKEND " } );\n", 3, "unknown source \"any\"; valid: vip, node");
	unlink(f->path);
	load_err(f, NODE_VIP
	    "services = ( { name = \"S1\"; ports = [ \"21\" ];\n"
	    "  check = { type = \"http\"; }; " ONE_BACKEND " } );\n", 4,
	    "unknown check type \"http\"; valid: tcp, ftp, none");
}

static void
test_timeout_over_interval(void **state)
{
	struct fixture	*f = *state;

	load_err(f, NODE_VIP
	    "services = ( { name = \"S1\"; ports = [ \"21\" ];\n"
	    "  check = { interval_ms = 500;\n"
	    "    timeout_ms = 501; };\n"
	    ONE_BACKEND " } );\n", 5,
	    "services[0].check.timeout_ms: 501 is longer than interval_ms 500");
	unlink(f->path);
	/* The default interval (1000) applies too. */
	load_err(f, NODE_VIP
	    "services = ( { name = \"S1\"; ports = [ \"21\" ];\n"
	    "  check = { timeout_ms = 2000; }; " ONE_BACKEND " } );\n", 4,
	    "2000 is longer than interval_ms 1000");
}

static void
test_other_ranges(void **state)
{
	struct fixture	*f = *state;

	load_err(f, NODE_VIP "cluster = { heartbeat_port = 7000;\n"
	    "  sync_port = 7000; };\n", 4,
	    "heartbeat_port and sync_port are both 7000");
	unlink(f->path);
	load_err(f, NODE_VIP "cluster = { advert_interval_ms = 9; };\n", 3,
	    "cluster.advert_interval_ms: 9 is out of range; use 10-10000");
	unlink(f->path);
	load_err(f, NODE_VIP "cluster = { handover_drain_s = 86401; };\n", 3,
	    "cluster.handover_drain_s: 86401 is out of range; use 0-86400");
	unlink(f->path);
	load_err(f, NODE_VIP
	    "services = ( { name = \"S1\"; ports = [ \"21\" ];\n"
	    "  backends = ( { name = \"B1\"; address = \"192.168.86.50\";\n"
	    "    weight = 257; } ); } );\n", 5,
	    "services[0].backends[0].weight: 257 is out of range; use 1-256");
	unlink(f->path);
	load_err(f, NODE_VIP
	    "services = ( { name = \"S1\"; ports = [ \"21\" ]; sticky_size = 15;\n"
	    ONE_BACKEND " } );\n", 3, "sticky_size: 15 is out of range");
	unlink(f->path);
	load_err(f, NODE_VIP
	    "services = ( { name = \"S1\"; ports = [ \"21\" ];\n"
	    "  check = { rise = 101; }; " ONE_BACKEND " } );\n", 4,
	    "services[0].check.rise: 101 is out of range; use 1-100");
}

static void
test_bad_names(void **state)
{
	struct fixture	*f = *state;
	char		 text[512];

	load_err(f, "node = { name = \"lb 1\"; address = \"192.168.86.2\"; };\n", 1,
	    "node.name: \"lb 1\" has a bad character ' '");
	unlink(f->path);
	load_err(f, "node = { name = \"\"; address = \"192.168.86.2\"; };\n", 1,
	    "node.name: must not be empty");
	unlink(f->path);
	snprintf(text, sizeof(text), "node = { name = \"%064d\"; address = "
	    "\"192.168.86.2\"; };\n", 0);
	load_err(f, text, 1, "node.name: \"0000");
	assert_non_null(strstr(f->err, "is too long; at most 63 characters"));
	unlink(f->path);
	load_err(f, "node = { name = \"lb1\"; address = \"192.168.86.2\"; };\n"
	    "peer = { name = \"lb1\"; address = \"192.168.86.3\"; };\n", 2,
	    "peer.name: \"lb1\" is also node.name");
}

static void
test_limits(void **state)
{
	struct fixture	*f = *state;
	char		 text[4096], *p = text, *end = text + sizeof(text);
	int		 i;

	/* LBD_MAX_RANGES + 1 ports. */
	p += snprintf(p, (size_t)(end - p), NODE_VIP
	    "services = ( { name = \"S1\"; ports = [ ");
	for (i = 0; i <= LBD_MAX_RANGES; i++)
		p += snprintf(p, (size_t)(end - p), "%s%d", i ? ", " : "", 100 + i);
	snprintf(p, (size_t)(end - p), " ];\n" ONE_BACKEND " } );\n");
	load_err(f, text, 3, "services[0].ports: 33 entries; at most 32");
	unlink(f->path);

	/* Exactly LBD_MAX_RANGES loads. */
	p = text;
	p += snprintf(p, (size_t)(end - p), NODE_VIP
	    "services = ( { name = \"S1\"; ports = [ ");
	for (i = 0; i < LBD_MAX_RANGES; i++)
		p += snprintf(p, (size_t)(end - p), "%s%d", i ? ", " : "", 100 + i);
	snprintf(p, (size_t)(end - p), " ];\n" ONE_BACKEND " } );\n");
	assert_int_equal(load_ok(f, text)->services[0].nranges, LBD_MAX_RANGES);
	unlink(f->path);

	/* Five peer paths. */
	load_err(f, NODE_VIP "peer = { name = \"lb2\"; address = [ \"10.0.0.1\", "
	    "\"10.0.0.2\", \"10.0.0.3\", \"10.0.0.4\", \"10.0.0.5\" ]; };\n", 3,
	    "peer.address: 5 addresses; at most 4");
	unlink(f->path);

	/* A control socket path longer than sun_path. */
	snprintf(text, sizeof(text), NODE_VIP "control = { socket = \"/%0120d\"; };\n", 0);
	load_err(f, text, 3, "is too long; at most 107 characters");
}

static void
test_enum_strings(void **state)
{
	assert_string_equal(sched_type_str(SCHED_LEASTCONN), "leastconn");
	assert_string_equal(sched_type_str(SCHED_ROUNDROBIN), "roundrobin");
	assert_string_equal(check_type_str(CHECK_NONE), "none");
	assert_string_equal(check_type_str(CHECK_TCP), "tcp");
	assert_string_equal(check_type_str(CHECK_FTP), "ftp");
	assert_string_equal(source_mode_str(SOURCE_VIP), "vip");
	assert_string_equal(source_mode_str(SOURCE_NODE), "node");
}

/* The services line after NODE_VIP and a metrics group on line 3. */
#define METRICS_SERVICE \
    "services = ( { name = \"S1\"; ports = [ \"21\" ]; " ONE_BACKEND " } );\n"

/* metrics = { listen = ...; }: off by default, IPv4, [IPv6], wildcards. */
static void
test_metrics_listen(void **state)
{
	struct fixture		*f = *state;
	struct lbd_config	*c;
	char			 buf[ADDR_STRLEN];

	c = load_ok(f, NODE_VIP METRICS_SERVICE);
	assert_false(c->metrics_on);
	unlink(f->path);

	c = load_ok(f, NODE_VIP "metrics = { listen = \"127.0.0.1:9187\"; };\n" METRICS_SERVICE);
	assert_true(c->metrics_on);
	assert_int_equal(c->metrics_addr.ss_family, AF_INET);
	assert_string_equal(sockaddr_port_str((struct sockaddr *)&c->metrics_addr, buf,
	    sizeof(buf)), "127.0.0.1:9187");
	unlink(f->path);

	c = load_ok(f, NODE_VIP "metrics = { listen = \"[2001:db8::2]:65535\"; };\n"
	    METRICS_SERVICE);
	assert_true(c->metrics_on);
	assert_int_equal(c->metrics_addr.ss_family, AF_INET6);
	assert_string_equal(sockaddr_port_str((struct sockaddr *)&c->metrics_addr, buf,
	    sizeof(buf)), "[2001:db8::2]:65535");
	unlink(f->path);

	/* Every address: a scraper on another host. */
	c = load_ok(f, NODE_VIP "metrics = { listen = \"0.0.0.0:1\"; };\n" METRICS_SERVICE);
	assert_true(c->metrics_on);
	assert_int_equal(addr_port((struct sockaddr *)&c->metrics_addr), 1);
	unlink(f->path);
	c = load_ok(f, NODE_VIP "metrics = { listen = \"[::]:9187\"; };\n" METRICS_SERVICE);
	assert_int_equal(c->metrics_addr.ss_family, AF_INET6);
}

static void
test_metrics_bad_address(void **state)
{
	struct fixture	*f = *state;

	load_err(f, NODE_VIP "metrics = { listen = \"localhost:9187\"; };\n" METRICS_SERVICE,
	    3, "metrics.listen: \"localhost:9187\": \"localhost\" is not an IPv4 or IPv6 "
	    "address (hostnames are not resolved)");
	unlink(f->path);
	load_err(f, NODE_VIP "metrics = { listen = \"::1:9187\"; };\n" METRICS_SERVICE,
	    3, "write an IPv6 address in brackets, e.g. \"[::1]:9187\"");
	unlink(f->path);
	load_err(f, NODE_VIP "metrics = { listen = \"[127.0.0.1]:9187\"; };\n" METRICS_SERVICE,
	    3, "is not an IPv4 or IPv6 address");
	unlink(f->path);
	load_err(f, NODE_VIP "metrics = { listen = \"[::1\"; };\n" METRICS_SERVICE,
	    3, "is not ADDRESS:PORT; write e.g. \"127.0.0.1:9187\"");
	unlink(f->path);
	load_err(f, NODE_VIP "metrics = { listen = \"\"; };\n" METRICS_SERVICE,
	    3, "is not ADDRESS:PORT");
	unlink(f->path);
	load_err(f, NODE_VIP "metrics = { listen = \"224.0.0.1:9187\"; };\n" METRICS_SERVICE,
	    3, "is a multicast address");
	unlink(f->path);
	load_err(f, NODE_VIP "metrics = { listen = 9187; };\n" METRICS_SERVICE,
	    3, "metrics.listen: expected a string");
	unlink(f->path);
	load_err(f, NODE_VIP "metrics = { };\n" METRICS_SERVICE,
	    3, "metrics: missing required key \"listen\"");
	unlink(f->path);
	load_err(f, NODE_VIP "metrics = \"127.0.0.1:9187\";\n" METRICS_SERVICE,
	    3, "metrics: expected a group");
}

static void
test_metrics_bad_port(void **state)
{
	struct fixture	*f = *state;

	load_err(f, NODE_VIP "metrics = { listen = \"127.0.0.1\"; };\n" METRICS_SERVICE,
	    3, "is not ADDRESS:PORT");
	unlink(f->path);
	load_err(f, NODE_VIP "metrics = { listen = \"127.0.0.1:\"; };\n" METRICS_SERVICE,
	    3, "\"127.0.0.1:\" has no port; write e.g. \"127.0.0.1:9187\"");
	unlink(f->path);
	load_err(f, NODE_VIP "metrics = { listen = \"[::1]:\"; };\n" METRICS_SERVICE,
	    3, "has no port; write e.g. \"[::1]:9187\"");
	unlink(f->path);
	load_err(f, NODE_VIP "metrics = { listen = \"127.0.0.1:0\"; };\n" METRICS_SERVICE,
	    3, "port \"0\" is not 1-65535");
	unlink(f->path);
	load_err(f, NODE_VIP "metrics = { listen = \"127.0.0.1:65536\"; };\n" METRICS_SERVICE,
	    3, "port \"65536\" is not 1-65535");
	unlink(f->path);
	load_err(f, NODE_VIP "metrics = { listen = \"127.0.0.1:99999999999999999999\"; };\n"
	    METRICS_SERVICE, 3, "is not 1-65535");
	unlink(f->path);
	load_err(f, NODE_VIP "metrics = { listen = \"127.0.0.1:91x\"; };\n" METRICS_SERVICE,
	    3, "port \"91x\" is not 1-65535");
}

static void
test_metrics_unknown_key(void **state)
{
	struct fixture	*f = *state;

	load_err(f, NODE_VIP "metrics = { listen = \"127.0.0.1:9187\";\n  path = \"/m\"; };\n"
	    METRICS_SERVICE, 4, "metrics: unknown key \"path\"; valid keys: listen, "
	    "request_timeout_ms");
	unlink(f->path);
	/* The top-level list of valid keys names it. */
	load_err(f, NODE_VIP "metric = { listen = \"127.0.0.1:9187\"; };\n" METRICS_SERVICE,
	    3, "unknown top-level key \"metric\"; valid keys: node, peer, cluster, vip, "
	    "control, metrics, log_level, services");
}

/* control/metrics.request_timeout_ms: 5000 by default, 100-60000. */
static void
test_request_timeouts(void **state)
{
	struct fixture		*f = *state;
	struct lbd_config	*c;

	c = load_ok(f, NODE_VIP "metrics = { listen = \"127.0.0.1:9187\"; };\n" METRICS_SERVICE);
	assert_int_equal(c->metrics_request_timeout_ms, 5000);
	assert_int_equal(c->control_request_timeout_ms, 5000);
	unlink(f->path);
	c = load_ok(f, NODE_VIP "metrics = { listen = \"127.0.0.1:9187\"; "
	    "request_timeout_ms = 100; };\n" METRICS_SERVICE);
	assert_int_equal(c->metrics_request_timeout_ms, 100);
	unlink(f->path);
	c = load_ok(f, NODE_VIP "control = { request_timeout_ms = 60000; };\n" METRICS_SERVICE);
	assert_int_equal(c->control_request_timeout_ms, 60000);
	assert_string_equal(c->control_socket, "/run/lbd/lbd.sock");
	unlink(f->path);
	load_err(f, NODE_VIP "metrics = { listen = \"127.0.0.1:9187\"; "
	    "request_timeout_ms = 99; };\n" METRICS_SERVICE,
	    3, "metrics.request_timeout_ms: 99 is out of range; use 100-60000");
	unlink(f->path);
	load_err(f, NODE_VIP "control = { request_timeout_ms = 60001; };\n" METRICS_SERVICE,
	    3, "control.request_timeout_ms: 60001 is out of range; use 100-60000");
	unlink(f->path);
	load_err(f, NODE_VIP "control = { request_timeout_ms = \"5s\"; };\n" METRICS_SERVICE,
	    3, "control.request_timeout_ms: expected an integer");
	unlink(f->path);
	load_err(f, NODE_VIP "control = { timeout = 1; };\n" METRICS_SERVICE,
	    3, "control: unknown key \"timeout\"; valid keys: socket, request_timeout_ms");
}

/* log_level = "...";: info by default, each valid value, the enum's names. */
static void
test_log_level(void **state)
{
	struct fixture		*f = *state;
	struct lbd_config	*c;

	c = load_ok(f, NODE_VIP METRICS_SERVICE);
	assert_int_equal(c->log_level, LOG_LEVEL_INFO);
	unlink(f->path);
	c = load_ok(f, NODE_VIP "log_level = \"debug\";\n" METRICS_SERVICE);
	assert_int_equal(c->log_level, LOG_LEVEL_DEBUG);
	unlink(f->path);
	c = load_ok(f, NODE_VIP "log_level = \"info\";\n" METRICS_SERVICE);
	assert_int_equal(c->log_level, LOG_LEVEL_INFO);
	unlink(f->path);
	c = load_ok(f, "log_level = \"warning\";\n" NODE_VIP METRICS_SERVICE);
	assert_int_equal(c->log_level, LOG_LEVEL_WARNING);
	assert_string_equal(log_level_str(LOG_LEVEL_WARNING), "warning");
	assert_string_equal(log_level_str(LOG_LEVEL_INFO), "info");
	assert_string_equal(log_level_str(LOG_LEVEL_DEBUG), "debug");
}

/* A bad log_level names its line and the valid values. */
static void
test_log_level_bad(void **state)
{
	struct fixture	*f = *state;

	load_err(f, NODE_VIP "log_level = \"verbose\";\n" METRICS_SERVICE, 3,
	    "log_level: unknown level \"verbose\"; valid: debug, info, warning");
	unlink(f->path);
	load_err(f, NODE_VIP METRICS_SERVICE "\nlog_level = \"INFO\";\n", 5,
	    "log_level: unknown level \"INFO\"; valid: debug, info, warning");
	unlink(f->path);
	load_err(f, NODE_VIP "log_level = \"\";\n" METRICS_SERVICE, 3,
	    "valid: debug, info, warning");
	unlink(f->path);
	load_err(f, NODE_VIP "log_level = 2;\n" METRICS_SERVICE, 3,
	    "log_level: expected a string in double quotes");
	unlink(f->path);
	load_err(f, NODE_VIP "log_level = { level = \"info\"; };\n" METRICS_SERVICE, 3,
	    "log_level: expected a string in double quotes");
}

/* control.group and control.readonly_group: names, and not the same group. */
static void
test_control_groups(void **state)
{
	struct fixture		*f = *state;
	struct lbd_config	*c;

	c = load_ok(f, NODE_VIP "control = { group = \"ops\"; readonly_group = \"noc\"; };\n"
	    METRICS_SERVICE);
	assert_string_equal(c->control_group, "ops");
	assert_true(c->control_group_set);
	assert_string_equal(c->control_readonly_group, "noc");
	unlink(f->path);
	c = load_ok(f, NODE_VIP "control = { readonly_group = \"lbdview\"; };\n" METRICS_SERVICE);
	assert_string_equal(c->control_group, "lbdctl");
	assert_false(c->control_group_set);
	assert_string_equal(c->control_readonly_group, "lbdview");
	unlink(f->path);
	load_err(f, NODE_VIP "control = { readonly_group = \"lbdctl\"; };\n" METRICS_SERVICE, 3,
	    "control.readonly_group: \"lbdctl\" is control.group already (every command); "
	    "name another group, or drop this key");
	unlink(f->path);
	load_err(f, NODE_VIP "control = { group = \"a b\"; };\n" METRICS_SERVICE, 3,
	    "control.group: \"a b\" has a bad character ' '");
	unlink(f->path);
	load_err(f, NODE_VIP "control = { readonly_group = \"\"; };\n" METRICS_SERVICE, 3,
	    "control.readonly_group: must not be empty");
	unlink(f->path);
	load_err(f, NODE_VIP "control = { group = 5; };\n" METRICS_SERVICE, 3,
	    "control.group: expected a string in double quotes");
}

/* A failed load followed by a good one leaves no trace of the first. */
static void
test_reload_after_error(void **state)
{
	struct fixture		*f = *state;
	struct lbd_config	*c;

	load_err(f, NODE_VIP
	    "peer = { name = \"lb2\"; address = \"192.168.86.3\"; };\n"
	    "services = (\n"
	    "  { name = \"S1\"; ports = [ \"21\" ]; " ONE_BACKEND " },\n"
	    "  { name = \"S2\"; ports = [ \"22\" ]; scheduler = 1; " ONE_BACKEND " }\n"
	    ");\n", 6, "services[1].scheduler: expected a string");
	unlink(f->path);
	c = load_ok(f, NODE_VIP
	    "services = ( { name = \"S1\"; ports = [ \"21\" ]; " ONE_BACKEND " } );\n");
	assert_false(c->has_peer);
	assert_int_equal(c->npeer_addr, 0);
	assert_int_equal(c->nservices, 1);
	assert_string_equal(c->services[1].name, "");
	assert_int_equal(c->services[1].nranges, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_spec_example, setup, teardown),
		cmocka_unit_test_setup_teardown(test_minimal_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_all_settings_ipv6, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deploy_lb1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deploy_lb2, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deploy_standalone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_syntax_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_libconfig_duplicate_setting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mirror, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_key_top, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_key_nested, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_type, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_address, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vip_without_prefix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vip_family_mismatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backend_is_vip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_port_out_of_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reversed_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overlap_same_service, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overlap_across_services, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_backend, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_backend_address, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_service, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_required, setup, teardown),
		cmocka_unit_test_setup_teardown(test_priority_out_of_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_connections_per_client, setup, teardown),
		cmocka_unit_test_setup_teardown(test_int_literal_wrap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relay_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipe_memory_max, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_scheduler, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout_over_interval, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_ranges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_enum_strings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_after_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_control_groups, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics_listen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics_bad_address, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics_bad_port, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics_unknown_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_timeouts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_log_level, setup, teardown),
		cmocka_unit_test_setup_teardown(test_log_level_bad, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
