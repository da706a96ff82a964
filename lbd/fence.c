/*
 * fence.c - keeps a crashed lbd's kernel from ending its mirrored
 * connections: an nftables table (inet lbd_fence, through libnftables)
 * that drops the outgoing TCP FIN and RST of lbd's mirrored sockets, and
 * the RST the kernel answers their later segments with once those sockets
 * are gone, so the BACKUP can rebuild them with TCP_REPAIR and the client
 * and the real server never learn that this node's process died.
 *
 * The contract with the relay: a mirrored socket gets SO_MARK = the fence
 * mark M as soon as it is known to be mirrored, and the release mark
 * R = M + 1 (fence_release_mark) just before lbd shuts it down or closes it
 * on purpose. The table:
 * - every outgoing TCP packet with mark M adds its 4-tuple to a set
 *   (fenced4/fenced6) or refreshes it there, and a FIN or RST with mark M
 *   is dropped;
 * - a packet with mark R takes its 4-tuple out of the set and passes, so
 *   lbd's own FIN or RST reaches the far end;
 * - an RST whatever its mark (0: the kernel's answer to a segment for a
 *   4-tuple with no socket) whose 4-tuple is in the set is dropped.
 * When the process dies instead, the kernel closes its sockets still
 * marked M, and (measured on 6.18, IPv4 and IPv6 alike):
 * - the FIN, and the FIN retransmits of the orphan it leaves in
 *   FIN_WAIT1, carry the socket's mark: dropped;
 * - the RST of a socket closed with unread data carries it too: dropped;
 * - the RST the kernel sends when a segment reaches such an orphan goes
 *   out on its per-netns control socket, which copies the orphan's mark:
 *   dropped;
 * - that segment destroys the orphan, and so does a close with unread
 *   data: the next segment of the far end (a burst, a retransmit while
 *   the takeover is slower than its RTO) finds no socket, and the kernel's
 *   RST carries mark 0 -- dropped by the set, which the orphan's marked
 *   FIN or RST refreshed in its last moment, however long the connection
 *   was idle before;
 * - unmarked sockets (unmirrored pairs, the sync channel) and RSTs for a
 *   4-tuple that never carried mark M pass, so those peers learn of the
 *   crash at once.
 * net.ipv4.tcp_fwmark_accept changes nothing (lbd sets the mark after
 * accept); net.ipv4/ipv6.fwmark_reflect = 1 gives the control socket's
 * RST the incoming packet's mark instead of the orphan's: the set drops
 * it all the same.
 *
 * Only the main thread calls these functions, but fence_release_mark
 * (arithmetic: any thread).
 */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <nftables/libnftables.h>

#include "lbd.h"

#define FENCE_TABLE		"lbd_fence"	/* nftables table, family inet */
#define FENCE_COUNTER		"dropped"	/* named counter of the drop rules */
#define FENCE_SET4		"fenced4"	/* 4-tuples of IPv4 packets with the mark */
#define FENCE_SET6		"fenced6"	/* ... of IPv6 ones */
#define FENCE_SET_SIZE		65536		/* 4-tuples per family (2 per mirrored pair) */
#define FENCE_SET_TIMEOUT	"2h"		/* a 4-tuple's life after its last marked packet */
#define FENCE_CMD_MAX		4096		/* one nft batch */
#define FENCE_KICK4		"kick4"		/* 4-tuples (far end first) answered with an RST */
#define FENCE_KICK6		"kick6"
#define FENCE_KICK_S		10		/* ... for this long after fence_kick */
#define FENCE_KICK_ELEM		(2 * (INET6_ADDRSTRLEN + 8) + 40)	/* one element's text */
#define FENCE_NEEDS		"needs CAP_NET_ADMIN, and nf_tables of Linux 5.4 or later"
						/* what a failed install usually lacks (5.4: delete from a set in a rule) */

