/*
 * test_fence.c - unit tests for lbd/fence.c: each test runs in a forked
 * child inside its own network namespace (never the host's ruleset),
 * reads the kernel's real ruleset back through libnftables' JSON, and
 * makes the kernel drop a marked socket's FIN and RST over loopback, and
 * the RSTs that answer its far end once the socket is gone.
 */
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <linux/capability.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
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
#include <jansson.h>
#include <nftables/libnftables.h>

#include "lbd.h"

#define T_MARK		((uint32_t)LBD_MIRROR_MARK_DEF)	/* the default fence mark */
#define T_MARK2		0x2bd0u		/* another mark, for a replacement */
#define T_SKIP		77		/* child's exit status: no namespace, skip */
#define T_QUIET_MS	300		/* how long a fenced peer must hear nothing */

/* In the child: reports the failed condition and ends the test with 1. */
#define CHECK(c) do {							\
	if (!(c)) {							\
		fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,	\
		    __LINE__, #c);					\
		return 1;						\
	}								\
} while (0)

/*
 * Runs one nft command with JSON output, independently of fence.c.
 * Returns: the parsed output (caller decrefs), NULL the command failed.
 */
static json_t *
nft_json(const char *cmd)
{
	struct nft_ctx *nft;
	json_t *j = NULL;

	if ((nft = nft_ctx_new(NFT_CTX_DEFAULT)) == NULL)
		return NULL;
	nft_ctx_buffer_output(nft);
	nft_ctx_buffer_error(nft);
	nft_ctx_output_set_flags(nft, NFT_CTX_OUTPUT_JSON);
	if (nft_run_cmd_from_buffer(nft, cmd) == 0)
		j = json_loads(nft_ctx_get_output_buffer(nft), 0, NULL);
	nft_ctx_free(nft);
	return j;
}

/* Runs one plain nft command. Returns: its status (0 done). */
static int
nft_plain(const char *cmd)
{
	struct nft_ctx *nft;
	int rc;

	if ((nft = nft_ctx_new(NFT_CTX_DEFAULT)) == NULL)
		return -1;
	nft_ctx_buffer_output(nft);
	nft_ctx_buffer_error(nft);
	rc = nft_run_cmd_from_buffer(nft, cmd);
	nft_ctx_free(nft);
	return rc;
}

/* Whether table inet lbd_fence exists. */
static bool
fence_table_present(void)
{
	json_t *j;

	if ((j = nft_json("list table inet lbd_fence")) == NULL)
		return false;
	json_decref(j);
	return true;
}

/* What table inet lbd_fence holds, as fence_table_shape reads it. */
struct shape {
	int	 rules;		/* rules in all its chains */
	bool	 output_hook;	/* a chain hooks output */
	bool	 vmap;		/* a verdict map on meta mark: mark -> goto fenced, mark + 1 -> goto released */
	int	 updates;	/* rules adding the packet's 4-tuple to a set */
	int	 deletes;	/* ... taking it out */
	int	 drops;		/* rules that count into "dropped" and drop */
	int	 lookups;	/* of them, the ones matching an RST's 4-tuple in a set */
};

static bool
is_str(json_t *j, const char *s)
{
	return json_is_string(j) && strcmp(json_string_value(j), s) == 0;
}

/* Whether vmap data holds [key, {"goto": {"target": chain}}]. */
static bool
vmap_has(json_t *data, uint32_t key, const char *chain)
{
	json_t *el;
	size_t i;

	json_array_foreach(json_object_get(data, "set"), i, el) {
		json_t *k = json_array_get(el, 0), *v = json_array_get(el, 1);

		if (json_is_integer(k) && (uint32_t)json_integer_value(k) == key &&
		    is_str(json_object_get(json_object_get(v, "goto"), "target"), chain))
			return true;
	}
	return false;
}

