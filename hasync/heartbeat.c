/*
 * heartbeat.c - the HA heartbeat on lbd's event loop: the advert socket,
 * what is received and whether it is fresh, the timers, and the roles
 * ha.c decides carried out on the VIP (add, remove, GARP). A planned
 * handover's hold, drain and forwarding are handover.c's; the netlink
 * watch of the VIP and its link is nlwatch.c's. ICMP errors about adverts
 * are counted and logged, never acted on: anyone on the path can forge
 * them.
 *
 * Adverts are sealed and sent by pacer.c (hasync_int.h has the frame layout),
 * which also keeps them on time when this loop is late.
 * The key is derived from the cluster key (crypto_kdf, context "lbdadvrt")
 * so adverts and the replication channel never share a key. Random 192-bit
 * nonces cannot repeat in practice, so no nonce state survives restarts.
 *
 * Replay protection and freshness, in the plaintext (proto/README.md):
 * every advert carries the sender's session (random 64 bits per process
 * start, never 0), its counter (+1 per advert), and an echo: the (session,
 * counter) of the last advert the sender took from its peer. Wall clocks
 * play no part, so a clock step cannot lock a peer out.
 * - Confirmed session: adverts of the peer's run we confirmed are taken
 *   when their counter is higher than the last taken (else `replays`).
 * - Any other session is the peer's new run, or a recording. It is
 *   confirmed by its first fresh advert: one that echoes OUR session with
 *   one of our adverts sent at most HB_FRESH_INTERVALS intervals ago.
 *   Nothing recorded before this run can echo our session, so after we
 *   restart no recording is taken: Master_Down from start stays the only
 *   deadline and a dead peer is taken over then. A fresh advert of a new
 *   session replaces the confirmed one whatever its boot_id: a peer
 *   restarted with its clock set back is confirmed like any other.
 * - Adverts not fresh (`stale`) never reach ha.c. The latest one we heard
 *   (its counter growing per session) is what we echo, so a live peer
 *   that has not heard us yet can confirm us; within a confirmed run we
 *   keep echoing the adverts we take, so the peer can confirm us again
 *   should it retire our run (a recording it took meanwhile); each new such session, and each confirmation, gets one advert
 *   at once (at most one per half interval), so a live peer is confirmed
 *   about one round trip after our first advert.
 * - A session replaced by a newer confirmed one is retired with the last
 *   counter taken from it: its recordings are never taken again, even if
 *   fresh (a restart faster than the fresh window). A higher counter,
 *   fresh, is that run alive after all (a recording confirmed in between,
 *   which an on-path attacker withheld from us): it is confirmed again,
 *   so no run is ever locked out for good.
 * What is left to an attacker who replays recordings: for at most the
 *   fresh window after a peer run ends, its adverts we never took are
 *   fresh; they cannot displace the confirmed run's own (counter rule)
 *   except by being withheld first. Recordings cannot keep two MASTERs:
 *   they cannot make us drop a genuine advert of the confirmed run, and a
 *   new run is confirmed one round trip after both hear each other.
 *   Flooding both nodes with recordings of runs older than both current
 *   runs, at a rate that follows every genuine advert, can keep them from
 *   confirming each other, as any flood that drowns the adverts would.
 * - In-session adverts are not checked for freshness: a pacer covering a
 *   stalled loop repeats old echoes, and that must not cost the VIP.
 *   Consequence: a one-way loss (our adverts never reach the peer) looks
 *   to us like a dead peer once the peer is unconfirmed (after a restart).
 * - Older peers (no session in their adverts) are taken under the old
 *   rule, boot_id (CLOCK_REALTIME ns at start) and counter must grow, with
 *   a warning once; once a session is confirmed, session-less adverts are
 *   recordings (`stale`). Our boot_id is still sent for such peers.
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <errno.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <netlink/socket.h>
#include <sodium.h>

#include "hasync.pb-c.h"
#include "hasync_int.h"

#define HB_RX_BUF		2048	/* receive buffer: bigger than any valid frame */
#define HB_RX_BUDGET		64	/* datagrams per read callback: the loop never stalls */
#define HB_ERRQ_BUDGET		16	/* error-queue entries per read callback */
#define HB_KDF_CONTEXT		"lbdadvrt"	/* crypto_kdf context: 8 bytes */
#define HB_KDF_ID		1	/* subkey id within that context */
#define HB_TOS_CS6		0xc0	/* DSCP CS6 "network control", as VRRP */
#define HB_SO_PRIORITY		6	/* highest SO_PRIORITY without CAP_NET_ADMIN */
#define HB_GARP_COUNT		3	/* default announcements at takeover */
#define HB_GARP_INTERVAL_MS	200	/* default spacing of the burst */
#define HB_GARP_REFRESH_MS	5000	/* default delay of the one refresh */
#define HB_GARP_COUNT_MAX	100	/* sanity bound on garp_count */
#define HB_FRESH_INTERVALS	4	/* an echo of our advert at most this many intervals old is fresh */
#define HB_REPLY_DIV		2	/* adverts at once to a new session: one per interval / this */

static int	hb_check_config(const struct hasync_config *, char *, size_t);
static int	hb_open_socket(struct hasync *, char *, size_t);
static struct pacer *hb_pacer_new(struct hasync *, char *, size_t);
static void	hb_on_read(evutil_socket_t, short, void *);
static void	hb_read_errqueue(struct hasync *);
static void	hb_path_refused(struct hasync *, const struct sockaddr_storage *);
static void	hb_rx_datagram(struct hasync *, const uint8_t *, size_t, bool,
		    const struct sockaddr *);
static bool	hb_rx_accept(struct hasync *, const Lbd__Advert *, const char *, bool *);
static bool	hb_rx_legacy(struct hasync *, const Lbd__Advert *, const char *, bool *);
static bool	hb_hears_us(struct hasync *, const Lbd__Advert *);
static bool	hb_retired(const struct hasync *, uint64_t, uint64_t);
static void	hb_reply(struct hasync *);
static void	hb_on_timer(evutil_socket_t, short, void *);
static void	hb_on_netlink(evutil_socket_t, short, void *);

