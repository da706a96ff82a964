/*
 * kick.c - resets, exactly, a rebuilt connection this node does not carry
 * on (found stale, or not taken by the relay), so that both far ends
 * learn it at once instead of waiting on a connection nobody serves.
 *
 * - A rebuilt socket's sequence numbers are what the mirror knew; the
 *   dead node may have sent more (bytes forwarded in the instant before
 *   their record left). Its own RST would then be below the far end's
 *   window and ignored (RFC 5961), and a far end with nothing to send (a
 *   real server receiving an upload) would wait for hours.
 * - The far end's ACK carries the sequence number its RST needs: the
 *   fence answers each of its segments with the RST the kernel builds from
 *   it (fence_kick), and the socket's window probe (repair_probe) draws
 *   such a segment. A far end answers probes below its window at most
 *   once per tcp_invalid_ratelimit (500 ms by default), and the rebuild's
 *   own probe may have just used that: KICK_PROBES probes, KICK_PROBE_MS
 *   apart. Then the socket is closed in repair mode, sending nothing; the
 *   fence's kick set answers the far end for FENCE_KICK_S more.
 * - Without a fence (nftables missing) a socket is reset the plain way
 *   (SO_LINGER 0), right whenever its numbers are.
 * - Main thread only. The sockets are batched: one nft run per loop turn.
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/event.h>

#include "lbd.h"

#define KICK_PROBES	3	/* window probes a kicked socket sends */
#define KICK_PROBE_MS	600	/* apart: more than tcp_invalid_ratelimit's 500 ms */

struct kick_sock {
	TAILQ_ENTRY(kick_sock) entry;
	int		 fd;
	int		 probes;	/* sent so far; 0: not in the fence's kick set yet */
	uint64_t	 due_ms;	/* next probe */
};
TAILQ_HEAD(kick_list, kick_sock);

static struct {
	struct event	*ev;
	struct kick_list socks;
	uint64_t	 kicked;	/* sockets kicked, ever */
} kick = { .socks = TAILQ_HEAD_INITIALIZER(kick.socks) };

/* An RST from fd's own numbers, and fd closed. */
static void
kick_plain(int fd)
{
	struct linger	 l = { .l_onoff = 1, .l_linger = 0 };

	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
}

static void
kick_free(struct kick_sock *k, bool silent)
{
	TAILQ_REMOVE(&kick.socks, k, entry);
	if (silent)
		repair_drop(k->fd);
	else
		kick_plain(k->fd);
	free(k);
}

/* The new sockets into the fence's kick set, one nft run; false: not done. */
static bool
kick_fence_new(void)
{
	struct kick_sock *k;
	int		*fds;
	size_t		 n = 0;
	bool		 ok;

	TAILQ_FOREACH(k, &kick.socks, entry)
		if (k->probes == 0)
			n++;
	if (n == 0)
		return true;
	if ((fds = calloc(n, sizeof(*fds))) == NULL)
		return false;
	n = 0;
	TAILQ_FOREACH(k, &kick.socks, entry)
		if (k->probes == 0)
			fds[n++] = k->fd;
	ok = fence_kick(fds, n) == 0;
	free(fds);
	return ok;
}

/* The new sockets fenced, then every probe due; the timer set for the next. */
static void
kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct kick_sock *k, *next;
	struct timeval	 tv;
	uint64_t	 now = clock_now_ms(), first = 0;
	bool		 fenced = kick_fence_new();

	for (k = TAILQ_FIRST(&kick.socks); k != NULL; k = next) {
		next = TAILQ_NEXT(k, entry);
		if (k->probes == 0 && !fenced) {
			kick_free(k, false);
			continue;
		}
		if (k->due_ms <= now) {
			if (k->probes++ >= KICK_PROBES || repair_probe(k->fd) == -1) {
				kick_free(k, true);
				continue;
			}
			k->due_ms = now + KICK_PROBE_MS;
		}
		if (first == 0 || k->due_ms < first)
			first = k->due_ms;
	}
	if (first == 0)
		return;
	tv.tv_sec = (time_t)((first - now) / 1000);
	tv.tv_usec = (suseconds_t)((first - now) % 1000 * 1000);
	(void)event_add(kick.ev, &tv);
}

int
kick_init(struct event_base *base)
{
	if ((kick.ev = evtimer_new(base, kick_cb, NULL)) == NULL) {
		log_warnx("kick: cannot make its timer");
		return -1;
	}
	return 0;
}

void
kick_socket(int fd)
{
	struct kick_sock *k;

	if (fd == -1)
		return;
	kick.kicked++;
	if (kick.ev == NULL || !fence_active() || (k = calloc(1, sizeof(*k))) == NULL) {
		kick_plain(fd);
		return;
	}
	k->fd = fd;
	k->due_ms = clock_now_ms();
	TAILQ_INSERT_TAIL(&kick.socks, k, entry);
	event_active(kick.ev, EV_TIMEOUT, 0);	/* this turn's new sockets in one nft run */
}

uint64_t
kick_total(void)
{
	return kick.kicked;
}

void
kick_shutdown(void)
{
	struct kick_sock *k;

	/* Probed at least once; the ones never fenced get the plain reset. */
	while ((k = TAILQ_FIRST(&kick.socks)) != NULL)
		kick_free(k, k->probes > 0);
	if (kick.ev != NULL)
		event_free(kick.ev);
	kick.ev = NULL;
}
