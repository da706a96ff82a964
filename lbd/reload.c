/*
 * reload.c - the runtime services built from a configuration, and a live
 * reload (SIGHUP, `lbctl reload`) that changes backends, weights, checks and
 * timeouts (and log_level) without dropping a connection or a sticky entry.
 *
 * Backends keep their slot (index in service->backends) by NAME: live
 * connections hold pointers to slots and sticky entries hold indexes. A
 * backend gone from the config stays in its slot, admin-disabled, while its
 * connections finish (its sticky clients re-pick); a new backend takes a
 * new slot at the end, or, when all LBD_MAX_BACKENDS are taken, a removed
 * slot with no connection left (its sticky entries are deleted first).
 * node.pipe_memory_max_mb applies live too. What cannot change live (the
 * rest of node, node.relay_threads included, peer, cluster, vip, control,
 * metrics, the set of services, a service's ports, sticky_size,
 * sticky_timeout_s) makes the reload refuse with "needs a restart: ...".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lbd.h"

/* A fresh runtime backend in slot i of svc, from bc: up until checked. */
static void
reload_backend_init(struct service *svc, int i, const struct backend_config *bc)
{
	struct backend	*be = &svc->backends[i];

	memset(be, 0, sizeof(*be));
	be->conf = *bc;
	be->service = svc;
	be->index = i;
	be->admin = BACKEND_ENABLED;
	be->up = true;
}

int
reload_services_init(struct lbd *lbd)
{
	struct service	*svc;
	int		 i, j;

	lbd->nservices = lbd->conf->nservices;
	for (i = 0; i < lbd->nservices; i++) {
		svc = &lbd->services[i];
		memset(svc, 0, sizeof(*svc));
		svc->conf = lbd->conf->services[i];
		svc->lbd = lbd;
		TAILQ_INIT(&svc->conns);
		svc->sticky = sticky_new((uint32_t)svc->conf.sticky_size,
		    (uint32_t)svc->conf.sticky_timeout_s);
		if (svc->sticky == NULL) {
			log_warnx("service %s: cannot allocate a sticky table of %d entries",
			    svc->conf.name, svc->conf.sticky_size);
			return -1;
		}
		svc->nbackends = svc->conf.nbackends;
		for (j = 0; j < svc->nbackends; j++)
			reload_backend_init(svc, j, &svc->conf.backends[j]);
	}
	return 0;
}

void
reload_services_free(struct lbd *lbd)
{
	int	 i, j;

	for (i = 0; i < lbd->nservices; i++) {
		for (j = 0; j < lbd->services[i].nbackends; j++)
			check_stop(&lbd->services[i].backends[j]);
		sticky_free(lbd->services[i].sticky);
		lbd->services[i].sticky = NULL;
	}
}

/* Index of the backend called name in sc, or -1. */
static int
reload_conf_backend(const struct service_config *sc, const char *name)
{
	int	 i;

	for (i = 0; i < sc->nbackends; i++)
		if (strcmp(sc->backends[i].name, name) == 0)
			return i;
	return -1;
}

/* Slot of the backend called name in svc (removed ones included), or -1. */
static int
reload_slot(const struct service *svc, const char *name)
{
	int	 i;

	for (i = 0; i < svc->nbackends; i++)
		if (strcmp(svc->backends[i].conf.name, name) == 0)
			return i;
	return -1;
}

bool
reload_backend_removed(const struct backend *be)
{
	return reload_conf_backend(&be->service->conf, be->conf.name) == -1;
}

bool
reload_backend_listed(const struct backend *be)
{
	return be->active > 0 || !reload_backend_removed(be);
}

/* Same family, address and port (sockaddr padding may differ). */
static bool
reload_addr_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family != AF_INET && a->ss_family != AF_INET6)
		return true;		/* both unset */
	return addr_equal((const struct sockaddr *)a, (const struct sockaddr *)b) &&
	    addr_port((const struct sockaddr *)a) == addr_port((const struct sockaddr *)b);
}

static bool
reload_check_same(const struct check_config *a, const struct check_config *b)
{
	return a->type == b->type && a->port == b->port && a->interval_ms == b->interval_ms &&
	    a->timeout_ms == b->timeout_ms && a->rise == b->rise && a->fall == b->fall;
}