/* ---------------------------------------------------------------- helpers */

const char *
hasync_role_str(enum hasync_role role)
{
	return ha_role_name(role);
}

/* ---------------------------------------------------------------- set-up */

/* Returns: 0 usable, -1 not (err says what to fix). */
static int
hb_check_config(const struct hasync_config *c, char *err, size_t errlen)
{
	int fam = c->node_addr.ss_family;

	if (confcheck_name(c->node_name, "node", err, errlen) == -1)
		return -1;
	if (c->priority < 1 || c->priority > 254) {
		hasync_errf(err, errlen, "priority %d out of range 1-254", c->priority);
		return -1;
	}
	if (fam != AF_INET && fam != AF_INET6) {
		hasync_errf(err, errlen, "node address must be IPv4 or IPv6");
		return -1;
	}
	if (c->advert_interval_ms < HASYNC_INTERVAL_MIN ||
	    c->advert_interval_ms > HASYNC_INTERVAL_MAX) {
		hasync_errf(err, errlen, "advert interval %d ms out of range %d-%d",
		    c->advert_interval_ms, HASYNC_INTERVAL_MIN, HASYNC_INTERVAL_MAX);
		return -1;
	}
	if (c->garp_count < 0 || c->garp_count > HB_GARP_COUNT_MAX ||
	    c->garp_interval_ms < 0 || c->garp_refresh_ms < -1) {
		hasync_errf(err, errlen, "GARP settings out of range (count 0-%d, interval >= 0, "
		    "refresh >= -1)", HB_GARP_COUNT_MAX);
		return -1;
	}
	if (!c->has_peer)
		return 0;
	if (c->heartbeat_port == 0) {
		hasync_errf(err, errlen, "heartbeat port must be 1-65535");
		return -1;
	}
	if (confcheck_peer(c->node_name, c->peer_name, err, errlen) == -1)
		return -1;
	if (confcheck_paths(fam, c->peer_addr, c->npeer_addr, err, errlen) == -1)
		return -1;
	return 0;
}

/* Returns: 0 open and bound, -1 failed (err filled). */
static int
hb_open_socket(struct hasync *h, char *err, size_t errlen)
{
	struct sockaddr_storage local;
	char a[INET6_ADDRSTRLEN];
	int on = 1, tos = HB_TOS_CS6, prio = HB_SO_PRIORITY, rc;

	h->fd = socket(h->family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (h->fd == -1) {
		hasync_errf(err, errlen, "heartbeat socket: %s", strerror(errno));
		return -1;
	}
	/*
	 * IP_RECVERR: an unconnected UDP socket hears nothing of ICMP errors
	 * otherwise. With it, a "port unreachable" (the peer's lbd is not
	 * running, or someone forged it) arrives on our error queue naming
	 * the path, and is counted and logged (hb_path_refused), never acted
	 * on: the count tells an operator the peer's lbd is not running.
	 */
	if (h->family == AF_INET)
		rc = setsockopt(h->fd, IPPROTO_IP, IP_RECVERR, &on, sizeof(on));
	else
		rc = setsockopt(h->fd, IPPROTO_IPV6, IPV6_RECVERR, &on, sizeof(on));
	if (rc == -1) {
		hasync_errf(err, errlen, "heartbeat socket: IP_RECVERR: %s", strerror(errno));
		return -1;
	}
	/*
	 * DSCP CS6 and a high socket priority, as VRRP: a link saturated by
	 * proxied traffic must not delay adverts into a false failover.
	 * Best effort: a failure costs only that protection.
	 */
	if (h->family == AF_INET)
		rc = setsockopt(h->fd, IPPROTO_IP, IP_TOS, &tos, sizeof(tos));
	else
		rc = setsockopt(h->fd, IPPROTO_IPV6, IPV6_TCLASS, &tos, sizeof(tos));
	if (rc == -1 || setsockopt(h->fd, SOL_SOCKET, SO_PRIORITY, &prio, sizeof(prio)) == -1)
		hb_log(h, 2, "heartbeat socket: cannot raise packet priority: %s",
		    strerror(errno));

	/*
	 * One path: bind node_addr, so adverts leave from the node address
	 * (what firewall rules name). Several paths: bind the wildcard, so
	 * the peer's adverts arrive on whichever of our addresses its path
	 * ends at, and the kernel picks the source per route. No
	 * SO_REUSEADDR: a second lbd on this port must fail here, not share
	 * (and halve) the adverts.
	 */
	memset(&local, 0, sizeof(local));
	if (h->npaths > 1) {
		local.ss_family = (sa_family_t)h->family;
	} else {
		memcpy(&local, &h->conf.node_addr, sizeof(local));
	}
	if (h->family == AF_INET)
		((struct sockaddr_in *)&local)->sin_port = htons(h->conf.heartbeat_port);
	else
		((struct sockaddr_in6 *)&local)->sin6_port = htons(h->conf.heartbeat_port);
	if (bind(h->fd, (struct sockaddr *)&local, h->family == AF_INET ?
	    sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)) == -1) {
		hasync_errf(err, errlen, "cannot bind heartbeat socket to %s port %u: %s%s",
		    h->npaths > 1 ? "any address" :
		    sockaddr_str((struct sockaddr *)&local, a, sizeof(a)),
		    h->conf.heartbeat_port, strerror(errno),
		    errno == EADDRINUSE ? " (another lbd running?)" :
		    errno == EADDRNOTAVAIL ? " (node address not on this host?)" : "");
		return -1;
	}
	return 0;
}


