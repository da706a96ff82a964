/*
 * view.c - lbd's state as the JSON the control socket replies with: the
 * `status` and `backends` objects, and the `sticky list` pages (a snapshot
 * written in slices).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "lbd.h"

#define VIEW_STICKY_PAGE	10000		/* entries in one `sticky list` reply (a page) */
#define VIEW_STICKY_PAGE_SLOTS	65536		/* table slots one page visits at most (~1 ms) */
#define VIEW_CURSOR_MAX		32		/* bytes of a `sticky list` cursor, "SERVICE.SLOT" */

/* One sticky entry as copied for a `sticky list` reply. */
struct view_sticky_item {
	struct lbd_ip	 ip;			/* client */
	uint32_t	 expires_in_s;		/* at snapshot time */
	int16_t		 service;		/* index in lbd->services */
	int16_t		 backend;		/* index in that service's backends */
};

/*
 * A `sticky list` reply: a snapshot of one page of the table(s), written
 * as JSON text in slices so that a big table never holds up the event
 * loop (heartbeats run on it). Tables that fit one page are listed whole,
 * most recently used first; bigger ones page by page in slot order (a
 * stable order: an entry keeps its slot while it lives), the reply's
 * "next" naming where the next page starts, so no loop turn walks more
 * than VIEW_STICKY_PAGE_SLOTS slots.
 */
struct view_stream {
	struct view_sticky_item *items;	/* the snapshot */
	size_t		 nitems;		/* entries in items */
	size_t		 cap;			/* room in items */
	size_t		 next;			/* first item not written yet */
	size_t		 total;			/* live entries seen, listed or not */
	int16_t		 service;		/* service being walked */
	bool		 paged;			/* in pages: total from the tables' counts */
	char		 cursor[VIEW_CURSOR_MAX];	/* the next page's start, or "" for none */
	int		 nbackends[LBD_MAX_SERVICES];	/* backends per service at snapshot */
	char		*names[LBD_MAX_SERVICES][LBD_MAX_BACKENDS + 1];
						/* JSON-quoted: [s][0] service, [s][1 + b] backend b */
};

/* ---------------------------------------------------------------- status */

/* One backend as in `status` and `backends`. */
static json_t *
view_backend_json(struct backend *b, uint64_t now)
{
	char	 addr[ADDR_STRLEN];
	json_t	*o;

	if ((o = json_object()) == NULL)
		return NULL;
	reply_set(o, "name", reply_str(b->conf.name));
	reply_set(o, "address", json_string(sockaddr_str((struct sockaddr *)&b->conf.addr,
	    addr, sizeof(addr))));
	reply_set(o, "state", json_string(backend_state_str(b)));
	reply_set(o, "admin", json_string(backend_admin_str(b->admin)));
	reply_set(o, "removed", json_boolean(reload_backend_removed(b)));
	reply_set_int(o, "active", b->active);
	reply_set_int(o, "total", b->total);
	/* Relay workers add to these: atomic loads. */
	reply_set_int(o, "bytes_in", __atomic_load_n(&b->bytes_in, __ATOMIC_RELAXED));
	reply_set_int(o, "bytes_out", __atomic_load_n(&b->bytes_out, __ATOMIC_RELAXED));
	reply_set_int(o, "connect_failures", b->connect_failures);
	reply_set(o, "last_check", json_string(check_result_str(b->last_result)));
	if (b->checked && b->last_check_ms != 0 && now >= b->last_check_ms)
		reply_set_int(o, "last_check_age_ms", now - b->last_check_ms);
	else
		reply_set(o, "last_check_age_ms", json_null());
	reply_set_int(o, "weight", (uint64_t)b->conf.weight);
	reply_set_int(o, "checks_skipped", b->checks_skipped);
	return o;
}

/* "21", "1025-1052": the ports as written in the config. */
static json_t *
view_ports_json(const struct service_config *sc)
{
	char	 buf[16];
	json_t	*a;
	int	 i;

	if ((a = json_array()) == NULL)
		return NULL;
	for (i = 0; i < sc->nranges; i++) {
		if (sc->ranges[i].first == sc->ranges[i].last)
			snprintf(buf, sizeof(buf), "%u", sc->ranges[i].first);
		else
			snprintf(buf, sizeof(buf), "%u-%u", sc->ranges[i].first,
			    sc->ranges[i].last);
		json_array_append_new(a, json_string(buf));
	}
	return a;
}

