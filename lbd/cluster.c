/*
 * cluster.c - lbd's bridge to hasync: the config in hasync's terms (the
 * cluster key loaded once for heartbeat and channel), the HA hooks, start
 * and stop, and the HA and sync parts of `lbctl status` and the metrics.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "lbd.h"
#include "hasync.h"

/* The limits lbd's config checks are the ones hasync takes: names and paths pass unchanged. */
_Static_assert(LBD_NAME_MAX == HASYNC_NAME_MAX, "node names: lbd and hasync disagree");
_Static_assert(LBD_MAX_PEER_PATHS == HASYNC_MAX_PEER_ADDR, "peer paths: lbd and hasync disagree");
_Static_assert(LBD_ADVERT_INTERVAL_MIN == HASYNC_INTERVAL_MIN &&
    LBD_ADVERT_INTERVAL_MAX == HASYNC_INTERVAL_MAX, "advert_interval_ms: lbd and hasync disagree");

/* Values of the one-hot lbd_role and lbd_sync_state families, in the order they are written. */
static const char *const cluster_roles[] = { "INIT", "BACKUP", "MASTER", "FAULT" };
static const char *const cluster_sync_states[] = {
	"none", "down", "connecting", "bulk", "synced"
};

/* ---------------------------------------------------------------- config */

/* lbd's config in the heartbeat's terms; the key is cluster_open's to load. */
static void
cluster_ha_config(const struct lbd_config *conf, struct hasync_config *hc)
{
	int	 i;

	memset(hc, 0, sizeof(*hc));
	snprintf(hc->node_name, sizeof(hc->node_name), "%s", conf->node_name);
	snprintf(hc->version, sizeof(hc->version), "%s", LBD_VERSION);
	hc->node_addr = conf->node_addr;
	hc->priority = conf->node_priority;
	hc->has_peer = conf->has_peer;
	snprintf(hc->peer_name, sizeof(hc->peer_name), "%s", conf->peer_name);
	for (i = 0; i < conf->npeer_addr && i < HASYNC_MAX_PEER_ADDR; i++)
		hc->peer_addr[i] = conf->peer_addr[i];
	hc->npeer_addr = i;
	hc->heartbeat_port = conf->heartbeat_port;
	hc->advert_interval_ms = conf->advert_interval_ms;
	hc->preempt = conf->preempt;
	hc->handover_drain_s = conf->handover_drain_s;
	snprintf(hc->vip_ifname, sizeof(hc->vip_ifname), "%s", conf->vip_interface);
	hc->vip_addr = conf->vip_addr;
	hc->vip_prefixlen = conf->vip_prefixlen;
}

/* The channel's config: the heartbeat's names, paths and key, and the sync port. */
static void
cluster_channel_config(const struct hasync_config *hc, uint16_t sync_port,
    struct channel_config *cc)
{
	memset(cc, 0, sizeof(*cc));
	memcpy(cc->node_name, hc->node_name, sizeof(cc->node_name));
	cc->node_addr = hc->node_addr;
	memcpy(cc->peer_name, hc->peer_name, sizeof(cc->peer_name));
	memcpy(cc->peer_addr, hc->peer_addr, sizeof(cc->peer_addr));
	cc->npeer_addr = hc->npeer_addr;
	cc->sync_port = sync_port;
	memcpy(cc->key, hc->key, sizeof(cc->key));
}

/* ---------------------------------------------------------------- HA hooks */

/*
 * The main thread's scheduling follows the role. A MASTER's main thread
 * (and a draining old MASTER's, serving the connections begun there)
 * moves the proxied bytes: as SCHED_RR it cost about 50 % more CPU per
 * byte (every wake-up preempts the load at once, no batching), so a
 * MASTER runs SCHED_OTHER, and its adverts keep their real-time thread in
 * hasync (pacer.c). Every other role has no data plane to speak of and
 * must react at once (take over, hand over, step aside): SCHED_RR, as
 * keepalived's VRRP process. As an ordinary process the node that took
 * over after a crash, or that handed over on SIGTERM, lost one probe in
 * 3-7 of 10 make bench trials; as SCHED_RR none.
 * Raising needs root, CAP_SYS_NICE or RLIMIT_RTPRIO (lbd.service sets
 * LimitRTPRIO); without, lbd says so once and stays ordinary.
 */