/* The pacer for our socket and paths (hb_open_socket first). */
static struct pacer *
hb_pacer_new(struct hasync *h, char *err, size_t errlen)
{
	struct pacer_config pc;
	struct pacer *p;
	int i;

	memset(&pc, 0, sizeof(pc));
	pc.fd = h->fd;
	for (i = 0; i < h->npaths; i++) {
		memcpy(&pc.paths[i].addr, &h->paths[i].addr, sizeof(pc.paths[i].addr));
		pc.paths[i].len = h->paths[i].len;
		snprintf(pc.paths[i].text, sizeof(pc.paths[i].text), "%s", h->paths[i].text);
	}
	pc.npaths = h->npaths;
	memcpy(pc.key, h->key, sizeof(pc.key));
	snprintf(pc.node, sizeof(pc.node), "%s", h->conf.node_name);
	snprintf(pc.version, sizeof(pc.version), "%s", h->conf.version);
	memcpy(pc.node_addr16, h->node_addr16, sizeof(pc.node_addr16));
	pc.boot_id = h->boot_id;
	pc.session = h->session;
	pc.interval_ms = h->conf.advert_interval_ms;
	pc.log = h->cb.log;
	pc.log_arg = h->arg;
	p = pacer_new(&pc, err, errlen);
	sodium_memzero(pc.key, sizeof(pc.key));
	return p;
}

struct hasync *
hasync_new(struct event_base *base, const struct hasync_config *conf,
    const struct hasync_callbacks *cb, void *arg, char *err, size_t errlen)
{
	struct hasync *h = NULL;
	struct ha_config hc;
	int i;

	if (base == NULL || conf == NULL) {
		hasync_errf(err, errlen, "hasync_new: no event base or config");
		return NULL;
	}
	if (hb_check_config(conf, err, errlen) == -1)
		return NULL;
	if (sodium_init() == -1) {
		hasync_errf(err, errlen, "libsodium cannot initialise");
		return NULL;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL) {
		hasync_errf(err, errlen, "out of memory");
		return NULL;
	}
	h->fd = -1;
	h->base = base;
	h->conf = *conf;
	if (cb != NULL)
		h->cb = *cb;
	h->arg = arg;
	h->family = conf->node_addr.ss_family;
	if (h->conf.garp_count == 0)
		h->conf.garp_count = HB_GARP_COUNT;
	if (h->conf.garp_interval_ms == 0)
		h->conf.garp_interval_ms = HB_GARP_INTERVAL_MS;
	if (h->conf.garp_refresh_ms == 0)
		h->conf.garp_refresh_ms = HB_GARP_REFRESH_MS;
	hasync_addr16((const struct sockaddr *)&conf->node_addr, h->node_addr16);
	crypto_kdf_derive_from_key(h->key, sizeof(h->key), HB_KDF_ID, HB_KDF_CONTEXT,
	    conf->key);
	sodium_memzero(h->conf.key, sizeof(h->conf.key));	/* only the subkey stays */
	h->boot_id = clock_wall_ns();
	while (h->session == 0)		/* 0 means "no session" (older lbd) */
		randombytes_buf(&h->session, sizeof(h->session));

	if (conf->has_peer) {
		h->npaths = conf->npeer_addr;
		for (i = 0; i < h->npaths; i++) {
			struct pacer_path *p = &h->paths[i];

			memcpy(&p->addr, &conf->peer_addr[i], sizeof(p->addr));
			if (h->family == AF_INET) {
				((struct sockaddr_in *)&p->addr)->sin_port =
				    htons(conf->heartbeat_port);
				p->len = sizeof(struct sockaddr_in);
			} else {
				((struct sockaddr_in6 *)&p->addr)->sin6_port =
				    htons(conf->heartbeat_port);
				p->len = sizeof(struct sockaddr_in6);
			}
			sockaddr_str((struct sockaddr *)&p->addr, p->text, sizeof(p->text));
		}
		if (hb_open_socket(h, err, errlen) == -1)
			goto fail;
		if ((h->pacer = hb_pacer_new(h, err, errlen)) == NULL)
			goto fail;
	}
	if (conf->vip_ifname[0] != '\0') {
		h->vip = vip_open(conf->vip_ifname, (const struct sockaddr *)&conf->vip_addr,
		    conf->vip_prefixlen, err, errlen);
		if (h->vip == NULL)
			goto fail;
		if (nlwatch_open(h, err, errlen) == -1)
			goto fail;
		if (conf->has_peer && conf->handover_drain_s > 0)
			handover_open(h);
	}

	if ((h->ev_timer = evtimer_new(base, hb_on_timer, h)) == NULL ||
	    (h->ev_garp = evtimer_new(base, hb_on_garp, h)) == NULL ||
	    (h->ev_hold = evtimer_new(base, handover_on_hold, h)) == NULL ||
	    (h->ev_steer = evtimer_new(base, handover_on_timer, h)) == NULL)
		goto nomem;
	if (h->fd != -1 &&
	    (h->ev_read = event_new(base, h->fd, EV_READ | EV_PERSIST, hb_on_read, h)) == NULL)
		goto nomem;
	if (h->nl_event != NULL && (h->ev_nl = event_new(base, nl_socket_get_fd(h->nl_event),
	    EV_READ | EV_PERSIST, hb_on_netlink, h)) == NULL)
		goto nomem;
	/*
	 * Priority 0, the most urgent: if lbd gives its base several
	 * priorities, adverts and their timers run before relay callbacks
	 * under load. With one priority this is a no-op.
	 */
	event_priority_set(h->ev_timer, 0);
	event_priority_set(h->ev_garp, 0);
	event_priority_set(h->ev_hold, 0);
	event_priority_set(h->ev_steer, 0);
	if (h->ev_read != NULL)
		event_priority_set(h->ev_read, 0);
	if (h->ev_nl != NULL)
		event_priority_set(h->ev_nl, 0);

	memset(&hc, 0, sizeof(hc));
	hc.priority = conf->priority;
	hc.interval_ms = conf->advert_interval_ms;
	hc.has_peer = conf->has_peer;
	hc.preempt = conf->preempt;
	hc.may_preempt = h->cb.may_preempt;
	hc.arg = arg;
	ha_init(&h->ha, &hc);
	return h;
nomem:
	hasync_errf(err, errlen, "out of memory (events)");
fail:
	hasync_free(h);
	return NULL;
}

