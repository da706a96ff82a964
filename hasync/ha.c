/*
 * ha.c - the VRRP-like role state machine (INIT, BACKUP, MASTER, FAULT),
 * pure: no I/O, no clock; callers pass the time and carry out the actions.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "hasync_int.h"

/*
 * VRRPv3's skew is (256 - priority) * interval / 256: it orders several
 * BACKUPs so the best one wins the race. A pair has one BACKUP, so the
 * skew only delays takeover after a power-off; we keep its ordering but
 * scale it to a quarter (at most 0.25 x interval), which keeps the worst
 * power-off outage under 3.5 x interval, the failover time lbd promises.
 */
#define HA_PRIO_RANGE		256	/* VRRP priorities are below this */
#define HA_SKEW_DIV		1024	/* skew = (256 - priority) * interval / 1024 */
#define HA_DOWN_FACTOR		3	/* VRRPv3: Master_Down = 3 x interval + skew */

static unsigned int	ha_become_master(struct ha *, uint64_t, const char *, ...)
			    __attribute__((format(printf, 3, 4)));
static unsigned int	ha_become_backup(struct ha *, uint64_t, const char *, ...)
			    __attribute__((format(printf, 3, 4)));
static unsigned int	ha_become_fault(struct ha *, uint64_t, const char *);
static unsigned int	ha_backup_rx_advert(struct ha *, const struct ha_advert *, uint64_t);
static unsigned int	ha_master_rx_advert(struct ha *, const struct ha_advert *, uint64_t);
static void		ha_set_role(struct ha *, enum hasync_role, const char *, va_list)
			    __attribute__((format(printf, 3, 0)));

const char *
ha_role_name(enum hasync_role role)
{
	switch (role) {
	case HASYNC_INIT:	return "INIT";
	case HASYNC_BACKUP:	return "BACKUP";
	case HASYNC_MASTER:	return "MASTER";
	case HASYNC_FAULT:	return "FAULT";
	}
	return "UNKNOWN";
}

void
ha_init(struct ha *ha, const struct ha_config *conf)
{
	memset(ha, 0, sizeof(*ha));
	ha->conf = *conf;
	ha->role = HASYNC_INIT;
	ha->prev_role = HASYNC_INIT;
	ha->advert_state = HASYNC_INIT;
	ha->link_up = true;
	ha->next_advert_ms = HA_NEVER;
	ha->master_down_ms = HA_NEVER;
	ha->peer_role = HASYNC_INIT;
}

uint64_t
ha_master_down_interval(const struct ha *ha)
{
	uint64_t iv;

	/* VRRPv3 6.1: the interval the MASTER advertises, ours until it spoke. */
	iv = ha->peer_heard && ha->peer_interval_ms > 0 ?
	    (uint64_t)ha->peer_interval_ms : (uint64_t)ha->conf.interval_ms;
	return HA_DOWN_FACTOR * iv +
	    (uint64_t)(HA_PRIO_RANGE - ha->conf.priority) * iv / HA_SKEW_DIV;
}

static void
ha_set_role(struct ha *ha, enum hasync_role role, const char *fmt, va_list ap)
{
	ha->prev_role = ha->role;
	ha->role = role;
	ha->advert_state = role;
	ha->role_changes++;
	vsnprintf(ha->reason, sizeof(ha->reason), fmt, ap);
}

/*
 * Takes the VIP: announce it, tell the peer at once, forget any handover
 * (this node is needed now).
 */
static unsigned int
ha_become_master(struct ha *ha, uint64_t now, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ha_set_role(ha, HASYNC_MASTER, fmt, ap);
	va_end(ap);
	ha->yielding = false;
	ha->master_down_ms = HA_NEVER;
	ha->last_garp_ms = now;
	if (!ha->conf.has_peer)
		return HA_ACT_BECOME_MASTER | HA_ACT_GARP_BURST;
	ha->next_advert_ms = now + (uint64_t)ha->conf.interval_ms;
	return HA_ACT_BECOME_MASTER | HA_ACT_GARP_BURST | HA_ACT_ADVERT;
}

