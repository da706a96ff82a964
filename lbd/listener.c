/*
 * listener.c - the listening sockets of every service on VIP:port, which
 * accept clients in batches and hand each one to relay.c.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "lbd.h"

#define LISTENER_BATCH		64	/* accepts per wakeup before other events run */
#define LISTENER_BACKOFF_MS	100	/* accept pause when out of file descriptors */
#define LISTENER_WARN_MS	5000	/* at most one "out of descriptors" line per this */
#define LISTENER_CLIENT_FDS	2	/* an accepted client and its backend socket */

/* Per service (by index): the pause after EMFILE/ENFILE, or at the fd reserve. */
struct listener_backoff {
	struct event	*ev;		/* timer that ends the pause */
	bool		 active;	/* paused for lack of descriptors */
	bool		 reserve;	/* ... because only the reserve is left (fds.c) */
	uint64_t	 warned_ms;	/* when it was last logged */
};

static struct listener_backoff listener_backoff[LBD_MAX_SERVICES]; /* indexed like lbd->services */

static void	listener_accept_cb(evutil_socket_t, short, void *);

static struct listener_backoff *
listener_backoff_of(struct service *svc)
{
	return &listener_backoff[svc - svc->lbd->services];
}

/* Opens, binds and watches one listening socket. Returns 0, or -1 logged. */
static int
listener_open(struct lbd *lbd, struct service *svc, struct listener *l, uint16_t port)
{
	struct sockaddr_storage	 ss = lbd->conf->vip_addr;
	const char		*hint;
	char			 a[ADDR_STRLEN];
	int			 one = 1;

	addr_set_port(&ss, port);
	sockaddr_port_str((struct sockaddr *)&ss, a, sizeof(a));
	if ((l->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1) {
		log_warn("%s: socket for %s", svc->conf.name, a);
		return -1;
	}
	if (setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1)
		log_warn("%s: SO_REUSEADDR on %s", svc->conf.name, a);
	/*
	 * Only the MASTER holds the VIP. IP_FREEBIND lets the BACKUP (and a
	 * MASTER that has not added the VIP yet) bind it anyway, so the
	 * listener is ready the instant the VIP arrives: no bind at takeover.
	 */
	if (ss.ss_family == AF_INET6) {
		if (setsockopt(l->fd, IPPROTO_IPV6, IPV6_FREEBIND, &one, sizeof(one)) == -1)
			log_warn("%s: IPV6_FREEBIND on %s", svc->conf.name, a);
	} else if (setsockopt(l->fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one)) == -1)
		log_warn("%s: IP_FREEBIND on %s", svc->conf.name, a);
	/* Accepted sockets inherit it: small FTP replies are forwarded at once. */
	(void)setsockopt(l->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (bind(l->fd, (struct sockaddr *)&ss, addr_len((struct sockaddr *)&ss)) == -1) {
		switch (errno) {
		case EADDRINUSE:
			hint = "port in use by another process or another service: "
			    "stop it or change \"ports\"";
			break;
		case EACCES:
			hint = "ports below 1024 need root or CAP_NET_BIND_SERVICE";
			break;
		case EADDRNOTAVAIL:
			hint = "the VIP cannot be bound on this host: check vip.address";
			break;
		default:
			hint = "check vip.address and the service's ports";
			break;
		}
		log_warn("%s: cannot listen on %s (%s)", svc->conf.name, a, hint);
		return -1;
	}
	if (listen(l->fd, SOMAXCONN) == -1) {
		log_warn("%s: listen on %s", svc->conf.name, a);
		return -1;
	}
	if ((l->ev = event_new(lbd->base, l->fd, EV_READ | EV_PERSIST,
	    listener_accept_cb, l)) == NULL || event_add(l->ev, NULL) == -1) {
		log_warnx("%s: cannot watch %s", svc->conf.name, a);
		return -1;
	}
	return 0;
}

/* The relay's word on svc's max_connections: stop accepting, or accept again. */
static void
listener_room(struct service *svc, bool room)
{
	if (room)
		listener_resume(svc);
	else
		listener_pause(svc);
}

int
listener_open_all(struct lbd *lbd)
{
	struct service	*svc;
	struct port_range *r;
	int		 i, j, n;
	unsigned int	 p;

	relay_set_room_fn(listener_room);
	for (i = 0; i < lbd->nservices; i++) {
		svc = &lbd->services[i];
		for (n = 0, j = 0; j < svc->conf.nranges; j++)
			n += svc->conf.ranges[j].last - svc->conf.ranges[j].first + 1;
		if (n <= 0)
			continue;
		if ((svc->listeners = calloc((size_t)n, sizeof(*svc->listeners))) == NULL) {
			log_warn("%s: cannot allocate %d listeners", svc->conf.name, n);
			return -1;
		}
		for (j = 0; j < n; j++)
			svc->listeners[j].fd = -1;
		svc->nlisteners = 0;
		for (j = 0; j < svc->conf.nranges; j++) {
			r = &svc->conf.ranges[j];
			for (p = r->first; p <= r->last; p++) {
				struct listener *l = &svc->listeners[svc->nlisteners++];

				l->service = svc;
				l->port = (uint16_t)p;
				if (listener_open(lbd, svc, l, (uint16_t)p) == -1)
					return -1;
			}
		}
	}
	return 0;
}

void
listener_close_all(struct lbd *lbd)
{
	struct service		*svc;
	struct listener_backoff	*b;
	int			 i, j;

	for (i = 0; i < lbd->nservices; i++) {
		svc = &lbd->services[i];
		b = &listener_backoff[i];
		if (b->ev != NULL)
			event_free(b->ev);
		memset(b, 0, sizeof(*b));
		for (j = 0; j < svc->nlisteners; j++) {
			if (svc->listeners[j].ev != NULL)
				event_free(svc->listeners[j].ev);
			if (svc->listeners[j].fd != -1)
				close(svc->listeners[j].fd);
		}
		free(svc->listeners);
		svc->listeners = NULL;
		svc->nlisteners = 0;
	}
}

/* Stops accepting on every port of svc: new clients wait in the backlog. */
void
listener_pause(struct service *svc)
{
	int	 i;

	for (i = 0; i < svc->nlisteners; i++) {
		if (svc->listeners[i].paused || svc->listeners[i].ev == NULL)
			continue;
		event_del(svc->listeners[i].ev);
		svc->listeners[i].paused = true;
	}
}

void
listener_resume(struct service *svc)
{
	struct listener_backoff	*b;
	int			 i;

	/* Called on every close: the common case must cost nothing. */
	if (svc->nlisteners == 0 || !svc->listeners[0].paused)
		return;
	b = &listener_backoff[svc - svc->lbd->services];
	if (b->active) {
		/* At the reserve, a close may have made room: no need to wait for the timer. */
		if (!b->reserve || !fds_room(LISTENER_CLIENT_FDS))
			return;		/* the backoff timer resumes */
		evtimer_del(b->ev);
		b->active = b->reserve = false;
	}
	for (i = 0; i < svc->nlisteners; i++) {
		if (!svc->listeners[i].paused || svc->listeners[i].ev == NULL)
			continue;
		if (event_add(svc->listeners[i].ev, NULL) == -1) {
			log_warnx("%s: cannot resume accepting on port %u",
			    svc->conf.name, svc->listeners[i].port);
			continue;
		}
		svc->listeners[i].paused = false;
	}
}

static void
listener_backoff_cb(evutil_socket_t fd, short what, void *arg)
{
	struct service		*svc = arg;
	struct listener_backoff	*b = listener_backoff_of(svc);
	struct timeval		 tv = { 0, LISTENER_BACKOFF_MS * 1000 };

	/* Still at the reserve (a close of another service frees none here): wait on. */
	if (b->reserve && !fds_room(LISTENER_CLIENT_FDS)) {
		evtimer_add(b->ev, &tv);
		return;
	}
	b->active = b->reserve = false;
	if (svc->active < (uint64_t)svc->conf.max_connections)
		listener_resume(svc);
}

/*
 * Out of descriptors (err: accept's errno), or at the reserve (err 0):
 * stop accepting instead of spinning; clients wait in the kernel backlog.
 * The timer ends an EMFILE pause after LISTENER_BACKOFF_MS; a reserve
 * pause ends as soon as a connection of svc closes with room made, else
 * at the first timer tick with room.
 */
static void
listener_backoff_start(struct service *svc, int err)
{
	struct listener_backoff	*b = listener_backoff_of(svc);
	struct timeval		 tv = { 0, LISTENER_BACKOFF_MS * 1000 };
	uint64_t		 now = clock_now_ms();

	if (b->ev == NULL &&
	    (b->ev = evtimer_new(svc->lbd->base, listener_backoff_cb, svc)) == NULL) {
		log_warnx("%s: cannot allocate the accept backoff timer", svc->conf.name);
		return;
	}
	if (err == 0)
		svc->fd_reserve_pauses++;
	if (b->warned_ms == 0 || now - b->warned_ms >= LISTENER_WARN_MS) {
		b->warned_ms = now;
		errno = err;
		if (err == 0)
			log_warnx("%s: only the %llu descriptors kept for health checks, "
			    "control and sync are left (open files limit %llu): new clients "
			    "wait in the backlog until connections close (raise LimitNOFILE "
			    "or lower max_connections)", svc->conf.name,
			    (unsigned long long)fds_reserve(),
			    (unsigned long long)fds_limit_now());
		else
			log_warn("%s: accept: out of file descriptors, pausing accepts for "
			    "%d ms (raise LimitNOFILE or lower max_connections)",
			    svc->conf.name, LISTENER_BACKOFF_MS);
	}
	listener_pause(svc);
	b->active = true;
	b->reserve = err == 0;
	evtimer_add(b->ev, &tv);
}

static void
listener_accept_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listener		*l = arg;
	struct service		*svc = l->service;
	struct sockaddr_storage	 client, local;
	socklen_t		 len;
	int			 i, cfd;

	/* Every client of this listener reached VIP:port: no getsockname(). */
	local = svc->lbd->conf->vip_addr;
	addr_set_port(&local, l->port);
	for (i = 0; i < LISTENER_BATCH && !l->paused; i++) {
		if (!fds_room(LISTENER_CLIENT_FDS)) {
			listener_backoff_start(svc, 0);
			return;
		}
		len = sizeof(client);
		cfd = accept4(fd, (struct sockaddr *)&client, &len,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd == -1) {
			switch (errno) {
			case EAGAIN:
#if EWOULDBLOCK != EAGAIN
			case EWOULDBLOCK:
#endif
				return;
			case EMFILE:
			case ENFILE:
			case ENOBUFS:
			case ENOMEM:
				listener_backoff_start(svc, errno);
				return;
			case EINTR:
			case ECONNABORTED:
			case EPROTO:
			case EPERM:	/* firewall */
				continue;
			default:
				log_warn("%s: accept on port %u", svc->conf.name, l->port);
				return;
			}
		}
		relay_accept(svc, cfd, (struct sockaddr *)&client, (struct sockaddr *)&local);
	}
}
