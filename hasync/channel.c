/*
 * channel.c - the replication channel: one authenticated, encrypted TCP
 * connection to the peer that carries SyncFrames, with keepalives, a
 * bounded output queue, and instant notice when the peer's process dies.
 * The handshake and the frame crypto are chancrypt.c's.
 *
 * Why peer_died is trustworthy: every segment of the connection is signed
 * by the kernels with TCP_MD5SIG (RFC 2385), under a key derived from the
 * cluster key and set on the listening socket for each peer address and
 * on each outbound socket before connect(); a segment without the right
 * signature is dropped before TCP looks at it. So a FIN or RST that
 * reaches the socket was sent by the peer's kernel, which closes every
 * socket of a process that exits or is killed: an EOF at a frame boundary
 * or a reset of an up connection is the peer's lbd gone, and a forged RST
 * or FIN (a blind attacker who guessed or sniffed the sequence numbers)
 * is not seen at all. (The payload's own AEAD cannot vouch for the close:
 * FIN and RST carry no frame.) Where the kernel refuses TCP_MD5SIG (built
 * without CONFIG_TCP_MD5SIG) the channel still runs, unsigned, but its
 * close is never taken for a death: takeover then waits for Master_Down.
 * The ambiguity left: a graceful stop closes the same way; lbd sends the
 * heartbeat's priority-0 advert first, so the peer has taken over already
 * and the extra peer_lost changes nothing. A middlebox resetting an idle
 * flow would sign nothing, so it can only make the channel look silent.
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <sodium.h>

#include "hasync.pb-c.h"
#include "hasync_int.h"

#define CHAN_KDF_CONTEXT	"lbdsynch"	/* crypto_kdf context: 8 bytes */
#define CHAN_KDF_HELLO		1	/* subkey id: hello MAC key */
#define CHAN_KDF_SESSION	2	/* subkey id: key of the per-direction BLAKE2b */
#define CHAN_MD5_CONTEXT	"lbdtcpmd"	/* crypto_kdf context of the TCP_MD5SIG key */
#define CHAN_MD5_ID		1	/* subkey id within that context */
#define CHAN_BACKOFF_MIN_MS	100	/* first reconnect delay */
#define CHAN_CONNECT_MS		500	/* an unanswered connect is given up (and retried) after this */
#define CHAN_KICK_DELAY_MS	20	/* channel_kick: connect this long after the peer's advert */
#define CHAN_BACKOFF_MAX_MS	5000	/* longest reconnect delay */
#define CHAN_READ_CHUNK		(256 * 1024)	/* bytes read per wake-up */
#define CHAN_RX_FRAMES		64	/* frames taken per wake-up */
#define CHAN_RX_BYTES		(256 * 1024)	/* frame bytes taken per wake-up (>= 1 frame) */
#define CHAN_TX_BYTES		(1 << 20)	/* bytes written per wake-up */
#define CHAN_IOV_MAX		64	/* iovecs per sendmsg */
#define CHAN_ACCEPT_BUDGET	16	/* accepts per wake-up */
#define CHAN_ACCEPT_PAUSE_MS	1000	/* out of file descriptors: stop accepting this long */
#define CHAN_BACKLOG		16	/* listen backlog */
#define CHAN_UNSIGNED_NOTE	" - unsigned TCP (no TCP_MD5SIG), so not taken for its death"

static bool	chan_same_host(const struct sockaddr_storage *, const struct sockaddr_storage *);
static bool	chan_is_peer(const struct channel *, const struct sockaddr_storage *);
static void	chan_set_port(struct sockaddr_storage *, uint16_t);
static void	chan_tv(struct timeval *, int);
static int	chan_md5_set(struct channel *, int, const struct sockaddr_storage *);
static int	chan_check_config(const struct channel_config *, char *, size_t);
static void	chan_connect(struct channel *);
static void	chan_retry(struct channel *, int, bool);
static void	chan_on_retry(evutil_socket_t, short, void *);
static void	chan_on_accept(evutil_socket_t, short, void *);
static void	chan_on_accept_pause(evutil_socket_t, short, void *);
static void	chan_on_tick(evutil_socket_t, short, void *);
static struct chan_conn *conn_new(struct channel *, int, bool, int,
		    const struct sockaddr_storage *, bool);
