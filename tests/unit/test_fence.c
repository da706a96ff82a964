/*
 * test_fence.c - unit tests for lbd/fence.c: each test runs in a forked
 * child inside its own network namespace (never the host's ruleset),
 * reads the kernel's real ruleset back through libnftables' JSON, and
 * makes the kernel drop a marked socket's FIN and RST over loopback.
 */
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <linux/capability.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
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
#include <jansson.h>
#include <nftables/libnftables.h>

#include "lbd.h"

#define T_MARK		0x1bd0u		/* the default fence mark */
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

/*
 * What the table holds. rules: rules in it; fenced: of them, the ones
 * that match TCP FIN/RST and meta mark == mark, count into the named
 * counter "dropped" and drop; output_hook: its chain hooks output.
 * Returns: 0 listed, -1 no table.
 */
static int
fence_table_rules(uint32_t mark, int *rules, int *fenced, bool *output_hook)
{
	json_t *j, *o, *r, *c, *e, *m;
	size_t i, k;
	bool flags, marked, counted, drops;

	*rules = *fenced = 0;
	*output_hook = false;
	if ((j = nft_json("list table inet lbd_fence")) == NULL)
		return -1;
	json_array_foreach(json_object_get(j, "nftables"), i, o) {
		if ((c = json_object_get(o, "chain")) != NULL)
			*output_hook = json_is_string(json_object_get(c, "hook")) &&
			    strcmp(json_string_value(json_object_get(c, "hook")), "output") == 0;
		if ((r = json_object_get(o, "rule")) == NULL)
			continue;
		(*rules)++;
		flags = marked = counted = drops = false;
		json_array_foreach(json_object_get(r, "expr"), k, e) {
			if ((m = json_object_get(e, "match")) != NULL) {
				json_t *left = json_object_get(m, "left"), *right = json_object_get(m, "right");
				json_t *meta = json_object_get(left, "meta");
				json_t *pl = json_object_get(left, "payload");

				if (meta != NULL && strcmp(json_string_value(json_object_get(meta,
				    "key")), "mark") == 0 && json_is_integer(right) &&
				    (uint32_t)json_integer_value(right) == mark)
					marked = true;
				if (pl != NULL && strcmp(json_string_value(json_object_get(pl,
				    "field")), "flags") == 0 && json_is_array(right) &&
				    json_array_size(right) == 2)
					flags = true;
			}
			if (json_is_string(json_object_get(e, "counter")) &&
			    strcmp(json_string_value(json_object_get(e, "counter")), "dropped") == 0)
				counted = true;
			if (json_object_get(e, "drop") != NULL)
				drops = true;
		}
		if (flags && marked && counted && drops)
			(*fenced)++;
	}
	json_decref(j);
	return 0;
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
	int rules, fenced;
	bool out;

	CHECK(!fence_active());
	CHECK(fence_dropped(&n) == -1);
	CHECK(!fence_table_present());
	CHECK(fence_install(T_MARK, err, sizeof(err)) == 0);
	CHECK(fence_active());
	CHECK(fence_table_rules(T_MARK, &rules, &fenced, &out) == 0);
	CHECK(rules == 1 && fenced == 1 && out);

	/* Again: replaced, still one rule; the counter starts at 0. */
	CHECK(fence_install(T_MARK, err, sizeof(err)) == 0);
	CHECK(fence_table_rules(T_MARK, &rules, &fenced, &out) == 0);
	CHECK(rules == 1 && fenced == 1);
	CHECK(fence_dropped(&n) == 0 && n == 0);

	/* Another mark replaces the first. */
	CHECK(fence_install(T_MARK2, err, sizeof(err)) == 0);
	CHECK(fence_table_rules(T_MARK2, &rules, &fenced, &out) == 0);
	CHECK(rules == 1 && fenced == 1);

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
	int rules, fenced;
	bool out;

	/* A crashed run's table, another mark and an extra rule. */
	CHECK(nft_plain("table inet lbd_fence {\n"
	    "\tcounter dropped { }\n"
	    "\tchain output {\n"
	    "\t\ttype filter hook output priority 0;\n"
	    "\t\ttcp flags & (fin | rst) != 0 meta mark 0x77 counter name \"dropped\" drop\n"
	    "\t\ttcp dport 9 counter\n"
	    "\t}\n"
	    "}\n") == 0);
	CHECK(fence_table_rules(0x77, &rules, &fenced, &out) == 0 && rules == 2);
	CHECK(fence_install(T_MARK, err, sizeof(err)) == 0);
	CHECK(fence_table_rules(T_MARK, &rules, &fenced, &out) == 0);
	CHECK(rules == 1 && fenced == 1);
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

/* The kernel drops a marked socket's FIN and RST; unmarked ones pass. */
static int
drops_marked(int family)
{
	char err[256] = "";
	uint64_t n = 0, before;
	int a, b;

	CHECK(fence_install(T_MARK, err, sizeof(err)) == 0);

	/* Marked, closed: its FIN is dropped, the peer hears nothing. */
	CHECK(tcp_pair(family, &a, &b) == 0);
	CHECK(set_mark(b, T_MARK) == 0);
	close(b);
	CHECK(hears(a, T_QUIET_MS) == -EAGAIN);
	CHECK(fence_dropped(&n) == 0 && n > 0);
	close(a);

	/* Marked, closed with unread data: the kernel's RST is dropped too. */
	CHECK(fence_dropped(&before) == 0);
	CHECK(tcp_pair(family, &a, &b) == 0);
	CHECK(set_mark(b, T_MARK) == 0);
	CHECK(send(a, "x", 1, 0) == 1);
	CHECK(readable(b, 1000));		/* arrived, left unread */
	close(b);
	CHECK(hears(a, T_QUIET_MS) == -EAGAIN);
	CHECK(fence_dropped(&n) == 0 && n > before);
	close(a);

	/* Mark back to 0 before the close (an intentional close): the FIN passes. */
	CHECK(fence_dropped(&before) == 0);
	CHECK(tcp_pair(family, &a, &b) == 0);
	CHECK(set_mark(b, T_MARK) == 0);
	CHECK(set_mark(b, 0) == 0);
	close(b);
	CHECK(hears(a, 1000) == 0);
	close(a);

	/* Never marked (an unmirrored pair): the FIN passes. */
	CHECK(tcp_pair(family, &a, &b) == 0);
	close(b);
	CHECK(hears(a, 1000) == 0);
	close(a);
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
	CHECK(strstr(err, "(needs CAP_NET_ADMIN and nf_tables)") != NULL);
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
	assert_non_null(strstr(err, "must not be 0"));
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