void
hasync_free(struct hasync *h)
{
	if (h == NULL)
		return;
	if (h->ev_read != NULL)
		event_free(h->ev_read);
	if (h->ev_timer != NULL)
		event_free(h->ev_timer);
	if (h->ev_garp != NULL)
		event_free(h->ev_garp);
	if (h->ev_hold != NULL)
		event_free(h->ev_hold);
	if (h->ev_steer != NULL)
		event_free(h->ev_steer);
	steer_free(h->steer);
	if (h->ev_nl != NULL)
		event_free(h->ev_nl);
	pacer_free(h->pacer);	/* before the socket it sends on */
	if (h->fd != -1)
		close(h->fd);
	if (h->nl_event != NULL)
		nl_socket_free(h->nl_event);
	if (h->nl_query != NULL)
		nl_socket_free(h->nl_query);
	vip_close(h->vip);
	sodium_memzero(h->key, sizeof(h->key));
	free(h);
}

/* ---------------------------------------------------------------- adverts */

static void
hb_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct hasync *h = arg;
	uint8_t buf[HB_RX_BUF];
	struct sockaddr_storage from;
	struct msghdr msg;
	struct iovec iov;
	ssize_t n;
	int i;

	hb_read_errqueue(h);
	for (i = 0; i < HB_RX_BUDGET && h->fd != -1; i++) {
		memset(&msg, 0, sizeof(msg));
		iov.iov_base = buf;
		iov.iov_len = sizeof(buf);
		msg.msg_name = &from;
		msg.msg_namelen = sizeof(from);
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		n = recvmsg(fd, &msg, 0);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			/* A pending ICMP error (IP_RECVERR): read its details. */
			if (errno == ECONNREFUSED || errno == EHOSTUNREACH ||
			    errno == ENETUNREACH || errno == EHOSTDOWN) {
				hb_read_errqueue(h);
				continue;
			}
			hb_log_limited(h, HB_LOG_ICMP, 0, "heartbeat receive: %s",
			    strerror(errno));
			break;
		}
		hb_rx_datagram(h, buf, (size_t)n, (msg.msg_flags & MSG_TRUNC) != 0,
		    (struct sockaddr *)&from);
	}
}

/*
 * Drains the socket's error queue (bounded): port unreachable from a peer
 * path is counted (hb_path_refused); other errors are only logged.
 */
static void
hb_read_errqueue(struct hasync *h)
{
	struct sockaddr_storage dst;
	struct sock_extended_err *ee;
	union {
		char		 buf[512];
		struct cmsghdr	 align;
	} cbuf;
	struct msghdr msg;
	struct cmsghdr *cm;
	struct iovec iov;
	char data[64], a[INET6_ADDRSTRLEN];
	int i;

	for (i = 0; i < HB_ERRQ_BUDGET && h->fd != -1; i++) {
		memset(&msg, 0, sizeof(msg));
		memset(&dst, 0, sizeof(dst));
		iov.iov_base = data;
		iov.iov_len = sizeof(data);
		msg.msg_name = &dst;
		msg.msg_namelen = sizeof(dst);
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = cbuf.buf;
		msg.msg_controllen = sizeof(cbuf.buf);
		if (recvmsg(h->fd, &msg, MSG_ERRQUEUE) == -1) {
			if (errno == EINTR)
				continue;
			break;	/* EAGAIN: empty */
		}
		for (cm = CMSG_FIRSTHDR(&msg); cm != NULL; cm = CMSG_NXTHDR(&msg, cm)) {
			if (!(cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_RECVERR) &&
			    !(cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_RECVERR))
				continue;
			ee = (struct sock_extended_err *)CMSG_DATA(cm);
			if (ee->ee_errno == ECONNREFUSED &&
			    (ee->ee_origin == SO_EE_ORIGIN_ICMP ||
			    ee->ee_origin == SO_EE_ORIGIN_ICMP6)) {
				hb_path_refused(h, &dst);
			} else {
				hb_log_limited(h, HB_LOG_ICMP, 2, "heartbeat to %s: %s",
				    sockaddr_str((struct sockaddr *)&dst, a, sizeof(a)),
				    strerror((int)ee->ee_errno));
			}
		}
	}
}

/*
 * A path answered ICMP port unreachable. Only counted and logged: the
 * message is not authenticated, and any host that can guess the 4-tuple
 * can send one, so it must not move the VIP (a forged one took over from
 * a live MASTER). A dead peer lbd is told by the sync channel, whose
 * TCP_MD5SIG-signed FIN or reset only the peer's kernel can send, or by
 * Master_Down.
 */
static void
hb_path_refused(struct hasync *h, const struct sockaddr_storage *dst)
{
	char a[INET6_ADDRSTRLEN];

	h->unreachable++;
	/* While the peer's adverts arrive it is forged or stale: worth a line; else expected. */
	hb_log_limited(h, HB_LOG_ICMP, hb_peer_alive(h) ? 1 : 2, "ICMP port unreachable for our advert to %s "
	    "(%llu so far): no lbd listening there, or forged; not acted on (a takeover "
	    "needs the sync channel's signed close or Master_Down)",
	    sockaddr_str((const struct sockaddr *)dst, a, sizeof(a)),
	    (unsigned long long)h->unreachable);
}