static void	conn_free(struct chan_conn *);
static void	conn_close(struct chan_conn *, bool, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static void	conn_fail(struct chan_conn *, enum chan_logkind, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static int	conn_verdict(struct chan_conn *, enum chan_verdict, const struct chan_why *);
static void	conn_become_up(struct chan_conn *);
static void	conn_on_write(evutil_socket_t, short, void *);
static int	conn_write(struct chan_conn *);
static void	conn_send_bye(struct chan_conn *, const char *);
static void	conn_on_read(evutil_socket_t, short, void *);
static void	conn_on_more(evutil_socket_t, short, void *);
static enum chan_rx_result conn_process(struct chan_conn *);
static void	conn_send_keepalive(struct chan_conn *, uint64_t);

/* ---------------------------------------------------------------- helpers */

/* Same address, ports ignored. */
static bool
chan_same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	uint8_t x[16], y[16];

	hasync_addr16((const struct sockaddr *)a, x);
	hasync_addr16((const struct sockaddr *)b, y);
	return memcmp(x, y, sizeof(x)) == 0;
}

/* Is from (an accepted connection's source) one of the peer's addresses? */
static bool
chan_is_peer(const struct channel *ch, const struct sockaddr_storage *from)
{
	int i;

	for (i = 0; i < ch->conf.npeer_addr; i++)
		if (chan_same_host(from, &ch->conf.peer_addr[i]))
			return true;
	return false;
}

static void
chan_set_port(struct sockaddr_storage *ss, uint16_t port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

static void
chan_tv(struct timeval *tv, int ms)
{
	tv->tv_sec = ms / 1000;
	tv->tv_usec = (suseconds_t)(ms % 1000) * 1000;
}

/*
 * Signs fd's segments to and from peer (any port) with the channel's
 * TCP_MD5SIG key. On a listening socket the key is inherited by the
 * connections it accepts from that address; a SYN from it without the
 * signature is dropped, as is any unsigned segment on a keyed connection.
 * The key is matched on the full address of the socket's own family (the
 * IPv6 socket is V6ONLY, so no v4-mapped addresses reach it).
 * Returns: 0 set, -1 refused (errno set).
 */
static int
chan_md5_set(struct channel *ch, int fd, const struct sockaddr_storage *peer)
{
	struct tcp_md5sig m;
	int rc, saved;

	memset(&m, 0, sizeof(m));
	memcpy(&m.tcpm_addr, peer, ch->salen);
	chan_set_port(&m.tcpm_addr, 0);
	m.tcpm_keylen = CHAN_MD5_KEY_BYTES;
	memcpy(m.tcpm_key, ch->md5_key, CHAN_MD5_KEY_BYTES);
	rc = setsockopt(fd, IPPROTO_TCP, TCP_MD5SIG, &m, sizeof(m));
	saved = errno;
	sodium_memzero(&m, sizeof(m));
	errno = saved;
	return rc;
}

/* ---------------------------------------------------------------- set-up */

/* Returns: 0 usable, -1 not (err says what to fix). */
static int
chan_check_config(const struct channel_config *c, char *err, size_t errlen)
{
	int fam = c->node_addr.ss_family;

	if (confcheck_name(c->node_name, "node", err, errlen) == -1)
		return -1;
	if (confcheck_peer(c->node_name, c->peer_name, err, errlen) == -1)
		return -1;
	if (fam != AF_INET && fam != AF_INET6) {
		hasync_errf(err, errlen, "node address must be IPv4 or IPv6");
		return -1;
	}
	if (confcheck_paths(fam, c->peer_addr, c->npeer_addr, err, errlen) == -1)
		return -1;
	if (chan_same_host(&c->node_addr, &c->peer_addr[0])) {
		hasync_errf(err, errlen, "peer address equals the node address; the sync channel "
		    "needs two distinct node addresses");
		return -1;
	}
	if (c->sync_port == 0) {
		hasync_errf(err, errlen, "sync port must be 1-65535");
		return -1;
	}
	if (c->keepalive_ms < 0 || c->dead_ms < 0) {
		hasync_errf(err, errlen, "keepalive and dead times must not be negative");
		return -1;
	}
	if (c->keepalive_ms != 0 && c->dead_ms != 0 && c->dead_ms <= c->keepalive_ms) {
		hasync_errf(err, errlen, "dead time %d ms must exceed the keepalive period %d ms",
		    c->dead_ms, c->keepalive_ms);
		return -1;
	}
	return 0;
}

struct channel *
channel_new(struct event_base *base, const struct channel_config *conf,
    const struct channel_callbacks *cb, void *arg, char *err, size_t errlen)
{
	struct channel *ch = NULL;
	uint8_t a[16], b[16];

	if (base == NULL || conf == NULL) {
		hasync_errf(err, errlen, "channel_new: no event base or config");
		return NULL;
	}
	if (chan_check_config(conf, err, errlen) == -1)
		return NULL;
	if (sodium_init() == -1) {
		hasync_errf(err, errlen, "libsodium cannot initialise");
		return NULL;
	}
	if ((ch = calloc(1, sizeof(*ch))) == NULL) {
		hasync_errf(err, errlen, "out of memory");
		return NULL;
	}
	ch->lfd = -1;
	ch->base = base;
	ch->conf = *conf;
	if (cb != NULL)
		ch->cb = *cb;
	ch->arg = arg;
	if (ch->conf.keepalive_ms == 0)
		ch->conf.keepalive_ms = CHANNEL_KEEPALIVE_MS;
	if (ch->conf.dead_ms == 0)
		ch->conf.dead_ms = ch->conf.keepalive_ms * 3 > CHANNEL_DEAD_MS ?
		    ch->conf.keepalive_ms * 3 : CHANNEL_DEAD_MS;
	if (ch->conf.dead_ms <= ch->conf.keepalive_ms) {
		hasync_errf(err, errlen, "dead time %d ms must exceed the keepalive period %d ms",
		    ch->conf.dead_ms, ch->conf.keepalive_ms);
		goto fail;
	}
	if (ch->conf.max_queue_bytes == 0)
		ch->conf.max_queue_bytes = CHANNEL_QUEUE_MAX;
	ch->family = conf->node_addr.ss_family;
	ch->salen = ch->family == AF_INET ? sizeof(struct sockaddr_in) :
	    sizeof(struct sockaddr_in6);
	/* Who connects: the lower node address, as VRRP's tie-break compares them. */
	hasync_addr16((const struct sockaddr *)&conf->node_addr, a);
	hasync_addr16((const struct sockaddr *)&conf->peer_addr[0], b);
	ch->connector = memcmp(a, b, sizeof(a)) < 0;
	ch->backoff_ms = CHAN_BACKOFF_MIN_MS;
	/* Ticks often enough for both the keepalive and the silence check. */
	ch->tick_ms = (ch->conf.keepalive_ms < ch->conf.dead_ms ? ch->conf.keepalive_ms :
	    ch->conf.dead_ms) / 4;
	if (ch->tick_ms < 5)
		ch->tick_ms = 5;
	{
		struct sockaddr_storage p = conf->peer_addr[0];

		chan_set_port(&p, conf->sync_port);
		sockaddr_port_str((const struct sockaddr *)&p, ch->peer_text, sizeof(ch->peer_text));
	}
	crypto_kdf_derive_from_key(ch->hello_key, sizeof(ch->hello_key), CHAN_KDF_HELLO,
	    CHAN_KDF_CONTEXT, conf->key);
	crypto_kdf_derive_from_key(ch->session_key, sizeof(ch->session_key),
	    CHAN_KDF_SESSION, CHAN_KDF_CONTEXT, conf->key);
	crypto_kdf_derive_from_key(ch->md5_key, sizeof(ch->md5_key), CHAN_MD5_ID,
	    CHAN_MD5_CONTEXT, conf->key);
	sodium_memzero(ch->conf.key, sizeof(ch->conf.key));	/* only the subkeys stay */
	ch->boot_id = clock_wall_ns();

	if ((ch->ev_retry = evtimer_new(base, chan_on_retry, ch)) == NULL ||
	    (ch->ev_tick = event_new(base, -1, EV_PERSIST, chan_on_tick, ch)) == NULL ||
	    (ch->ev_accept_pause = evtimer_new(base, chan_on_accept_pause, ch)) == NULL) {
		hasync_errf(err, errlen, "out of memory (events)");
		goto fail;
	}
	return ch;
fail:
	channel_free(ch);
	return NULL;
}

int
channel_start(struct channel *ch)
{
	struct sockaddr_storage local;
	struct timeval tv;
	char a[CHAN_ADDR_MAX];
	int i, on = 1;

	if (ch->started)
		return 0;
	/*
	 * One path: listen on node_addr only (what firewall rules name).
	 * Several: the wildcard, as the heartbeat does, so the peer's
	 * connection arrives on whichever of our addresses its path ends at.
	 */
	memset(&local, 0, sizeof(local));
	if (ch->conf.npeer_addr > 1)
		local.ss_family = (sa_family_t)ch->family;
	else
		local = ch->conf.node_addr;
	chan_set_port(&local, ch->conf.sync_port);
	sockaddr_port_str((const struct sockaddr *)&local, a, sizeof(a));
	ch->lfd = socket(ch->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ch->lfd == -1) {
		chan_log(ch, 0, "sync channel: socket: %s", strerror(errno));
		return -1;
	}
	/* SO_REUSEADDR: a restart must not wait for the old run's TIME_WAITs. */
	if (setsockopt(ch->lfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1 ||
	    (ch->family == AF_INET6 &&
	    setsockopt(ch->lfd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) == -1)) {
		chan_log(ch, 0, "sync channel: setsockopt: %s", strerror(errno));
		goto fail;
	}
	/*
	 * Sign before listen(): a SYN from a peer address must already be
	 * checked. If the kernel cannot, run unsigned (the peer must then be
	 * unsigned too) and never take the channel's close for a death.
	 */
	ch->md5 = true;
	for (i = 0; i < ch->conf.npeer_addr && ch->md5; i++) {
		if (chan_md5_set(ch, ch->lfd, &ch->conf.peer_addr[i]) == -1) {
			chan_log(ch, 0, "sync channel: cannot sign TCP segments with TCP_MD5SIG: "
			    "%s%s; running unsigned: a forged reset could not be told from the "
			    "peer's death, so the channel's close will not cause a takeover "
			    "(Master_Down will), and a peer that signs cannot connect",
			    strerror(errno), errno == ENOPROTOOPT || errno == EINVAL ?
			    " (kernel built without CONFIG_TCP_MD5SIG?)" : "");
			ch->md5 = false;
		}
	}
	if (bind(ch->lfd, (struct sockaddr *)&local, ch->salen) == -1) {
		chan_log(ch, 0, "cannot bind sync channel to %s: %s%s", a, strerror(errno),
		    errno == EADDRINUSE ? " (another lbd running, or sync_port taken?)" :
		    errno == EADDRNOTAVAIL ? " (node address not on this host?)" : "");
		goto fail;
	}
	if (listen(ch->lfd, CHAN_BACKLOG) == -1) {
		chan_log(ch, 0, "sync channel: listen on %s: %s", a, strerror(errno));
		goto fail;
	}
	if ((ch->ev_accept = event_new(ch->base, ch->lfd, EV_READ | EV_PERSIST,
	    chan_on_accept, ch)) == NULL || event_add(ch->ev_accept, NULL) == -1) {
		chan_log(ch, 0, "sync channel: cannot watch the listening socket");
		goto fail;
	}
	chan_tv(&tv, ch->tick_ms);
	if (event_add(ch->ev_tick, &tv) == -1) {
		chan_log(ch, 0, "sync channel: cannot start its timer");
		goto fail;
	}
	ch->started = true;
	chan_log(ch, 1, "sync channel listening on %s; %s peer %s at %s", a,
	    ch->connector ? "connecting to" : "waiting for", ch->conf.peer_name, ch->peer_text);
	if (ch->connector)
		chan_connect(ch);
	return 0;
fail:
	if (ch->ev_accept != NULL) {
		event_free(ch->ev_accept);
		ch->ev_accept = NULL;
	}
	close(ch->lfd);
	ch->lfd = -1;
	return -1;
}

void
channel_free(struct channel *ch)
{
	if (ch == NULL)
		return;
	if (ch->up != NULL)
		conn_free(ch->up);
	while (ch->npending > 0)
		conn_free(ch->pending[--ch->npending]);
	if (ch->ev_accept != NULL)
		event_free(ch->ev_accept);
	if (ch->ev_accept_pause != NULL)
		event_free(ch->ev_accept_pause);
	if (ch->ev_retry != NULL)
		event_free(ch->ev_retry);
	if (ch->ev_tick != NULL)
		event_free(ch->ev_tick);
	if (ch->lfd != -1)
		close(ch->lfd);
	/* The scratch buffers are wiped after each frame already. */
	free(ch->tx_plain);
	free(ch->rx_plain);
	sodium_memzero(ch->hello_key, sizeof(ch->hello_key));
	sodium_memzero(ch->session_key, sizeof(ch->session_key));
	sodium_memzero(ch->md5_key, sizeof(ch->md5_key));
	free(ch);
}

/* ---------------------------------------------------------------- connections */

/* Starts one outbound attempt on path next_path. */
static void
chan_connect(struct channel *ch)
{
	struct sockaddr_storage to, local;
	char a[CHAN_ADDR_MAX];
	int s, on = 1, path = ch->next_path;
	bool md5;

	to = ch->conf.peer_addr[path];
	chan_set_port(&to, ch->conf.sync_port);
	sockaddr_port_str((const struct sockaddr *)&to, a, sizeof(a));
	s = socket(ch->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s == -1) {
		chan_log_limited(ch, CHAN_LOG_CONNECT, 0, "sync channel: socket: %s",
		    strerror(errno));
		chan_retry(ch, path, true);
		return;
	}
	/*
	 * One path: leave from node_addr, the address the peer accepts and
	 * firewall rules name. Several: let the route pick the source of each
	 * path, as the heartbeat does. IP_BIND_ADDRESS_NO_PORT defers the
	 * port choice to connect(), which can reuse ports per destination.
	 */
	if (ch->conf.npeer_addr == 1) {
		local = ch->conf.node_addr;
		chan_set_port(&local, 0);
		(void)setsockopt(s, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &on, sizeof(on));
		if (bind(s, (struct sockaddr *)&local, ch->salen) == -1) {
			chan_log_limited(ch, CHAN_LOG_CONNECT, 0, "cannot bind the sync "
			    "connection to the node address: %s%s", strerror(errno),
			    errno == EADDRNOTAVAIL ? " (node address not on this host?)" : "");
			close(s);
			chan_retry(ch, path, true);
			return;
		}
	}
	/* Signed from the SYN on, as the peer's listener requires (see the top). */
	md5 = ch->md5 && chan_md5_set(ch, s, &to) == 0;
	if (ch->md5 && !md5)
		chan_log_limited(ch, CHAN_LOG_CONNECT, 0, "sync connection to %s: TCP_MD5SIG: "
		    "%s; connecting unsigned (the peer will drop it)", a, strerror(errno));
	if (connect(s, (struct sockaddr *)&to, ch->salen) == -1 && errno != EINPROGRESS) {
		chan_log_limited(ch, CHAN_LOG_CONNECT, 1, "cannot connect to peer %s at %s: %s",
		    ch->conf.peer_name, a, strerror(errno));
		close(s);
		chan_retry(ch, path, true);
		return;
	}
	if (conn_new(ch, s, true, path, &to, md5) == NULL)
		chan_retry(ch, path, true);
}

/*
 * Schedules the connector's next attempt after an outbound connection on
 * path ended. failed: it never came up, so try the next path, at once
 * within a round and after the backoff when all paths were tried; after a
 * connection that was up, the same path after the backoff (reset to
 * CHAN_BACKOFF_MIN_MS by the handshake). Each wait doubles the next, up to
 * CHAN_BACKOFF_MAX_MS.
 */
static void
chan_retry(struct channel *ch, int path, bool failed)
{
	struct timeval tv;
	int delay = ch->backoff_ms;

	if (!ch->connector || !ch->started)
		return;
	ch->next_path = path;
	if (failed) {
		ch->next_path = (path + 1) % ch->conf.npeer_addr;
		if (ch->next_path != 0)
			delay = 0;
	}
	if (delay > 0) {
		ch->backoff_ms *= 2;
		if (ch->backoff_ms > CHAN_BACKOFF_MAX_MS)
			ch->backoff_ms = CHAN_BACKOFF_MAX_MS;
	}
	chan_tv(&tv, delay);
	evtimer_add(ch->ev_retry, &tv);
}

/*
 * A restarted peer is listening again long before a backoff of up to
 * CHAN_BACKOFF_MAX_MS runs out: its first advert is the cue to connect,
 * which starts the bulk sync that preemption waits for. A connect still
 * waiting for its SYN-ACK is dropped for a new one: while no lbd listened
 * there, the peer's kernel could not answer our signed SYN (it signs a
 * reset only with a listener's key), so that attempt would wait for
 * TCP's SYN retransmission (1 s, then 3 s).
 */
void
channel_kick(struct channel *ch)
{
	struct timeval tv;
	int i;

	if (ch == NULL || !ch->connector || !ch->started || ch->up != NULL)
		return;
	for (i = ch->npending - 1; i >= 0; i--)
		if (ch->pending[i]->state == CHAN_CONN_CONNECTING)
			conn_close(ch->pending[i], false, "superseded: the peer is back, "
			    "connecting anew");
	if (ch->npending > 0)
		return;		/* a handshake is under way */
	/*
	 * Not at once: lbd starts advertising a moment before its channel
	 * listens, and a SYN that arrives before listen() is dropped
	 * unanswered, costing CHAN_CONNECT_MS.
	 */
	ch->backoff_ms = CHAN_BACKOFF_MIN_MS;
	ch->next_path = 0;
	chan_tv(&tv, CHAN_KICK_DELAY_MS);
	evtimer_add(ch->ev_retry, &tv);
}

static void
chan_on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct channel *ch = arg;

	if (ch->up == NULL && ch->npending == 0)
		chan_connect(ch);
}

static void
chan_on_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct channel *ch = arg;
	struct sockaddr_storage from;
	struct timeval tv;
	socklen_t flen;
	char a[CHAN_ADDR_MAX];
	int i, s;

	for (i = 0; i < CHAN_ACCEPT_BUDGET; i++) {
		flen = sizeof(from);
		s = accept4(lfd, (struct sockaddr *)&from, &flen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (s == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			/* Out of descriptors: the listener would wake us in a loop. */
			chan_log_limited(ch, CHAN_LOG_IO, 0, "sync channel: accept: %s; pausing "
			    "accepts for %d ms", strerror(errno), CHAN_ACCEPT_PAUSE_MS);
			event_del(ch->ev_accept);
			chan_tv(&tv, CHAN_ACCEPT_PAUSE_MS);
			evtimer_add(ch->ev_accept_pause, &tv);
			return;
		}
		sockaddr_port_str((const struct sockaddr *)&from, a, sizeof(a));
		if (ch->connector) {
			ch->st.rejected++;
			chan_log_limited(ch, CHAN_LOG_REJECTED, 0, "sync connection from %s "
			    "refused: this node connects to its peer (its node address is the "
			    "lower); check that both nodes name the same node and peer "
			    "addresses", a);
			close(s);
			continue;
		}
		if (!chan_is_peer(ch, &from)) {
			ch->st.rejected++;
			chan_log_limited(ch, CHAN_LOG_REJECTED, 0, "sync connection from %s "
			    "refused: not an address of peer %s", a, ch->conf.peer_name);
			close(s);
			continue;
		}
		/* Keyed for every peer address: a connection accepted from one is signed. */
		conn_new(ch, s, false, -1, &from, ch->md5);
	}
}

static void
chan_on_accept_pause(evutil_socket_t fd, short what, void *arg)
{
	struct channel *ch = arg;

	event_add(ch->ev_accept, NULL);
}

/* Keepalives for the up connection; closes silent ones and stuck handshakes. */
static void
chan_on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct channel *ch = arg;
	struct chan_conn *c;
	uint64_t now = clock_now_ms(), dead = (uint64_t)ch->conf.dead_ms;
	int i;

	/*
	 * A connect gets no answer at all while no lbd listens at the peer
	 * (its kernel cannot sign a reset without a listener's key): give up
	 * after CHAN_CONNECT_MS and retry, rather than wait for TCP's SYN
	 * retransmissions; any sane RTT between the nodes is far below it.
	 */
	for (i = ch->npending - 1; i >= 0; i--) {
		c = ch->pending[i];
		if (c->state == CHAN_CONN_CONNECTING && now - c->started_ms >=
		    (uint64_t)(ch->conf.dead_ms < CHAN_CONNECT_MS ? ch->conf.dead_ms :
		    CHAN_CONNECT_MS))
			conn_fail(c, CHAN_LOG_CONNECT, "connect: no answer within %d ms (peer "
			    "lbd not running, or it drops our TCP_MD5SIG signature: different "
			    "cluster keys, or one kernel without CONFIG_TCP_MD5SIG; the kernel "
			    "counts TcpExtTCPMD5Failure in nstat)", CHAN_CONNECT_MS);
		else if (now - c->started_ms >= dead)
			conn_fail(c, CHAN_LOG_CONNECT, "handshake not finished within %d ms",
			    ch->conf.dead_ms);
	}
	if ((c = ch->up) == NULL)
		return;
	if (now - c->last_rx_ms >= dead) {
		conn_close(c, false, "peer silent for %llu ms (no frame, not even a "
		    "keepalive)", (unsigned long long)(now - c->last_rx_ms));
		return;
	}
	/* Half a tick of slack: timers fire a little early or late. */
	if (now - c->last_ka_ms + (uint64_t)ch->tick_ms / 2 >= (uint64_t)ch->conf.keepalive_ms)
		conn_send_keepalive(c, now);
}

/*
 * Wraps a connected or accepted socket: events, buffers, a fresh nonce.
 * Inbound ones send their hello at once; outbound ones once connected.
 * Returns the connection, or NULL (socket closed, logged).
 */
static struct chan_conn *
conn_new(struct channel *ch, int fd, bool outbound, int path,
    const struct sockaddr_storage *addr, bool md5)
{
	struct chan_conn *c;
	struct chan_why why;
	int on = 1;

	if (ch->npending == CHAN_PENDING_MAX) {
		/* The oldest handshake goes: the peer's latest attempt must get through. */
		conn_fail(ch->pending[0], CHAN_LOG_IO, "too many connections in handshake");
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		goto nomem;
	c->ch = ch;
	c->fd = fd;
	c->outbound = outbound;
	c->md5 = md5;
	c->path = path;
	c->state = outbound ? CHAN_CONN_CONNECTING : CHAN_CONN_HELLO;
	sockaddr_port_str((const struct sockaddr *)addr, c->text, sizeof(c->text));
	c->started_ms = c->last_rx_ms = c->last_ka_ms = clock_now_ms();
	randombytes_buf(c->nonce, sizeof(c->nonce));
	crypto_kx_keypair(c->kx_pk, c->kx_sk);
	if ((c->in = evbuffer_new()) == NULL || (c->out = evbuffer_new()) == NULL ||
	    (c->ev_read = event_new(ch->base, fd, EV_READ | EV_PERSIST, conn_on_read, c)) ==
	    NULL || (c->ev_write = event_new(ch->base, fd, EV_WRITE | EV_PERSIST,
	    conn_on_write, c)) == NULL ||
	    (c->ev_more = event_new(ch->base, -1, 0, conn_on_more, c)) == NULL)
		goto nomem;
	/* Frames are small and latency matters (keepalives, deletes): no Nagle. */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) == -1)
		chan_log(ch, 2, "sync connection %s: TCP_NODELAY: %s", c->text, strerror(errno));
	ch->pending[ch->npending++] = c;
	if (outbound) {
		event_add(c->ev_write, NULL);	/* connect() finished, either way */
	} else {
		event_add(c->ev_read, NULL);
		if (conn_verdict(c, conn_send_hello(c, &why), &why) == -1)
			return NULL;
	}
	return c;
nomem:
	chan_log_limited(ch, CHAN_LOG_IO, 0, "sync connection %s: out of memory",
	    c != NULL ? c->text : "");
	if (c != NULL)
		conn_free(c);
	else
		close(fd);
	return NULL;
}