/* The node-wide settings only a restart applies. Returns: what changed, or NULL. */
static const char *
reload_global_change(const struct lbd_config *o, const struct lbd_config *n)
{
	int	 i;

	if (strcmp(o->node_name, n->node_name) != 0 || !reload_addr_same(&o->node_addr,
	    &n->node_addr) || o->node_priority != n->node_priority ||
	    o->relay_threads != n->relay_threads)
		return "node";
	if (o->has_peer != n->has_peer || strcmp(o->peer_name, n->peer_name) != 0 ||
	    o->npeer_addr != n->npeer_addr)
		return "peer";
	for (i = 0; i < o->npeer_addr; i++)
		if (!reload_addr_same(&o->peer_addr[i], &n->peer_addr[i]))
			return "peer";
	if (strcmp(o->key_file, n->key_file) != 0 || o->heartbeat_port != n->heartbeat_port ||
	    o->sync_port != n->sync_port || o->advert_interval_ms != n->advert_interval_ms ||
	    o->preempt != n->preempt ||
	    o->handover_drain_s != n->handover_drain_s || o->mirror != n->mirror ||
	    o->mirror_mark != n->mirror_mark)
		return "cluster";
	if (!reload_addr_same(&o->vip_addr, &n->vip_addr) ||
	    o->vip_prefixlen != n->vip_prefixlen ||
	    strcmp(o->vip_interface, n->vip_interface) != 0)
		return "vip";
	if (strcmp(o->control_socket, n->control_socket) != 0 ||
	    strcmp(o->control_group, n->control_group) != 0 ||
	    strcmp(o->control_readonly_group, n->control_readonly_group) != 0)
		return "control";
	if (o->metrics_on != n->metrics_on || (o->metrics_on &&
	    !reload_addr_same(&o->metrics_addr, &n->metrics_addr)))
		return "metrics";
	return NULL;
}

/*
 * Can svc take sc live? Counts the slots sc's new backends need.
 * Returns: 0, or -1 with the reason in err.
 */
static int
reload_service_check(const struct service *svc, const struct service_config *sc,
    char *err, size_t errlen)
{
	int	 i, fresh = 0, reusable = 0;

	if (sc->nranges != svc->conf.nranges ||
	    memcmp(sc->ranges, svc->conf.ranges, sizeof(sc->ranges[0]) * (size_t)sc->nranges) != 0) {
		snprintf(err, errlen, "needs a restart: service %s: ports changed", sc->name);
		return -1;
	}
	if (sc->sticky_size != svc->conf.sticky_size) {
		snprintf(err, errlen, "needs a restart: service %s: sticky_size changed", sc->name);
		return -1;
	}
	if (sc->sticky_timeout_s != svc->conf.sticky_timeout_s) {
		snprintf(err, errlen, "needs a restart: service %s: sticky_timeout_s changed",
		    sc->name);
		return -1;
	}
	for (i = 0; i < sc->nbackends; i++)
		if (reload_slot(svc, sc->backends[i].name) == -1)
			fresh++;
	for (i = 0; i < svc->nbackends; i++)
		if (reload_conf_backend(sc, svc->backends[i].conf.name) == -1 &&
		    svc->backends[i].active == 0)
			reusable++;
	if (fresh > LBD_MAX_BACKENDS - svc->nbackends + reusable) {
		snprintf(err, errlen, "needs a restart: service %s: no free backend slot "
		    "(removed backends still have connections)", sc->name);
		return -1;
	}
	return 0;
}

/* Collects the clients of one backend index, for reload_forget. */
struct reload_ips {
	struct lbd_ip	*ips;		/* clients found */
	uint32_t	 n;		/* used */
	uint32_t	 cap;		/* room */
	int		 backend;	/* index looked for */
};

static void
reload_collect(const struct lbd_ip *ip, int backend, uint32_t expires_in_s, void *arg)
{
	struct reload_ips	*r = arg;

	if (backend == r->backend && r->n < r->cap)
		r->ips[r->n++] = *ip;
}

/* Deletes svc's sticky entries that point to slot i before it is reused. */
static void
reload_forget(struct service *svc, int i)
{
	struct reload_ips	 r;
	uint32_t		 k, slot = 0;

	memset(&r, 0, sizeof(r));
	r.backend = i;
	r.cap = sticky_count(svc->sticky);
	if (r.cap == 0)
		return;
	if ((r.ips = calloc(r.cap, sizeof(*r.ips))) == NULL) {
		log_warn("%s: reload: cannot list the sticky entries of a reused slot; "
		    "flushing the table", svc->conf.name);
		sticky_flush(svc->sticky);
		return;
	}
	/*
	 * In slot order: one sequential pass over memory, about 4 ms a million
	 * entries, where the most-recently-used walk jumps around (210 ms).
	 */
	sticky_foreach_slots(svc->sticky, &slot, now_s(), UINT32_MAX, UINT32_MAX, reload_collect, &r);
	for (k = 0; k < r.n; k++)
		sticky_delete(svc->sticky, &r.ips[k]);
	free(r.ips);
}

/* A free slot for a new backend of svc (checked to exist by reload_service_check). */
static int
reload_free_slot(struct service *svc)
{
	int	 i;

	if (svc->nbackends < LBD_MAX_BACKENDS)
		return svc->nbackends++;
	for (i = 0; i < svc->nbackends; i++)
		if (reload_backend_removed(&svc->backends[i]) && svc->backends[i].active == 0) {
			reload_forget(svc, i);
			return i;
		}
	fatalx("%s: no free backend slot", __func__);
}

