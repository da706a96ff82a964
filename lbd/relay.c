/*
 * relay.c - the relay's connections: each accepted (or adopted) client
 * gets a backend picked and connected, is counted while it lives, and is
 * logged, uncounted and freed when it ends; workers (relay_worker.c) move
 * its bytes (relay_pump.c).
 *
 * Threads: the main thread accepts and picks; workers move bytes.
 * - The main thread (lbd->base, which also runs heartbeats, replication,
 *   checks and the control socket) does relay_accept up to and including
 *   connect(2): backend pick, sticky entry, counters, backend socket; and
 *   relay_adopt's setup. Then it hands the connection to a worker.
 * - When a connection ends, its worker posts it with a reason code and
 *   errno; the main thread logs, counts (connect failures, active) and
 *   frees it (relay_finish). A service or backend thus outlives its
 *   connections in workers: a reload reuses a backend slot only when its
 *   active count is 0.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relay_int.h"

#ifndef IP_LOCAL_PORT_RANGE
#define IP_LOCAL_PORT_RANGE	51	/* Linux 6.3+: a socket's own ephemeral port range (linux/in.h) */
#endif
#define RELAY_PORTS_FILE	"/proc/sys/net/ipv4/ip_local_port_range" /* the kernel's ephemeral ports */

static uint32_t		 relay_ports;		/* IP_LOCAL_PORT_RANGE of VIP-sourced backend sockets; 0: none */
static bool		 relay_splice_on = true; /* false: copy mode for new connections */
static bool		 relay_stopping;	/* relay_shutdown: no room reported */
static relay_room_fn	*relay_room;		/* told of max_connections reached and left; NULL: nobody */
static uint64_t		 relay_nactive;		/* open connections, all services; atomic: read by status and metrics */
static struct log_limit	 relay_main_limit;	/* the main thread's rate-limited lines */
static struct log_limit	 relay_cap_limit;	/* the "over max_connections_per_client" lines */

/* ---------------------------------------------------------------- closing */

static const char *
relay_why_str(enum relay_why why)
{
	switch (why) {
	case RELAY_WHY_CLOSED:
		return "closed";
	case RELAY_WHY_CLIENT_RESET:
		return "client reset";
	case RELAY_WHY_BACKEND_RESET:
		return "backend reset";
	case RELAY_WHY_SHUTDOWN_FAILED:
		return "shutdown failed";
	case RELAY_WHY_NOMEM:
		return "out of memory";
	case RELAY_WHY_EPOLL:
		return "epoll_ctl failed";
	case RELAY_WHY_IDLE:
		return "idle timeout";
	case RELAY_WHY_CONNECT:
	case RELAY_WHY_CONNECT_TIMEOUT:
		return "connect failed";
	case RELAY_WHY_STOPPING:
		return "shutting down";
	case RELAY_WHY_STALE:
		return "stale after a rebuild";
	}
	return "unknown";
}

/*
 * Main thread: c ended (c->why, c->err; detail, when not NULL, says why a
 * connect failed before the handoff). Logs it, closes what the worker did
 * not, and the counters forget it; c is freed.
 */
