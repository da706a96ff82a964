/*
 * test_vip.c - unit tests for hasync/vip.c, run inside a private network
 * namespace (unshare) holding a veth pair eth0/peer0, so nothing touches
 * the host: add/remove/query the VIP, and catch the GARP and NA on peer0.
 */
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/icmp6.h>
#include <netinet/if_ether.h>
#include <netinet/in.h>
#include <netinet/ip6.h>
#include <netpacket/packet.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/socket.h>

#include "hasync_int.h"
#include "testutil.h"

#define TEST_VIP4	"192.168.86.87"	/* the seed deployment's VIP */
#define TEST_VIP6	"2001:db8::87"	/* documentation prefix */
#define TEST_WAIT_MS	3000		/* longest wait for an announcement frame */
#define TEST_OUT_MAX	8192		/* room for `ip addr` output */

static bool		 netns_ok;	/* we are in our own namespace with eth0/peer0 */
static struct nl_sock	*tsk;		/* the test's own netlink socket */

/* Brings a link up through libnl. */
static int
link_up(const char *name)
{
	struct rtnl_link *old = NULL, *chg = NULL;
	int rc = -1;

	if (rtnl_link_get_kernel(tsk, 0, name, &old) < 0)
		goto out;
	if ((chg = rtnl_link_alloc()) == NULL)
		goto out;
	rtnl_link_set_flags(chg, IFF_UP);
	if (rtnl_link_change(tsk, old, chg, 0) < 0)
		goto out;
	rc = 0;
out:
	if (old != NULL)
		rtnl_link_put(old);
	if (chg != NULL)
		rtnl_link_put(chg);
	return rc;
}

/* Creates the veth pair name/peer in this namespace, both up. */
static int
veth_up(const char *name, const char *peer)
{
	if (rtnl_link_veth_add(tsk, name, peer, getpid()) < 0)
		return -1;
	if (link_up(name) == -1 || link_up(peer) == -1)
		return -1;
	return 0;
}

static int
link_delete(const char *name)
{
	struct rtnl_link *l = NULL;
	int rc;

	if (rtnl_link_get_kernel(tsk, 0, name, &l) < 0)
		return -1;
	rc = rtnl_link_delete(tsk, l);
	rtnl_link_put(l);
	return rc < 0 ? -1 : 0;
}

static int
group_setup(void **state)
{
	if (unshare(CLONE_NEWNET) == -1) {
		if (errno == EPERM) {
			fprintf(stderr, "test_vip: unshare(CLONE_NEWNET): %s; run as root "
			    "to test the VIP (tests skipped)\n", strerror(errno));
			return 0;
		}
		fprintf(stderr, "test_vip: unshare(CLONE_NEWNET): %s\n", strerror(errno));
		return -1;
	}
	if ((tsk = nl_socket_alloc()) == NULL || nl_connect(tsk, NETLINK_ROUTE) < 0)
		return -1;
	if (link_up("lo") == -1 || veth_up("eth0", "peer0") == -1) {
		fprintf(stderr, "test_vip: cannot build eth0/peer0 in the namespace\n");
		return -1;
	}
	netns_ok = true;
	return 0;
}

static int
group_teardown(void **state)
{
	/* The namespace, with its links, dies with this process. */
	if (tsk != NULL)
		nl_socket_free(tsk);
	return 0;
}

/* Runs a shell command (in our namespace) and returns its stdout in out. */
static void
run(const char *cmd, char *out, size_t outlen)
{
	FILE *p;
	size_t n = 0, r;

	p = popen(cmd, "r");
	assert_non_null(p);
	while (n < outlen - 1 && (r = fread(out + n, 1, outlen - 1 - n, p)) > 0)
		n += r;
	out[n] = '\0';
	assert_int_equal(pclose(p), 0);
}