/* Reads the table's shape for mark. Returns: 0 listed, -1 no table. */
static int
fence_table_shape(uint32_t mark, struct shape *sh)
{
	json_t *j, *o, *r, *c, *e, *m, *v;
	size_t i, k;
	bool counted, drops, looked;

	memset(sh, 0, sizeof(*sh));
	if ((j = nft_json("list table inet lbd_fence")) == NULL)
		return -1;
	json_array_foreach(json_object_get(j, "nftables"), i, o) {
		if ((c = json_object_get(o, "chain")) != NULL && is_str(json_object_get(c,
		    "hook"), "output"))
			sh->output_hook = true;
		if ((r = json_object_get(o, "rule")) == NULL)
			continue;
		sh->rules++;
		counted = drops = looked = false;
		json_array_foreach(json_object_get(r, "expr"), k, e) {
			if ((v = json_object_get(e, "vmap")) != NULL &&
			    is_str(json_object_get(json_object_get(json_object_get(v, "key"),
			    "meta"), "key"), "mark"))
				sh->vmap = vmap_has(json_object_get(v, "data"), mark, "fenced") &&
				    vmap_has(json_object_get(v, "data"), mark + 1, "released");
			if ((m = json_object_get(e, "match")) != NULL &&
			    json_is_string(json_object_get(m, "right")) &&
			    json_string_value(json_object_get(m, "right"))[0] == '@')
				looked = true;
			if ((m = json_object_get(e, "set")) != NULL) {
				if (is_str(json_object_get(m, "op"), "update"))
					sh->updates++;
				if (is_str(json_object_get(m, "op"), "delete"))
					sh->deletes++;
			}
			if (is_str(json_object_get(e, "counter"), "dropped"))
				counted = true;
			if (json_object_get(e, "drop") != NULL)
				drops = true;
		}
		if (counted && drops) {
			sh->drops++;
			sh->lookups += looked;
		}
	}
	json_decref(j);
	return 0;
}

/* Whether sh is fence.c's table. */
static bool
shape_is_fence(const struct shape *sh)
{
	return sh->output_hook && sh->vmap && sh->rules == 8 && sh->updates == 2 &&
	    sh->deletes == 2 && sh->drops == 3 && sh->lookups == 2;
}

/* How many 4-tuples set (fenced4 or fenced6) holds; -1 no such set. */
static int
set_size(const char *set)
{
	char cmd[128];
	json_t *j, *o, *el;
	size_t i;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "list set inet lbd_fence %s", set);
	if ((j = nft_json(cmd)) == NULL)
		return -1;
	json_array_foreach(json_object_get(j, "nftables"), i, o) {
		if ((o = json_object_get(o, "set")) == NULL)
			continue;
		el = json_object_get(o, "elem");
		n = json_is_array(el) ? (int)json_array_size(el) : 0;
	}
	json_decref(j);
	return n;
}

/*
 * Runs fn in a forked child in a new network namespace with lo up, and
 * asserts that it succeeded. The child exits (not _exit) so
 * LeakSanitizer checks it too.
 */
static void
in_netns(int (*fn)(void))
{
	pid_t pid;
	int status;

	fflush(NULL);
	pid = fork();
	assert_int_not_equal(pid, -1);
	if (pid == 0) {
		if (unshare(CLONE_NEWNET) == -1)
			exit(errno == EPERM ? T_SKIP : 2);
		if (system("ip link set lo up") != 0) {
			fprintf(stderr, "cannot bring lo up in the namespace\n");
			exit(3);
		}
		exit(fn());
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFEXITED(status) && WEXITSTATUS(status) == T_SKIP) {
		fprintf(stderr, "  no private network namespace: skipped\n");
		skip();
	}
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/*
 * A TCP connection over loopback (IPv4 or IPv6): *a the connecting end,
 * *b the accepted one.
 * Returns: 0, -1 failed (reported).
 */
static int
tcp_pair(int family, int *a, int *b)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int l;

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = family;
	if (family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else
		((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
	*a = *b = -1;
	if ((l = socket(family, SOCK_STREAM, 0)) == -1 ||
	    bind(l, (struct sockaddr *)&ss, family == AF_INET ?
	    sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)) == -1 ||
	    listen(l, 1) == -1 || getsockname(l, (struct sockaddr *)&ss, &len) == -1 ||
	    (*a = socket(family, SOCK_STREAM, 0)) == -1 ||
	    connect(*a, (struct sockaddr *)&ss, len) == -1 ||
	    (*b = accept(l, NULL, NULL)) == -1) {
		fprintf(stderr, "tcp_pair: %s\n", strerror(errno));
		if (l != -1)
			close(l);
		return -1;
	}
	close(l);
	return 0;
}

static int
set_mark(int fd, uint32_t mark)
{
	return setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark));
}