/* Gives up or never had the VIP; waits Master_Down for a MASTER advert. */
static unsigned int
ha_become_backup(struct ha *ha, uint64_t now, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ha_set_role(ha, HASYNC_BACKUP, fmt, ap);
	va_end(ap);
	ha->master_down_ms = now + ha_master_down_interval(ha);
	ha->next_advert_ms = now + (uint64_t)ha->conf.interval_ms;
	return HA_ACT_BECOME_BACKUP | HA_ACT_ADVERT;
}

/*
 * The VIP interface is unusable: drop the VIP and keep advertising with
 * priority 0, so the peer takes over at once (and still knows we live).
 */
static unsigned int
ha_become_fault(struct ha *ha, uint64_t now, const char *reason)
{
	ha->prev_role = ha->role;
	ha->role = HASYNC_FAULT;
	ha->advert_state = HASYNC_FAULT;
	ha->role_changes++;
	snprintf(ha->reason, sizeof(ha->reason), "%s", reason);
	ha->master_down_ms = HA_NEVER;
	if (!ha->conf.has_peer)
		return HA_ACT_BECOME_FAULT;
	ha->next_advert_ms = now + (uint64_t)ha->conf.interval_ms;
	return HA_ACT_BECOME_FAULT | HA_ACT_ADVERT;
}

unsigned int
ha_start(struct ha *ha, uint64_t now)
{
	if (ha->started)
		return 0;
	ha->started = true;
	if (!ha->link_up)
		return ha_become_fault(ha, now, "VIP interface is down at start");
	if (!ha->conf.has_peer)
		return ha_become_master(ha, now, "standalone node (no peer configured)");
	/* VRRPv3 6.4.1: a non-owner starts as BACKUP and waits Master_Down. */
	return ha_become_backup(ha, now, "starting: waiting for the peer's adverts");
}

unsigned int
ha_stop(struct ha *ha, uint64_t now)
{
	unsigned int acts = HA_ACT_BECOME_INIT;

	if (!ha->started)
		return 0;
	ha->started = false;	/* from here ha_advert_priority() is 0 */
	ha->prev_role = ha->role;
	ha->role = HASYNC_INIT;
	ha->advert_state = HASYNC_INIT;
	ha->role_changes++;
	snprintf(ha->reason, sizeof(ha->reason), "stopping");
	ha->master_down_ms = HA_NEVER;
	ha->next_advert_ms = HA_NEVER;
	if (ha->conf.has_peer)
		acts |= HA_ACT_ADVERT;	/* priority 0: the peer takes over at once */
	return acts;
}

unsigned int
ha_timeout(struct ha *ha, uint64_t now)
{
	unsigned int acts = 0;

	if (!ha->started)
		return 0;
	if (ha->role == HASYNC_BACKUP && now >= ha->master_down_ms) {
		if (!ha->peer_heard)
			acts |= ha_become_master(ha, now, "no advert from the peer within "
			    "Master_Down (%llu ms) of start",
			    (unsigned long long)ha_master_down_interval(ha));
		else
			acts |= ha_become_master(ha, now, "no MASTER advert for %llu ms "
			    "(Master_Down); peer last heard %llu ms ago as %s",
			    (unsigned long long)ha_master_down_interval(ha),
			    (unsigned long long)(now - ha->peer_last_ms),
			    ha_role_name(ha->peer_role));
	}
	if (ha->conf.has_peer && now >= ha->next_advert_ms) {
		acts |= HA_ACT_ADVERT;
		ha->advert_state = ha->role;	/* a handover was announced once */
		ha->next_advert_ms += (uint64_t)ha->conf.interval_ms;
		/* Late by a whole interval (stalled loop): no catch-up burst. */
		if (ha->next_advert_ms <= now)
			ha->next_advert_ms = now + (uint64_t)ha->conf.interval_ms;
	}
	return acts;
}