/* Releases c; it must be unlinked from the channel already (or never linked). */
static void
conn_free(struct chan_conn *c)
{
	if (c->ev_read != NULL)
		event_free(c->ev_read);
	if (c->ev_write != NULL)
		event_free(c->ev_write);
	if (c->ev_more != NULL)
		event_free(c->ev_more);
	if (c->in != NULL)
		evbuffer_free(c->in);
	if (c->out != NULL)
		evbuffer_free(c->out);
	if (c->fd != -1)
		close(c->fd);
	sodium_memzero(c, sizeof(*c));
	free(c);
}

/*
 * Closes and frees c. If it was up, logs and reports down(reason,
 * peer_died); if it was ours, the connector tries again.
 */
static void
conn_close(struct chan_conn *c, bool peer_died, const char *fmt, ...)
{
	struct channel *ch = c->ch;
	bool was_up = c->state == CHAN_CONN_UP, outbound = c->outbound;
	char reason[HASYNC_MSG_MAX / 2], text[CHAN_ADDR_MAX];
	int i, path = c->path;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	memcpy(text, c->text, sizeof(text));
	/* Closing on purpose: say so, or the peer would take our EOF for a death. */
	if (was_up && !peer_died && !c->bye_received)
		conn_send_bye(c, reason);
	if (ch->up == c) {
		ch->up = NULL;
	} else {
		for (i = 0; i < ch->npending; i++) {
			if (ch->pending[i] == c) {
				memmove(&ch->pending[i], &ch->pending[i + 1],
				    (size_t)(ch->npending - i - 1) * sizeof(ch->pending[0]));
				ch->npending--;
				break;
			}
		}
	}
	conn_free(c);
	if (was_up) {
		chan_log(ch, 0, "sync channel with %s (%s) down: %s%s", ch->conf.peer_name, text,
		    reason, peer_died ? " - peer process gone" : "");
		if (ch->cb.down != NULL)
			ch->cb.down(ch->arg, reason, peer_died);
	} else {
		chan_log(ch, 2, "sync connection %s closed: %s", text, reason);
	}
	if (outbound && ch->up == NULL)
		chan_retry(ch, path, !was_up);
}