/* Cuts out (in place) the line of out that holds needle; NULL if none. */
static char *
line_with(char *out, const char *needle)
{
	char *hit, *start, *end;

	if ((hit = strstr(out, needle)) == NULL)
		return NULL;
	for (start = hit; start > out && start[-1] != '\n'; start--)
		;
	if ((end = strchr(hit, '\n')) != NULL)
		*end = '\0';
	return start;
}

static struct vip *
open_vip(const char *ifname, const char *text, int prefixlen)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	char err[256] = "";
	struct vip *v;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
	} else {
		assert_int_equal(inet_pton(AF_INET6, text, &sin6->sin6_addr), 1);
		sin6->sin6_family = AF_INET6;
	}
	v = vip_open(ifname, (struct sockaddr *)&ss, prefixlen, err, sizeof(err));
	if (v == NULL)
		fail_msg("vip_open(%s, %s/%d): %s", ifname, text, prefixlen, err);
	return v;
}

/* Reads an interface's MAC independently of vip.c. */
static void
get_mac(const char *ifname, uint8_t mac[ETH_ALEN])
{
	struct ifreq ifr;
	int fd;

	fd = socket(AF_INET, SOCK_DGRAM, 0);
	assert_int_not_equal(fd, -1);
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	assert_int_not_equal(ioctl(fd, SIOCGIFHWADDR, &ifr), -1);
	memcpy(mac, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
	close(fd);
}

/* A packet socket bound to ifname receiving the given ethertype. */
static int
sniff_open(const char *ifname, uint16_t ethertype)
{
	struct sockaddr_ll sll;
	int fd;

	fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_NONBLOCK, htons(ethertype));
	assert_int_not_equal(fd, -1);
	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ethertype);
	sll.sll_ifindex = (int)if_nametoindex(ifname);
	assert_int_not_equal(sll.sll_ifindex, 0);
	assert_int_not_equal(bind(fd, (struct sockaddr *)&sll, sizeof(sll)), -1);
	return fd;
}

/* The monotonic clock in ms as a signed number: deadlines here are longs. */
static long
test_ms(void)
{
	return (long)clock_now_ms();
}

/*
 * Receives one frame within the deadline.
 * Returns: its length, or -1 when the deadline passed.
 */
static ssize_t
sniff_next(int fd, long deadline, uint8_t *buf, size_t len, struct sockaddr_ll *from)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	socklen_t fromlen = sizeof(*from);
	long left;
	ssize_t n;

	for (;;) {
		if ((left = deadline - test_ms()) <= 0)
			return -1;
		if (poll(&pfd, 1, (int)left) <= 0)
			continue;
		n = recvfrom(fd, buf, len, 0, (struct sockaddr *)from, &fromlen);
		if (n >= 0)
			return n;
	}
}

/*
 * Plants a stale neighbour entry for the VIP on peer0 with a wrong MAC, so
 * the test can see the announcement *change* the peer's cache.
 */
static void
neigh_plant(const char *vip)
{
	char out[TEST_OUT_MAX], cmd[256];
	FILE *f;

	/* locktime 0: let an update follow the planted entry at once. */
	f = fopen("/proc/sys/net/ipv4/neigh/peer0/locktime", "w");
	assert_non_null(f);
	fputs("0\n", f);
	assert_int_equal(fclose(f), 0);
	snprintf(cmd, sizeof(cmd), "ip neigh replace %s lladdr 02:00:00:00:00:01 "
	    "dev peer0 nud stale", vip);
	run(cmd, out, sizeof(out));
	/*
	 * Both ends live in this one namespace, so the VIP is a local address
	 * here and Linux does not class the frame as a gratuitous ARP (that
	 * wants the sender on a unicast route): it lets the frame override
	 * the entry only once the entry is older than locktime, i.e. from
	 * the next jiffy on. 20 ms is at least one jiffy at HZ >= 100.
	 */
	usleep(20000);
}