/* One datagram from the socket: check, open, decode, and feed to ha.c. */
static void
hb_rx_datagram(struct hasync *h, const uint8_t *buf, size_t n, bool trunc,
    const struct sockaddr *from)
{
	uint8_t plain[PACER_ADVERT_MAX];
	unsigned long long plen = 0;
	Lbd__Advert *adv = NULL;
	struct ha_advert in;
	char a[INET6_ADDRSTRLEN];
	int cmp;
	bool heard_anew;

	sockaddr_str(from, a, sizeof(a));
	if (trunc || n > PACER_FRAME_MAX || n < PACER_HEADER_LEN + PACER_TAG_LEN ||
	    buf[0] != PACER_FRAME_VERSION) {
		h->malformed++;
		hb_log_limited(h, HB_LOG_MALFORMED, 0, "malformed heartbeat datagram from %s: "
		    "%zu%s bytes, version byte %d (want %d-%d bytes, version %d)", a, n,
		    trunc ? "+" : "", n > 0 ? buf[0] : -1, PACER_HEADER_LEN + PACER_TAG_LEN,
		    PACER_FRAME_MAX, PACER_FRAME_VERSION);
		return;
	}
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &plen, NULL,
	    buf + PACER_HEADER_LEN, n - PACER_HEADER_LEN, buf, 1, buf + 1, h->key) != 0) {
		h->auth_failures++;
		hb_log_limited(h, HB_LOG_AUTH, 0, "heartbeat from %s failed authentication "
		    "(wrong cluster key, or forged): dropped", a);
		return;
	}
	adv = lbd__advert__unpack(NULL, (size_t)plen, plain);
	sodium_memzero(plain, sizeof(plain));
	if (adv == NULL || adv->priority > 254 || adv->state > HASYNC_FAULT ||
	    adv->interval_ms < HASYNC_INTERVAL_MIN || adv->interval_ms > HASYNC_INTERVAL_MAX ||
	    adv->node == NULL) {
		h->malformed++;
		hb_log_limited(h, HB_LOG_MALFORMED, 0, "authentic heartbeat from %s with bad "
		    "fields (other lbd version?): dropped", a);
		goto done;
	}
	if (strcmp(adv->node, h->conf.peer_name) != 0) {
		h->unknown_sender++;
		if (strcmp(adv->node, h->conf.node_name) == 0)
			hb_log_limited(h, HB_LOG_UNKNOWN, 0, "heartbeat from %s carries our own "
			    "node name \"%s\" (looped back, or both nodes have this name?): "
			    "dropped", a, adv->node);
		else
			hb_log_limited(h, HB_LOG_UNKNOWN, 0, "heartbeat from %s names node "
			    "\"%.64s\", not our peer \"%s\": dropped", a, adv->node,
			    h->conf.peer_name);
		goto done;
	}
	if (!hb_rx_accept(h, adv, a, &heard_anew))
		goto done;
	h->received++;

	/* VRRP tie-break: the higher node address; names if addresses are equal. */
	cmp = 0;
	if (adv->node_addr.len == sizeof(h->node_addr16))
		cmp = memcmp(adv->node_addr.data, h->node_addr16, sizeof(h->node_addr16));
	if (cmp == 0)
		cmp = strcmp(adv->node, h->conf.node_name);
	in.priority = (int)adv->priority;
	in.state = (enum hasync_role)adv->state;
	in.interval_ms = (int)adv->interval_ms;
	in.addr_cmp = cmp > 0 ? 1 : -1;
	in.hears_us = hb_hears_us(h, adv);
	hb_log(h, 2, "advert from %s (%s): %s priority %d counter %llu", adv->node, a,
	    ha_role_name(in.state), in.priority, (unsigned long long)adv->counter);
	h->peer_draining = adv->draining;
	h->peer_forwarding = adv->forwarding;
	/* Shown, never compared: a mixed pair during an upgrade works as before. */
	snprintf(h->peer_version, sizeof(h->peer_version), "%s",
	    adv->version != NULL ? adv->version : "");
	if (heard_anew && h->cb.peer_heard != NULL)
		h->cb.peer_heard(h->arg);
	hb_apply(h, ha_rx_advert(&h->ha, &in, clock_now_ms()));
	if (h->holding && in.state == HASYNC_MASTER && h->ha.role != HASYNC_MASTER) {
		hb_log(h, 1, "handover done: %s is MASTER", adv->node);
		handover_step_aside(h);
	}
	if (heard_anew)
		hb_reply(h);	/* our echo of it lets the peer confirm us now */
done:
	if (adv != NULL)
		lbd__advert__free_unpacked(adv, NULL);
}

/*
 * Replay protection and freshness (the comment at the top says why).
 * Returns: true take adv (*heard_anew: a new run of the peer, or one not
 * alive until now), false dropped (counted and logged).
 */
static bool
hb_rx_accept(struct hasync *h, const Lbd__Advert *adv, const char *a, bool *heard_anew)
{
	uint64_t now = clock_now_ms(), sent = 0, age = UINT64_MAX;
	struct hb_retired *r;
	bool retired, new_cand;

	*heard_anew = !hb_peer_alive(h);
	if (adv->session == 0)
		return hb_rx_legacy(h, adv, a, heard_anew);
	if (h->peer_confirmed && adv->session == h->peer_session) {
		if (adv->counter <= h->peer_counter) {
			h->replays++;
			hb_log_limited(h, HB_LOG_REPLAY, 0, "replayed heartbeat from %s "
			    "(counter %llu, last taken %llu): dropped", a,
			    (unsigned long long)adv->counter,
			    (unsigned long long)h->peer_counter);
			return false;
		}
		h->peer_counter = adv->counter;
		pacer_set_echo(h->pacer, adv->session, adv->counter);
		return true;
	}
	if (adv->echo_session == h->session && pacer_sent_at(h->pacer, adv->echo_counter, &sent))
		age = now > sent ? now - sent : 0;
	retired = hb_retired(h, adv->session, adv->counter);
	if (retired || age > (uint64_t)HB_FRESH_INTERVALS * (uint64_t)h->conf.advert_interval_ms) {
		h->stale++;
		if (!retired && (adv->session != h->cand_session || adv->counter > h->cand_counter)) {
			new_cand = adv->session != h->cand_session;
			h->cand_session = adv->session;
			h->cand_counter = adv->counter;
			pacer_set_echo(h->pacer, adv->session, adv->counter);
			if (new_cand)
				hb_reply(h);
		}
		if (retired)
			hb_log_limited(h, HB_LOG_STALE, 1, "heartbeat from %s of an earlier run of "
			    "%s (replaced since): a recording, not used", a, h->conf.peer_name);
		else if (age == UINT64_MAX)
			hb_log_limited(h, HB_LOG_STALE, 1, "heartbeat from %s does not echo an "
			    "advert of this run yet (the peer has not heard us, or a recording): "
			    "not used until it does; takeover stays due at Master_Down", a);
		else
			hb_log_limited(h, HB_LOG_STALE, 1, "heartbeat from %s echoes our advert "
			    "of %llu ms ago (fresh: at most %d ms): not used", a,
			    (unsigned long long)age,
			    HB_FRESH_INTERVALS * h->conf.advert_interval_ms);
		return false;
	}
	if (h->peer_confirmed) {
		r = &h->retired[h->nretired++ % HB_RETIRED];
		r->session = h->peer_session;
		r->counter = h->peer_counter;
		hb_log(h, 1, "peer %s restarted (a new session, fresh: it heard this node %llu ms "
		    "ago)", h->conf.peer_name, (unsigned long long)age);
	} else {
		hb_log(h, 2, "peer %s confirmed (fresh: it heard this node %llu ms ago)",
		    h->conf.peer_name, (unsigned long long)age);
	}
	h->peer_confirmed = true;
	h->peer_session = adv->session;
	h->peer_counter = adv->counter;
	h->cand_session = 0;
	h->cand_counter = 0;
	pacer_set_echo(h->pacer, adv->session, adv->counter);
	*heard_anew = true;
	return true;
}