static struct nft_ctx	*fence_nft;	/* libnftables context, output buffered; NULL: none yet */
static bool		 fence_on;	/* the table is installed by this process */
static bool		 fence_kicks;	/* ... with its kick chain */
static uint32_t		 fence_mark;	/* the mark it drops, while fence_on */

/*
 * Runs one nft batch (one kernel transaction: all or nothing) and empties
 * libnftables' buffers. On failure msg points at the first line of nft's
 * error text, msglen long.
 * Returns: 0 done, -1 failed.
 */
static int
fence_run(const char *cmd, const char **msg, int *msglen)
{
	const char *e;
	int rc;

	rc = nft_run_cmd_from_buffer(fence_nft, cmd);
	(void)nft_ctx_get_output_buffer(fence_nft);	/* read = rewound for the next run */
	e = nft_ctx_get_error_buffer(fence_nft);
	if (rc == 0)
		return 0;
	if (e == NULL || e[0] == '\0')
		e = "nftables command failed";
	*msg = e;
	*msglen = (int)strcspn(e, "\n");
	return -1;
}

/* Returns: 0 fence_nft is ready, -1 it could not be made (err filled). */
static int
fence_ctx(char *err, size_t errlen)
{
	if (fence_nft != NULL)
		return 0;
	if ((fence_nft = nft_ctx_new(NFT_CTX_DEFAULT)) == NULL) {
		snprintf(err, errlen, "fence: cannot create a libnftables context (out of memory?)");
		return -1;
	}
	if (nft_ctx_buffer_output(fence_nft) != 0 || nft_ctx_buffer_error(fence_nft) != 0) {
		nft_ctx_free(fence_nft);
		fence_nft = NULL;
		snprintf(err, errlen, "fence: cannot buffer libnftables output");
		return -1;
	}
	return 0;
}

uint32_t
fence_release_mark(uint32_t mark)
{
	return mark + 1;
}