static json_t *
view_service_json(struct service *svc, uint64_t now)
{
	json_t	*o, *backends;
	int	 i;

	if ((o = json_object()) == NULL)
		return NULL;
	reply_set(o, "name", reply_str(svc->conf.name));
	reply_set(o, "ports", view_ports_json(&svc->conf));
	reply_set(o, "scheduler", json_string(sched_type_str(svc->conf.sched)));
	reply_set_int(o, "active", svc->active);
	reply_set_int(o, "total", svc->total);
	reply_set_int(o, "refused", svc->refused);
	reply_set_int(o, "fd_reserve_pauses", svc->fd_reserve_pauses);
	reply_set_int(o, "refused_per_client", svc->refused_per_client);
	reply_set_int(o, "clients", clients_size(svc->clients));
	reply_set_int(o, "max_connections_per_client",
	    (uint64_t)svc->conf.max_connections_per_client);
	reply_set_int(o, "sticky_entries", svc->sticky ? sticky_count(svc->sticky) : 0);
	reply_set_int(o, "sticky_evictions", svc->sticky ? sticky_evictions(svc->sticky) : 0);
	if ((backends = json_array()) != NULL)
		for (i = 0; i < svc->nbackends; i++)
			if (reload_backend_listed(&svc->backends[i]))
				json_array_append_new(backends,
				    view_backend_json(&svc->backends[i], now));
	reply_set(o, "backends", backends);
	return o;
}

/* "192.168.86.87/24", or NULL when no VIP is configured. */
static json_t *
view_vip_address(const struct lbd_config *conf)
{
	char	 addr[ADDR_STRLEN], buf[ADDR_STRLEN + 8];

	if (conf->vip_addr.ss_family != AF_INET && conf->vip_addr.ss_family != AF_INET6)
		return json_null();
	sockaddr_str((const struct sockaddr *)&conf->vip_addr, addr, sizeof(addr));
	snprintf(buf, sizeof(buf), "%s/%d", addr, conf->vip_prefixlen);
	return json_string(buf);
}

/* The pipe memory budget (node.pipe_memory_max_mb) and its use: relay.c. */
static json_t *
view_pipes_json(void)
{
	struct relay_pipe_stats	 st;

	relay_pipe_stats(&st);
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}",
	    "bytes", (json_int_t)st.bytes,		/* enlarged pipes held by connections */
	    "max", (json_int_t)st.max,
	    "peak", (json_int_t)st.peak,
	    "fallbacks", (json_int_t)st.fallbacks,	/* default-size pipes handed out */
	    "refused", (json_int_t)st.refused,		/* F_SETPIPE_SZ refused */
	    "pipe_size", (json_int_t)st.pipe_size);
}

/* Connection mirroring (mirror.c, mirror_peer.c, fence.c): struct mirror_stats. */
static json_t *
view_mirror_json(void)
{
	struct mirror_stats st;
	json_t		*o;

	mirror_get_stats(&st);
	mirror_peer_stats(&st);
	o = json_pack("{s:b, s:I, s:o, s:o, s:I, s:I, s:I, s:I, s:I, s:I}",
	    "enabled", st.on,
	    "pairs", (json_int_t)st.pairs,		/* mirrored to the peer now */
	    "lag_p50_ms", reply_ms(st.lag_p50_ms),
	    "lag_p99_ms", reply_ms(st.lag_p99_ms),
	    "bytes", (json_int_t)st.bytes,
	    "records", (json_int_t)st.records,
	    "batches", (json_int_t)st.batches,
	    "given_up", (json_int_t)st.given_up,
	    "resyncs", (json_int_t)st.resyncs,
	    "send_failures", (json_int_t)st.send_failures);
	if (o == NULL)
		return NULL;
	reply_set_int(o, "held", st.held);		/* the peer's pairs held here */
	reply_set_int(o, "held_bytes", st.held_bytes);
	reply_set_int(o, "rx_records", st.rx_records);
	reply_set_int(o, "rx_bad", st.rx_bad);
	reply_set_int(o, "takeovers", st.takeovers);
	reply_set_int(o, "rebuilt", st.last_rebuilt);	/* at the last takeover */
	reply_set_int(o, "reset", st.last_reset);	/* ... not rebuilt, or stale since */
	reply_set(o, "rebuild_ms", reply_ms(st.last_rebuild_ms));
	reply_set_int(o, "rebuilt_total", st.rebuilt);
	reply_set_int(o, "failed_total", st.failed);
	reply_set_int(o, "stale_total", st.stale);
	reply_set(o, "fence", json_boolean(st.fence));
	reply_set_int(o, "fence_dropped", st.fence_dropped);
	reply_set_int(o, "standby", st.standby);	/* held pairs with their sockets made */
	reply_set_int(o, "standby_failed", st.standby_failed);
	reply_set_int(o, "rebuilt_standby", st.last_standby);	/* at the last takeover */
	return o;
}