/*
 * What fd hears within ms: a FIN, a RST, or nothing.
 * Returns: 0 end of stream (FIN), -ECONNRESET (RST), -EAGAIN nothing,
 * 1 data, another -errno.
 */
static int
hears(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c;
	ssize_t n;

	(void)poll(&p, 1, ms);
	n = recv(fd, &c, 1, MSG_DONTWAIT);
	if (n == -1)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return n == 0 ? 0 : 1;
}

/*
 * Whether fd's connection is reset within ms (TCP_CLOSE), read or not:
 * after a FIN, recv() reports end of stream even once an RST came.
 */
static bool
reset_within(int fd, int ms)
{
	struct tcp_info ti;
	socklen_t len;

	for (; ms >= 0; ms -= 10) {
		len = sizeof(ti);
		if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
		    ti.tcpi_state == TCP_CLOSE)
			return true;
		(void)poll(NULL, 0, 10);
	}
	return false;
}

/* Whether fd has something to read within ms (nothing is read). */
static bool
readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1 && (p.revents & POLLIN) != 0;
}

static int
install_twice(void)
{
	char err[256] = "";
	uint64_t n = 99;
	struct shape sh;

	CHECK(!fence_active());
	CHECK(fence_dropped(&n) == -1);
	CHECK(!fence_table_present());
	CHECK(fence_install(T_MARK, err, sizeof(err)) == 0);
	CHECK(fence_active());
	CHECK(fence_table_shape(T_MARK, &sh) == 0 && shape_is_fence(&sh));
	CHECK(set_size("fenced4") == 0 && set_size("fenced6") == 0);

	/* Again: replaced, the same rules once; the counter starts at 0. */
	CHECK(fence_install(T_MARK, err, sizeof(err)) == 0);
	CHECK(fence_table_shape(T_MARK, &sh) == 0 && shape_is_fence(&sh));
	CHECK(fence_dropped(&n) == 0 && n == 0);

	/* Another mark replaces the first. */
	CHECK(fence_install(T_MARK2, err, sizeof(err)) == 0);
	CHECK(fence_table_shape(T_MARK2, &sh) == 0 && shape_is_fence(&sh));
	CHECK(fence_release_mark(T_MARK2) == T_MARK2 + 1);

	fence_remove();
	CHECK(!fence_active());
	CHECK(!fence_table_present());
	CHECK(fence_dropped(&n) == -1);
	fence_remove();			/* nothing there: silent, harmless */
	CHECK(!fence_table_present());

	/* Not installed by this process, but a crashed run's is there: removed too. */
	CHECK(nft_plain("add table inet lbd_fence") == 0);
	fence_remove();
	CHECK(!fence_table_present());
	CHECK(!fence_active());
	return 0;
}

static void
test_install_twice(void **state)
{
	in_netns(install_twice);
}

static int
replaces_leftover(void)
{
	char err[256] = "";
	struct shape sh;

	/* A crashed run's table: an older layout, another mark and an extra rule. */
	CHECK(nft_plain("table inet lbd_fence {\n"
	    "\tcounter dropped { }\n"
	    "\tchain output {\n"
	    "\t\ttype filter hook output priority 0;\n"
	    "\t\ttcp flags & (fin | rst) != 0 meta mark 0x77 counter name \"dropped\" drop\n"
	    "\t\ttcp dport 9 counter\n"
	    "\t}\n"
	    "}\n") == 0);
	CHECK(fence_table_shape(0x77, &sh) == 0 && sh.rules == 2 && sh.drops == 1);
	CHECK(fence_install(T_MARK, err, sizeof(err)) == 0);
	CHECK(fence_table_shape(T_MARK, &sh) == 0 && shape_is_fence(&sh));
	fence_remove();
	CHECK(!fence_table_present());

	/* An admin deleted the table already: the clean stop is no error. */
	CHECK(fence_install(T_MARK, err, sizeof(err)) == 0);
	CHECK(nft_plain("delete table inet lbd_fence") == 0);
	fence_remove();
	CHECK(!fence_active());
	return 0;
}