static void
relay_finish(struct conn *c, const char *detail)
{
	struct service	*svc = c->svc;
	struct backend	*be = c->be;
	char		 ca[ADDR_STRLEN], ba[ADDR_STRLEN], reason[64];

	switch (c->why) {
	case RELAY_WHY_CONNECT_TIMEOUT:
		snprintf(reason, sizeof(reason), "no answer within %d ms", c->connect_ms);
		detail = reason;
		/* FALLTHROUGH */
	case RELAY_WHY_CONNECT:
		be->connect_failures++;
		log_limited(&relay_main_limit, clock_now_ms(), RELAY_LOG_INTERVAL_MS,
		    LOG_LEVEL_INFO, "%s: connect to %s failed: %s", be->conf.name,
		    ip_str(&c->back.dst, ba, sizeof(ba)),
		    detail != NULL ? detail : strerror(c->err));
		log_debug("%s: client %s closed: backend %s unreachable", svc->conf.name,
		    ip_str(&c->front.src, ca, sizeof(ca)), be->conf.name);
		break;
	case RELAY_WHY_NOMEM:
		errno = c->err;
		log_warn("%s: copy mode for a connection failed", svc->conf.name);
		break;
	case RELAY_WHY_EPOLL:
		errno = c->err;
		log_warn("%s: cannot watch a connection", svc->conf.name);
		break;
	default:
		break;
	}
	log_debug("%s: connection from port %u closed (%s), %llu bytes in, %llu out",
	    svc->conf.name, c->front.sport, relay_why_str(c->why),
	    (unsigned long long)c->dir[DIR_C2B].bytes,
	    (unsigned long long)c->dir[DIR_B2C].bytes);
	mirror_conn_free(c);		/* ended before the handoff: no worker freed it */
	if (c->why == RELAY_WHY_STALE) {
		/* Rebuilt, and its far ends had moved on: each reset at the number it expects. */
		kick_socket(c->cfd);
		kick_socket(c->bfd);
		c->cfd = c->bfd = -1;
	}
	if (c->cfd != -1)		/* ended before the handoff */
		close(c->cfd);
	if (c->bfd != -1)
		close(c->bfd);
	if (c->watch & CONN_COUNTED)
		clients_del(svc->clients, &c->front.src);
	TAILQ_REMOVE(&svc->conns, c, entry);
	be->active--;
	svc->active--;
	__atomic_sub_fetch(&relay_nactive, 1, __ATOMIC_RELAXED);
	fds_use(-2);
	free(c);
	if (!relay_stopping && svc->active < (uint64_t)svc->conf.max_connections &&
	    relay_room != NULL)
		relay_room(svc, true);
}

/* ---------------------------------------------------------------- connections */

static void
relay_tuple(struct conn_tuple *t, const struct sockaddr *src, const struct sockaddr *dst)
{
	if (src != NULL) {
		ip_from_sockaddr(&t->src, src);
		t->sport = addr_port(src);
	}
	if (dst != NULL) {
		ip_from_sockaddr(&t->dst, dst);
		t->dport = addr_port(dst);
	}
}

/* A zeroed connection of svc to be on the list and in the counters. */
static struct conn *
relay_conn_new(struct service *svc, struct backend *be, int cfd)
{
	struct conn		*c;
	int			 i;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->svc = svc;
	c->be = be;
	c->cfd = cfd;
	c->bfd = -1;
	/* What the worker needs of svc->conf, which a reload rewrites in place. */
	c->connect_ms = svc->conf.connect_timeout_ms;
	c->idle_s = svc->conf.idle_timeout_s;
	/*
	 * Directions start not readable: adding a socket to epoll reports the
	 * state it is in, so a source with data gets its read edge anyway, and
	 * a source without spares an EAGAIN system call.
	 */
	for (i = 0; i < 2; i++)
		c->dir[i].pipe_r = c->dir[i].pipe_w = -1;
	c->created_ms = c->last_ms = clock_now_ms();
	TAILQ_INSERT_TAIL(&svc->conns, c, entry);
	be->active++;
	be->total++;
	svc->active++;
	svc->total++;
	__atomic_add_fetch(&relay_nactive, 1, __ATOMIC_RELAXED);
	fds_use(2);
	if (svc->conf.max_connections > 0 &&
	    svc->active >= (uint64_t)svc->conf.max_connections && relay_room != NULL)
		relay_room(svc, false);	/* more clients wait in the kernel backlog */
	return c;
}

/*
 * Main thread: counts c for its client (c->front.src) in the service's
 * table, made on the first connection. Every connection that gets here is
 * uncounted again by relay_finish, the one end of every connection, so the
 * count is exact. Out of memory, c is not counted (and not refused).
 */
static void
relay_client_hold(struct conn *c)
{
	struct service	*svc = c->svc;

	if ((svc->clients == NULL && (svc->clients = clients_new()) == NULL) ||
	    clients_add(svc->clients, &c->front.src) == -1) {
		log_limited(&relay_main_limit, clock_now_ms(), RELAY_LOG_INTERVAL_MS,
		    LOG_LEVEL_INFO, "%s: no memory for the per-client "
		    "connection count", svc->conf.name);
		return;
	}
	c->watch |= CONN_COUNTED;
}