/* The control socket's clients and refusals: struct control_status. */
static json_t *
view_clients_json(const struct control_status *cs)
{
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
	    "clients", (json_int_t)cs->clients, "monitors", (json_int_t)cs->monitors,
	    "max_clients", (json_int_t)cs->max_clients,
	    "max_monitors", (json_int_t)cs->max_monitors,
	    "request_timeout_ms", (json_int_t)cs->request_timeout_ms,
	    "refused", (json_int_t)cs->refused,
	    "monitors_refused", (json_int_t)cs->monitors_refused,
	    "timeouts", (json_int_t)cs->timeouts);
}

/* The metrics endpoint's connections (struct metrics_status); null when it is off. */
static json_t *
view_metrics_json(struct lbd *lbd)
{
	struct metrics_status	 ms = lbd->metrics_stats;	/* kept by metrics.c */

	if (lbd->metrics == NULL)
		return json_null();
	ms.request_timeout_ms = (uint64_t)config_metrics_timeout_ms(lbd->conf);
	return json_pack("{s:I,s:I,s:I,s:I,s:I}",
	    "connections", (json_int_t)ms.connections,
	    "max_connections", (json_int_t)ms.max_connections,
	    "request_timeout_ms", (json_int_t)ms.request_timeout_ms,
	    "cap_reached", (json_int_t)ms.cap_reached,
	    "timeouts", (json_int_t)ms.timeouts);
}

json_t *
view_status(struct lbd *lbd, const struct control_status *cs)
{
	json_t			*o, *vip, *services;
	uint64_t		 now = clock_now_ms();
	int			 i;

	if ((o = json_object()) == NULL)
		return NULL;
	reply_set(o, "node", reply_str(lbd->conf->node_name));
	reply_set(o, "role", cluster_role_json(lbd));
	reply_set_int(o, "priority", (uint64_t)lbd->conf->node_priority);
	if ((vip = json_object()) != NULL) {
		reply_set(vip, "address", view_vip_address(lbd->conf));
		reply_set(vip, "interface", reply_str(lbd->conf->vip_interface));
		cluster_vip_json(lbd, vip);	/* held, draining, forwarding */
	}
	reply_set(o, "vip", vip);
	reply_set(o, "peer", cluster_peer_json(lbd));
	reply_set(o, "sync", cluster_sync_json(lbd));
	reply_set(o, "ha", cluster_ha_json(lbd));
	reply_set_int(o, "uptime_s", now >= lbd->started_ms ? (now - lbd->started_ms) / 1000 : 0);
	reply_set_int(o, "relay_threads", (uint64_t)relay_threads());	/* 0: in the main loop */
	reply_set(o, "pipes", view_pipes_json());
	reply_set(o, "mirror", view_mirror_json());
	if ((services = json_array()) != NULL)
		for (i = 0; i < lbd->nservices; i++)
			json_array_append_new(services,
			    view_service_json(&lbd->services[i], now));
	reply_set(o, "services", services);
	reply_set(o, "control", view_clients_json(cs));
	reply_set(o, "metrics", view_metrics_json(lbd));
	reply_set(o, "version", json_string(LBD_VERSION));
	return o;
}

json_t *
view_backends(struct lbd *lbd)
{
	struct service	*svc;
	json_t		*o, *list, *b;
	uint64_t	 now = clock_now_ms();
	int		 i, j;

	if ((list = json_array()) == NULL)
		return NULL;
	for (i = 0; i < lbd->nservices; i++) {
		svc = &lbd->services[i];
		for (j = 0; j < svc->nbackends; j++) {
			if (!reload_backend_listed(&svc->backends[j]) ||
			    (b = view_backend_json(&svc->backends[j], now)) == NULL)
				continue;
			reply_set(b, "service", reply_str(svc->conf.name));
			json_array_append_new(list, b);
		}
	}
	if ((o = json_object()) == NULL) {
		json_decref(list);
		return NULL;
	}
	reply_set(o, "backends", list);
	return o;
}

/* ---------------------------------------------------------------- sticky */

void
view_stream_free(struct view_stream *st)
{
	int	 i, j;

	if (st == NULL)
		return;
	for (i = 0; i < LBD_MAX_SERVICES; i++)
		for (j = 0; j < LBD_MAX_BACKENDS + 1; j++)
			free(st->names[i][j]);
	free(st->items);
	free(st);
}

/* name as a quoted JSON string, e.g. "\"FTP_SVR1\"". */
static char *
view_quote(const char *name)
{
	json_t	*j = reply_str(name);
	char	*q = j != NULL ? json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;

	json_decref(j);
	return q;
}