/*
 * Whether adv echoes one of our adverts sent at most HB_FRESH_INTERVALS
 * intervals ago: its sender hears us now (preemption waits for it). An
 * lbd older than freshness echoes nothing: taken as hearing us, as before.
 */
static bool
hb_hears_us(struct hasync *h, const Lbd__Advert *adv)
{
	uint64_t now = clock_now_ms(), sent;

	if (adv->session == 0)
		return true;
	if (adv->echo_session != h->session || !pacer_sent_at(h->pacer, adv->echo_counter, &sent))
		return false;
	return (now > sent ? now - sent : 0) <=
	    (uint64_t)HB_FRESH_INTERVALS * (uint64_t)h->conf.advert_interval_ms;
}

/* An advert without session, from an lbd older than freshness: the old rule. */
static bool
hb_rx_legacy(struct hasync *h, const Lbd__Advert *adv, const char *a, bool *heard_anew)
{
	if (h->peer_confirmed) {
		h->stale++;
		hb_log_limited(h, HB_LOG_STALE, 1, "heartbeat from %s without a session (an "
		    "older lbd) while %s sends fresh adverts: a recording, not used", a,
		    h->conf.peer_name);
		return false;
	}
	if (h->legacy_seen && (adv->boot_id < h->legacy_boot ||
	    (adv->boot_id == h->legacy_boot && adv->counter <= h->legacy_counter))) {
		h->replays++;
		hb_log_limited(h, HB_LOG_REPLAY, 0, "replayed or stale heartbeat from %s "
		    "(boot %llu counter %llu, last taken boot %llu counter %llu): dropped; "
		    "the peer runs an older lbd: if it restarted with its clock set back, "
		    "upgrade it (or restart it once the clock is right)", a,
		    (unsigned long long)adv->boot_id, (unsigned long long)adv->counter,
		    (unsigned long long)h->legacy_boot, (unsigned long long)h->legacy_counter);
		return false;
	}
	if (!h->legacy_warned) {
		h->legacy_warned = true;
		hb_log(h, 0, "peer %s runs an older lbd (adverts without a session): taking them "
		    "under the old boot_id/counter rule, which lets recorded adverts replayed "
		    "after this node restarts delay a takeover, and locks out a peer restarted "
		    "with its clock set back; upgrade it", h->conf.peer_name);
	}
	if (!h->legacy_seen || adv->boot_id > h->legacy_boot) {
		if (h->legacy_seen)
			hb_log(h, 1, "peer %s restarted (new boot id)", h->conf.peer_name);
		*heard_anew = true;
	}
	h->legacy_seen = true;
	h->legacy_boot = adv->boot_id;
	h->legacy_counter = adv->counter;
	return true;
}

/*
 * A session replaced earlier, and counter no higher than the last taken
 * from it: a recording. A higher counter, fresh, is that run still alive
 * (a recording of another run confirmed in between, by an attacker that
 * withheld it): it may be confirmed again, so nothing locks a run out.
 */
static bool
hb_retired(const struct hasync *h, uint64_t session, uint64_t counter)
{
	int i, n = h->nretired < HB_RETIRED ? h->nretired : HB_RETIRED;

	for (i = 0; i < n; i++)
		if (h->retired[i].session == session && counter <= h->retired[i].counter)
			return true;
	return false;
}

/*
 * One advert at once, outside the schedule, so that a peer run we just
 * confirmed or first heard sees our echo of it without waiting an interval.
 * At most one per interval / HB_REPLY_DIV: recordings cannot make us chatty.
 */
static void
hb_reply(struct hasync *h)
{
	uint64_t now = clock_now_ms();

	if (!h->started || !h->ha.started ||
	    now - h->last_reply_ms < (uint64_t)(h->conf.advert_interval_ms / HB_REPLY_DIV))
		return;
	h->last_reply_ms = now;
	hb_send_advert(h);
}

/* ---------------------------------------------------------------- timers */

static void
hb_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct hasync *h = arg;
	unsigned int acts;

	/*
	 * A BACKUP whose loop ran late may find Master_Down passed with the
	 * MASTER's adverts still queued on the socket: read them first, or
	 * a busy node would take over from a live MASTER.
	 */
	if (h->ha.role == HASYNC_BACKUP && h->fd != -1 &&
	    clock_now_ms() >= h->ha.master_down_ms)
		hb_on_read(h->fd, EV_READ, h);
	acts = ha_timeout(&h->ha, clock_now_ms());
	/* MASTER whose VIP could not be added: try again every interval. */
	if (h->ha.role == HASYNC_MASTER && h->vip != NULL && !vip_held(h->vip) &&
	    !(acts & HA_ACT_BECOME_MASTER)) {
		hb_vip_take(h);
		if (vip_held(h->vip))
			acts |= HA_ACT_GARP_BURST;
	}
	hb_apply(h, acts);
}

