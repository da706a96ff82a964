/*
 * handover.c - the heartbeat's part in a planned handover that breaks no
 * connection: the old MASTER holds the VIP until the peer says MASTER,
 * then steps aside and drains (serves the connections begun here, the VIP
 * hidden on lo), while the new MASTER forwards those connections' packets
 * back to it, each for as long as the other needs. It decides when;
 * steer.c owns the kernel objects (nftables tables, the VIP on lo).
 */
#include <sys/socket.h>

#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "hasync_int.h"

#define HANDOVER_HOLD_INTERVALS	3	/* handover: keep the VIP this many intervals at most */
#define HANDOVER_DRAIN_MIN_MS	500	/* draining: time for handshakes begun here to complete */
#define HANDOVER_FWD_WAIT_INTERVALS	3	/* forwarding: adverts to wait for the peer's "draining" */
#define HANDOVER_FWD_SLACK_MS	2000	/* forwarding outlives the peer's drain limit by this */

static void	handover_schedule(struct hasync *);

/* Handover: keep the VIP until the peer's MASTER advert, at most HANDOVER_HOLD_INTERVALS. */
void
handover_hold_start(struct hasync *h)
{
	uint64_t	 ms = (uint64_t)HANDOVER_HOLD_INTERVALS * (uint64_t)h->conf.advert_interval_ms;
	struct timeval	 tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	h->holding = true;
	h->garp_left = 0;
	evtimer_del(h->ev_garp);
	evtimer_add(h->ev_hold, &tv);
	hb_log(h, 1, "handing over: keeping the VIP until %s is MASTER (at most %llu ms)",
	    h->conf.peer_name, (unsigned long long)ms);
}

void
handover_on_hold(evutil_socket_t fd, short what, void *arg)
{
	struct hasync	*h = arg;

	if (!h->holding)
		return;
	hb_log(h, 0, "handover: %s did not say MASTER within %d ms: releasing the VIP anyway",
	    h->conf.peer_name, HANDOVER_HOLD_INTERVALS * h->conf.advert_interval_ms);
	hb_vip_release(h);
}

/* Handover steering (steer.c) when the kernel and libnftables allow it. */
void
handover_open(struct hasync *h)
{
	char err[256];

	if (h->conf.peer_addr[0].ss_family != h->conf.vip_addr.ss_family) {
		hb_log(h, 0, "handover steering off: the VIP and peer.address[0] are of different "
		    "families; a planned failover will cut connections in flight");
		return;
	}
	if ((h->steer = steer_new(h->conf.vip_ifname, (const struct sockaddr *)&h->conf.vip_addr,
	    err, sizeof(err))) == NULL)
		hb_log(h, 0, "handover steering off: %s; a planned failover will cut "
		    "connections in flight", err);
}

/*
 * The peer took the VIP while alive (handover done, or it preempted) and
 * says it forwards the packets of connections begun here (not after a
 * split brain: it did not track its own connections then): with
 * steering, the VIP moves to lo, hidden, and this node serves the
 * connections begun here (the peer forwards their packets) until they end
 * or handover_drain_s passes. Without, the VIP goes at once.
 */
void
handover_step_aside(struct hasync *h)
{
	char err[256], msg[160];

	if (h->steer == NULL || h->vip == NULL || !vip_held(h->vip) || !h->peer_forwarding) {
		hb_vip_release(h);
		return;
	}
	if (steer_hide_on(h->steer, err, sizeof(err)) == -1) {
		hb_log(h, 0, "handover: cannot keep serving connections begun here: %s", err);
		steer_hide_off(h->steer, err, sizeof(err));
		hb_vip_release(h);
		return;
	}
	hb_vip_release(h);
	h->draining = true;
	h->drain_start_ms = clock_now_ms();
	snprintf(msg, sizeof(msg), "VIP hidden on lo; serving the %llu connections begun here "
	    "until they end (at most %d s)", (unsigned long long)(h->cb.connections != NULL ?
	    h->cb.connections(h->arg) : 0), h->conf.handover_drain_s);
	hb_log(h, 1, "handover: %s", msg);
	if (h->cb.handover != NULL)
		h->cb.handover(h->arg, "draining", msg);
	hb_send_advert(h);	/* tell the peer now: it keeps forwarding */
	handover_schedule(h);
}

