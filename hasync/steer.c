/*
 * steer.c - the kernel objects of a planned VIP handover that breaks no
 * connection: the new MASTER forwards packets of connections it does not
 * know to the old one (nftables `dup`, through libnftables), and the old
 * MASTER keeps the VIP hidden on lo to serve them to their end. When to
 * turn each on and off is handover.c's.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nftables/libnftables.h>

#include "hasync_int.h"

#define STEER_LO		"lo"	/* where the old MASTER hides the VIP */
#define STEER_PRIO		"-150"	/* prerouting priority: after conntrack (-200) */
#define STEER_CMD_MAX		1024	/* one nft batch */
#define STEER_TCP_LOOSE		"/proc/sys/net/netfilter/nf_conntrack_tcp_loose"
					/* must be 1: mid-stream packets are then "new" */

/* Steering state of one VIP. */
struct steer {
	char		 ifname[IFNAMSIZ];	/* the VIP's interface (messages) */
	int		 family;		/* AF_INET or AF_INET6 */
	char		 vip[INET6_ADDRSTRLEN];	/* the VIP as text */
	const char	*nft_family;		/* "ip" or "ip6": the forwarding table */
	const char	*nft_daddr;		/* "ip daddr" or "ip6 daddr" */
	struct nft_ctx	*nft;			/* libnftables context, output buffered */
	struct vip	*lo;			/* the VIP/32 or /128 on lo */
	bool		 forwarding;		/* steer_forward_on succeeded, not undone */
	char		 to[INET6_ADDRSTRLEN];	/* where forwarded packets go, while forwarding */
	bool		 hidden;		/* steer_hide_on succeeded, not undone */
};

static int	steer_run(struct steer *, const char *, const char *, char *, size_t);
static int	steer_check_loose(char *, size_t);

/*
 * Runs one nft batch (one kernel transaction: all or nothing) and empties
 * libnftables' output and error buffers. what names the step in err, which
 * gets the first line of nft's error text.
 * Returns: 0 done, -1 failed (err filled).
 */
static int
steer_run(struct steer *s, const char *cmd, const char *what, char *err, size_t errlen)
{
	const char *msg;
	size_t n;
	int rc;

	rc = nft_run_cmd_from_buffer(s->nft, cmd);
	(void)nft_ctx_get_output_buffer(s->nft);	/* read = rewound for the next run */
	msg = nft_ctx_get_error_buffer(s->nft);
	if (rc == 0)
		return 0;
	if (msg == NULL || msg[0] == '\0')
		msg = "nftables command failed";
	n = strcspn(msg, "\n");
	hasync_errf(err, errlen, "%s: %.*s", what, (int)n, msg);
	return -1;
}

/*
 * The forwarding rule matches "ct state new" without SYN. That is what a
 * packet of a connection begun on the other node looks like only with
 * nf_conntrack_tcp_loose = 1 (the default): with 0, conntrack marks it
 * INVALID, the rule misses it, and this node, which now holds the VIP,
 * answers with a RST that kills the connection. The file exists only once
 * conntrack is loaded (the rule's `ct` loads it, with the default).
 * Returns: 0 fine or unknown, -1 it is 0 (err filled).
 */
static int
steer_check_loose(char *err, size_t errlen)
{
	FILE *f;
	int v = 1;

	if ((f = fopen(STEER_TCP_LOOSE, "re")) == NULL)
		return 0;
	if (fscanf(f, "%d", &v) != 1)
		v = 1;
	fclose(f);
	if (v != 0)
		return 0;
	hasync_errf(err, errlen, "net.netfilter.nf_conntrack_tcp_loose is 0: a handover "
	    "would reset every open connection (their packets would be seen as invalid, "
	    "not forwarded to the old master); set it to 1 (sysctl -w "
	    "net.netfilter.nf_conntrack_tcp_loose=1)");
	return -1;
}