static void
test_replaces_leftover(void **state)
{
	in_netns(replaces_leftover);
}

/*
 * The far end a of a closed socket sends two segments at once (no
 * Nagle): the first destroys the orphan if it is still there, the second
 * finds no socket. An RST that arrives in between fails the second send
 * (no SIGPIPE). Returns: segments sent.
 */
static int
send_two(int a)
{
	int one = 1, n = 0;

	if (setsockopt(a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1)
		return 0;
	n += send(a, "y", 1, MSG_NOSIGNAL) == 1;
	n += send(a, "z", 1, MSG_NOSIGNAL) == 1;
	return n;
}

/* Sets net.ipv4/ipv6.fwmark_reflect in this namespace. Returns: 0, -1. */
static int
fwmark_reflect(int family, bool on)
{
	const char *path = family == AF_INET ? "/proc/sys/net/ipv4/fwmark_reflect" :
	    "/proc/sys/net/ipv6/fwmark_reflect";
	FILE *f;
	int rc;

	if ((f = fopen(path, "w")) == NULL)
		return -1;
	rc = fputs(on ? "1\n" : "0\n", f) == EOF ? -1 : 0;
	return fclose(f) == 0 ? rc : -1;
}

/*
 * The kernel drops a marked socket's FIN and RST, and the RSTs that
 * answer its far end once it is gone; released and unmarked ones pass.
 */
static int
drops_marked(int family)
{
	const char *set = family == AF_INET ? "fenced4" : "fenced6";
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char err[256] = "";
	uint64_t n = 0, before;
	int a, b, c, reflect;

	CHECK(fence_install(T_MARK, err, sizeof(err)) == 0);

	/* Marked, closed: its FIN is dropped, the peer hears nothing. */
	CHECK(tcp_pair(family, &a, &b) == 0);
	CHECK(set_mark(b, T_MARK) == 0);
	close(b);
	CHECK(hears(a, T_QUIET_MS) == -EAGAIN);
	CHECK(fence_dropped(&n) == 0 && n > 0);
	CHECK(set_size(set) == 1);		/* the FIN put its 4-tuple there */
	/*
	 * The peer talks to the orphan: its first segment gets the orphan's
	 * (marked) RST, which destroys it; the second, and the retransmits,
	 * get the kernel's mark-0 RST for a 4-tuple with no socket. All
	 * dropped, with fwmark_reflect off and on (the RST then takes the
	 * incoming segment's mark, 0).
	 */
	for (reflect = 0; reflect < 2; reflect++) {
		CHECK(fwmark_reflect(family, reflect) == 0);
		CHECK(fence_dropped(&before) == 0);
		if (reflect) {
			CHECK(tcp_pair(family, &a, &b) == 0);
			CHECK(set_mark(b, T_MARK) == 0);
			close(b);
			CHECK(hears(a, T_QUIET_MS) == -EAGAIN);
			CHECK(fence_dropped(&before) == 0);
		}
		CHECK(send_two(a) == 2);
		CHECK(hears(a, T_QUIET_MS) == -EAGAIN);
		CHECK(fence_dropped(&n) == 0 && n >= before + 2);
		close(a);
	}
	CHECK(fwmark_reflect(family, false) == 0);

	/*
	 * Marked, closed with unread data (kill -9 does the same): the
	 * kernel's RST is dropped, the socket is gone at once, and the RSTs
	 * for the peer's next two segments are dropped too.
	 */
	CHECK(fence_dropped(&before) == 0);
	CHECK(tcp_pair(family, &a, &b) == 0);
	CHECK(set_mark(b, T_MARK) == 0);
	CHECK(send(a, "x", 1, 0) == 1);
	CHECK(readable(b, 1000));		/* arrived, left unread */
	close(b);
	CHECK(hears(a, T_QUIET_MS) == -EAGAIN);
	CHECK(fence_dropped(&n) == 0 && n > before);
	before = n;
	CHECK(send_two(a) == 2);
	CHECK(hears(a, T_QUIET_MS) == -EAGAIN);
	CHECK(fence_dropped(&n) == 0 && n >= before + 2);
	close(a);

	/*
	 * The release mark before the close (an intentional close): the FIN
	 * passes and the 4-tuple leaves the set, so the RST for the peer's
	 * next segment passes too.
	 */
	CHECK(fence_dropped(&before) == 0);
	CHECK(tcp_pair(family, &a, &b) == 0);
	CHECK(set_mark(b, T_MARK) == 0);
	CHECK(send(b, "w", 1, 0) == 1);		/* a marked packet: the 4-tuple is in */
	CHECK(hears(a, 1000) == 1);
	c = set_size(set);
	CHECK(set_mark(b, fence_release_mark(T_MARK)) == 0);
	close(b);
	CHECK(hears(a, 1000) == 0);
	CHECK(set_size(set) == c - 1);
	CHECK(send_two(a) >= 1);
	CHECK(reset_within(a, 1000));
	close(a);

	/* ... and with unread data, its RST passes. */
	CHECK(tcp_pair(family, &a, &b) == 0);
	CHECK(set_mark(b, T_MARK) == 0);
	CHECK(send(a, "x", 1, 0) == 1);
	CHECK(readable(b, 1000));
	CHECK(set_mark(b, fence_release_mark(T_MARK)) == 0);
	close(b);
	CHECK(hears(a, 1000) == -ECONNRESET);
	close(a);

	/* Never marked (an unmirrored pair): the FIN passes. */
	CHECK(tcp_pair(family, &a, &b) == 0);
	close(b);
	CHECK(hears(a, 1000) == 0);
	close(a);

	/* A 4-tuple that never carried the mark: the kernel's no-socket RST passes. */
	CHECK(tcp_pair(family, &a, &b) == 0);
	CHECK(getsockname(b, (struct sockaddr *)&ss, &len) == 0);
	close(a);
	close(b);				/* b's port is free again: no listener */
	CHECK((c = socket(family, SOCK_STREAM, 0)) != -1);
	CHECK(connect(c, (struct sockaddr *)&ss, len) == -1 && errno == ECONNREFUSED);
	close(c);
	CHECK(fence_dropped(&n) == 0 && n == before);

	fence_remove();
	CHECK(!fence_table_present());
	return 0;
}

static int
drops_marked_v4(void)
{
	return drops_marked(AF_INET);
}

static int
drops_marked_v6(void)
{
	return drops_marked(AF_INET6);
}

static void
test_drops_marked_v4(void **state)
{
	in_netns(drops_marked_v4);
}

static void
test_drops_marked_v6(void **state)
{
	in_netns(drops_marked_v6);
}

/* Reads n bytes from fd within ms. Returns 0, -1. */
static int
read_n(int fd, size_t n, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char buf[256];
	ssize_t r;

	while (n > 0 && poll(&p, 1, ms) == 1) {
		if ((r = recv(fd, buf, n < sizeof(buf) ? n : sizeof(buf), 0)) <= 0)
			return -1;
		n -= (size_t)r;
	}
	return n == 0 ? 0 : -1;
}

/*
 * A rebuilt socket behind its far end (the dead node sent 100 bytes the
 * mirror never knew): its own RST is below the far end's window and
 * ignored; kick_socket resets the far end all the same, through the
 * fence's kick set, though the far end's first answer is rate-limited
 * (the rebuild's probe drew one just before).
 */
static int
kick_behind(int family)
{
	struct linger l = { .l_onoff = 1, .l_linger = 0 };
	struct repair_sock rs;
	struct repair_plan plan;
	struct event_base *base;
	struct timeval tv = { 1, 500000 };
	char err[256] = "", bytes[100];
	int a, b, c, kicked;

	memset(bytes, 'x', sizeof(bytes));
	CHECK(fence_install(T_MARK, err, sizeof(err)) == 0);
	CHECK((base = event_base_new()) != NULL);
	CHECK(kick_init(base) == 0);
	for (kicked = 0; kicked < 2; kicked++) {
		CHECK(tcp_pair(family, &a, &b) == 0);
		CHECK(repair_snapshot(b, NULL, NULL, &rs, NULL) == 0);
		CHECK(send(b, bytes, sizeof(bytes), 0) == (ssize_t)sizeof(bytes));
		CHECK(read_n(a, sizeof(bytes), 1000) == 0);
		repair_drop(b);
		memset(&plan, 0, sizeof(plan));
		plan.mark = T_MARK;
		plan.ts = repair_ts_now(&rs, clock_wall_ns() / 1000000);
		if ((c = repair_rebuild(&rs, &plan, err, sizeof(err))) == -1)
			fprintf(stderr, "rebuild: %s\n", err);
		CHECK(c != -1);
		CHECK(repair_finish(c) == 0);	/* its probe: the far end's answer now is rate-limited */
		if (kicked) {
			kick_socket(c);
			CHECK(event_base_loopexit(base, &tv) == 0);
			CHECK(event_base_dispatch(base) == 0);
			CHECK(reset_within(a, 200));
			CHECK(hears(a, 0) == -ECONNRESET);
		} else {
			CHECK(setsockopt(c, SOL_SOCKET, SO_LINGER, &l, sizeof(l)) == 0);
			close(c);
			CHECK(!reset_within(a, T_QUIET_MS));
		}
		close(a);
	}
	CHECK(kick_total() == 1);
	kick_shutdown();
	event_base_free(base);
	fence_remove();
	return 0;
}

static int
kick_behind_v4(void)
{
	return kick_behind(AF_INET);
}

static int
kick_behind_v6(void)
{
	return kick_behind(AF_INET6);
}

static void
test_kick_behind_v4(void **state)
{
	in_netns(kick_behind_v4);
}

static void
test_kick_behind_v6(void **state)
{
	in_netns(kick_behind_v6);
}

/* Without CAP_NET_ADMIN the install fails and says what is missing. */
static int
install_unprivileged(void)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
	char err[256] = "";
	uint64_t n;

	CHECK(syscall(SYS_capget, &hdr, data) == 0);
	data[CAP_TO_INDEX(CAP_NET_ADMIN)].effective &= ~CAP_TO_MASK(CAP_NET_ADMIN);
	CHECK(syscall(SYS_capset, &hdr, data) == 0);
	CHECK(fence_install(T_MARK, err, sizeof(err)) == -1);
	if (getenv("TEST_VERBOSE") != NULL)
		fprintf(stderr, "  %s\n", err);
	CHECK(strncmp(err, "fence: cannot install nftables table inet lbd_fence: ", 53) == 0);
	CHECK(strstr(err, "(needs CAP_NET_ADMIN, and nf_tables of Linux 5.4 or later)") != NULL);
	CHECK(strchr(err, '\n') == NULL);
	CHECK(!fence_active());
	CHECK(fence_dropped(&n) == -1);
	fence_remove();			/* frees the context, touches nothing */
	return 0;
}

static void
test_install_unprivileged(void **state)
{
	in_netns(install_unprivileged);
}

static void
test_mark_zero(void **state)
{
	char err[256] = "";

	assert_int_equal(fence_install(0, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "must be 1-0xfffffffe (not 0, and the release mark is "
	    "the fence mark + 1)"));
	assert_int_equal(fence_install(UINT32_MAX, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "must be 1-0xfffffffe"));
	assert_false(fence_active());
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mark_zero),
		cmocka_unit_test(test_install_twice),
		cmocka_unit_test(test_replaces_leftover),
		cmocka_unit_test(test_drops_marked_v4),
		cmocka_unit_test(test_drops_marked_v6),
		cmocka_unit_test(test_kick_behind_v4),
		cmocka_unit_test(test_kick_behind_v6),
		cmocka_unit_test(test_install_unprivileged),
	};

	if (geteuid() != 0) {
		/* Loud: CI runs as root, so this line must never show up there. */
		printf("test_fence: SKIPPED: needs root (network namespaces, nftables)\n");
		return 0;
	}
	log_init(0, "test_fence");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