static void
cluster_sched_for_role(enum hasync_role role, bool draining)
{
	static bool		 warned;
	struct sched_param	 sp = { .sched_priority = 0 };
	int			 want = role == HASYNC_MASTER || draining ? SCHED_OTHER : SCHED_RR;

	if (want == SCHED_RR)
		sp.sched_priority = HASYNC_RT_PRIORITY;
	if (sched_getscheduler(0) == want)
		return;
	if (sched_setscheduler(0, want, &sp) == -1) {
		if (!warned)
			log_info("realtime scheduling not available for the main thread (%s): "
			    "a BACKUP may take over a few ms later on a busy machine; see "
			    "LimitRTPRIO in deploy/lbd.service", strerror(errno));
		warned = true;
		return;
	}
	log_debug("scheduling: main thread %s (%s%s)", want == SCHED_RR ? "SCHED_RR" :
	    "SCHED_OTHER", hasync_role_str(role), draining ? ", draining" : "");
}

static void
cluster_role_changed(void *arg, enum hasync_role from, enum hasync_role to, const char *reason)
{
	struct lbd	*lbd = arg;

	cluster_sched_for_role(to, false);
	/* hasync has logged the transition; monitor clients hear of it here. */
	bus_publish(lbd, "role", json_pack("{s:s, s:s, s:s}", "from",
	    hasync_role_str(from), "role", hasync_role_str(to), "reason", reason));
}

/*
 * No preemption before the peer's bulk sync is in (or timed out), nor
 * while a backend in service (enabled, weight above 0) is down here or
 * not checked yet, for at most CLUSTER_PREEMPT_HOLD_MS: after this node's
 * link came back its health checks still count the outage (rise), right
 * after a start they have not run, and a first check can fail while the
 * network settles; a MASTER taken back then sends every client of such a
 * backend elsewhere, its sticky entry moved, and the data connections of
 * the sessions the peer still serves to the wrong server (the chaos
 * drill: both backends down for 1 s, then one; a power-off's return). A
 * backend that stays down holds preemption back that long only; a dead
 * MASTER is taken over from at Master_Down whatever the backends say.
 */
#define CLUSTER_PREEMPT_HOLD_MS	30000

static bool
cluster_ha_may_preempt(void *arg)
{
	static struct log_limit limit;
	static uint64_t	 held_since;	/* first refusal for a down backend, 0 none */
	struct lbd	*lbd = arg;
	uint64_t	 now = clock_now_ms();
	int		 i, j;

	if (!replica_may_preempt(lbd))
		return false;
	for (i = 0; i < lbd->nservices; i++) {
		struct service *svc = &lbd->services[i];

		for (j = 0; j < svc->nbackends; j++) {
			struct backend *b = &svc->backends[j];

			if ((b->up && b->checked) || b->admin != BACKEND_ENABLED ||
			    b->conf.weight == 0)
				continue;
			if (held_since == 0)
				held_since = now;
			if (now - held_since >= CLUSTER_PREEMPT_HOLD_MS) {
				log_limited(&limit, now, 1000, LOG_LEVEL_INFO, "preempting although "
				    "backend %s/%s is down here (%d s)", svc->conf.name, b->conf.name,
				    CLUSTER_PREEMPT_HOLD_MS / 1000);
				return true;
			}
			log_limited(&limit, now, 1000, LOG_LEVEL_INFO, "not preempting yet: backend "
			    "%s/%s is %s here (its health checks pass first, %d s at most)",
			    svc->conf.name, b->conf.name, b->checked ? "down" : "not checked yet",
			    CLUSTER_PREEMPT_HOLD_MS / 1000);
			return false;
		}
	}
	held_since = 0;
	return true;
}