int
fence_install(uint32_t mark, char *err, size_t errlen)
{
	char cmd[FENCE_CMD_MAX];
	const char *msg;
	int msglen;

	if (mark == 0 || fence_release_mark(mark) == 0) {
		/* Every unmarked socket carries 0: no TCP connection of the node could end. */
		snprintf(err, errlen, "fence: the fence mark must be 1-0x%" PRIx32 " (not 0, "
		    "and the release mark is the fence mark + 1); choose a mark no other "
		    "software on this node sets (default 0x%x)", UINT32_MAX - 1,
		    LBD_MIRROR_MARK_DEF);
		return -1;
	}
	if (fence_ctx(err, errlen) == -1)
		return -1;
	/*
	 * Why this table:
	 * - "add" + "delete" + define in one batch: a crashed run's table (any
	 *   mark, any layout) is replaced atomically, so calling again never
	 *   duplicates a rule and live mirrored sockets are never left
	 *   unfenced. The replaced table's 4-tuples are lost with it: its
	 *   orphans' next segments get an RST that passes (lbd-release-vip
	 *   ends them and removes the table before the unit restarts lbd).
	 * - inet: one table for IPv4 and IPv6; a set per family, as a set's
	 *   key has one type.
	 * - output hook at raw priority (-300): the mark is still the one the
	 *   socket gave the packet, before any mangle chain of the admin's
	 *   rewrites it, and conntrack (-200) never sees a FIN or RST that
	 *   did not leave.
	 * - one vmap on the mark first: the node's other packets cost a
	 *   lookup and two RST tests, and only an RST looks in a set. goto,
	 *   not jump: a marked packet's chain ends at the policy (accept).
	 * - per marked packet one set update (one rule per family; no
	 *   logging, nothing per packet but the update): the 4-tuple lives
	 *   FENCE_SET_TIMEOUT past the socket's last marked packet. That
	 *   outlasts a far end's whole retransmission schedule (~15 min with
	 *   tcp_retries2 15), and a 4-tuple that never sees mark R (its far
	 *   end reset it) goes away by itself. The dying socket's own FIN or
	 *   RST refreshes it, so an idle connection is covered too. A full set
	 *   adds nothing: that socket's FIN and RST are still dropped, only
	 *   its RST after the orphan is gone passes.
	 * - only RST by 4-tuple: the kernel answers for a missing socket with
	 *   an RST, never a FIN; an unmarked FIN comes from a live socket (an
	 *   unmirrored one reusing the 4-tuple) and must pass.
	 * - a named counter over all drop rules, so fence_dropped reads it
	 *   without rule handles.
	 */
	snprintf(cmd, sizeof(cmd),
	    "add table inet " FENCE_TABLE "\n"
	    "delete table inet " FENCE_TABLE "\n"
	    "table inet " FENCE_TABLE " {\n"
	    "\tcounter " FENCE_COUNTER " { }\n"
	    "\tset " FENCE_SET4 " {\n"
	    "\t\ttype ipv4_addr . inet_service . ipv4_addr . inet_service\n"
	    "\t\tflags dynamic,timeout\n"
	    "\t\ttimeout " FENCE_SET_TIMEOUT "\n"
	    "\t\tsize %d\n"
	    "\t}\n"
	    "\tset " FENCE_SET6 " {\n"
	    "\t\ttype ipv6_addr . inet_service . ipv6_addr . inet_service\n"
	    "\t\tflags dynamic,timeout\n"
	    "\t\ttimeout " FENCE_SET_TIMEOUT "\n"
	    "\t\tsize %d\n"
	    "\t}\n"
	    "\tchain output {\n"
	    "\t\ttype filter hook output priority raw; policy accept;\n"
	    "\t\tmeta l4proto tcp meta mark vmap { 0x%08" PRIx32 " : goto fenced, "
	    "0x%08" PRIx32 " : goto released }\n"
	    "\t\ttcp flags & rst != 0 ip saddr . tcp sport . ip daddr . tcp dport @"
	    FENCE_SET4 " counter name \"" FENCE_COUNTER "\" drop\n"
	    "\t\ttcp flags & rst != 0 ip6 saddr . tcp sport . ip6 daddr . tcp dport @"
	    FENCE_SET6 " counter name \"" FENCE_COUNTER "\" drop\n"
	    "\t}\n"
	    "\tchain fenced {\n"
	    "\t\tmeta nfproto ipv4 update @" FENCE_SET4
	    " { ip saddr . tcp sport . ip daddr . tcp dport }\n"
	    "\t\tmeta nfproto ipv6 update @" FENCE_SET6
	    " { ip6 saddr . tcp sport . ip6 daddr . tcp dport }\n"
	    "\t\ttcp flags & (fin | rst) != 0 counter name \"" FENCE_COUNTER "\" drop\n"
	    "\t}\n"
	    "\tchain released {\n"
	    "\t\tmeta nfproto ipv4 delete @" FENCE_SET4
	    " { ip saddr . tcp sport . ip daddr . tcp dport }\n"
	    "\t\tmeta nfproto ipv6 delete @" FENCE_SET6
	    " { ip6 saddr . tcp sport . ip6 daddr . tcp dport }\n"
	    "\t}\n"
	    "}\n", FENCE_SET_SIZE, FENCE_SET_SIZE, mark, fence_release_mark(mark));
	if (fence_run(cmd, &msg, &msglen) == -1) {
		/* All or nothing: a table installed before is still there, unchanged. */
		snprintf(err, errlen, "fence: cannot install nftables table inet " FENCE_TABLE
		    ": %.*s (" FENCE_NEEDS ")", msglen, msg);
		return -1;
	}
	fence_on = true;
	fence_kicks = false;
	fence_mark = mark;
	return 0;
}

/* Forgets the context and the state: nothing of ours is in the kernel. */
static void
fence_forget(void)
{
	if (fence_nft != NULL)
		nft_ctx_free(fence_nft);
	fence_nft = NULL;
	fence_on = false;
	fence_kicks = false;
	fence_mark = 0;
}