struct steer *
steer_new(const char *ifname, const struct sockaddr *addr, char *err, size_t errlen)
{
	struct steer *s;
	char lo_err[256];

	if (ifname == NULL || ifname[0] == '\0' || strlen(ifname) >= IFNAMSIZ) {
		hasync_errf(err, errlen, "steering: bad VIP interface name");
		return NULL;
	}
	if (addr == NULL || (addr->sa_family != AF_INET && addr->sa_family != AF_INET6)) {
		hasync_errf(err, errlen, "steering: the VIP must be an IPv4 or IPv6 address");
		return NULL;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		hasync_errf(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(s->ifname, sizeof(s->ifname), "%s", ifname);
	s->family = addr->sa_family;
	s->nft_family = s->family == AF_INET ? "ip" : "ip6";
	s->nft_daddr = s->family == AF_INET ? "ip daddr" : "ip6 daddr";
	sockaddr_str(addr, s->vip, sizeof(s->vip));	/* IPv4/IPv6, checked above */
	/* vip.c checks the address (v4-mapped...); on lo it never announces. */
	s->lo = vip_open(STEER_LO, addr, s->family == AF_INET ? 32 : 128, lo_err,
	    sizeof(lo_err));
	if (s->lo == NULL) {
		hasync_errf(err, errlen, "steering: %s", lo_err);
		goto fail;
	}
	if ((s->nft = nft_ctx_new(NFT_CTX_DEFAULT)) == NULL) {
		hasync_errf(err, errlen, "steering: cannot create a libnftables context");
		goto fail;
	}
	if (nft_ctx_buffer_output(s->nft) != 0 || nft_ctx_buffer_error(s->nft) != 0) {
		hasync_errf(err, errlen, "steering: cannot buffer libnftables output");
		goto fail;
	}
	/* A read-only probe: fails now, not at the handover, without nf_tables or CAP_NET_ADMIN. */
	if (steer_run(s, "list tables", "steering: nftables unusable", err, errlen) == -1)
		goto fail;
	return s;
fail:
	steer_free(s);
	return NULL;
}

void
steer_free(struct steer *s)
{
	if (s == NULL)
		return;
	if (s->nft != NULL)
		nft_ctx_free(s->nft);
	vip_close(s->lo);
	free(s);
}

int
steer_reset(struct steer *s, char *err, size_t errlen)
{
	char cmd[STEER_CMD_MAX], verr[256];

	/*
	 * "add" then "delete" in one batch: deletes the table whether or not
	 * it was there. Both forwarding families go, in case the VIP changed
	 * family since the crashed run.
	 */
	snprintf(cmd, sizeof(cmd),
	    "add table ip %1$s\ndelete table ip %1$s\n"
	    "add table ip6 %1$s\ndelete table ip6 %1$s\n"
	    "add table arp %1$s\ndelete table arp %1$s\n", STEER_TABLE);
	if (steer_run(s, cmd, "steering: cannot remove the " STEER_TABLE " tables", err,
	    errlen) == -1)
		return -1;
	s->forwarding = false;
	if (vip_del(s->lo, verr, sizeof(verr)) == -1) {
		hasync_errf(err, errlen, "steering: %s", verr);
		return -1;
	}
	s->hidden = false;
	return 0;
}

int
steer_forward_on(struct steer *s, const struct sockaddr *to, char *err, size_t errlen)
{
	char cmd[STEER_CMD_MAX], dst[INET6_ADDRSTRLEN];

	if (to == NULL || (to->sa_family != AF_INET && to->sa_family != AF_INET6)) {
		hasync_errf(err, errlen, "steering: the old master's address must be IPv4 or IPv6");
		return -1;
	}
	if (to->sa_family != s->family) {
		hasync_errf(err, errlen, "steering: the VIP %s is %s but the old master's address "
		    "is %s: use the peer's address of the VIP's family", s->vip,
		    s->family == AF_INET ? "IPv4" : "IPv6",
		    to->sa_family == AF_INET ? "IPv4" : "IPv6");
		return -1;
	}
	sockaddr_str(to, dst, sizeof(dst));	/* IPv4/IPv6, checked above */
	if (strcmp(dst, s->vip) == 0 ||
	    (to->sa_family == AF_INET &&
	    ((const struct sockaddr_in *)to)->sin_addr.s_addr == htonl(INADDR_ANY)) ||
	    (to->sa_family == AF_INET6 &&
	    IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)to)->sin6_addr))) {
		hasync_errf(err, errlen, "steering: cannot forward to %s: give the old master's "
		    "own address", dst);
		return -1;
	}
	if (steer_check_loose(err, errlen) == -1)
		return -1;
	/*
	 * Why this rule:
	 * - prerouting at priority -150, after conntrack (-200), so "ct state"
	 *   is known; a packet that is "new" but not a SYN belongs to a
	 *   connection that began on the old MASTER (nf_conntrack_tcp_loose=1).
	 * - FIN, RST and SYN-ACK of an unknown connection are "invalid", not
	 *   "new" (conntrack picks up only a plain ACK): they are forwarded too,
	 *   or the old MASTER never sees its connections end (and a connect
	 *   it began just before the handover never completes). The price: a
	 *   FIN of one of our own connections that conntrack finds out of
	 *   window also goes to the old MASTER, whose RST could cut it; RSTs
	 *   it forwards are harmless (nobody answers a RST).
	 * - `dup to` without `device`: the kernel routes the copy to the old
	 *   MASTER's address, which receives it unchanged (destination still
	 *   the VIP, hidden on its lo); `drop` keeps the original from our own
	 *   stack, which would answer with a RST. Dropped packets are never
	 *   confirmed in conntrack, so each one stays "new".
	 * - family ip or ip6: `dup` does not exist in the inet family.
	 * - add + delete + define in one batch: replaces the table atomically,
	 *   so calling again never duplicates the rule.
	 */
	snprintf(cmd, sizeof(cmd),
	    "add table %1$s %2$s\n"
	    "delete table %1$s %2$s\n"
	    "table %1$s %2$s {\n"
	    "\tchain prerouting {\n"
	    "\t\ttype filter hook prerouting priority " STEER_PRIO "; policy accept;\n"
	    "\t\t%3$s %4$s %1$s saddr . tcp sport . tcp dport @pairs counter dup to %5$s drop\n"
	    "\t\t%3$s %4$s tcp flags & syn == 0 ct state new counter dup to %5$s drop\n"
	    "\t\t%3$s %4$s tcp flags & (fin | rst) != 0 ct state invalid counter dup to %5$s drop\n"
	    "\t\t%3$s %4$s tcp flags & (syn | ack) == syn | ack ct state invalid counter "
	    "dup to %5$s drop\n"
	    "\t}\n"
	    "\tset pairs {\n"
	    "\t\ttype %6$s . inet_service . inet_service; size 1048576;\n"
	    "\t}\n"
	    "}\n", s->nft_family, STEER_TABLE, s->nft_daddr, s->vip, dst,
	    s->family == AF_INET ? "ipv4_addr" : "ipv6_addr");
	if (steer_run(s, cmd, "steering: cannot install the forwarding rule", err,
	    errlen) == -1)
		return -1;
	s->forwarding = true;
	snprintf(s->to, sizeof(s->to), "%s", dst);
	/* Loading conntrack (the rule's `ct`) may have just made the setting readable. */
	if (steer_check_loose(err, errlen) == -1) {
		(void)steer_forward_off(s, NULL, 0);
		return -1;
	}
	return 0;
}