/* Planned-handover steering, for `lbctl monitor`. */
static void
cluster_handover(void *arg, const char *state, const char *detail)
{
	struct lbd		*lbd = arg;
	struct hasync_status	 st;

	/* A draining old MASTER relays again: ordinary scheduling until it is done. */
	if (strcmp(state, "draining") == 0 || strcmp(state, "drained") == 0) {
		hasync_get_status(lbd->ha, &st);
		cluster_sched_for_role(st.role, strcmp(state, "draining") == 0);
	}
	bus_publish(arg, "handover", json_pack("{s:s, s:s}", "state", state, "reason", detail));
}

/* The peer is back: connect the sync channel now rather than after a backoff. */
static void
cluster_peer_heard(void *arg)
{
	sync_peer_heard(replica_sync(arg));
}

/* A draining old MASTER waits until its proxied connections are gone. */
static uint64_t
cluster_connections(void *arg)
{
	(void)arg;
	return relay_active();
}

/* Taking over, before the VIP is announced: the dead peer's mirrored connections. */
static void
cluster_taking_over(void *arg, bool peer_dead)
{
	struct lbd		*lbd = arg;
	struct sockaddr_storage	*remote;
	struct hasync_tuple	*t;
	uint16_t		*port;
	size_t			 i, n;

	(void)mirror_takeover(lbd, peer_dead, &remote, &port, &n);
	/* Planned: the peer's mirrored connections are steered back to it by address. */
	if (n > 0 && (t = calloc(n, sizeof(*t))) != NULL) {
		for (i = 0; i < n; i++) {
			t[i].remote = remote[i];
			t[i].local_port = port[i];
		}
		(void)hasync_forward_pairs(lbd->ha, t, n);
		free(t);
	}
	free(remote);
	free(port);
}

/* ---------------------------------------------------------------- life */

/* The channel, once the heartbeat runs (it reports peer death to lbd->ha). */
static int
cluster_replica_start(struct lbd *lbd, const struct channel_config *cc)
{
	char		 err[512];

	if (replica_init(lbd) == -1)
		return -1;
	if (sync_start(replica_sync(lbd), cc, err, sizeof(err)) == -1) {
		log_warnx("sync: %s", err);
		replica_close(lbd);
		return -1;
	}
	return 0;
}

/* The HA layer owns the VIP: standalone it becomes MASTER at once, in a pair it elects with the peer. */
static int
cluster_ha_open(struct lbd *lbd, const struct hasync_config *hc)
{
	static const struct hasync_callbacks cbs = {
		.role_changed = cluster_role_changed,
		.log = log_hasync,
		.may_preempt = cluster_ha_may_preempt,
		.connections = cluster_connections,
		.peer_heard = cluster_peer_heard,
		.handover = cluster_handover,
		.taking_over = cluster_taking_over,
	};
	char		 err[512];

	if ((lbd->ha = hasync_new(lbd->base, hc, &cbs, lbd, err, sizeof(err))) == NULL) {
		log_warnx("ha: %s", err);
		return -1;
	}
	if (hasync_start(lbd->ha) == -1) {
		log_warnx("ha: cannot start (see above)");
		return -1;
	}
	return 0;
}

int
cluster_open(struct lbd *lbd)
{
	struct lbd_config	*conf = lbd->conf;
	struct hasync_config	 hc;
	struct channel_config	 cc;
	char			 err[512];
	int			 rc = -1;

	cluster_ha_config(conf, &hc);
	memset(&cc, 0, sizeof(cc));
	/* The cluster key is needed only with a peer: read once, for heartbeat and channel. */
	if (conf->has_peer && key_load(conf->key_file, hc.key, err, sizeof(err)) == -1) {
		log_warnx("cluster key: %s", err);
		goto done;
	}
	if (cluster_ha_open(lbd, &hc) == -1)
		goto done;
	if (conf->has_peer) {
		cluster_channel_config(&hc, conf->sync_port, &cc);
		if (cluster_replica_start(lbd, &cc) == -1)
			goto done;
	}
	rc = 0;
done:
	sodium_memzero(hc.key, sizeof(hc.key));
	sodium_memzero(cc.key, sizeof(cc.key));
	return rc;
}