/* Stops draining: the hidden VIP leaves lo; connections left are cut. */
void
handover_drain_end(struct hasync *h, const char *why)
{
	char err[256], msg[160];

	if (!h->draining)
		return;
	h->draining = false;
	if (steer_hide_off(h->steer, err, sizeof(err)) == -1)
		hb_log_limited(h, HB_LOG_VIP, 0, "handover: %s", err);
	snprintf(msg, sizeof(msg), "after %llu ms (%s)",
	    (unsigned long long)(clock_now_ms() - h->drain_start_ms), why);
	hb_log(h, 1, "handover: drained %s", msg);
	if (h->cb.handover != NULL)
		h->cb.handover(h->arg, "drained", msg);
}

/*
 * Becoming MASTER while the peer lives: its connections' packets, which now
 * reach us, go back to it. Before the VIP is added, so that every one of our
 * own connections is tracked from its SYN.
 */
void
handover_forward_start(struct hasync *h)
{
	char err[256];

	if (h->steer == NULL || !hb_peer_alive(h))
		return;
	if (h->draining) {
		/* Our own old connections were never tracked: they would go too. */
		hb_log(h, 0, "handover: not forwarding %s's connections: still serving ours "
		    "from the last handover", h->conf.peer_name);
		return;
	}
	if (steer_forward_on(h->steer, (const struct sockaddr *)&h->conf.peer_addr[0], err,
	    sizeof(err)) == -1) {
		hb_log(h, 0, "handover: cannot forward the connections begun on %s: %s",
		    h->conf.peer_name, err);
		return;
	}
	h->fwd_start_ms = clock_now_ms();
	h->peer_draining = false;
	hb_log(h, 1, "handover: forwarding packets of connections begun on %s to it",
	    h->conf.peer_name);
	if (h->cb.handover != NULL)
		h->cb.handover(h->arg, "forwarding", "packets of connections begun on the peer go back to it");
	handover_schedule(h);
}

int
hasync_forward_pairs(struct hasync *h, const struct hasync_tuple *t, size_t n)
{
	char err[256];

	if (h->steer == NULL || !steer_forwarding(h->steer))
		return -1;
	if (steer_forward_pairs(h->steer, t, n, err, sizeof(err)) == -1) {
		hb_log(h, 0, "handover: %s", err);
		return -1;
	}
	hb_log(h, 1, "handover: %zu mirrored connections of %s forwarded to it by address",
	    n, h->conf.peer_name);
	return 0;
}

void
handover_forward_stop(struct hasync *h, const char *why)
{
	char err[256], msg[160];

	if (h->steer == NULL || !steer_forwarding(h->steer))
		return;
	if (steer_forward_off(h->steer, err, sizeof(err)) == -1)
		hb_log_limited(h, HB_LOG_VIP, 0, "handover: %s", err);
	snprintf(msg, sizeof(msg), "after %llu ms (%s)",
	    (unsigned long long)(clock_now_ms() - h->fwd_start_ms), why);
	hb_log(h, 1, "handover: forwarding to %s stopped %s", h->conf.peer_name, msg);
	if (h->cb.handover != NULL)
		h->cb.handover(h->arg, "forwarding stopped", msg);
}

static void
handover_schedule(struct hasync *h)
{
	uint64_t	 ms = (uint64_t)h->conf.advert_interval_ms;
	struct timeval	 tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	if (h->draining || (h->steer != NULL && steer_forwarding(h->steer)))
		evtimer_add(h->ev_steer, &tv);
	else
		evtimer_del(h->ev_steer);
}

/* Every advert interval while draining or forwarding: is it over? */
void
handover_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct hasync	*h = arg;
	uint64_t	 now = clock_now_ms(), n, limit;
	char		 why[96];

	(void)fd;
	(void)what;
	limit = (uint64_t)h->conf.handover_drain_s * 1000;
	if (h->draining) {
		n = h->cb.connections != NULL ? h->cb.connections(h->arg) : 0;
		if (n == 0 && now - h->drain_start_ms >= HANDOVER_DRAIN_MIN_MS)
			handover_drain_end(h, "no connection left");
		else if (now - h->drain_start_ms >= limit) {
			snprintf(why, sizeof(why), "handover_drain_s reached: %llu connections cut",
			    (unsigned long long)n);
			handover_drain_end(h, why);
		}
	}
	if (h->steer != NULL && steer_forwarding(h->steer)) {
		if (!hb_peer_alive(h))
			handover_forward_stop(h, "peer gone");
		else if (!h->peer_draining && now - h->fwd_start_ms >=
		    (uint64_t)HANDOVER_FWD_WAIT_INTERVALS * (uint64_t)h->conf.advert_interval_ms)
			handover_forward_stop(h, "peer has no connection left");
		else if (now - h->fwd_start_ms >= limit + HANDOVER_FWD_SLACK_MS)
			handover_forward_stop(h, "handover_drain_s reached");
	}
	handover_schedule(h);
}