/*
 * The set's rule comes first: a connection named there goes to the old
 * MASTER whatever conntrack knows of it. Conntrack's view can be wrong
 * here: a connection that began on this node, died with its lbd and was
 * rebuilt on the peer keeps its "established" entry on this node, so it
 * is not "new", and this node's stack (with no socket for it) would eat
 * or reset its packets.
 */
int
steer_forward_pairs(struct steer *s, const struct hasync_tuple *t, size_t n, char *err,
    size_t errlen)
{
	char	*cmd, a[INET6_ADDRSTRLEN];
	size_t	 i, len, cap, added = 0;
	int	 rc;

	if (!s->forwarding || n == 0)
		return 0;
	cap = 128 + n * (INET6_ADDRSTRLEN + 16);
	if ((cmd = malloc(cap)) == NULL) {
		hasync_errf(err, errlen, "steering: out of memory");
		return -1;
	}
	len = (size_t)snprintf(cmd, cap, "add element %s %s pairs { ", s->nft_family,
	    STEER_TABLE);
	for (i = 0; i < n; i++) {
		if (t[i].remote.ss_family != s->family)
			continue;
		sockaddr_str((const struct sockaddr *)&t[i].remote, a, sizeof(a));
		len += (size_t)snprintf(cmd + len, cap - len, "%s%s . %u . %u", added++ ? ", " :
		    "", a, ntohs(t[i].remote.ss_family == AF_INET ?
		    ((const struct sockaddr_in *)&t[i].remote)->sin_port :
		    ((const struct sockaddr_in6 *)&t[i].remote)->sin6_port), t[i].local_port);
	}
	snprintf(cmd + len, cap - len, " }\n");
	rc = added == 0 ? 0 : steer_run(s, cmd, "steering: cannot add the peer's mirrored "
	    "connections", err, errlen);
	free(cmd);
	return rc;
}