/* Waits (bounded) until peer0's neighbour entry for vip carries mac. */
static bool
neigh_learned(const char *vip, const uint8_t mac[ETH_ALEN])
{
	char out[TEST_OUT_MAX], cmd[128], want[32];
	long deadline = test_ms() + TEST_WAIT_MS;

	snprintf(want, sizeof(want), "lladdr %02x:%02x:%02x:%02x:%02x:%02x",
	    mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
	snprintf(cmd, sizeof(cmd), "ip neigh show %s dev peer0", vip);
	while (test_ms() < deadline) {
		run(cmd, out, sizeof(out));
		if (strstr(out, want) != NULL)
			return true;
		usleep(20000);
	}
	fprintf(stderr, "test_vip: peer0 neighbour entry: %s", out);
	return false;
}

static void
test_open_errors(void **state)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct sockaddr_in6 sin6;
	struct sockaddr un = { .sa_family = AF_UNIX };
	char err[256];

	if (!netns_ok)
		skip();
	inet_pton(AF_INET, TEST_VIP4, &sin.sin_addr);

	err[0] = '\0';
	assert_null(vip_open("eth9", (struct sockaddr *)&sin, 24, err, sizeof(err)));
	assert_string_equal(err, "interface eth9 does not exist");

	assert_null(vip_open("an-interface-name-too-long", (struct sockaddr *)&sin, 24,
	    err, sizeof(err)));
	assert_non_null(strstr(err, "too long"));

	assert_null(vip_open("", (struct sockaddr *)&sin, 24, err, sizeof(err)));
	assert_non_null(strstr(err, "empty"));

	assert_null(vip_open("eth0", (struct sockaddr *)&sin, 33, err, sizeof(err)));
	assert_non_null(strstr(err, "prefix length 33"));
	assert_null(vip_open("eth0", (struct sockaddr *)&sin, 0, err, sizeof(err)));
	assert_non_null(strstr(err, "prefix length 0"));

	assert_null(vip_open("eth0", &un, 24, err, sizeof(err)));
	assert_non_null(strstr(err, "IPv4 or IPv6"));

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "::ffff:192.168.86.87", &sin6.sin6_addr);
	assert_null(vip_open("eth0", (struct sockaddr *)&sin6, 120, err, sizeof(err)));
	assert_non_null(strstr(err, "v4-mapped"));

	/* NULL error buffer: still fails cleanly. */
	assert_null(vip_open("eth9", (struct sockaddr *)&sin, 24, NULL, 0));
}

static void
test_v4_add_del(void **state)
{
	char out[TEST_OUT_MAX], err[256] = "";
	struct vip *v;

	if (!netns_ok)
		skip();
	v = open_vip("eth0", TEST_VIP4, 24);
	assert_false(vip_held(v));
	assert_int_equal(vip_present(v), 0);

	assert_int_equal(vip_add(v, err, sizeof(err)), 0);
	assert_true(vip_held(v));
	assert_int_equal(vip_present(v), 1);
	run("ip -o -4 addr show dev eth0", out, sizeof(out));
	assert_non_null(strstr(out,
	    "inet 192.168.86.87/24 brd 192.168.86.255 scope global eth0:lbd"));

	/* Twice is fine and adds nothing. */
	assert_int_equal(vip_add(v, err, sizeof(err)), 0);
	run("ip -o -4 addr show dev eth0", out, sizeof(out));
	assert_int_equal(tu_count(out, "192.168.86.87/"), 1);

	assert_int_equal(vip_del(v, err, sizeof(err)), 0);
	assert_false(vip_held(v));
	assert_int_equal(vip_present(v), 0);
	run("ip -o -4 addr show dev eth0", out, sizeof(out));
	assert_null(strstr(out, "192.168.86.87"));

	/* Already gone is fine. */
	assert_int_equal(vip_del(v, err, sizeof(err)), 0);
	assert_int_equal(vip_present(v), 0);
	vip_close(v);
}