/*
 * VRRPv3 6.4.2, plus: priority 0 means "take it now" when the peer is
 * leaving MASTER, in FAULT or stopping; from a BACKUP peer (one that handed
 * over earlier) only if we have not handed over ourselves, or two handovers
 * in a row would both take it back.
 */
static unsigned int
ha_backup_rx_advert(struct ha *ha, const struct ha_advert *adv, uint64_t now)
{
	if (adv->priority == 0 && (adv->state != HASYNC_BACKUP || !ha->yielding))
		return ha_become_master(ha, now, "peer advertises priority 0 as %s "
		    "(%s)", ha_role_name(adv->state),
		    adv->state == HASYNC_MASTER ? "leaving or handing over" :
		    adv->state == HASYNC_FAULT ? "in FAULT" :
		    adv->state == HASYNC_INIT ? "stopping" : "handed over earlier");
	if (adv->state != HASYNC_MASTER)
		return 0;	/* a BACKUP peer does not hold off our Master_Down */
	ha->master_down_ms = now + ha_master_down_interval(ha);
	if (!ha->conf.preempt || ha->yielding || ha->conf.priority <= adv->priority)
		return 0;
	/*
	 * Not before the MASTER hears us: right after our link came back
	 * (FAULT), its adverts reach us while ours still wait for a neighbour
	 * entry on the way; preempting then left both holding the VIP for
	 * 600 ms (the chaos drill), the MASTER ignorant of our claim.
	 */
	if (!adv->hears_us)
		return 0;	/* asked again at the MASTER's next advert */
	if (ha->conf.may_preempt != NULL && !ha->conf.may_preempt(ha->conf.arg))
		return 0;	/* asked again at the MASTER's next advert */
	return ha_become_master(ha, now, "preempting the MASTER peer (priority %d < ours %d)",
	    adv->priority, ha->conf.priority);
}

/*
 * Both MASTER (split brain healing, or a preempting peer): VRRPv3 6.4.3,
 * the higher priority wins, then the higher node address. The loser steps
 * down; the winner re-announces the VIP, because the LAN may have learnt
 * the loser's MAC meanwhile (keepalived issue 166).
 */
static unsigned int
ha_master_rx_advert(struct ha *ha, const struct ha_advert *adv, uint64_t now)
{
	unsigned int acts = 0;

	if (adv->state != HASYNC_MASTER)
		return 0;
	if (adv->priority > ha->conf.priority ||
	    (adv->priority == ha->conf.priority && adv->addr_cmp > 0))
		return ha_become_backup(ha, now, "peer is MASTER too and wins (priority %d vs "
		    "ours %d%s)", adv->priority, ha->conf.priority,
		    adv->priority == ha->conf.priority ? ", higher node address" : "");
	/* We win. One burst per Master_Down, however often the loser repeats. */
	if (now - ha->last_garp_ms >= ha_master_down_interval(ha)) {
		ha->last_garp_ms = now;
		acts |= HA_ACT_GARP_BURST;
	}
	/* Tell the loser now rather than at our next advert. */
	acts |= HA_ACT_ADVERT;
	ha->next_advert_ms = now + (uint64_t)ha->conf.interval_ms;
	return acts;
}

/*
 * A MASTER hears its peer again after a silence of Master_Down or more (or
 * for the first time): the peer may have been MASTER meanwhile (a partition)
 * and the LAN may have learnt its MAC. If the peer heard us first, it steps
 * down before we ever see its MASTER advert, so ha_master_rx_advert cannot
 * be relied on to re-announce: re-announce here (one burst per Master_Down).
 */
static unsigned int
ha_master_peer_back(struct ha *ha, uint64_t now)
{
	if (ha->peer_heard && !ha->peer_lost &&
	    now - ha->peer_last_ms < ha_master_down_interval(ha))
		return 0;
	if (ha->last_garp_ms != 0 && now - ha->last_garp_ms < ha_master_down_interval(ha))
		return 0;
	ha->last_garp_ms = now;
	return HA_ACT_GARP_BURST;
}