static void
view_snapshot_one(const struct lbd_ip *ip, int backend, uint32_t expires_in_s, void *arg)
{
	struct view_stream *st = arg;
	struct view_sticky_item *it, *p;
	size_t		 cap;

	st->total++;
	if (st->nitems == st->cap) {
		cap = st->cap ? st->cap * 2 : 1024;
		if ((p = reallocarray(st->items, cap, sizeof(*p))) == NULL)
			return;		/* listed in part; total still counts */
		st->items = p;
		st->cap = cap;
	}
	it = &st->items[st->nitems++];
	it->ip = *ip;
	it->expires_in_s = expires_in_s;
	it->service = st->service;
	it->backend = (int16_t)(backend >= 0 && backend < LBD_MAX_BACKENDS ? backend : -1);
}

/* A page's order: by service, then latest expiry (most recently used) first. */
static int
view_item_cmp(const void *a, const void *b)
{
	const struct view_sticky_item *x = a, *y = b;

	if (x->service != y->service)
		return x->service < y->service ? -1 : 1;
	if (x->expires_in_s != y->expires_in_s)
		return x->expires_in_s > y->expires_in_s ? -1 : 1;
	return memcmp(x->ip.bytes, y->ip.bytes, sizeof(x->ip.bytes));
}

/* Is svc listed by a `sticky list` of only (NULL: every service)? */
static bool
view_sticky_listed(const struct service *svc, const struct service *only)
{
	return (only == NULL || svc == only) && svc->sticky != NULL;
}

/*
 * The cursor of a `sticky list ... from CURSOR`: "SERVICE.SLOT", the
 * service's index and the table slot to go on from, as a reply's "next"
 * gave it. Returns: 0, or -1 and *err set.
 */
static int
view_cursor_parse(struct lbd *lbd, const struct service *only, const char *s,
    int *service, uint32_t *slot, json_t **err)
{
	char		 buf[REPLY_ECHO_MAX + 8], *end;
	unsigned long	 a, b;

	errno = 0;
	a = strtoul(s, &end, 10);
	if (end != s && *end == '.' && end[1] >= '0' && end[1] <= '9') {
		b = strtoul(end + 1, &end, 10);
		if (errno == 0 && *end == '\0' && s[0] >= '0' && s[0] <= '9' &&
		    a < (unsigned long)lbd->nservices && b <= UINT32_MAX &&
		    (only == NULL || &lbd->services[a] == only)) {
			*service = (int)a;
			*slot = (uint32_t)b;
			return 0;
		}
	}
	*err = reply_error("bad sticky list cursor \"%s\": give the \"next\" of the page "
	    "before, with the same SERVICE", reply_echo(s, buf, sizeof(buf)));
	return -1;
}

/*
 * Copies one page of the live entries of one service (only != NULL) or all
 * into a new stream: the whole listing, most recently used first, when the
 * tables hold at most VIEW_STICKY_PAGE slots in use and no cursor is
 * given; else the page from cursor on (NULL: the first), at most
 * VIEW_STICKY_PAGE entries and VIEW_STICKY_PAGE_SLOTS slots visited,
 * with the next page's cursor.
 * Returns: the stream, or NULL with *err set (a bad cursor; out of memory, logged).
 */