static void
test_v4_stale_and_external(void **state)
{
	char out[TEST_OUT_MAX], err[256] = "";
	struct vip *v;

	if (!netns_ok)
		skip();
	v = open_vip("eth0", TEST_VIP4, 24);

	/* A stale VIP with another prefix (older config, crashed run). */
	run("ip addr add 192.168.86.87/32 dev eth0", out, sizeof(out));
	assert_int_equal(vip_present(v), 1);
	assert_false(vip_held(v));
	assert_int_equal(vip_del(v, err, sizeof(err)), 0);
	assert_int_equal(vip_present(v), 0);

	/* Stale /32 plus our /24: both go. */
	run("ip addr add 192.168.86.87/32 dev eth0", out, sizeof(out));
	assert_int_equal(vip_add(v, err, sizeof(err)), 0);
	run("ip -o -4 addr show dev eth0", out, sizeof(out));
	assert_int_equal(tu_count(out, "192.168.86.87/"), 2);
	assert_int_equal(vip_del(v, err, sizeof(err)), 0);
	run("ip -o -4 addr show dev eth0", out, sizeof(out));
	assert_null(strstr(out, "192.168.86.87"));

	/* Removed behind our back: present tells the truth, held keeps our intent. */
	assert_int_equal(vip_add(v, err, sizeof(err)), 0);
	run("ip addr del 192.168.86.87/24 dev eth0", out, sizeof(out));
	assert_int_equal(vip_present(v), 0);
	assert_true(vip_held(v));
	assert_int_equal(vip_add(v, err, sizeof(err)), 0);	/* re-add */
	assert_int_equal(vip_present(v), 1);

	/* A VIP on another interface is not ours. */
	assert_int_equal(vip_del(v, err, sizeof(err)), 0);
	run("ip addr add 192.168.86.87/24 dev peer0", out, sizeof(out));
	assert_int_equal(vip_present(v), 0);
	run("ip addr del 192.168.86.87/24 dev peer0", out, sizeof(out));
	vip_close(v);
}

static void
test_v4_label_long_names(void **state)
{
	char out[TEST_OUT_MAX], err[256] = "";
	struct vip *v;

	if (!netns_ok)
		skip();
	/* 12 characters: ":lbd" does not fit in 15, ":lb" does. */
	assert_int_equal(veth_up("veth-long-ab", "peer-a"), 0);
	v = open_vip("veth-long-ab", "10.9.8.7", 32);
	assert_int_equal(vip_add(v, err, sizeof(err)), 0);
	run("ip -o -4 addr show dev veth-long-ab", out, sizeof(out));
	assert_non_null(strstr(out, "inet 10.9.8.7/32 scope global veth-long-ab:lb"));
	vip_close(v);

	/* 15 characters: no room for a suffix, the label is the name. */
	assert_int_equal(veth_up("veth-long-abcde", "peer-b"), 0);
	v = open_vip("veth-long-abcde", "10.9.8.6", 31);
	assert_int_equal(vip_add(v, err, sizeof(err)), 0);
	run("ip -o -4 addr show dev veth-long-abcde", out, sizeof(out));
	assert_non_null(strstr(out, "inet 10.9.8.6/31 scope global veth-long-abcde\\"));
	vip_close(v);

	assert_int_equal(link_delete("veth-long-ab"), 0);
	assert_int_equal(link_delete("veth-long-abcde"), 0);
}