void
fence_remove(void)
{
	char cmd[FENCE_CMD_MAX], err[256];
	const char *msg;
	bool ours = fence_on;
	int msglen;

	if (fence_ctx(err, sizeof(err)) == -1) {
		log_warnx("%s; the fence, if any, stays: nft delete table inet " FENCE_TABLE,
		    err);
		return;
	}
	/*
	 * Not installed by this process: a crashed run's table may be there
	 * all the same (mirror_init with mirroring now off). Looked for
	 * first, so that its absence, or nftables this process cannot read,
	 * stays silent.
	 */
	if (!ours && fence_run("list table inet " FENCE_TABLE, &msg, &msglen) == -1) {
		fence_forget();
		return;
	}
	/* add + delete: no error when an admin deleted the table meanwhile. */
	snprintf(cmd, sizeof(cmd), "add table inet " FENCE_TABLE "\ndelete table inet "
	    FENCE_TABLE "\n");
	if (fence_run(cmd, &msg, &msglen) == -1) {
		log_warnx("fence: cannot remove nftables table inet " FENCE_TABLE ": %.*s; "
		    "it drops the FIN and RST of sockets carrying its mark until removed "
		    "with: nft delete table inet " FENCE_TABLE, msglen, msg);
		if (!ours)
			fence_forget();
		return;		/* ours stays installed as far as fence_active says */
	}
	if (ours)
		log_info("fence: removed nftables table inet " FENCE_TABLE " (mark 0x%"
		    PRIx32 ")", fence_mark);
	else
		log_info("fence: removed nftables table inet " FENCE_TABLE " left by an "
		    "earlier run");
	fence_forget();
}

/*
 * The address and port of sa as a set element's fields ("10.0.0.1 . 21");
 * an IPv4-mapped IPv6 address as IPv4, as its packets are.
 * Returns: 4 or 6 (the family of the packets), -1 neither.
 */
static int
fence_tuple_half(const struct sockaddr_storage *sa, char *buf, size_t len)
{
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
	char a[INET6_ADDRSTRLEN];

	if (sa->ss_family == AF_INET) {
		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
		snprintf(buf, len, "%s . %u", a, ntohs(s4->sin_port));
		return 4;
	}
	if (sa->ss_family != AF_INET6)
		return -1;
	if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
		inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], a, sizeof(a));
		snprintf(buf, len, "%s . %u", a, ntohs(s6->sin6_port));
		return 4;
	}
	inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
	snprintf(buf, len, "%s . %u", a, ntohs(s6->sin6_port));
	return 6;
}

/*
 * The kick chain, added by the first fence_kick and not before, so that a
 * node that never reset a rebuilt connection pays nothing per incoming
 * packet. Input hook at raw priority: before conntrack and before the
 * socket, which would drop the segment (an ACK past what it sent).
 * "reject with tcp reset" answers a segment with ACK by an RST whose
 * sequence number is that ACK; an RST it only drops.
 */
static const char fence_kick_chain[] =
    "table inet " FENCE_TABLE " {\n"
    "\tset " FENCE_KICK4 " {\n"
    "\t\ttype ipv4_addr . inet_service . ipv4_addr . inet_service\n"
    "\t\tflags timeout\n"
    "\t\tsize %d\n"
    "\t}\n"
    "\tset " FENCE_KICK6 " {\n"
    "\t\ttype ipv6_addr . inet_service . ipv6_addr . inet_service\n"
    "\t\tflags timeout\n"
    "\t\tsize %d\n"
    "\t}\n"
    "\tchain kick {\n"
    "\t\ttype filter hook input priority raw; policy accept;\n"
    "\t\tip saddr . tcp sport . ip daddr . tcp dport @" FENCE_KICK4
    " reject with tcp reset\n"
    "\t\tip6 saddr . tcp sport . ip6 daddr . tcp dport @" FENCE_KICK6
    " reject with tcp reset\n"
    "\t}\n"
    "}\n";