/*
 * Main thread: may client ip open one more connection to svc?
 * Returns: true, or false with the refusal counted and logged (rate-limited).
 */
static bool
relay_client_allowed(struct service *svc, const struct lbd_ip *ip)
{
	int		 cap = svc->conf.max_connections_per_client;
	uint32_t	 n;
	char		 a[ADDR_STRLEN];

	if (cap <= 0 || (n = clients_count(svc->clients, ip)) < (uint32_t)cap)
		return true;
	svc->refused_per_client++;
	log_limited(&relay_cap_limit, clock_now_ms(), RELAY_LOG_INTERVAL_MS,
	    LOG_LEVEL_INFO, "%s: client %s already has %u connections "
	    "open (max_connections_per_client %d): connection refused", svc->conf.name,
	    ip_str(ip, a, sizeof(a)), n, cap);
	return false;
}

/* Puts both directions of c in copy mode when splice is turned off. */
static void
relay_conn_mode(struct conn *c)
{
	if (!relay_splice_on)
		c->dir[DIR_C2B].flags = c->dir[DIR_B2C].flags = DIR_COPY;
}

/* Main thread: the backend connect failed before the handoff (reason says how). */
static void
relay_connect_failed(struct conn *c, const char *reason)
{
	c->why = RELAY_WHY_CONNECT;
	relay_finish(c, reason);
}

/*
 * Both nodes' backend connections leave from the VIP. In a planned
 * handover the old MASTER still serves its connections while the new one
 * opens more; were the new one to pick the port of a live one to the same
 * backend and port, the backend would answer its SYN with a challenge ACK,
 * the new MASTER's kernel would answer that with a RST carrying exactly
 * the sequence number the backend expects, and the old MASTER's connection
 * would die (seen in a namespace test). So each node takes its own half of
 * the ephemeral range: the lower node address the lower half. Sets
 * relay_ports (0: standalone, or no range to split); a reload may turn a
 * service's source to the VIP, so a pair always has it.
 */
static void
relay_ports_split(const struct lbd_config *conf)
{
	struct lbd_ip	 me, peer;
	unsigned	 lo, hi, mid;
	FILE		*f;
	int		 n;

	relay_ports = 0;
	if (!conf->has_peer || conf->npeer_addr == 0)
		return;
	if ((f = fopen(RELAY_PORTS_FILE, "r")) == NULL) {
		log_warn("relay: %s", RELAY_PORTS_FILE);
		return;
	}
	n = fscanf(f, "%u %u", &lo, &hi);
	fclose(f);
	if (n != 2 || lo >= hi || hi > 65535) {
		log_warnx("relay: cannot read the ephemeral port range from %s", RELAY_PORTS_FILE);
		return;
	}
	mid = lo + (hi - lo) / 2;
	ip_from_sockaddr(&me, (const struct sockaddr *)&conf->node_addr);
	ip_from_sockaddr(&peer, (const struct sockaddr *)&conf->peer_addr[0]);
	if (memcmp(&me, &peer, sizeof(me)) < 0)
		hi = mid;
	else
		lo = mid + 1;
	relay_ports = (uint32_t)lo | (uint32_t)hi << 16;
	log_info("relay: backend connections from the VIP use local ports %u-%u "
	    "(this node's half of %s; %s uses the other)", lo, hi, RELAY_PORTS_FILE,
	    conf->peer_name);
}

/*
 * Gives a VIP-sourced backend socket this node's half of the ephemeral
 * ports. A kernel without IP_LOCAL_PORT_RANGE gets one warning with the
 * remedy, then no more tries.
 */