void
cluster_close(struct lbd *lbd)
{
	/* Graceful stop: a priority-0 advert hands the VIP over, then it goes. */
	if (lbd->ha != NULL) {
		hasync_stop(lbd->ha);
		hasync_free(lbd->ha);
		lbd->ha = NULL;
	}
	replica_close(lbd);	/* then the channel closes (peer sees EOF) */
}

bool
cluster_leave(struct lbd *lbd)
{
	return lbd->ha != NULL && hasync_leave(lbd->ha);
}

bool
cluster_leaving(struct lbd *lbd)
{
	return lbd->ha != NULL && hasync_leaving(lbd->ha);
}

const char *
cluster_failover(struct lbd *lbd)
{
	return hasync_failover(lbd->ha);
}

int
cluster_key_generate(char *buf, size_t len)
{
	return key_generate(buf, len);
}

/* ---------------------------------------------------------------- status */

json_t *
cluster_sync_json(struct lbd *lbd)
{
	struct sync_status st;
	struct channel_status cs;
	json_t		*o, *bulk, *ch;
	uint64_t	 entries = 0, pending = 0;
	int		 i;

	for (i = 0; i < lbd->nservices; i++)
		if (lbd->services[i].sticky != NULL) {
			entries += sticky_count(lbd->services[i].sticky);
			pending += sticky_dirty_count(lbd->services[i].sticky);
		}
	if (replica_sync(lbd) == NULL)
		return json_pack("{s:s, s:I, s:n}", "state", "none", "entries",
		    (json_int_t)entries, "lag_ms");
	sync_get_status(replica_sync(lbd), &st);
	o = json_pack("{s:s, s:I, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:I, s:I, s:I, s:I}",
	    "state", st.state,
	    "entries", (json_int_t)entries,
	    "lag_ms", reply_ms(st.lag_ms),
	    "entries_sent", (json_int_t)st.entries_sent,
	    "entries_received", (json_int_t)st.entries_received,
	    "entries_applied", (json_int_t)st.entries_applied,
	    "entries_stale", (json_int_t)st.entries_stale,
	    "bad_entries", (json_int_t)st.bad_entries,
	    "malformed", (json_int_t)st.malformed,
	    "lag_p50_ms", reply_ms(st.lag_p50_ms),
	    "lag_p99_ms", reply_ms(st.lag_p99_ms),
	    "pending", (json_int_t)pending,
	    "held", (json_int_t)st.held,
	    "resyncs", (json_int_t)st.resyncs,
	    "clears_sent", (json_int_t)st.clears_sent);
	if (o == NULL)
		return NULL;
	json_object_set_new(o, "clears_received", json_integer((json_int_t)st.clears_received));
	/* lag_p50_ms/lag_p99_ms cover the last SYNC_LAG_WINDOW acks: acks tells which. */
	json_object_set_new(o, "batches_sent", json_integer((json_int_t)st.batches_sent));
	json_object_set_new(o, "acks", json_integer((json_int_t)st.acks));
	bulk = json_pack("{s:b, s:I, s:I, s:I, s:o}",
	    "done", st.bulk_done,
	    "sent", (json_int_t)st.bulks_sent,
	    "received", (json_int_t)st.bulks_received,
	    "last_entries", (json_int_t)st.last_bulk_entries,
	    "last_ms", st.last_bulk_ms < 0 ? json_null() : json_integer(st.last_bulk_ms));
	json_object_set_new(o, "bulk", bulk != NULL ? bulk : json_null());
	if (sync_channel(replica_sync(lbd)) != NULL) {
		channel_get_status(sync_channel(replica_sync(lbd)), &cs);
		ch = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
		    "state", cs.state,
		    "frames_sent", (json_int_t)cs.frames_sent,
		    "frames_received", (json_int_t)cs.frames_received,
		    "bytes_sent", (json_int_t)cs.bytes_sent,
		    "bytes_received", (json_int_t)cs.bytes_received,
		    "auth_failures", (json_int_t)cs.auth_failures,
		    "replays", (json_int_t)cs.replays,
		    "malformed", (json_int_t)cs.malformed,
		    "oversized", (json_int_t)cs.oversized,
		    "reconnects", (json_int_t)cs.reconnects,
		    "up_since_ms", (json_int_t)cs.up_since_ms,
		    "rejected", (json_int_t)cs.rejected,
		    "queue_full", (json_int_t)cs.queue_full);
		if (ch != NULL)
			json_object_set_new(ch, "tcp_md5", json_boolean(cs.tcp_md5));
		json_object_set_new(o, "channel", ch != NULL ? ch : json_null());
	}
	return o;
}