/* A frame or handshake failure: logged rate-limited unless c was up, then closed. */
static void
conn_fail(struct chan_conn *c, enum chan_logkind kind, const char *fmt, ...)
{
	struct channel *ch = c->ch;
	char reason[HASYNC_MSG_MAX / 2];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	if (c->state != CHAN_CONN_UP)
		chan_log_limited(ch, kind, kind == CHAN_LOG_CONNECT ? 1 : 0, "sync connection "
		    "%s %s: %s; closed", c->outbound ? "to" : "from", c->text, reason);
	conn_close(c, false, "%s", reason);
}

/*
 * Carries out what chancrypt.c made of a frame or of our hello (why: for
 * CHAN_BYE and CHAN_FAIL).
 * Returns: 0 the connection goes on, -1 it was closed.
 */
static int
conn_verdict(struct chan_conn *c, enum chan_verdict v, const struct chan_why *why)
{
	switch (v) {
	case CHAN_TAKEN:
		return 0;
	case CHAN_CONFIRMED:
		conn_become_up(c);
		return 0;
	case CHAN_BYE:
		conn_close(c, false, "%s", why->text);
		return -1;
	case CHAN_FAIL:
		break;
	}
	conn_fail(c, why->kind, "%s", why->text);
	return -1;
}

/* ---------------------------------------------------------------- output */

