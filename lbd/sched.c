/*
 * sched.c - chooses a backend for a connection: the client's sticky backend
 * when it may keep it, else least connections or smooth weighted round robin.
 */
#include "lbd.h"

bool
backend_usable_new(const struct backend *b)
{
	return b->up && b->admin == BACKEND_ENABLED && b->conf.weight > 0;
}

bool
backend_usable_sticky(const struct backend *b)
{
	return b->up && b->admin != BACKEND_DISABLED;
}

/*
 * Fewest active connections per weight, compared by cross-multiplying so no
 * division rounds. The scan starts at svc->rr_next and only a strictly
 * better backend replaces the best so far, so equal backends take turns.
 */
static struct backend *
sched_pick_leastconn(struct service *svc)
{
	struct backend	*b, *best = NULL;
	int		 i, start;

	start = (int)(svc->rr_next % (uint64_t)svc->nbackends);
	for (i = 0; i < svc->nbackends; i++) {
		b = &svc->backends[(start + i) % svc->nbackends];
		if (!backend_usable_new(b))
			continue;
		if (best == NULL ||
		    b->active * (uint64_t)best->conf.weight <
		    best->active * (uint64_t)b->conf.weight)
			best = b;
	}
	if (best != NULL)
		svc->rr_next = (uint64_t)(best - svc->backends) + 1;
	return best;
}

/*
 * nginx's smooth weighted round robin: every usable backend gains its
 * weight, the richest wins and pays the total. Weights 3:1 give A A B A.
 */
static struct backend *
sched_pick_roundrobin(struct service *svc)
{
	struct backend	*b, *best = NULL;
	int		 i, total = 0;

	for (i = 0; i < svc->nbackends; i++) {
		b = &svc->backends[i];
		if (!backend_usable_new(b))
			continue;
		b->rr_current += b->conf.weight;
		total += b->conf.weight;
		if (best == NULL || b->rr_current > best->rr_current)
			best = b;
	}
	if (best != NULL)
		best->rr_current -= total;
	return best;
}

struct backend *
sched_pick(struct service *svc)
{
	if (svc->nbackends <= 0)
		return NULL;
	switch (svc->conf.sched) {
	case SCHED_LEASTCONN:
		return sched_pick_leastconn(svc);
	case SCHED_ROUNDROBIN:
		return sched_pick_roundrobin(svc);
	}
	fatalx("%s: unknown scheduler %d", __func__, (int)svc->conf.sched);
}

struct backend *
sched_select(struct service *svc, const struct lbd_ip *client, uint32_t now)
{
	struct backend	*b;
	int		 idx;

	idx = sticky_lookup(svc->sticky, client, now);
	if (idx >= 0 && idx < svc->nbackends) {
		b = &svc->backends[idx];
		if (backend_usable_sticky(b)) {
			sticky_set(svc->sticky, client, idx, now);
			return b;
		}
	}
	if ((b = sched_pick(svc)) == NULL)
		return NULL;
	sticky_set(svc->sticky, client, (int)(b - svc->backends), now);
	return b;
}

const char *
backend_admin_str(enum backend_admin a)
{
	switch (a) {
	case BACKEND_ENABLED:
		return "enabled";
	case BACKEND_DRAIN:
		return "drain";
	case BACKEND_DISABLED:
		return "disabled";
	}
	return "unknown";
}

const char *
backend_state_str(const struct backend *b)
{
	if (b->admin == BACKEND_DISABLED)
		return "disabled";
	if (!b->up)
		return "down";
	if (b->admin == BACKEND_DRAIN)
		return "drain";
	return "up";
}
