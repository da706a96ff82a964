/*
 * test_steer.c - unit tests for hasync/steer.c: each test runs in a forked
 * child inside its own network namespace and checks the kernel's real
 * ruleset and addresses; one end-to-end test moves the VIP between three
 * namespaces while a TCP connection stays open.
 */
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <nftables/libnftables.h>

#include "hasync_int.h"
#include "testutil.h"

#define T_VIP4		"192.0.2.10"	/* VIP (TEST-NET-1) */
#define T_OLD4		"192.0.2.2"	/* the old master's address */
#define T_OTHER4	"192.0.2.3"	/* a second old-master address */
#define T_VIP6		"2001:db8::10"	/* VIP (documentation prefix) */
#define T_OLD6		"2001:db8::2"	/* the old master's address */
#define T_RULES		4		/* rules in the forwarding chain: the pairs set's and 3 by conntrack */
#define T_SKIP		77		/* child's exit status: no namespace, skip */
#define T_OUT_MAX	8192		/* room for a listed table */
#define T_LOOSE		"/proc/sys/net/netfilter/nf_conntrack_tcp_loose"
					/* conntrack's setting steer checks */
#define E2E_PORT	2121		/* the end-to-end test's server port */
#define E2E_LIFE	30		/* seconds a server lives at most */

/* In the child: reports the failed condition and ends the test with 1. */
#define CHECK(c) do {							\
	if (!(c)) {							\
		fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,	\
		    __LINE__, #c);					\
		return 1;						\
	}								\
} while (0)

/* Fills ss with the address text (IPv4 or IPv6). */
static const struct sockaddr *
sa(struct sockaddr_storage *ss, const char *text)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, text, &sin->sin_addr) == 1)
		sin->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1)
		sin6->sin6_family = AF_INET6;
	return (struct sockaddr *)ss;
}

/*
 * Lists one nftables table through libnftables, independently of steer.c.
 * Returns: 0 listed (out filled), -1 no such table.
 */
static int
nft_list(const char *family, char *out, size_t outlen)
{
	struct nft_ctx *nft;
	char cmd[128];
	int rc;

	out[0] = '\0';
	if ((nft = nft_ctx_new(NFT_CTX_DEFAULT)) == NULL)
		return -1;
	nft_ctx_buffer_output(nft);
	nft_ctx_buffer_error(nft);
	snprintf(cmd, sizeof(cmd), "list table %s %s", family, STEER_TABLE);
	rc = nft_run_cmd_from_buffer(nft, cmd);
	snprintf(out, outlen, "%s", nft_ctx_get_output_buffer(nft));
	nft_ctx_free(nft);
	return rc == 0 ? 0 : -1;
}

/* Whether the table exists. */
static bool
nft_has(const char *family)
{
	char out[T_OUT_MAX];

	return nft_list(family, out, sizeof(out)) == 0;
}

/* Asks the kernel whether addr is on lo (through vip.c, its own socket). */
static int
on_lo(const char *addr)
{
	struct sockaddr_storage ss;
	struct vip *v;
	int rc;

	v = vip_open("lo", sa(&ss, addr), strchr(addr, ':') ? 128 : 32, NULL, 0);
	if (v == NULL)
		return -1;
	rc = vip_present(v);
	vip_close(v);
	return rc;
}

static struct steer *
new_steer(const char *vip)
{
	struct sockaddr_storage ss;
	char err[256] = "";
	struct steer *s;

	if ((s = steer_new("d0", sa(&ss, vip), err, sizeof(err))) == NULL)
		fprintf(stderr, "steer_new(%s): %s\n", vip, err);
	return s;
}

/*
 * Runs fn in a forked child in a new network namespace holding lo (up) and
 * a veth d0 (peer d0p; this kernel may lack dummy) with
 * test addresses, and asserts that it succeeded. The child
 * exits (not _exit) so LeakSanitizer checks it too.
 */