static void
conn_on_write(evutil_socket_t fd, short what, void *arg)
{
	struct chan_conn *c = arg;
	struct chan_why why;
	socklen_t len = sizeof(int);
	int err = 0;

	if (c->state == CHAN_CONN_CONNECTING) {
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
			err = errno;
		if (err != 0) {
			conn_fail(c, CHAN_LOG_CONNECT, "connect: %s", strerror(err));
			return;
		}
		c->state = CHAN_CONN_HELLO;
		event_add(c->ev_read, NULL);
		if (conn_verdict(c, conn_send_hello(c, &why), &why) == -1)
			return;
	}
	if (conn_write(c) == 0)
		return;
	if (errno == EPIPE || errno == ECONNRESET)
		conn_close(c, c->state == CHAN_CONN_UP && c->md5, "connection reset by the peer "
		    "(its lbd stopped or died)%s", c->md5 ? "" : CHAN_UNSIGNED_NOTE);
	else
		conn_fail(c, CHAN_LOG_IO, "write: %s", strerror(errno));
}

/*
 * Writes up to CHAN_TX_BYTES of the output queue; stops watching for
 * writability once it is empty.
 * Returns: 0 written or would block, -1 failed (errno set).
 */
static int
conn_write(struct chan_conn *c)
{
	struct evbuffer_iovec v[CHAN_IOV_MAX];
	struct iovec iov[CHAN_IOV_MAX];
	struct msghdr msg;
	size_t done = 0;
	ssize_t n;
	int i, nv;

	while (done < CHAN_TX_BYTES && evbuffer_get_length(c->out) > 0) {
		nv = evbuffer_peek(c->out, (ev_ssize_t)(CHAN_TX_BYTES - done), NULL, v,
		    CHAN_IOV_MAX);
		if (nv > CHAN_IOV_MAX)
			nv = CHAN_IOV_MAX;
		for (i = 0; i < nv; i++) {
			iov[i].iov_base = v[i].iov_base;
			iov[i].iov_len = v[i].iov_len;
		}
		memset(&msg, 0, sizeof(msg));
		msg.msg_iov = iov;
		msg.msg_iovlen = (size_t)nv;
		/* MSG_NOSIGNAL: a dead peer is an error to handle, not SIGPIPE. */
		n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -1;
		}
		evbuffer_drain(c->out, (size_t)n);
		c->ch->st.bytes_sent += (uint64_t)n;
		done += (size_t)n;
	}
	if (evbuffer_get_length(c->out) == 0)
		event_del(c->ev_write);
	return 0;
}