static void
relay_ports_set(int fd)
{
	if (relay_ports == 0 || setsockopt(fd, IPPROTO_IP, IP_LOCAL_PORT_RANGE,
	    &relay_ports, sizeof(relay_ports)) == 0)
		return;
	log_warn("relay: cannot give backend sockets this node's half of the "
	    "ephemeral ports (IP_LOCAL_PORT_RANGE needs Linux 6.3); give the two "
	    "nodes disjoint net.ipv4.ip_local_port_range instead "
	    "(deploy/lbd.sysctl.conf), or a planned handover can reset a "
	    "connection the old MASTER drains when a new one picks its port");
	relay_ports = 0;
}

/*
 * A non-blocking socket for the backend connection, bound to the service's
 * source address (port chosen at connect time). Returns the fd, or -1 with
 * *why set.
 */
static int
relay_backend_socket(struct service *svc, struct backend *be, const char **why)
{
	struct lbd_config	*conf = svc->lbd->conf;
	const struct sockaddr_storage *src;
	int			 fd, one = 1, saved;

	src = svc->conf.source == SOURCE_VIP ? &conf->vip_addr : &conf->node_addr;
	if ((fd = socket(be->conf.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		*why = "socket() failed";
		return -1;
	}
	/*
	 * Bound to an address, a socket normally gets its port at bind() and
	 * that port is then unusable for every destination: with
	 * IP_BIND_ADDRESS_NO_PORT the port is picked at connect() from the full
	 * 4-tuple, so one source address serves far more than 28k connections.
	 * No IP_FREEBIND: a client just reached us on the VIP, so the VIP is
	 * local (if it left since, bind fails and the client is closed, which
	 * is right for a node that lost it); the node address always is.
	 * TCP_NODELAY: a relay must not hold back the small FTP control replies
	 * it forwards. Each option is one system call per connection; the
	 * port range (relay_ports_split) one more in a pair.
	 */
	(void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (svc->conf.source == SOURCE_VIP)
		relay_ports_set(fd);
	if (bind(fd, (const struct sockaddr *)src, addr_len((const struct sockaddr *)src))
	    == -1) {
		*why = svc->conf.source == SOURCE_VIP ?
		    "cannot bind the VIP as source address" :
		    "cannot bind the node address as source address";
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

void
relay_accept(struct service *svc, int cfd, const struct sockaddr *client,
    const struct sockaddr *local)
{
	struct sockaddr_storage	 dst;
	struct lbd_ip		 ip;
	struct backend		*be;
	struct conn		*c;
	const char		*why;
	char			 a[ADDR_STRLEN], reason[128];

	ip_from_sockaddr(&ip, client);
	/* Before the pick: a refused connection refreshes no sticky entry. */
	if (!relay_client_allowed(svc, &ip)) {
		close(cfd);
		return;
	}
	if ((be = sched_select(svc, &ip, now_s())) == NULL) {
		svc->refused++;
		log_debug("%s: no usable backend for %s, connection refused",
		    svc->conf.name, ip_str(&ip, a, sizeof(a)));
		close(cfd);
		return;
	}
	if ((c = relay_conn_new(svc, be, cfd)) == NULL) {
		log_warn("%s: cannot allocate a connection", svc->conf.name);
		close(cfd);
		return;
	}
	dst = be->conf.addr;
	addr_set_port(&dst, addr_port(local));
	relay_tuple(&c->front, client, local);
	relay_client_hold(c);
	relay_tuple(&c->back, NULL, (struct sockaddr *)&dst);
	relay_conn_mode(c);
	(void)mirror_conn_new(c, addr_port(local));
	if ((c->bfd = relay_backend_socket(svc, be, &why)) == -1) {
		snprintf(reason, sizeof(reason), "%s: %s", why, strerror(errno));
		relay_connect_failed(c, reason);
		return;
	}
	if (connect(c->bfd, (struct sockaddr *)&dst, addr_len((struct sockaddr *)&dst))
	    == 0)
		c->watch |= CONN_READY;
	else if (errno != EINPROGRESS) {
		relay_connect_failed(c, strerror(errno));
		return;
	}
	relay_hand(c);
}

/* An adopted pair's addresses, from its sockets; counted for its client. */
static void
relay_adopted_tuples(struct conn *c, int cfd, int bfd)
{
	struct sockaddr_storage	 a, b;
	socklen_t		 alen = sizeof(a), blen = sizeof(b);

	if (getpeername(cfd, (struct sockaddr *)&a, &alen) == 0 &&
	    getsockname(cfd, (struct sockaddr *)&b, &blen) == 0) {
		relay_tuple(&c->front, (struct sockaddr *)&a, (struct sockaddr *)&b);
		relay_client_hold(c);
	}
	alen = sizeof(a);
	blen = sizeof(b);
	if (getsockname(bfd, (struct sockaddr *)&a, &alen) == 0 &&
	    getpeername(bfd, (struct sockaddr *)&b, &blen) == 0)
		relay_tuple(&c->back, (struct sockaddr *)&a, (struct sockaddr *)&b);
}

/* relay_adopt and relay_rebuilt: m the rebuilt pair's mirror state, or NULL. */
static int
relay_adopt_pair(struct service *svc, struct backend *be, int cfd, int bfd,
    struct conn_mirror *m, struct relay_pending *left)
{
	struct conn		*c;
	int			 i;

	if ((c = relay_conn_new(svc, be, cfd)) == NULL) {
		log_warn("%s: cannot allocate an adopted connection", svc->conf.name);
		if (m != NULL) {
			kick_socket(cfd);
			kick_socket(bfd);
			free(m);
			free(left[0].buf);
			free(left[1].buf);
		} else {
			close(cfd);
			close(bfd);
		}
		return -1;
	}
	c->bfd = bfd;
	c->m = m;
	/* Counted for its client (an existing session, never refused by the cap). */
	if (m != NULL) {
		/* Rebuilt: the snapshots have the addresses, no system call needed. */
		relay_tuple(&c->front, (struct sockaddr *)&m->front.remote,
		    (struct sockaddr *)&m->front.local);
		relay_client_hold(c);
		relay_tuple(&c->back, (struct sockaddr *)&m->back.local,
		    (struct sockaddr *)&m->back.remote);
	} else
		relay_adopted_tuples(c, cfd, bfd);
	relay_conn_mode(c);
	if (m != NULL)
		for (i = 0; i < 2; i++) {
			c->dir[i].flags = DIR_COPY;
			if ((c->dir[i].buf = (char *)left[i].buf) != NULL)
				c->dir[i].pending = (uint32_t)left[i].len;
		}
	c->watch |= CONN_ADOPTED | CONN_READY;
	relay_hand(c);
	return 0;
}

int
relay_adopt(struct service *svc, struct backend *be, int cfd, int bfd)
{
	return relay_adopt_pair(svc, be, cfd, bfd, NULL, NULL);
}

int
relay_rebuilt(struct service *svc, struct backend *be, int cfd, int bfd,
    struct conn_mirror *m, struct relay_pending left[2])
{
	return relay_adopt_pair(svc, be, cfd, bfd, m, left);
}

/* ---------------------------------------------------------------- module */

int
relay_init(struct lbd *lbd)
{
	if (relay_worker_up())
		relay_shutdown(lbd);
	relay_ports_split(lbd->conf);
	relay_pipe_init(lbd->conf);
	relay_stopping = false;
	memset(&relay_main_limit, 0, sizeof(relay_main_limit));
	if (relay_worker_init(lbd, relay_finish) == -1) {
		relay_shutdown(lbd);
		return -1;
	}
	return 0;
}

void
relay_shutdown(struct lbd *lbd)
{
	int	 i;

	relay_stopping = true;
	relay_worker_shutdown();
	/* Every connection is finished: the per-client tables are empty. */
	for (i = 0; i < lbd->nservices; i++) {
		clients_free(lbd->services[i].clients);
		lbd->services[i].clients = NULL;
	}
	relay_stopping = false;
}

uint64_t
relay_active(void)
{
	return __atomic_load_n(&relay_nactive, __ATOMIC_RELAXED);
}

void
relay_set_room_fn(relay_room_fn *fn)
{
	relay_room = fn;
}

void
relay_set_splice(bool on)
{
	relay_splice_on = on;
}

size_t
relay_conn_size(void)
{
	return sizeof(struct conn);
}