static void
in_netns(int (*fn)(void))
{
	pid_t pid;
	int status, rc;

	fflush(NULL);
	pid = fork();
	assert_int_not_equal(pid, -1);
	if (pid == 0) {
		if (unshare(CLONE_NEWNET) == -1)
			exit(errno == EPERM ? T_SKIP : 2);
		if (system("ip link set lo up && ip link add d0 type veth peer name d0p && "
		    "ip link set d0p up && "
		    "ip link set d0 up && ip addr add 192.0.2.1/24 dev d0 && "
		    "ip addr add 2001:db8::1/64 dev d0 nodad") != 0) {
			fprintf(stderr, "cannot build d0 in the namespace\n");
			exit(3);
		}
		rc = fn();
		exit(rc);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFEXITED(status) && WEXITSTATUS(status) == T_SKIP) {
		fprintf(stderr, "  no private network namespace (not root?): skipped\n");
		skip();
	}
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static int
forward_v4(void)
{
	struct sockaddr_storage to;
	char err[256] = "", out[T_OUT_MAX];
	struct steer *s;

	CHECK((s = new_steer(T_VIP4)) != NULL);
	CHECK(!steer_forwarding(s));
	CHECK(!nft_has("ip"));		/* steer_new changes nothing */
	CHECK(steer_forward_on(s, sa(&to, T_OLD4), err, sizeof(err)) == 0);
	CHECK(steer_forwarding(s));
	CHECK(nft_list("ip", out, sizeof(out)) == 0);
	CHECK(strstr(out, "hook prerouting") != NULL);
	CHECK(strstr(out, "priority mangle") != NULL);	/* -150: after conntrack */
	CHECK(tu_count(out, "ip daddr " T_VIP4 " tcp flags ! syn ct state new counter "
	    "packets 0 bytes 0 dup to " T_OLD4 " drop") == 1);
	CHECK(tu_count(out, "ip daddr " T_VIP4 " tcp flags fin,rst ct state invalid counter "
	    "packets 0 bytes 0 dup to " T_OLD4 " drop") == 1);
	CHECK(tu_count(out, "ip daddr " T_VIP4 " tcp flags syn,ack / syn,ack ct state invalid "
	    "counter packets 0 bytes 0 dup to " T_OLD4 " drop") == 1);
	CHECK(tu_count(out, "dup to") == T_RULES);
	CHECK(tu_count(out, "ip saddr . tcp sport . tcp dport @pairs counter") == 1);
	CHECK(!nft_has("ip6") && !nft_has("arp"));

	/* The peer's mirrored connections, by address whatever conntrack says. */
	{
		struct hasync_tuple t[2];

		memset(t, 0, sizeof(t));
		sa(&t[0].remote, "192.0.2.9");
		((struct sockaddr_in *)&t[0].remote)->sin_port = htons(40000);
		t[0].local_port = 21;
		sa(&t[1].remote, "2001:db8::9");	/* the other family: left out */
		t[1].local_port = 21;
		CHECK(steer_forward_pairs(s, t, 2, err, sizeof(err)) == 0);
		CHECK(nft_list("ip", out, sizeof(out)) == 0);
		CHECK(strstr(out, "192.0.2.9 . 40000 . 21") != NULL);
	}

	/* Again, to another address: replaced, not added. */
	CHECK(steer_forward_on(s, sa(&to, T_OTHER4), err, sizeof(err)) == 0);
	CHECK(nft_list("ip", out, sizeof(out)) == 0);
	CHECK(tu_count(out, "dup to") == T_RULES);
	CHECK(tu_count(out, "dup to " T_OTHER4 " drop") == T_RULES);
	CHECK(tu_count(out, "chain ") == 1);

	CHECK(steer_forward_off(s, err, sizeof(err)) == 0);
	CHECK(!steer_forwarding(s));
	CHECK(!nft_has("ip"));
	CHECK(steer_forward_off(s, err, sizeof(err)) == 0);	/* idempotent */
	steer_free(s);
	return 0;
}

static void
test_forward_v4(void **state)
{
	in_netns(forward_v4);
}

static int
forward_v6(void)
{
	struct sockaddr_storage to;
	char err[256] = "", out[T_OUT_MAX];
	struct steer *s;

	CHECK((s = new_steer(T_VIP6)) != NULL);
	CHECK(steer_forward_on(s, sa(&to, T_OLD6), err, sizeof(err)) == 0);
	CHECK(steer_forward_on(s, sa(&to, T_OLD6), err, sizeof(err)) == 0);
	CHECK(nft_list("ip6", out, sizeof(out)) == 0);
	CHECK(tu_count(out, "ip6 daddr " T_VIP6 " tcp flags ! syn ct state new counter "
	    "packets 0 bytes 0 dup to " T_OLD6 " drop") == 1);
	CHECK(tu_count(out, "ip6 daddr " T_VIP6 " tcp flags fin,rst ct state invalid") == 1);
	CHECK(tu_count(out, "ip6 daddr " T_VIP6 " tcp flags syn,ack / syn,ack ct state "
	    "invalid") == 1);
	CHECK(tu_count(out, "dup to " T_OLD6 " drop") == T_RULES);
	CHECK(!nft_has("ip"));
	CHECK(steer_forward_off(s, err, sizeof(err)) == 0);
	CHECK(!nft_has("ip6"));
	steer_free(s);
	return 0;
}

static void
test_forward_v6(void **state)
{
	in_netns(forward_v6);
}

static int
forward_bad(void)
{
	struct sockaddr_storage to;
	char err[256] = "";
	struct steer *s4, *s6;

	CHECK((s4 = new_steer(T_VIP4)) != NULL);
	CHECK((s6 = new_steer(T_VIP6)) != NULL);
	CHECK(steer_forward_on(s4, sa(&to, T_OLD6), err, sizeof(err)) == -1);
	CHECK(strstr(err, "IPv4") != NULL && strstr(err, "IPv6") != NULL);
	err[0] = '\0';
	CHECK(steer_forward_on(s6, sa(&to, T_OLD4), err, sizeof(err)) == -1);
	CHECK(strstr(err, "IPv6") != NULL && strstr(err, "IPv4") != NULL);
	err[0] = '\0';
	CHECK(steer_forward_on(s4, sa(&to, T_VIP4), err, sizeof(err)) == -1);
	CHECK(strstr(err, "old master's own address") != NULL);
	CHECK(steer_forward_on(s4, sa(&to, "0.0.0.0"), err, sizeof(err)) == -1);
	CHECK(steer_forward_on(s6, sa(&to, "::"), err, sizeof(err)) == -1);
	CHECK(steer_forward_on(s4, NULL, err, sizeof(err)) == -1);
	memset(&to, 0, sizeof(to));	/* AF_UNSPEC */
	CHECK(steer_forward_on(s4, (struct sockaddr *)&to, err, sizeof(err)) == -1);
	CHECK(!steer_forwarding(s4) && !steer_forwarding(s6));
	CHECK(!nft_has("ip") && !nft_has("ip6"));
	steer_free(s4);
	steer_free(s6);
	return 0;
}

static void
test_forward_bad(void **state)
{
	in_netns(forward_bad);
}

/* Writes v into nf_conntrack_tcp_loose (this namespace's). */
static int
set_loose(const char *v)
{
	FILE *f;

	if ((f = fopen(T_LOOSE, "w")) == NULL)
		return -1;
	fputs(v, f);
	return fclose(f) == 0 ? 0 : -1;
}

static int
forward_loose(void)
{
	struct sockaddr_storage to;
	char err[512] = "";
	struct steer *s;

	CHECK((s = new_steer(T_VIP4)) != NULL);
	/* The first rule loads conntrack, which makes the setting appear. */
	CHECK(steer_forward_on(s, sa(&to, T_OLD4), err, sizeof(err)) == 0);
	CHECK(steer_forward_off(s, err, sizeof(err)) == 0);
	CHECK(set_loose("0") == 0);
	CHECK(steer_forward_on(s, sa(&to, T_OLD4), err, sizeof(err)) == -1);
	CHECK(strstr(err, "nf_conntrack_tcp_loose") != NULL);
	CHECK(strstr(err, "set it to 1") != NULL);
	CHECK(!steer_forwarding(s));
	CHECK(!nft_has("ip"));
	CHECK(set_loose("1") == 0);
	CHECK(steer_forward_on(s, sa(&to, T_OLD4), err, sizeof(err)) == 0);
	steer_free(s);
	return 0;
}

static void
test_forward_loose(void **state)
{
	in_netns(forward_loose);
}

static int
hide_v4(void)
{
	char err[256] = "", out[T_OUT_MAX];
	struct steer *s;

	CHECK((s = new_steer(T_VIP4)) != NULL);
	CHECK(on_lo(T_VIP4) == 0);
	CHECK(steer_hide_on(s, err, sizeof(err)) == 0);
	CHECK(steer_hidden(s));
	CHECK(on_lo(T_VIP4) == 1);
	CHECK(system("ip -4 addr show dev lo | grep -q 'inet " T_VIP4 "/32 .*lo:lbd'") == 0);
	CHECK(nft_list("arp", out, sizeof(out)) == 0);
	CHECK(strstr(out, "hook input") != NULL);
	CHECK(tu_count(out, "arp operation request arp daddr ip " T_VIP4
	    " counter packets 0 bytes 0 drop") == 1);
	/* Again: still one rule, one address. */
	CHECK(steer_hide_on(s, err, sizeof(err)) == 0);
	CHECK(nft_list("arp", out, sizeof(out)) == 0);
	CHECK(tu_count(out, "drop") == 1);
	CHECK(system("test $(ip -4 addr show dev lo | grep -c " T_VIP4 ") = 1") == 0);
	CHECK(!nft_has("ip"));

	CHECK(steer_hide_off(s, err, sizeof(err)) == 0);
	CHECK(!steer_hidden(s));
	CHECK(on_lo(T_VIP4) == 0);
	CHECK(!nft_has("arp"));
	CHECK(steer_hide_off(s, err, sizeof(err)) == 0);	/* idempotent */
	CHECK(on_lo("127.0.0.1") == 1);				/* lo untouched */
	steer_free(s);
	return 0;
}

static void
test_hide_v4(void **state)
{
	in_netns(hide_v4);
}

static int
hide_v6(void)
{
	char err[256] = "";
	struct steer *s;

	CHECK((s = new_steer(T_VIP6)) != NULL);
	CHECK(steer_hide_on(s, err, sizeof(err)) == 0);
	CHECK(on_lo(T_VIP6) == 1);
	CHECK(system("ip -6 addr show dev lo | grep -q 'inet6 " T_VIP6 "/128'") == 0);
	CHECK(!nft_has("arp"));		/* Linux answers NDP per interface */
	CHECK(steer_hide_off(s, err, sizeof(err)) == 0);
	CHECK(on_lo(T_VIP6) == 0);
	CHECK(on_lo("::1") == 1);
	steer_free(s);
	return 0;
}

static void
test_hide_v6(void **state)
{
	in_netns(hide_v6);
}

static int
reset_leftovers(void)
{
	char err[256] = "";
	struct steer *s;

	/* A crashed run's leftovers, made by hand. */
	CHECK(system("nft add table ip " STEER_TABLE " && nft add table ip6 " STEER_TABLE
	    " && nft add table arp " STEER_TABLE " && nft add chain arp " STEER_TABLE
	    " input '{ type filter hook input priority 0; }' && "
	    "ip addr add " T_VIP4 "/32 dev lo") == 0);
	CHECK(nft_has("ip") && nft_has("ip6") && nft_has("arp") && on_lo(T_VIP4) == 1);
	CHECK((s = new_steer(T_VIP4)) != NULL);
	CHECK(steer_reset(s, err, sizeof(err)) == 0);
	CHECK(!nft_has("ip") && !nft_has("ip6") && !nft_has("arp"));
	CHECK(on_lo(T_VIP4) == 0);
	CHECK(steer_reset(s, err, sizeof(err)) == 0);	/* nothing left: fine too */
	CHECK(!steer_forwarding(s) && !steer_hidden(s));

	/* After our own steering too. */
	CHECK(steer_hide_on(s, err, sizeof(err)) == 0);
	CHECK(steer_reset(s, err, sizeof(err)) == 0);
	CHECK(!steer_hidden(s) && on_lo(T_VIP4) == 0 && !nft_has("arp"));
	steer_free(s);
	return 0;
}

static void
test_reset(void **state)
{
	in_netns(reset_leftovers);
}

static int
free_keeps(void)
{
	struct sockaddr_storage to;
	char err[256] = "";
	struct steer *s;

	CHECK((s = new_steer(T_VIP4)) != NULL);
	CHECK(steer_forward_on(s, sa(&to, T_OLD4), err, sizeof(err)) == 0);
	CHECK(steer_hide_on(s, err, sizeof(err)) == 0);
	steer_free(s);
	CHECK(nft_has("ip") && nft_has("arp") && on_lo(T_VIP4) == 1);
	CHECK((s = new_steer(T_VIP4)) != NULL);
	CHECK(steer_reset(s, err, sizeof(err)) == 0);
	CHECK(!nft_has("ip") && !nft_has("arp") && on_lo(T_VIP4) == 0);
	steer_free(s);
	return 0;
}

static void
test_free_keeps(void **state)
{
	in_netns(free_keeps);
}

static int
new_bad(void)
{
	struct sockaddr_storage ss;
	char err[256] = "";

	CHECK(steer_new("d0", NULL, err, sizeof(err)) == NULL);
	CHECK(err[0] != '\0');
	err[0] = '\0';
	CHECK(steer_new("", sa(&ss, T_VIP4), err, sizeof(err)) == NULL);
	CHECK(err[0] != '\0');
	err[0] = '\0';
	CHECK(steer_new("a-name-far-too-long-for-linux", sa(&ss, T_VIP4), err,
	    sizeof(err)) == NULL);
	CHECK(err[0] != '\0');
	err[0] = '\0';
	CHECK(steer_new("d0", sa(&ss, "::ffff:192.0.2.10"), err, sizeof(err)) == NULL);
	CHECK(strstr(err, "v4-mapped") != NULL);
	memset(&ss, 0, sizeof(ss));
	CHECK(steer_new("d0", (struct sockaddr *)&ss, err, sizeof(err)) == NULL);
	return 0;
}

static void
test_new_bad(void **state)
{
	in_netns(new_bad);
}

/* --- end to end: client, old master, new master in named namespaces --- */

static char	 e2e_ns[3][32];		/* names: client, old, new */
enum { E2E_C = 0, E2E_O, E2E_N };	/* index into e2e_ns */

/* The addresses of one end-to-end run. */
struct e2e_net {
	const char	*vip;		/* the VIP */
	const char	*old;		/* old master */
	const char	*new;		/* new master */
	const char	*client;	/* client */
	int		 plen;		/* subnet prefix length */
	const char	*ipopt;		/* `ip addr add` options ("nodad" for IPv6) */
};

static const struct e2e_net e2e_v4 = {
	"10.9.0.10", "10.9.0.2", "10.9.0.3", "10.9.0.100", 24, ""
};
static const struct e2e_net e2e_v6 = {
	"fd00:9::10", "fd00:9::2", "fd00:9::3", "fd00:9::100", 64, "nodad"
};

/* Enters the named namespace. Returns 0 or -1. */
static int
e2e_enter(int which)
{
	char path[96];
	int fd, rc;

	snprintf(path, sizeof(path), "/run/netns/%s", e2e_ns[which]);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	rc = setns(fd, CLONE_NEWNET);
	close(fd);
	return rc;
}

/* Deletes the three namespaces (whatever exists of them). */
static void
e2e_cleanup(void)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "for n in %s %s %s; do ip netns del $n 2>/dev/null; "
	    "done; true", e2e_ns[0], e2e_ns[1], e2e_ns[2]);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot delete the test namespaces\n");
}