/*
 * Best effort, just before closing: queue a Bye and write what the socket
 * takes now. If a backlog keeps it from going out, the peer most likely
 * sees a truncated frame, which is not a death either.
 */
static void
conn_send_bye(struct chan_conn *c, const char *reason)
{
	Lbd__SyncFrame f = LBD__SYNC_FRAME__INIT;
	Lbd__Bye b = LBD__BYE__INIT;

	b.reason = (char *)reason;
	f.body_case = LBD__SYNC_FRAME__BODY_BYE;
	f.bye = &b;
	if (conn_send(c, &f, lbd__sync_frame__get_packed_size(&f)) == 0)
		(void)conn_write(c);
}

static void
conn_send_keepalive(struct chan_conn *c, uint64_t now)
{
	struct channel *ch = c->ch;
	Lbd__SyncFrame f = LBD__SYNC_FRAME__INIT;
	Lbd__Keepalive k = LBD__KEEPALIVE__INIT;

	c->last_ka_ms = now;
	/* A full queue is traffic enough: the peer will not think us silent. */
	if (evbuffer_get_length(c->out) >= ch->conf.max_queue_bytes)
		return;
	/* Wall clock, so the peer can estimate replication lag. */
	k.sent_ms = clock_wall_ns() / 1000000;
	f.body_case = LBD__SYNC_FRAME__BODY_KEEPALIVE;
	f.keepalive = &k;
	if (conn_send(c, &f, lbd__sync_frame__get_packed_size(&f)) == -1)
		chan_log_limited(ch, CHAN_LOG_IO, 0, "sync channel: cannot queue a keepalive "
		    "(out of memory)");
}