/* The heartbeat's status now, or NULL when it is not running. */
static struct hasync_status *
cluster_ha_status(struct lbd *lbd, struct hasync_status *hs)
{
	if (lbd->ha == NULL)
		return NULL;
	hasync_get_status(lbd->ha, hs);
	return hs;
}

/*
 * The HA parts of the one-line summary systemd shows (sdnotify.c):
 * role "MASTER, VIP held[, draining|, forwarding]" and peer "peer lb2
 * alive (BACKUP)" / "standalone", with the peer's version when it differs.
 */
void
cluster_summary_role(struct lbd *lbd, char *buf, size_t len)
{
	struct hasync_status	 hst, *hs = cluster_ha_status(lbd, &hst);

	if (hs == NULL) {
		snprintf(buf, len, "INIT");
		return;
	}
	snprintf(buf, len, "%s, VIP %s%s", hasync_role_str(hs->role),
	    hs->vip_held ? "held" : "not held", hs->draining ? ", draining" :
	    hs->forwarding ? ", forwarding" : "");
}

void
cluster_summary_peer(struct lbd *lbd, char *buf, size_t len)
{
	struct hasync_status	 hst, *hs = cluster_ha_status(lbd, &hst);
	bool			 heard = hs != NULL && hs->last_advert_ms >= 0;
	const char		*v = heard ? hs->peer_version : LBD_VERSION;

	if (!lbd->conf->has_peer) {
		snprintf(buf, len, "standalone");
		return;
	}
	/* A mixed pair (an upgrade half done) says so: the peer's version, "older" if it sends none. */
	snprintf(buf, len, "peer %s %s%s%s%s%s%s", lbd->conf->peer_name,
	    hs != NULL ? hs->peer_state : "unknown", heard ? " (" : "",
	    heard ? hasync_role_str(hs->peer_role) : "", heard ? ")" : "",
	    strcmp(v, LBD_VERSION) != 0 ? ", peer version " : "",
	    strcmp(v, LBD_VERSION) != 0 ? (v[0] != '\0' ? v : "older") : "");
}

/*
 * A BACKUP that neither holds the VIP nor drains: no segment of the
 * peer's connections can reach it (mirror_peer.c's standby sockets).
 */
bool
cluster_quiet_backup(struct lbd *lbd)
{
	struct hasync_status	 st;

	if (lbd == NULL || lbd->ha == NULL)
		return false;
	hasync_get_status(lbd->ha, &st);
	return st.role == HASYNC_BACKUP && !st.vip_held && !st.draining;
}

json_t *
cluster_role_json(struct lbd *lbd)
{
	struct hasync_status	 hst, *hs = cluster_ha_status(lbd, &hst);

	return json_string(hasync_role_str(hs != NULL ? hs->role : HASYNC_INIT));
}

void
cluster_vip_json(struct lbd *lbd, json_t *vip)
{
	struct hasync_status	 hst, *hs = cluster_ha_status(lbd, &hst);

	reply_set(vip, "held", json_boolean(hs != NULL && hs->vip_held));
	/* Planned handover (steer.c): the old MASTER drains, the new one forwards. */
	reply_set(vip, "draining", json_boolean(hs != NULL && hs->draining));
	reply_set(vip, "forwarding", json_boolean(hs != NULL && hs->forwarding));
}

/*
 * Peer part of `status`, from the heartbeat. A standalone node has no peer:
 * name, priority and last_advert_ms are null and state is "none".
 */