int
steer_forward_off(struct steer *s, char *err, size_t errlen)
{
	char cmd[STEER_CMD_MAX];

	snprintf(cmd, sizeof(cmd), "add table %1$s %2$s\ndelete table %1$s %2$s\n",
	    s->nft_family, STEER_TABLE);
	if (steer_run(s, cmd, "steering: cannot remove the forwarding rule", err,
	    errlen) == -1)
		return -1;
	s->forwarding = false;
	return 0;
}

bool
steer_forwarding(const struct steer *s)
{
	return s->forwarding;
}

int
steer_hide_on(struct steer *s, char *err, size_t errlen)
{
	char cmd[STEER_CMD_MAX], verr[256];

	/*
	 * On lo the VIP stays a local address (connections to it go on)
	 * while the interface loses it. Linux answers NDP only for addresses
	 * on the asking interface, but ARP for any local address: IPv4 needs
	 * the arp table, or this node would keep answering for the VIP and
	 * pull the LAN's traffic back from the new MASTER.
	 */
	if (vip_add(s->lo, verr, sizeof(verr)) == -1) {
		hasync_errf(err, errlen, "steering: %s", verr);
		return -1;
	}
	if (s->family == AF_INET) {
		snprintf(cmd, sizeof(cmd),
		    "add table arp %1$s\n"
		    "delete table arp %1$s\n"
		    "table arp %1$s {\n"
		    "\tchain input {\n"
		    "\t\ttype filter hook input priority 0; policy accept;\n"
		    "\t\tarp operation request arp daddr ip %2$s counter drop\n"
		    "\t}\n"
		    "}\n", STEER_TABLE, s->vip);
		if (steer_run(s, cmd, "steering: cannot install the ARP rule", err,
		    errlen) == -1) {
			(void)vip_del(s->lo, NULL, 0);
			return -1;
		}
	}
	s->hidden = true;
	return 0;
}

int
steer_hide_off(struct steer *s, char *err, size_t errlen)
{
	char cmd[STEER_CMD_MAX], verr[256];

	/* The VIP first: without the ARP rule it would be answered for meanwhile. */
	if (vip_del(s->lo, verr, sizeof(verr)) == -1) {
		hasync_errf(err, errlen, "steering: %s", verr);
		return -1;
	}
	if (s->family == AF_INET) {
		snprintf(cmd, sizeof(cmd), "add table arp %1$s\ndelete table arp %1$s\n",
		    STEER_TABLE);
		if (steer_run(s, cmd, "steering: cannot remove the ARP rule", err,
		    errlen) == -1)
			return -1;
	}
	s->hidden = false;
	return 0;
}

bool
steer_hidden(const struct steer *s)
{
	return s->hidden;
}