struct view_stream *
view_sticky_snapshot(struct lbd *lbd, struct service *only, const char *cursor, json_t **err)
{
	struct view_stream *st;
	struct service	*svc;
	uint32_t	 now = now_s(), used = 0, slot = 0, before, budget = VIEW_STICKY_PAGE_SLOTS;
	int		 i, j, first = 0;
	bool		 done;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		goto fail;
	for (i = 0; i < lbd->nservices; i++) {
		svc = &lbd->services[i];
		if (!view_sticky_listed(svc, only))
			continue;
		used += sticky_used(svc->sticky);
		st->nbackends[i] = svc->nbackends;
		if ((st->names[i][0] = view_quote(svc->conf.name)) == NULL)
			goto fail;
		for (j = 0; j < svc->nbackends; j++)
			if ((st->names[i][1 + j] = view_quote(svc->backends[j].conf.name)) == NULL)
				goto fail;
	}
	if (cursor != NULL && view_cursor_parse(lbd, only, cursor, &first, &slot, err) == -1) {
		view_stream_free(st);
		return NULL;
	}
	st->paged = cursor != NULL || used > VIEW_STICKY_PAGE;
	if (!st->paged) {
		/* Bounded: the lists hold at most VIEW_STICKY_PAGE entries in all. */
		for (i = 0; i < lbd->nservices; i++) {
			if (!view_sticky_listed(&lbd->services[i], only))
				continue;
			st->service = (int16_t)i;
			sticky_foreach(lbd->services[i].sticky, now, view_snapshot_one, st);
		}
		return st;
	}
	/* A whole page's room up front: no entry of a page is dropped. */
	if ((st->items = calloc(VIEW_STICKY_PAGE, sizeof(*st->items))) == NULL)
		goto fail;
	st->cap = VIEW_STICKY_PAGE;
	for (i = first; i < lbd->nservices; i++, slot = 0) {
		svc = &lbd->services[i];
		if (!view_sticky_listed(svc, only))
			continue;
		if (st->nitems >= VIEW_STICKY_PAGE || budget == 0) {
			/* This page is full: the next one starts with this service. */
			snprintf(st->cursor, sizeof(st->cursor), "%d.0", i);
			break;
		}
		st->service = (int16_t)i;
		before = slot;
		done = sticky_foreach_slots(svc->sticky, &slot, now,
		    VIEW_STICKY_PAGE - (uint32_t)st->nitems, budget, view_snapshot_one, st);
		budget -= slot - before;	/* it visits at most budget slots */
		if (!done) {
			snprintf(st->cursor, sizeof(st->cursor), "%d.%u", i, slot);
			break;
		}
	}
	/* Counting the live entries would walk the tables: their counts stand in. */
	for (i = 0, st->total = 0; i < lbd->nservices; i++)
		if (view_sticky_listed(&lbd->services[i], only))
			st->total += sticky_count(lbd->services[i].sticky);
	if (st->nitems > 1)
		qsort(st->items, st->nitems, sizeof(*st->items), view_item_cmp);
	return st;

fail:
	log_warnx("control: out of memory for a sticky list");
	view_stream_free(st);
	*err = reply_error("out of memory");
	return NULL;
}

/*
 * Writes the next slice of st to out: the opening, up to slice entries,
 * and the closing after the last one.
 * Returns: 1 more to write, 0 finished, -1 out of memory.
 */
int
view_stream_write(struct view_stream *st, struct evbuffer *out, size_t slice)
{
	struct view_sticky_item *it;
	const char	*backend;
	char		 ip[INET6_ADDRSTRLEN];
	size_t		 end;

	if (st->next == 0 && evbuffer_add_printf(out, "{\"entries\":[") == -1)
		return -1;
	end = st->nitems - st->next > slice ? st->next + slice : st->nitems;
	for (; st->next < end; st->next++) {
		it = &st->items[st->next];
		backend = it->backend >= 0 && it->backend < st->nbackends[it->service] ?
		    st->names[it->service][1 + it->backend] : "\"?\"";
		if (evbuffer_add_printf(out,
		    "%s{\"service\":%s,\"client\":\"%s\",\"backend\":%s,\"expires_in_s\":%u}",
		    st->next > 0 ? "," : "", st->names[it->service][0],
		    ip_str(&it->ip, ip, sizeof(ip)), backend, it->expires_in_s) == -1)
			return -1;
	}
	if (st->next < st->nitems)
		return 1;
	/* truncated: this reply does not hold the rest (a page before the last, or out of memory). */
	if (evbuffer_add_printf(out, "],\"total\":%zu,\"truncated\":%s", st->total,
	    st->cursor[0] != '\0' || (!st->paged && st->total > st->nitems) ? "true" : "false") == -1 ||
	    (st->cursor[0] != '\0' && evbuffer_add_printf(out, ",\"next\":\"%s\"", st->cursor) == -1) ||
	    evbuffer_add_printf(out, "}\n") == -1)
		return -1;
	return 0;
}

/*
 * sticky list [SERVICE] [from CURSOR], all at once: the same text the
 * socket streams, parsed back. For callers in the process (tests); clients
 * get the stream written in slices (control.c).
 */
json_t *
view_sticky_list(struct lbd *lbd, struct service *only, const char *cursor)
{
	struct view_stream *st;
	struct evbuffer	*buf;
	json_t		*o = NULL, *err = NULL;
	size_t		 len;

	if ((st = view_sticky_snapshot(lbd, only, cursor, &err)) == NULL)
		return err;
	if ((buf = evbuffer_new()) != NULL &&
	    view_stream_write(st, buf, SIZE_MAX) == 0 &&
	    (len = evbuffer_get_length(buf)) > 0)
		o = json_loadb((const char *)evbuffer_pullup(buf, -1), len, 0, NULL);
	if (buf != NULL)
		evbuffer_free(buf);
	view_stream_free(st);
	return o;
}