/* ---------------------------------------------------------------- input */

static void
conn_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct chan_conn *c = arg;
	int n;

	n = evbuffer_read(c->in, fd, CHAN_READ_CHUNK);
	if (n == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		c->eof = true;
		c->rd_errno = errno;
	} else if (n == 0) {
		c->eof = true;
	} else {
		c->ch->st.bytes_received += (uint64_t)n;
	}
	if (c->eof)
		event_del(c->ev_read);
	conn_process(c);
}

/* The rest of a backlog that conn_process left for a later turn of the loop. */
static void
conn_on_more(evutil_socket_t fd, short what, void *arg)
{
	struct chan_conn *c = arg;

	if (conn_process(c) == CHAN_RX_DONE && !c->eof)
		event_add(c->ev_read, NULL);
}

/*
 * Takes the complete frames in c->in, at most CHAN_RX_FRAMES or
 * CHAN_RX_BYTES per call so the heartbeat and relays keep running; then,
 * if the read side ended, closes c saying why.
 * Returns what is left (see enum chan_rx_result).
 */
static enum chan_rx_result
conn_process(struct chan_conn *c)
{
	struct channel *ch = c->ch;
	struct chan_why why;
	uint8_t hdr[CHAN_LEN_BYTES], *p;
	size_t have, taken = 0, max;
	uint32_t len;
	int frames = 0, rc;

	for (;;) {
		have = evbuffer_get_length(c->in);
		if (have < CHAN_LEN_BYTES)
			break;
		evbuffer_copyout(c->in, hdr, sizeof(hdr));
		len = chan_get_be32(hdr);
		/* Before authentication only small frames: strangers get no big buffers. */
		max = c->state == CHAN_CONN_UP ? CHANNEL_FRAME_MAX : CHAN_HS_FRAME_MAX;
		if (len > max) {
			ch->st.oversized++;
			conn_fail(c, CHAN_LOG_OVERSIZED, "frame length %u over the limit of %zu "
			    "bytes", len, max);
			return CHAN_RX_CLOSED;
		}
		if (len == 0) {
			ch->st.malformed++;
			conn_fail(c, CHAN_LOG_MALFORMED, "empty frame");
			return CHAN_RX_CLOSED;
		}
		if (have < CHAN_LEN_BYTES + len)
			break;
		if (frames >= CHAN_RX_FRAMES || taken >= CHAN_RX_BYTES) {
			/* A backlog: let the loop run other events, then go on. */
			event_del(c->ev_read);
			event_active(c->ev_more, EV_TIMEOUT, 1);
			return CHAN_RX_MORE;
		}
		if ((p = evbuffer_pullup(c->in, CHAN_LEN_BYTES + len)) == NULL) {
			conn_fail(c, CHAN_LOG_IO, "out of memory");
			return CHAN_RX_CLOSED;
		}
		if (p[CHAN_LEN_BYTES] == CHAN_KIND_HELLO) {
			rc = conn_verdict(c, conn_rx_hello(c, p + CHAN_LEN_BYTES, len, &why), &why);
		} else if (p[CHAN_LEN_BYTES] == CHAN_KIND_SEALED) {
			rc = conn_verdict(c, conn_rx_sealed(c, p, len, &why), &why);
		} else {
			ch->st.malformed++;
			conn_fail(c, CHAN_LOG_MALFORMED, "unknown frame kind %u (not an lbd sync "
			    "channel, or another version)", p[CHAN_LEN_BYTES]);
			return CHAN_RX_CLOSED;
		}
		if (rc == -1)
			return CHAN_RX_CLOSED;
		evbuffer_drain(c->in, CHAN_LEN_BYTES + len);
		frames++;
		taken += CHAN_LEN_BYTES + len;
	}
	if (!c->eof)
		return CHAN_RX_DONE;

	/* The read side ended; complete frames before it were taken above. */
	if (c->rd_errno == ECONNRESET) {
		conn_close(c, c->state == CHAN_CONN_UP && c->md5, "connection reset by the "
		    "peer (its lbd stopped or died)%s", c->md5 ? "" : CHAN_UNSIGNED_NOTE);
	} else if (c->rd_errno != 0) {
		conn_fail(c, CHAN_LOG_IO, "read: %s", strerror(c->rd_errno));
	} else if (evbuffer_get_length(c->in) > 0) {
		ch->st.malformed++;
		conn_fail(c, CHAN_LOG_MALFORMED, "connection closed in the middle of a frame "
		    "(%zu bytes of it): truncated", evbuffer_get_length(c->in));
	} else if (c->state == CHAN_CONN_UP) {
		conn_close(c, c->md5, "peer closed the connection (its lbd stopped or died)%s",
		    c->md5 ? "" : CHAN_UNSIGNED_NOTE);
	} else {
		conn_fail(c, CHAN_LOG_AUTH, "peer closed the connection during the handshake "
		    "(it refused us: see its log; wrong cluster key or node name?)");
	}
	return CHAN_RX_CLOSED;
}