unsigned int
ha_rx_advert(struct ha *ha, const struct ha_advert *adv, uint64_t now)
{
	unsigned int acts, back = 0;

	if (!ha->conf.has_peer)
		return 0;
	if (ha->started && ha->role == HASYNC_MASTER)
		back = ha_master_peer_back(ha, now);
	ha->peer_heard = true;
	ha->peer_lost = false;
	ha->peer_last_ms = now;
	ha->peer_priority = adv->priority;
	ha->peer_role = adv->state;
	ha->peer_interval_ms = adv->interval_ms;
	if (!ha->started)
		return 0;
	switch (ha->role) {
	case HASYNC_BACKUP:
		return ha_backup_rx_advert(ha, adv, now);
	case HASYNC_MASTER:
		acts = ha_master_rx_advert(ha, adv, now);
		if (!(acts & HA_ACT_ROLE_CHANGED))	/* a loser announces nothing */
			acts |= back;
		return acts;
	case HASYNC_INIT:
	case HASYNC_FAULT:
		break;
	}
	return 0;
}

unsigned int
ha_peer_lost(struct ha *ha, const char *reason, uint64_t now)
{
	if (!ha->conf.has_peer)
		return 0;
	ha->peer_lost = true;
	if (!ha->started || ha->role != HASYNC_BACKUP)
		return 0;
	return ha_become_master(ha, now, "peer lost: %s", reason);
}

unsigned int
ha_link_changed(struct ha *ha, bool up, const char *reason, uint64_t now)
{
	if (up == ha->link_up)
		return 0;
	ha->link_up = up;
	if (!ha->started)
		return 0;
	if (!up)
		return ha->role == HASYNC_FAULT ? 0 : ha_become_fault(ha, now, reason);
	if (ha->role != HASYNC_FAULT)
		return 0;
	if (!ha->conf.has_peer)
		return ha_become_master(ha, now, "%s", reason);
	return ha_become_backup(ha, now, "%s", reason);
}

bool
ha_peer_alive(const struct ha *ha, uint64_t now)
{
	return ha->peer_heard && !ha->peer_lost &&
	    now - ha->peer_last_ms < ha_master_down_interval(ha);
}

unsigned int
ha_failover(struct ha *ha, uint64_t now, const char **why)
{
	unsigned int acts;

	*why = NULL;
	if (!ha->conf.has_peer) {
		*why = "standalone node: there is no peer to hand over to";
		return 0;
	}
	if (!ha->started || ha->role != HASYNC_MASTER) {
		*why = "this node is not MASTER";
		return 0;
	}
	if (!ha_peer_alive(ha, now)) {
		*why = "the peer is not alive: nobody would take over";
		return 0;
	}
	if (ha->peer_role == HASYNC_FAULT) {
		*why = "the peer is in FAULT: nobody would take over";
		return 0;
	}
	/* Before the transition: the advert it asks for carries priority 0. */
	ha->yielding = true;
	acts = ha_become_backup(ha, now, "failover requested: handing mastership to the peer");
	/* That one advert still says MASTER: "leaving MASTER now" (see above). */
	ha->advert_state = HASYNC_MASTER;
	return acts;
}

uint64_t
ha_next_deadline(const struct ha *ha)
{
	uint64_t d = HA_NEVER;

	if (!ha->started)
		return HA_NEVER;
	if (ha->conf.has_peer)
		d = ha->next_advert_ms;
	if (ha->role == HASYNC_BACKUP && ha->master_down_ms < d)
		d = ha->master_down_ms;
	return d;
}

enum hasync_role
ha_advert_state(const struct ha *ha)
{
	return ha->advert_state;
}

int
ha_advert_priority(const struct ha *ha)
{
	if (!ha->started || ha->role == HASYNC_FAULT || ha->yielding)
		return 0;
	return ha->conf.priority;
}

const char *
ha_peer_state(const struct ha *ha, uint64_t now)
{
	if (!ha->conf.has_peer)
		return "none";
	if (ha->peer_lost)
		return "dead";
	if (!ha->peer_heard)
		return "unknown";
	return ha_peer_alive(ha, now) ? "alive" : "dead";
}