/*
 * A forked server in the current namespace on port E2E_PORT answering each
 * read with "<tag>:<data>"; dies after E2E_LIFE seconds at most.
 * Returns: its pid, or -1.
 */
static pid_t
e2e_server(const char *tag)
{
	struct sockaddr_in6 sin;
	struct pollfd pfd[8];
	char buf[256], out[300];
	int lfd, one = 1, zero = 0, n, i, k;
	pid_t pid;

	/* [::] with V6ONLY off: IPv4 and IPv6 clients alike. */
	memset(&sin, 0, sizeof(sin));
	sin.sin6_family = AF_INET6;
	sin.sin6_port = htons(E2E_PORT);
	if ((lfd = socket(AF_INET6, SOCK_STREAM, 0)) == -1 ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) == -1 ||
	    bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) == -1 || listen(lfd, 8) == -1)
		return -1;
	fflush(NULL);
	if ((pid = fork()) != 0) {
		close(lfd);
		return pid;
	}
	alarm(E2E_LIFE);
	pfd[0].fd = lfd;
	pfd[0].events = POLLIN;
	n = 1;
	for (;;) {
		if (poll(pfd, n, -1) == -1)
			_exit(1);
		if ((pfd[0].revents & POLLIN) && n < 8) {
			pfd[n].fd = accept(lfd, NULL, NULL);
			pfd[n].events = POLLIN;
			pfd[n].revents = 0;
			if (pfd[n].fd != -1)
				n++;
		}
		for (i = 1; i < n; i++) {
			if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			k = (int)read(pfd[i].fd, buf, sizeof(buf) - 1);
			if (k <= 0) {
				close(pfd[i].fd);
				pfd[i--] = pfd[--n];
				continue;
			}
			buf[k] = '\0';
			k = snprintf(out, sizeof(out), "%s:%s", tag, buf);
			if (write(pfd[i].fd, out, (size_t)k) != k)
				_exit(1);
		}
	}
}