/* Stops and starts be's health check with the current settings. */
static void
reload_check_restart(struct lbd *lbd, struct backend *be)
{
	check_stop(be);
	be->rise_count = 0;
	be->fall_count = 0;
	if (check_start(lbd, be) == -1)
		log_warnx("%s/%s: reload: cannot restart the health check",
		    be->service->conf.name, be->conf.name);
}

/* Applies sc (checked by reload_service_check) to svc. */
static void
reload_service_apply(struct lbd *lbd, struct service *svc, const struct service_config *sc)
{
	struct service_config	 old = svc->conf;
	const struct backend_config *bc;
	struct backend		*be;
	bool			 check_changed, was_removed, restart;
	int			 i, slot;

	check_changed = !reload_check_same(&old.check, &sc->check);
	svc->conf = *sc;	/* scheduler, timeouts, max_connections, source, check */

	/* Backends gone from the config: disabled, their connections finish. */
	for (i = 0; i < svc->nbackends; i++) {
		be = &svc->backends[i];
		if (reload_conf_backend(&old, be->conf.name) != -1 &&
		    reload_conf_backend(sc, be->conf.name) == -1) {
			check_stop(be);
			be->admin = BACKEND_DISABLED;
			log_info("%s/%s: removed by reload; %llu connection(s) finish",
			    svc->conf.name, be->conf.name, (unsigned long long)be->active);
		}
	}

	for (i = 0; i < sc->nbackends; i++) {
		bc = &sc->backends[i];
		if ((slot = reload_slot(svc, bc->name)) == -1) {
			slot = reload_free_slot(svc);
			reload_backend_init(svc, slot, bc);
			log_info("%s/%s: added by reload", svc->conf.name, bc->name);
			reload_check_restart(lbd, &svc->backends[slot]);
			continue;
		}
		be = &svc->backends[slot];
		was_removed = reload_conf_backend(&old, bc->name) == -1;
		restart = check_changed || was_removed ||
		    !reload_addr_same(&be->conf.addr, &bc->addr);
		if (was_removed || !reload_addr_same(&be->conf.addr, &bc->addr)) {
			/* Another server now: up until checked, as at start-up. */
			be->up = true;
			be->checked = false;
			be->last_result = CHECK_RESULT_NONE;
			be->last_check_ms = 0;
		}
		if (was_removed) {
			be->admin = BACKEND_ENABLED;
			log_info("%s/%s: back in the config", svc->conf.name, bc->name);
		}
		be->conf = *bc;		/* address, weight; existing connections continue */
		if (restart)
			reload_check_restart(lbd, be);
	}
	/* Weights may have changed: restart smooth round robin from a clean state. */
	for (i = 0; i < svc->nbackends; i++)
		svc->backends[i].rr_current = 0;
	if (svc->listeners != NULL && svc->active < (uint64_t)svc->conf.max_connections)
		listener_resume(svc);
}

int
reload_apply(struct lbd *lbd, char *err, size_t errlen)
{
	struct lbd_config	*conf;
	struct service		*svc;
	const char		*what;
	int			 i;

	sdnotify_reloading();	/* systemctl shows "reloading" until READY=1 */
	if ((conf = malloc(sizeof(*conf))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto refused;
	}
	if (config_load(lbd->conf->path, conf, err, errlen) == -1)
		goto refused;
	if ((what = reload_global_change(lbd->conf, conf)) != NULL) {
		snprintf(err, errlen, "needs a restart: %s settings changed", what);
		goto refused;
	}
	if (conf->nservices != lbd->nservices) {
		snprintf(err, errlen, "needs a restart: the set of services changed");
		goto refused;
	}
	for (i = 0; i < conf->nservices; i++) {
		if ((svc = lbd_service_by_name(lbd, conf->services[i].name)) == NULL) {
			snprintf(err, errlen, "needs a restart: the set of services changed "
			    "(service %s is new)", conf->services[i].name);
			goto refused;
		}
		if (reload_service_check(svc, &conf->services[i], err, errlen) == -1)
			goto refused;
	}

	for (i = 0; i < conf->nservices; i++)
		reload_service_apply(lbd, lbd_service_by_name(lbd, conf->services[i].name),
		    &conf->services[i]);
	if (conf->log_level != lbd->conf->log_level) {
		log_info("log_level: %s -> %s", log_level_str(lbd->conf->log_level),
		    log_level_str(conf->log_level));
		log_setlevel(conf->log_level);	/* -d keeps debug */
	}
	relay_pipe_budget(conf);	/* node.pipe_memory_max_mb applies live */
	free(lbd->conf);
	lbd->conf = conf;
	(void)fds_setup(conf);		/* max_connections may have grown past the limit */
	log_info("configuration reloaded from %s", conf->path);
	sdnotify_reloaded(lbd);
	return 0;

refused:
	free(conf);
	log_warnx("reload refused: %s", err);
	sdnotify_reloaded(lbd);	/* the old configuration serves on */
	return -1;
}