static void
test_link_recreated(void **state)
{
	char out[TEST_OUT_MAX], err[256] = "";
	struct vip *v;

	if (!netns_ok)
		skip();
	assert_int_equal(veth_up("eth1", "peer1"), 0);
	v = open_vip("eth1", "10.1.1.1", 24);
	assert_int_equal(link_delete("eth1"), 0);

	err[0] = '\0';
	assert_int_equal(vip_add(v, err, sizeof(err)), -1);
	assert_string_equal(err, "interface eth1 does not exist");
	assert_false(vip_held(v));
	assert_int_equal(vip_announce(v, err, sizeof(err)), -1);
	assert_string_equal(err, "interface eth1 does not exist");

	/* Back with a new index: vip_add follows the name. */
	assert_int_equal(veth_up("eth1", "peer1"), 0);
	assert_int_equal(vip_add(v, err, sizeof(err)), 0);
	assert_int_equal(vip_present(v), 1);
	run("ip -o -4 addr show dev eth1", out, sizeof(out));
	assert_non_null(strstr(out, "10.1.1.1/24"));
	vip_close(v);	/* does not remove the VIP: the caller decides */
	run("ip -o -4 addr show dev eth1", out, sizeof(out));
	assert_non_null(strstr(out, "10.1.1.1/24"));
	assert_int_equal(link_delete("eth1"), 0);
}

static void
test_v6_add_del(void **state)
{
	char out[TEST_OUT_MAX], err[256] = "", *line;
	struct vip *v;

	if (!netns_ok)
		skip();
	v = open_vip("eth0", TEST_VIP6, 64);
	assert_int_equal(vip_present(v), 0);
	assert_int_equal(vip_add(v, err, sizeof(err)), 0);
	assert_true(vip_held(v));
	assert_int_equal(vip_present(v), 1);
	/* NODAD: usable at once, never "tentative" nor "dadfailed". */
	run("ip -o -6 addr show dev eth0", out, sizeof(out));
	line = line_with(out, "inet6 2001:db8::87/64 ");
	assert_non_null(line);
	assert_non_null(strstr(line, "scope global nodad"));
	assert_null(strstr(line, "tentative"));
	assert_null(strstr(line, "dadfailed"));

	assert_int_equal(vip_add(v, err, sizeof(err)), 0);
	run("ip -o -6 addr show dev eth0", out, sizeof(out));
	assert_int_equal(tu_count(out, "2001:db8::87/"), 1);

	assert_int_equal(vip_del(v, err, sizeof(err)), 0);
	assert_false(vip_held(v));
	assert_int_equal(vip_present(v), 0);
	run("ip -o -6 addr show dev eth0", out, sizeof(out));
	assert_null(strstr(out, "2001:db8::87"));
	assert_int_equal(vip_del(v, err, sizeof(err)), 0);
	vip_close(v);
}

static void
test_garp(void **state)
{
	uint8_t mac[ETH_ALEN], buf[1500], vip[4];
	struct sockaddr_ll from;
	struct ether_arp arp;
	char err[256] = "";
	struct vip *v;
	long deadline;
	ssize_t n;
	int fd, got = 0;

	if (!netns_ok)
		skip();
	get_mac("eth0", mac);
	inet_pton(AF_INET, TEST_VIP4, vip);
	fd = sniff_open("peer0", ETH_P_ARP);
	neigh_plant(TEST_VIP4);
	v = open_vip("eth0", TEST_VIP4, 24);
	assert_int_equal(vip_add(v, err, sizeof(err)), 0);
	if (vip_announce(v, err, sizeof(err)) != 0)
		fail_msg("vip_announce: %s", err);

	deadline = test_ms() + TEST_WAIT_MS;
	while (!got && (n = sniff_next(fd, deadline, buf, sizeof(buf), &from)) >= 0) {
		if ((size_t)n < sizeof(arp))
			continue;
		memcpy(&arp, buf, sizeof(arp));
		if (memcmp(arp.arp_tpa, vip, 4) != 0)
			continue;
		assert_int_equal(ntohs(arp.arp_hrd), ARPHRD_ETHER);
		assert_int_equal(ntohs(arp.arp_pro), ETHERTYPE_IP);
		assert_int_equal(ntohs(arp.arp_op), ARPOP_REQUEST);
		assert_memory_equal(arp.arp_spa, vip, 4);
		assert_memory_equal(arp.arp_sha, mac, ETH_ALEN);
		assert_int_equal(from.sll_pkttype, PACKET_BROADCAST);
		assert_memory_equal(from.sll_addr, mac, ETH_ALEN);	/* Ethernet source */
		got = 1;
	}
	assert_true(got);
	/* The peer's kernel accepted it: its stale entry now has eth0's MAC. */
	assert_true(neigh_learned(TEST_VIP4, mac));
	assert_int_equal(vip_del(v, err, sizeof(err)), 0);
	vip_close(v);
	close(fd);
}

