/*
 * hbact.c - what heartbeat.c, handover.c and nlwatch.c all do to the world:
 * send an advert now, ask whether the peer lives, add, remove and announce
 * the VIP. It calls none of them, so they sit on top of it.
 */
#include <string.h>

#include <event2/event.h>

#include "hasync_int.h"

static void	hb_garp_next(struct hasync *);

/* One advert to every peer path, with the role and priority of now. */
void
hb_send_advert(struct hasync *h)
{
	struct pacer_advert a;

	if (h->pacer == NULL)
		return;
	memset(&a, 0, sizeof(a));
	a.priority = (uint32_t)ha_advert_priority(&h->ha);
	a.state = (uint32_t)ha_advert_state(&h->ha);
	a.vip_held = h->vip != NULL && vip_held(h->vip);
	a.bulk_done = h->cb.may_preempt == NULL || h->cb.may_preempt(h->arg);
	a.draining = h->draining;
	a.forwarding = h->steer != NULL && steer_forwarding(h->steer);
	pacer_send(h->pacer, &a);
}

/* The peer is heard and alive (ha.c). */
bool
hb_peer_alive(struct hasync *h)
{
	return ha_peer_alive(&h->ha, clock_now_ms());
}

void
hb_vip_take(struct hasync *h)
{
	char err[256];

	if (h->vip == NULL)
		return;
	if (vip_add(h->vip, err, sizeof(err)) == -1) {
		hb_log_limited(h, HB_LOG_VIP, 0, "%s; retrying every advert interval", err);
		return;
	}
	hb_log(h, 1, "VIP added to %s", h->conf.vip_ifname);
}

void
hb_vip_release(struct hasync *h)
{
	char err[256];

	h->holding = false;
	evtimer_del(h->ev_hold);
	h->garp_left = 0;
	evtimer_del(h->ev_garp);
	if (h->vip == NULL)
		return;
	if (vip_del(h->vip, err, sizeof(err)) == -1)
		hb_log_limited(h, HB_LOG_VIP, 0, "%s", err);
}

/* Burst of garp_count announcements garp_interval_ms apart, then one refresh. */
void
hb_garp_start(struct hasync *h)
{
	if (h->vip == NULL)
		return;
	h->garp_left = h->conf.garp_count + (h->conf.garp_refresh_ms > 0 ? 1 : 0);
	hb_garp_next(h);
}

/* Sends one announcement and schedules the next. */
static void
hb_garp_next(struct hasync *h)
{
	struct timeval tv;
	char err[256];
	int delay;

	evtimer_del(h->ev_garp);
	if (h->garp_left <= 0 || h->ha.role != HASYNC_MASTER || !vip_held(h->vip)) {
		h->garp_left = 0;
		return;
	}
	if (vip_announce(h->vip, err, sizeof(err)) == -1)
		hb_log_limited(h, HB_LOG_VIP, 0, "%s", err);
	h->garp_left--;
	if (h->garp_left == 0)
		return;
	/* The last one left is the refresh when there is one. */
	delay = h->garp_left == 1 && h->conf.garp_refresh_ms > 0 ?
	    h->conf.garp_refresh_ms : h->conf.garp_interval_ms;
	tv.tv_sec = delay / 1000;
	tv.tv_usec = (delay % 1000) * 1000;
	evtimer_add(h->ev_garp, &tv);
}

void
hb_on_garp(evutil_socket_t fd, short what, void *arg)
{
	hb_garp_next(arg);
}