/* Arms the one timer for the state machine's next deadline. */
void
hb_schedule(struct hasync *h)
{
	uint64_t now = clock_now_ms(), d, delay;
	struct timeval tv;

	d = ha_next_deadline(&h->ha);
	if (h->started && h->ha.role == HASYNC_MASTER && h->vip != NULL &&
	    !vip_held(h->vip) && now + (uint64_t)h->conf.advert_interval_ms < d)
		d = now + (uint64_t)h->conf.advert_interval_ms;
	if (d == HA_NEVER || !h->started) {
		evtimer_del(h->ev_timer);
		return;
	}
	delay = d > now ? d - now : 0;
	tv.tv_sec = (time_t)(delay / 1000);
	tv.tv_usec = (suseconds_t)(delay % 1000) * 1000;
	evtimer_add(h->ev_timer, &tv);
}

/* Carries out ha.c's actions, then re-arms the timer. */
void
hb_apply(struct hasync *h, unsigned int acts)
{
	enum hasync_role from = h->ha.prev_role, to = h->ha.role;

	/* Taking over: VIP first, so the advert that says MASTER is true. */
	if (acts & HA_ACT_BECOME_MASTER) {
		handover_forward_start(h);
		hb_vip_take(h);
		if (h->cb.taking_over != NULL)
			h->cb.taking_over(h->arg, !hb_peer_alive(h));
	}
	if (acts & HA_ACT_GARP_BURST)
		hb_garp_start(h);
	/*
	 * A draining node taken over again unhides the VIP only once the LAN
	 * has heard of it: the nftables work takes a few ms, and until the
	 * GARP leaves, clients still send to the node that just died.
	 */
	if ((acts & HA_ACT_BECOME_MASTER) && h->draining)
		handover_drain_end(h, "MASTER again");
	if (acts & HA_ACT_ADVERT)
		hb_send_advert(h);
	/*
	 * Stepping down: advert first, so the peer starts taking over sooner.
	 * A MASTER handing over to a peer that is not MASTER yet (lbctl
	 * failover) keeps the VIP until the peer says MASTER: releasing it at
	 * once leaves a few ms in which nobody answers for the VIP and clients'
	 * SYNs are lost. Both holding it for a moment is harmless: both proxy.
	 */
	if (acts & (HA_ACT_BECOME_BACKUP | HA_ACT_BECOME_FAULT | HA_ACT_BECOME_INIT))
		handover_forward_stop(h, "no longer MASTER");
	if ((acts & HA_ACT_BECOME_BACKUP) && from == HASYNC_MASTER &&
	    h->ha.peer_role != HASYNC_MASTER && h->vip != NULL && vip_held(h->vip))
		handover_hold_start(h);
	else if ((acts & HA_ACT_BECOME_BACKUP) && from == HASYNC_MASTER &&
	    h->ha.peer_role == HASYNC_MASTER)
		handover_step_aside(h);	/* the peer preempted: it forwards our connections */
	else if (acts & (HA_ACT_BECOME_BACKUP | HA_ACT_BECOME_FAULT | HA_ACT_BECOME_INIT)) {
		hb_vip_release(h);
		if (h->draining && !(acts & HA_ACT_BECOME_BACKUP))
			handover_drain_end(h, "FAULT or stopping: connections left are cut");
	} else if ((acts & HA_ACT_BECOME_MASTER) && h->holding) {
		h->holding = false;
		evtimer_del(h->ev_hold);
	}
	hb_schedule(h);
	if (acts & HA_ACT_ROLE_CHANGED) {
		hb_log(h, to == HASYNC_MASTER || from == HASYNC_MASTER ? 0 : 1,
		    "role %s -> %s: %s", ha_role_name(from), ha_role_name(to), h->ha.reason);
		if (h->cb.role_changed != NULL)
			h->cb.role_changed(h->arg, from, to, h->ha.reason);
	}
}

/* ---------------------------------------------------------------- netlink */

/*
 * Netlink events in (nlwatch.c reads and judges them). After one about
 * our link or its addresses: follow the link (FAULT and back), and keep
 * the VIP where the role says: re-add it if it vanished from a MASTER,
 * remove it from anyone else.
 */
static void
hb_on_netlink(evutil_socket_t fd, short what, void *arg)
{
	struct hasync *h = arg;
	char msg[128];
	bool up;

	if (!nlwatch_read(h) || h->vip == NULL || !h->started)
		return;
	if (nlwatch_link_changed(h, &up, msg, sizeof(msg)))
		hb_apply(h, ha_link_changed(&h->ha, up, msg, clock_now_ms()));
	switch (nlwatch_vip_check(h)) {
	case NLWATCH_VIP_GONE:
		hb_vip_take(h);
		if (vip_held(h->vip))
			hb_garp_start(h);
		hb_schedule(h);
		break;
	case NLWATCH_VIP_STRAY:
		hb_vip_release(h);
		break;
	case NLWATCH_VIP_OK:
		break;
	}
}

/* ---------------------------------------------------------------- API */