static void
test_na(void **state)
{
	uint8_t mac[ETH_ALEN], buf[1500], vip[16], allnodes[16];
	struct nd_neighbor_advert na;
	struct sockaddr_ll from;
	struct ip6_hdr ip6;
	char err[256] = "";
	const uint8_t *opt;
	struct vip *v;
	long deadline;
	ssize_t n;
	int fd, got = 0;

	if (!netns_ok)
		skip();
	get_mac("eth0", mac);
	inet_pton(AF_INET6, TEST_VIP6, vip);
	inet_pton(AF_INET6, "ff02::1", allnodes);
	fd = sniff_open("peer0", ETH_P_IPV6);
	neigh_plant(TEST_VIP6);
	v = open_vip("eth0", TEST_VIP6, 64);

	/* Announcing an address we do not have is refused, with a hint. */
	assert_int_equal(vip_del(v, err, sizeof(err)), 0);
	assert_int_equal(vip_announce(v, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "is the VIP on the interface?"));

	assert_int_equal(vip_add(v, err, sizeof(err)), 0);
	if (vip_announce(v, err, sizeof(err)) != 0)
		fail_msg("vip_announce: %s", err);

	deadline = test_ms() + TEST_WAIT_MS;
	while (!got && (n = sniff_next(fd, deadline, buf, sizeof(buf), &from)) >= 0) {
		if ((size_t)n < sizeof(ip6) + sizeof(na) + 8)
			continue;
		memcpy(&ip6, buf, sizeof(ip6));
		memcpy(&na, buf + sizeof(ip6), sizeof(na));
		if (ip6.ip6_nxt != IPPROTO_ICMPV6 || na.nd_na_type != ND_NEIGHBOR_ADVERT ||
		    memcmp(&na.nd_na_target, vip, 16) != 0)
			continue;
		assert_int_equal(ip6.ip6_hlim, 255);
		assert_memory_equal(&ip6.ip6_dst, allnodes, 16);
		assert_memory_equal(&ip6.ip6_src, vip, 16);
		assert_int_equal(na.nd_na_code, 0);
		assert_true(na.nd_na_flags_reserved & ND_NA_FLAG_OVERRIDE);
		assert_false(na.nd_na_flags_reserved & ND_NA_FLAG_SOLICITED);
		assert_false(na.nd_na_flags_reserved & ND_NA_FLAG_ROUTER);
		opt = buf + sizeof(ip6) + sizeof(na);
		assert_int_equal(opt[0], ND_OPT_TARGET_LINKADDR);
		assert_int_equal(opt[1], 1);
		assert_memory_equal(opt + 2, mac, ETH_ALEN);
		assert_int_equal(ntohs(ip6.ip6_plen), sizeof(na) + 8);
		assert_int_equal(from.sll_pkttype, PACKET_MULTICAST);
		got = 1;
	}
	assert_true(got);
	/* The peer's kernel accepted it: its stale entry now has eth0's MAC. */
	assert_true(neigh_learned(TEST_VIP6, mac));
	assert_int_equal(vip_del(v, err, sizeof(err)), 0);
	vip_close(v);
	close(fd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test(test_v4_add_del),
		cmocka_unit_test(test_v4_stale_and_external),
		cmocka_unit_test(test_v4_label_long_names),
		cmocka_unit_test(test_link_recreated),
		cmocka_unit_test(test_v6_add_del),
		cmocka_unit_test(test_garp),
		cmocka_unit_test(test_na),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