/* A client socket (current namespace) connected to the VIP, 3 s timeouts. */
static int
e2e_connect(const struct e2e_net *net)
{
	struct sockaddr_storage ss;
	struct timeval tv = { 3, 0 };
	int fd;

	sa(&ss, net->vip);
	/* sin_port and sin6_port sit at the same offset. */
	((struct sockaddr_in *)&ss)->sin_port = htons(E2E_PORT);
	if ((fd = socket(ss.ss_family, SOCK_STREAM, 0)) == -1)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == -1 ||
	    connect(fd, (struct sockaddr *)&ss, sizeof(ss)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Sends msg, returns whether the answer is exactly want. */
static bool
e2e_ask(int fd, const char *msg, const char *want)
{
	char buf[256];
	size_t got = 0, len = strlen(want);
	ssize_t k;

	if (write(fd, msg, strlen(msg)) != (ssize_t)strlen(msg))
		return false;
	while (got < len) {
		if ((k = read(fd, buf + got, sizeof(buf) - 1 - got)) <= 0) {
			fprintf(stderr, "e2e: read: %s\n", k == 0 ? "closed" : strerror(errno));
			return false;
		}
		got += (size_t)k;
	}
	buf[got] = '\0';
	if (strcmp(buf, want) != 0)
		fprintf(stderr, "e2e: got \"%s\", want \"%s\"\n", buf, want);
	return strcmp(buf, want) == 0;
}

static int
e2e_run(const struct e2e_net *net, pid_t *srv)
{
	struct sockaddr_storage vip, old;
	char err[256] = "", out[T_OUT_MAX], cmd[2048];
	struct steer *sn = NULL, *so = NULL;
	struct vip *vo = NULL, *vn = NULL;
	struct timespec pause = { 0, 300 * 1000 * 1000 };
	int held, fresh;

	snprintf(cmd, sizeof(cmd),
	    "set -e; C=%1$s; O=%2$s; N=%3$s; P=%4$d; X=\"%5$s\"\n"
	    "ip netns add $C; ip netns add $O; ip netns add $N\n"
	    "for n in $C $O $N; do ip -n $n link set lo up; done\n"
	    "ip -n $C link add br0 type bridge; ip -n $C link set br0 up\n"
	    "ip -n $C addr add %6$s/$P dev br0 $X\n"
	    "ip -n $C link add vo type veth peer name eth0 netns $O\n"
	    "ip -n $C link add vn type veth peer name eth0 netns $N\n"
	    "for p in vo vn; do ip -n $C link set $p master br0 up; done\n"
	    "ip -n $O link set eth0 up; ip -n $O addr add %7$s/$P dev eth0 $X\n"
	    "ip -n $O addr add %8$s/$P dev eth0 $X\n"
	    "ip -n $N link set eth0 up; ip -n $N addr add %9$s/$P dev eth0 $X\n",
	    e2e_ns[0], e2e_ns[1], e2e_ns[2], net->plen, net->ipopt, net->client, net->old,
	    net->vip, net->new);
	CHECK(system(cmd) == 0);
	sa(&vip, net->vip);
	sa(&old, net->old);

	CHECK(e2e_enter(E2E_O) == 0);
	CHECK((srv[0] = e2e_server("old")) != -1);
	CHECK((so = steer_new("eth0", (struct sockaddr *)&vip, err, sizeof(err))) != NULL);
	CHECK((vo = vip_open("eth0", (struct sockaddr *)&vip, net->plen, err, sizeof(err))) != NULL);
	CHECK(e2e_enter(E2E_N) == 0);
	CHECK((srv[1] = e2e_server("new")) != -1);
	CHECK((sn = steer_new("eth0", (struct sockaddr *)&vip, err, sizeof(err))) != NULL);
	CHECK((vn = vip_open("eth0", (struct sockaddr *)&vip, net->plen, err, sizeof(err))) != NULL);

	/* The client's connection, on the old master. */
	CHECK(e2e_enter(E2E_C) == 0);
	CHECK((held = e2e_connect(net)) != -1);
	CHECK(e2e_ask(held, "a", "old:a"));

	/* The handover, in the order lbd does it. */
	CHECK(e2e_enter(E2E_N) == 0);
	CHECK(steer_reset(sn, err, sizeof(err)) == 0);
	CHECK(steer_forward_on(sn, (struct sockaddr *)&old, err, sizeof(err)) == 0);
	CHECK(e2e_enter(E2E_O) == 0);
	CHECK(steer_hide_on(so, err, sizeof(err)) == 0);
	CHECK(vip_del(vo, err, sizeof(err)) == 0);
	CHECK(e2e_enter(E2E_N) == 0);
	CHECK(vip_add(vn, err, sizeof(err)) == 0);
	CHECK(vip_announce(vn, err, sizeof(err)) == 0);
	nanosleep(&pause, NULL);

	/* The client's neighbour entry now points at the new master... */
	snprintf(cmd, sizeof(cmd), "m=$(ip -n %s -br link show eth0 | awk '{print $3}'); "
	    "ip -n %s neigh show %s dev br0 | grep -q \"lladdr $m\"",
	    e2e_ns[E2E_N], e2e_ns[E2E_C], net->vip);
	CHECK(system(cmd) == 0);
	CHECK(e2e_enter(E2E_C) == 0);
	/* ...yet the held connection still talks to the old one, */
	CHECK(e2e_ask(held, "b", "old:b"));
	/* a new connection reaches the new master, */
	CHECK((fresh = e2e_connect(net)) != -1);
	CHECK(e2e_ask(fresh, "c", "new:c"));
	CHECK(e2e_ask(held, "d", "old:d"));
	CHECK(e2e_ask(fresh, "e", "new:e"));
	/* Its end (FIN, "invalid" on the new master) reaches the old master too. */
	close(held);
	snprintf(cmd, sizeof(cmd), "for i in $(seq 30); do [ -z \"$(ip netns exec %s ss -Htn "
	    "state established '( sport = :%d )')\" ] && exit 0; sleep 0.1; done; exit 1",
	    e2e_ns[E2E_O], E2E_PORT);
	CHECK(system(cmd) == 0);
	close(fresh);
	/* and the held connection's packets went through the rule. */
	CHECK(e2e_enter(E2E_N) == 0);
	CHECK(nft_list(vip.ss_family == AF_INET ? "ip" : "ip6", out, sizeof(out)) == 0);
	CHECK(strstr(out, "ct state new counter packets 0 ") == NULL);
	CHECK(strstr(out, "ct state new counter packets ") != NULL);
	/* The old master never answers ARP for the VIP now (IPv6: no table). */
	CHECK(e2e_enter(E2E_O) == 0);
	CHECK((nft_list("arp", out, sizeof(out)) == 0) == (vip.ss_family == AF_INET));

	/* The end of the handover: both sides off. */
	CHECK(steer_hide_off(so, err, sizeof(err)) == 0);
	CHECK(e2e_enter(E2E_N) == 0);
	CHECK(steer_forward_off(sn, err, sizeof(err)) == 0);
	CHECK(!nft_has("ip") && !nft_has("ip6"));
	steer_free(sn);
	steer_free(so);
	vip_close(vn);
	vip_close(vo);
	return 0;
}

static void
e2e_handover(const struct e2e_net *net)
{
	pid_t pid, srv[2];
	int status, rc;

	snprintf(e2e_ns[0], sizeof(e2e_ns[0]), "lbdst-%d-c", (int)getpid());
	snprintf(e2e_ns[1], sizeof(e2e_ns[1]), "lbdst-%d-o", (int)getpid());
	snprintf(e2e_ns[2], sizeof(e2e_ns[2]), "lbdst-%d-n", (int)getpid());
	if (geteuid() != 0) {
		fprintf(stderr, "  not root: end-to-end handover skipped\n");
		skip();
	}
	fflush(NULL);
	pid = fork();
	assert_int_not_equal(pid, -1);
	if (pid == 0) {
		srv[0] = srv[1] = -1;
		alarm(E2E_LIFE);
		rc = e2e_run(net, srv);
		if (srv[0] > 0)
			kill(srv[0], SIGKILL);
		if (srv[1] > 0)
			kill(srv[1], SIGKILL);
		if (srv[0] > 0)
			waitpid(srv[0], NULL, 0);
		if (srv[1] > 0)
			waitpid(srv[1], NULL, 0);
		exit(rc);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	e2e_cleanup();
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void
test_e2e_handover_v4(void **state)
{
	e2e_handover(&e2e_v4);
}

static void
test_e2e_handover_v6(void **state)
{
	e2e_handover(&e2e_v6);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forward_v4),
		cmocka_unit_test(test_forward_v6),
		cmocka_unit_test(test_forward_bad),
		cmocka_unit_test(test_forward_loose),
		cmocka_unit_test(test_hide_v4),
		cmocka_unit_test(test_hide_v6),
		cmocka_unit_test(test_reset),
		cmocka_unit_test(test_free_keeps),
		cmocka_unit_test(test_new_bad),
		cmocka_unit_test(test_e2e_handover_v4),
		cmocka_unit_test(test_e2e_handover_v6),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