json_t *
cluster_peer_json(struct lbd *lbd)
{
	struct hasync_status	 hst, *hs = cluster_ha_status(lbd, &hst);
	json_t	*o;
	bool	 heard = hs != NULL && hs->last_advert_ms >= 0;

	if ((o = json_object()) == NULL)
		return NULL;
	/* Names are A-Z a-z 0-9 _ . - (config.c): always a valid JSON string. */
	reply_set(o, "name", lbd->conf->has_peer ? json_string(lbd->conf->peer_name) : json_null());
	reply_set(o, "state", json_string(hs != NULL ? hs->peer_state :
	    lbd->conf->has_peer ? "unknown" : "none"));
	reply_set(o, "priority", heard ? json_integer(hs->peer_priority) : json_null());
	reply_set(o, "last_advert_ms", heard ? json_integer(hs->last_advert_ms) : json_null());
	reply_set(o, "role", heard ? json_string(hasync_role_str(hs->peer_role)) : json_null());
	/* Its adverts' version: null before one is heard, "" from an lbd that sends none. */
	reply_set(o, "version", heard ? json_string(hs->peer_version) : json_null());
	return o;
}

/* Heartbeat counters: what was sent, received and rejected. */
json_t *
cluster_ha_json(struct lbd *lbd)
{
	struct hasync_status	 hst, *hs = cluster_ha_status(lbd, &hst);

	if (hs == NULL)
		return json_null();
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:i, s:s, s:I, s:I, s:b, s:I, s:b}",
	    "adverts_sent", (json_int_t)hs->adverts_sent,
	    "adverts_received", (json_int_t)hs->adverts_received,
	    "auth_failures", (json_int_t)hs->auth_failures,
	    "replays", (json_int_t)hs->replays,
	    "malformed", (json_int_t)hs->malformed,
	    "unknown_sender", (json_int_t)hs->unknown_sender,
	    "peer_unreachable", (json_int_t)hs->peer_unreachable,
	    "role_changes", (json_int_t)hs->role_changes,
	    "advert_priority", hs->advert_priority,
	    "reason", hs->reason != NULL ? hs->reason : "",
	    "adverts_paced", (json_int_t)hs->adverts_paced,	/* sent for a late loop */
	    "advert_lapses", (json_int_t)hs->advert_lapses,	/* pacer quiet: loop silent */
	    "advert_realtime", hs->advert_realtime,		/* pacer runs SCHED_RR */
	    "stale", (json_int_t)hs->stale,			/* not fresh: recorded, or not heard us */
	    "peer_confirmed", hs->peer_confirmed);		/* a peer run confirmed fresh */
}

/* ---------------------------------------------------------------- metrics */

static void
cluster_metrics_ha(FILE *f, const struct hasync_status *hs)
{
	const char	*hb[] = { "channel", "heartbeat", NULL };

	prom_family(f, "lbd_role", "gauge",
	    "HA role: 1 for the current one, 0 for the others.");
	prom_one_hot(f, "lbd_role", NULL, "role", cluster_roles,
	    LBD_NELEM(cluster_roles), hasync_role_str(hs->role));
	prom_one(f, "lbd_vip_held", "gauge", "1: the VIP is on this node's interface.",
	    hs->vip_held);
	prom_one(f, "lbd_role_changes_total", "counter",
	    "HA role transitions (failovers) since start.", hs->role_changes);
	prom_one(f, "lbd_peer_up", "gauge",
	    "1: the peer's adverts arrive (peer state alive).",
	    strcmp(hs->peer_state, "alive") == 0);
	prom_family(f, "lbd_peer_last_advert_ms", "gauge",
	    "Age of the peer's last valid advert in ms (absent: none yet).");
	if (hs->last_advert_ms >= 0)
		prom_u64(f, "lbd_peer_last_advert_ms", NULL, (uint64_t)hs->last_advert_ms);
	prom_one(f, "lbd_heartbeat_adverts_sent_total", "counter",
	    "Heartbeat adverts sent (one per peer path).", hs->adverts_sent);
	prom_one(f, "lbd_heartbeat_adverts_received_total", "counter",
	    "Valid heartbeat adverts received from the peer.", hs->adverts_received);
	prom_one(f, "lbd_heartbeat_adverts_stale_total", "counter",
	    "Authentic adverts not used: not fresh (recorded, or the peer has not heard us).",
	    hs->stale);
	prom_one(f, "lbd_heartbeat_adverts_paced_total", "counter",
	    "Adverts the real-time pacer thread sent because the event loop was late.",
	    hs->adverts_paced);
	prom_family(f, "lbd_auth_failures_total", "counter",
	    "Cluster traffic dropped: wrong key or forged.");
	prom_u64(f, "lbd_auth_failures_total", hb, hs->auth_failures);
}