/* c finished its handshake: it replaces any older connection and is the channel. */
static void
conn_become_up(struct chan_conn *c)
{
	struct channel *ch = c->ch;
	uint64_t now = clock_now_ms();
	int i;

	if (ch->up != NULL)
		conn_close(ch->up, false, "replaced by a new connection from the peer");
	for (i = 0; i < ch->npending; i++) {
		if (ch->pending[i] == c) {
			memmove(&ch->pending[i], &ch->pending[i + 1],
			    (size_t)(ch->npending - i - 1) * sizeof(ch->pending[0]));
			ch->npending--;
			break;
		}
	}
	ch->up = c;
	c->state = CHAN_CONN_UP;
	c->last_ka_ms = now;
	if (ch->was_up)
		ch->st.reconnects++;
	if (ch->st.peer_boot_id != 0 && ch->st.peer_boot_id != c->peer_boot)
		chan_log(ch, 1, "peer %s restarted (new boot id)", ch->conf.peer_name);
	ch->st.peer_boot_id = c->peer_boot;
	ch->was_up = true;
	ch->up_at_ms = now;
	ch->backoff_ms = CHAN_BACKOFF_MIN_MS;
	evtimer_del(ch->ev_retry);
	chan_log(ch, 1, "sync channel with %s (%s, %s) up; handshake took %llu ms",
	    ch->conf.peer_name, c->text, c->outbound ? "outbound" : "inbound",
	    (unsigned long long)(now - c->started_ms));
	if (ch->cb.up != NULL)
		ch->cb.up(ch->arg);
}

/* ---------------------------------------------------------------- API */

int
channel_send(struct channel *ch, const struct Lbd__SyncFrame *f)
{
	struct chan_conn *c = ch->up;
	size_t plen;

	if (c == NULL || f == NULL)
		return -1;
	/* Hello and Bye are the channel's own: the peer would close on them. */
	if (f->body_case == LBD__SYNC_FRAME__BODY_HELLO ||
	    f->body_case == LBD__SYNC_FRAME__BODY_BYE) {
		chan_log_limited(ch, CHAN_LOG_IO, 0, "channel_send: Hello and Bye frames are "
		    "the channel's own: not sent");
		return -1;
	}
	plen = lbd__sync_frame__get_packed_size(f);
	if (plen > CHAN_PLAIN_MAX) {
		chan_log_limited(ch, CHAN_LOG_IO, 0, "sync frame of %zu bytes exceeds the "
		    "channel's %zu: not sent (split the batch)", plen, (size_t)CHAN_PLAIN_MAX);
		return -1;
	}
	if (evbuffer_get_length(c->out) + CHAN_LEN_BYTES + CHAN_SEAL_OVERHEAD + plen >
	    ch->conf.max_queue_bytes) {
		ch->st.queue_full++;
		return -1;
	}
	if (conn_send(c, f, plen) == -1) {
		chan_log_limited(ch, CHAN_LOG_IO, 0, "sync channel: out of memory");
		return -1;
	}
	return 0;
}

void
channel_flush(struct channel *ch)
{
	struct chan_conn *c = ch->up;

	/* A failure leaves the bytes queued: the write event reports it. */
	if (c != NULL && evbuffer_get_length(c->out) > 0)
		(void)conn_write(c);
}

size_t
channel_queued(const struct channel *ch)
{
	return ch->up != NULL ? evbuffer_get_length(ch->up->out) : 0;
}

void
channel_get_status(struct channel *ch, struct channel_status *st)
{
	int i;

	*st = ch->st;
	st->tcp_md5 = ch->md5;
	st->up_since_ms = -1;
	if (ch->up != NULL) {
		st->state = "up";
		st->up_since_ms = (int64_t)(clock_now_ms() - ch->up_at_ms);
		return;
	}
	st->state = "down";
	for (i = 0; i < ch->npending; i++) {
		if (ch->pending[i]->state != CHAN_CONN_CONNECTING) {
			st->state = "handshake";
			return;
		}
		st->state = "connecting";
	}
}