int
hasync_start(struct hasync *h)
{
	char err[256];
	bool up = true;

	if (h->started)
		return 0;
	if (h->ev_read != NULL && event_add(h->ev_read, NULL) == -1) {
		hb_log(h, 0, "cannot watch the heartbeat socket");
		return -1;
	}
	if (h->ev_nl != NULL && event_add(h->ev_nl, NULL) == -1) {
		hb_log(h, 0, "cannot watch netlink events");
		if (h->ev_read != NULL)
			event_del(h->ev_read);
		return -1;
	}
	if (h->pacer != NULL) {
		if (pacer_start(h->pacer, err, sizeof(err)) == -1) {
			hb_log(h, 0, "%s", err);
			if (h->ev_read != NULL)
				event_del(h->ev_read);
			if (h->ev_nl != NULL)
				event_del(h->ev_nl);
			return -1;
		}
		if (!pacer_realtime(h->pacer))
			hb_log(h, 1, "realtime scheduling not available for the advert pacer "
			    "thread: adverts may be late on a busy machine; run lbd as root, "
			    "with CAP_SYS_NICE, or with CPUSchedulingPolicy=rr "
			    "(deploy/lbd.service)");
		else
			hb_log(h, 2, "advert pacer thread: SCHED_RR");
	}
	h->started = true;
	if (h->steer != NULL && steer_reset(h->steer, err, sizeof(err)) == -1)
		hb_log(h, 0, "handover steering: cannot remove a crashed run's leftovers: %s", err);
	if (h->vip != NULL) {
		if (nlwatch_link_query(h, &up) == 0 && !up)
			ha_link_changed(&h->ha, false, "VIP interface is down", clock_now_ms());
		/* A crashed run's VIP: removed by the BACKUP/FAULT transition below. */
		if ((h->conf.has_peer || !up) && vip_present(h->vip) == 1)
			hb_log(h, 1, "stale VIP found on %s (left by a crashed run?): removing "
			    "it unless this node becomes MASTER", h->conf.vip_ifname);
	}
	hb_apply(h, ha_start(&h->ha, clock_now_ms()));
	return 0;
}

void
hasync_stop(struct hasync *h)
{
	if (!h->started)
		return;
	hb_apply(h, ha_stop(&h->ha, clock_now_ms()));
	pacer_stop(h->pacer);	/* the priority-0 advert above is the last */
	h->started = false;
	if (h->ev_read != NULL)
		event_del(h->ev_read);
	if (h->ev_nl != NULL)
		event_del(h->ev_nl);
	evtimer_del(h->ev_timer);
	evtimer_del(h->ev_garp);
	evtimer_del(h->ev_hold);
	handover_forward_stop(h, "stopping");
	handover_drain_end(h, "stopping");
	evtimer_del(h->ev_steer);
}

const char *
hasync_failover(struct hasync *h)
{
	const char *why = NULL;
	unsigned int acts;

	/*
	 * The peer still serves the connections of the last handover, which
	 * its conntrack never saw: taking the VIP back now would make it
	 * forward them here, where they are unknown.
	 */
	if (h->ha.role == HASYNC_MASTER && h->peer_draining && hb_peer_alive(h)) {
		why = "the peer still serves connections from the last handover (its lbctl "
		    "status says draining); try again when they have ended";
		hb_log(h, 1, "failover refused: %s", why);
		return why;
	}
	acts = ha_failover(&h->ha, clock_now_ms(), &why);
	if (why != NULL) {
		hb_log(h, 1, "failover refused: %s", why);
		return why;
	}
	hb_apply(h, acts);
	return NULL;
}

bool
hasync_leave(struct hasync *h)
{
	const char *why = NULL;
	unsigned int acts;

	if (!h->started || !h->conf.has_peer || h->ha.role != HASYNC_MASTER ||
	    !hb_peer_alive(h))
		return false;
	if (!h->peer_draining)
		return hasync_failover(h) == NULL;
	/*
	 * The peer still serves the connections of the last handover, so it
	 * will not forward ours (handover_forward_start) and they are cut, as `lbctl
	 * failover` refuses to. Stopping now would still be worse: the VIP
	 * would leave here before the peer has it, and SYNs sent meanwhile
	 * are lost. Hand over and keep the VIP until the peer says MASTER.
	 */
	acts = ha_failover(&h->ha, clock_now_ms(), &why);
	if (why != NULL)
		return false;
	hb_log(h, 1, "stopping: handing over to %s, which still serves the connections of "
	    "the last handover: those begun here are cut", h->conf.peer_name);
	hb_apply(h, acts);
	return true;
}

bool
hasync_leaving(const struct hasync *h)
{
	return h->holding || h->draining;
}

void
hasync_peer_lost(struct hasync *h, const char *reason)
{
	if (!h->conf.has_peer)
		return;
	if (h->ha.role == HASYNC_BACKUP)
		hb_log(h, 1, "peer %s lost: %s", h->conf.peer_name, reason);
	else
		hb_log(h, 2, "peer %s lost: %s", h->conf.peer_name, reason);
	hb_apply(h, ha_peer_lost(&h->ha, reason, clock_now_ms()));
	handover_forward_stop(h, "peer gone");
}

void
hasync_get_status(struct hasync *h, struct hasync_status *st)
{
	uint64_t now = clock_now_ms();

	memset(st, 0, sizeof(*st));
	st->role = h->ha.role;
	st->priority = h->conf.priority;
	st->vip_held = h->vip != NULL && vip_held(h->vip);
	st->peer_state = ha_peer_state(&h->ha, now);
	st->peer_priority = h->ha.peer_heard ? h->ha.peer_priority : 0;
	st->peer_role = h->ha.peer_heard ? h->ha.peer_role : HASYNC_INIT;
	st->last_advert_ms = h->ha.peer_heard ? (int64_t)(now - h->ha.peer_last_ms) : -1;
	if (h->pacer != NULL)
		pacer_get_counts(h->pacer, &st->adverts_sent, &st->adverts_paced,
		    &st->advert_lapses);
	st->advert_realtime = pacer_realtime(h->pacer);
	st->adverts_received = h->received;
	st->auth_failures = h->auth_failures;
	st->replays = h->replays;
	st->stale = h->stale;
	st->peer_confirmed = h->peer_confirmed || h->legacy_seen;
	st->malformed = h->malformed;
	st->role_changes = h->ha.role_changes;
	st->advert_priority = ha_advert_priority(&h->ha);
	st->unknown_sender = h->unknown_sender;
	st->peer_unreachable = h->unreachable;
	st->reason = h->ha.reason;
	st->draining = h->draining;
	st->forwarding = h->steer != NULL && steer_forwarding(h->steer);
	st->steering = h->steer != NULL;
	st->peer_version = h->peer_version;
}