/* Replication: the sync layer and its channel; zeros and state "none" standalone. */
static void
cluster_metrics_sync(FILE *f, struct lbd *lbd, const struct hasync_status *hs)
{
	const char	*hb[] = { "channel", "heartbeat", NULL };
	const char	*sy[] = { "channel", "sync", NULL };
	struct sync	*sync = replica_sync(lbd);
	struct sync_status st;
	struct channel_status cs;
	const char	*state = "none";

	memset(&st, 0, sizeof(st));
	memset(&cs, 0, sizeof(cs));
	st.lag_ms = st.lag_p99_ms = -1;
	if (sync != NULL) {
		sync_get_status(sync, &st);
		state = st.state;
		if (sync_channel(sync) != NULL)
			channel_get_status(sync_channel(sync), &cs);
	}
	prom_u64(f, "lbd_auth_failures_total", sy, cs.auth_failures);
	prom_family(f, "lbd_replays_total", "counter",
	    "Cluster traffic dropped as replayed, reordered or old.");
	prom_u64(f, "lbd_replays_total", hb, hs->replays);
	prom_u64(f, "lbd_replays_total", sy, cs.replays);
	prom_family(f, "lbd_malformed_total", "counter",
	    "Cluster traffic dropped as truncated, oversized or garbage.");
	prom_u64(f, "lbd_malformed_total", hb, hs->malformed);
	prom_u64(f, "lbd_malformed_total", sy, cs.malformed);

	prom_one(f, "lbd_sync_up", "gauge",
	    "1: the replication channel is up and both tables are in sync.",
	    strcmp(state, "synced") == 0);
	prom_family(f, "lbd_sync_state", "gauge",
	    "Replication state: 1 for the current one (none: standalone).");
	prom_one_hot(f, "lbd_sync_state", NULL, "state", cluster_sync_states,
	    LBD_NELEM(cluster_sync_states), state);
	prom_one(f, "lbd_sync_entries_sent_total", "counter",
	    "Sticky entries sent to the peer, bulk included.", st.entries_sent);
	prom_one(f, "lbd_sync_entries_received_total", "counter",
	    "Sticky entries received from the peer.", st.entries_received);
	prom_family(f, "lbd_sync_lag_ms", "gauge",
	    "Replication lag of the last acknowledged batch in ms (absent: none yet).");
	if (st.lag_ms >= 0)
		prom_double(f, "lbd_sync_lag_ms", NULL, st.lag_ms);
	prom_family(f, "lbd_sync_lag_p99_ms", "gauge",
	    "p99 replication lag over the last 1024 batches in ms (absent: none yet).");
	if (st.lag_p99_ms >= 0)
		prom_double(f, "lbd_sync_lag_p99_ms", NULL, st.lag_p99_ms);
}

void
cluster_metrics(FILE *f, struct lbd *lbd)
{
	struct hasync_status hs;

	memset(&hs, 0, sizeof(hs));
	hs.role = HASYNC_INIT;
	hs.peer_state = lbd->conf->has_peer ? "unknown" : "none";
	hs.last_advert_ms = -1;
	if (lbd->ha != NULL)
		hasync_get_status(lbd->ha, &hs);
	cluster_metrics_ha(f, &hs);
	cluster_metrics_sync(f, lbd, &hs);
}