int
fence_kick(const int *fds, size_t n)
{
	struct sockaddr_storage l, r;
	socklen_t llen, rlen;
	char *cmd, lh[INET6_ADDRSTRLEN + 8], rh[INET6_ADDRSTRLEN + 8];
	const char *msg;
	size_t i, len = 0, cap;
	int fam, msglen, v = (int)fence_release_mark(fence_mark), rc, added = 0;

	if (!fence_on || n == 0)
		return -1;
	cap = sizeof(fence_kick_chain) + 64 + n * FENCE_KICK_ELEM;
	if ((cmd = malloc(cap)) == NULL) {
		log_warn("fence: cannot reset %zu connections exactly", n);
		return -1;
	}
	if (!fence_kicks)
		len = (size_t)snprintf(cmd, cap, fence_kick_chain, FENCE_SET_SIZE, FENCE_SET_SIZE);
	for (i = 0; i < n; i++) {
		llen = sizeof(l);
		rlen = sizeof(r);
		if (getsockname(fds[i], (struct sockaddr *)&l, &llen) == -1 ||
		    getpeername(fds[i], (struct sockaddr *)&r, &rlen) == -1 ||
		    (fam = fence_tuple_half(&l, lh, sizeof(lh))) == -1 ||
		    fence_tuple_half(&r, rh, sizeof(rh)) != fam)
			continue;	/* reset by its far end meanwhile: nothing to kick */
		/* Its probe, carrying the release mark, takes its 4-tuple out of the fenced set. */
		(void)setsockopt(fds[i], SOL_SOCKET, SO_MARK, &v, sizeof(v));
		len += (size_t)snprintf(cmd + len, cap - len, "add element inet " FENCE_TABLE
		    " %s { %s . %s timeout %ds }\n", fam == 4 ? FENCE_KICK4 : FENCE_KICK6, rh, lh,
		    FENCE_KICK_S);
		added++;
	}
	rc = 0;
	if (added > 0 && (rc = fence_run(cmd, &msg, &msglen)) == -1)
		log_warnx("fence: cannot reset %d connections exactly (nftables: %.*s); their "
		    "far ends learn it when they next send", added, msglen, msg);
	else if (added > 0)
		fence_kicks = true;
	free(cmd);
	return rc;
}

int
fence_dropped(uint64_t *packets)
{
	const char *out;
	unsigned int flags;
	json_t *root, *objs, *o, *c, *p;
	size_t i;
	int rc;

	if (!fence_on)
		return -1;
	/* JSON for this listing only: the error text of other runs stays plain. */
	flags = nft_ctx_output_get_flags(fence_nft);
	nft_ctx_output_set_flags(fence_nft, flags | NFT_CTX_OUTPUT_JSON);
	rc = nft_run_cmd_from_buffer(fence_nft, "list counter inet " FENCE_TABLE " "
	    FENCE_COUNTER);
	out = nft_ctx_get_output_buffer(fence_nft);
	(void)nft_ctx_get_error_buffer(fence_nft);	/* read = rewound for the next run */
	nft_ctx_output_set_flags(fence_nft, flags);
	if (rc != 0)
		return -1;	/* the table went away under us (an admin's flush) */
	rc = -1;
	/* {"nftables": [{"metainfo": {...}}, {"counter": {..., "packets": N, ...}}]} */
	if ((root = json_loads(out, 0, NULL)) == NULL)
		return -1;
	objs = json_object_get(root, "nftables");
	json_array_foreach(objs, i, o) {
		c = json_object_get(o, "counter");
		p = json_object_get(c, "packets");
		if (json_is_integer(p) && json_integer_value(p) >= 0) {
			*packets = (uint64_t)json_integer_value(p);
			rc = 0;
			break;
		}
	}
	json_decref(root);
	return rc;
}

bool
fence_active(void)
{
	return fence_on;
}
