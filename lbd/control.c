/*
 * control.c - the control socket: one JSON reply per request line for lbctl
 * (status, backends, sticky table, admin states), and the `monitor` event
 * stream.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>

#include <errno.h>
#include <inttypes.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "lbd.h"

#define CONTROL_MAX_CLIENTS	64		/* concurrent connections; more are turned away */
#define CONTROL_MAX_MONITORS	16		/* of which `monitor` streams: 48 slots stay for commands */
#define CONTROL_WRITE_TIMEOUT_S	10		/* without any progress writing a reply or events */
#define CONTROL_MONITOR_MAX_OUT	(1024 * 1024)	/* unsent event bytes before a monitor is dropped */
#define CONTROL_STICKY_PAGE	10000		/* entries in one `sticky list` reply (a page) */
#define CONTROL_STICKY_PAGE_SLOTS 65536		/* table slots one page visits at most (~1 ms) */
#define CONTROL_CURSOR_MAX	32		/* bytes of a `sticky list` cursor, "SERVICE.SLOT" */
#define CONTROL_STREAM_SLICE	2000		/* entries written per loop turn (about 1 ms) */
#define CONTROL_STREAM_LOW	(64 * 1024)	/* unsent bytes below which the next slice goes */
#define CONTROL_MAX_STREAMS	4		/* `sticky list` replies in progress at once */
#define CONTROL_MAX_TOKENS	8		/* words in a request line */
#define CONTROL_ECHO_MAX	64		/* bytes of user input quoted back in an error */
#define CONTROL_ACCEPT_PAUSE_MS	1000		/* accept() back-off when out of descriptors */
#define CONTROL_LIST_MAX	512		/* bytes of a "backends: A, B" hint */
#define CONTROL_REFUSE_LOG_MS	10000		/* at most one log line per kind (full, monitors, timeout) per this */
#define CONTROL_DRAIN_READS	16		/* 4 KiB reads of unread input before a close */
#define CONTROL_MODE		0660		/* socket mode: owner and control.group */
#define CONTROL_MODE_READONLY	0666		/* with control.readonly_group: SO_PEERCRED decides */
#define CONTROL_PEER_GROUPS	64		/* supplementary groups read at first; more: realloc */

/* What a connected peer may run, from its SO_PEERCRED/SO_PEERGROUPS. */
enum control_access {
	CONTROL_ACCESS_NONE = 0,		/* nothing: not root, lbd's user nor a group member */
	CONTROL_ACCESS_READONLY,		/* control.readonly_group: commands that change nothing */
	CONTROL_ACCESS_FULL,			/* root, lbd's own user, control.group */
};

/* Commands a control.readonly_group member may run, quoted in its errors. */
#define CONTROL_READONLY_COMMANDS "status, backends, sticky list|get, monitor, help"

/* The command list quoted in "unknown command" errors. */
#define CONTROL_VALID_COMMANDS \
	"status, backends, sticky list|get|set|clear|flush, " \
	"backend NAME enable|disable|drain, failover, reload, monitor"

struct control_client;

/* The listening socket and its clients. */
struct control {
	struct lbd	*lbd;			/* owner */
	int		 fd;			/* listening UNIX socket */
	struct event	*ev_accept;		/* EV_READ on fd */
	struct event	*ev_pause;		/* re-enables accept after EMFILE */
	char		 path[LBD_PATH_MAX];	/* socket path, unlinked at close */
	TAILQ_HEAD(, control_client) clients;	/* open connections */
	int		 nclients;		/* length of clients */
	int		 nstreams;		/* clients with a stream */
	uint64_t	 refuse_logged_ms;	/* last "too many clients" log line (rate limit) */
	int		 nmonitors;		/* clients with monitor set */
	uint64_t	 refused;		/* connections turned away at CONTROL_MAX_CLIENTS */
	uint64_t	 monitors_refused;	/* `monitor` requests turned away at CONTROL_MAX_MONITORS */
	uint64_t	 timeouts;		/* clients closed at their request deadline */
	uint64_t	 monitor_logged_ms;	/* last "too many monitors" log line (rate limit) */
	uint64_t	 timeout_logged_ms;	/* last "timed out" log line (rate limit) */
	bool		 has_group;		/* control.group exists: group is valid */
	gid_t		 group;			/* its gid: every command */
	bool		 has_ro_group;		/* control.readonly_group is set */
	gid_t		 ro_group;		/* its gid: read-only commands */
};

/* One connection: a request line in, a JSON line out (or an event stream). */
struct control_client {
	TAILQ_ENTRY(control_client) entry;	/* in control->clients */
	struct control	*control;		/* owner */
	struct bufferevent *bev;		/* the socket, buffered both ways */
	struct event	*ev_deadline;		/* the request line is due: absolute, from accept */
	bool		 replied;		/* reply queued: close once written */
	bool		 monitor;		/* streaming events until the client closes */
	enum control_access access;		/* from the peer's credentials at accept */
	struct control_stream *stream;		/* `sticky list` reply being written, or NULL */
};

/* One sticky entry as copied for a `sticky list` reply. */
struct control_sticky_item {
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
 * than CONTROL_STICKY_PAGE_SLOTS slots.
 */
struct control_stream {
	struct control_sticky_item *items;	/* the snapshot */
	size_t		 nitems;		/* entries in items */
	size_t		 cap;			/* room in items */
	size_t		 next;			/* first item not written yet */
	size_t		 total;			/* live entries seen, listed or not */
	int16_t		 service;		/* service being walked */
	bool		 paged;			/* in pages: total from the tables' counts */
	char		 cursor[CONTROL_CURSOR_MAX];	/* the next page's start, or "" for none */
	int		 nbackends[LBD_MAX_SERVICES];	/* backends per service at snapshot */
	char		*names[LBD_MAX_SERVICES][LBD_MAX_BACKENDS + 1];
						/* JSON-quoted: [s][0] service, [s][1 + b] backend b */
};

static void	 control_accept(evutil_socket_t, short, void *);
static void	 control_resume_accept(evutil_socket_t, short, void *);
static void	 control_client_read(struct bufferevent *, void *);
static void	 control_client_deadline(evutil_socket_t, short, void *);
static void	 control_client_write(struct bufferevent *, void *);
static void	 control_client_event(struct bufferevent *, short, void *);
static void	 control_client_free(struct control_client *);
static void	 control_client_drain(struct control_client *);
static void	 control_client_request(struct control_client *, const char *, size_t);
static void	 control_client_reply(struct control_client *, json_t *);
static void	 control_client_error(struct control_client *, const char *);
static int	 control_send(struct control_client *, json_t *);
static json_t	*control_run(struct lbd *, const char *, enum control_access, bool *,
		    struct control_stream **);
static void	 control_client_stream(struct control_client *, struct control_stream *);
static void	 control_client_stream_more(struct control_client *);

/* ---------------------------------------------------------------- helpers */

/*
 * Copies untrusted s into buf for quoting in a message: printable ASCII
 * only (others become '?'), cut at CONTROL_ECHO_MAX bytes with "...".
 */
static const char *
control_echo(const char *s, char *buf, size_t len)
{
	size_t	 i, n = 0;

	for (i = 0; s[i] != '\0' && n + 4 < len; i++) {
		if (i == CONTROL_ECHO_MAX) {
			memcpy(buf + n, "...", 3);
			n += 3;
			break;
		}
		buf[n++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	}
	buf[n] = '\0';
	return buf;
}

/* A JSON string of s; bytes that are not valid UTF-8 are replaced, never dropped. */
static json_t *
control_str(const char *s)
{
	char	 buf[CONTROL_ECHO_MAX + 8];
	json_t	*j;

	if ((j = json_string(s)) != NULL)
		return j;
	return json_string(control_echo(s, buf, sizeof(buf)));
}

/* {"error": message}, built with printf formatting. */
static json_t *
control_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static json_t *
control_error(const char *fmt, ...)
{
	char	 msg[1024];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return json_pack("{s:o}", "error", control_str(msg));
}

/* Sets key on obj to a new value; a NULL value (out of memory) is logged. */
static void
control_set(json_t *obj, const char *key, json_t *value)
{
	if (value == NULL || json_object_set_new(obj, key, value) == -1)
		log_warnx("control: cannot add \"%s\" to a reply", key);
}

static void
control_set_int(json_t *obj, const char *key, uint64_t v)
{
	control_set(obj, key, json_integer((json_int_t)v));
}

/* Appends s to the string in buf (size len), cutting what does not fit. */
static void
control_append(char *buf, const char *s, size_t len)
{
	size_t	 n = strlen(buf);

	if (n + 1 < len)
		snprintf(buf + n, len - n, "%s", s);
}

/* Comma-separated service names, for "services: A, B" hints. */
static const char *
control_service_names(struct lbd *lbd, char *buf, size_t len)
{
	int	 i;

	buf[0] = '\0';
	for (i = 0; i < lbd->nservices; i++) {
		if (i > 0)
			control_append(buf, ", ", len);
		control_append(buf, lbd->services[i].conf.name, len);
	}
	return buf;
}

/*
 * The services a command with an optional SERVICE argument acts on: one
 * named service, or all of them when name is NULL.
 * Returns: 0 and *svc set (NULL = every service), or -1 and *err set to a
 * new error reply.
 */
static int
control_service_arg(struct lbd *lbd, const char *name, struct service **svc, json_t **err)
{
	char	 buf[CONTROL_ECHO_MAX + 8], names[CONTROL_LIST_MAX];

	*svc = NULL;
	if (name == NULL)
		return 0;
	if ((*svc = lbd_service_by_name(lbd, name)) != NULL)
		return 0;
	*err = control_error("no service named %s; services: %s",
	    control_echo(name, buf, sizeof(buf)),
	    control_service_names(lbd, names, sizeof(names)));
	return -1;
}

/* Name of backend index i of svc, or "?" for an index the table should not hold. */
static const char *
control_backend_name(struct service *svc, int i)
{
	if (i < 0 || i >= svc->nbackends)
		return "?";
	return svc->backends[i].conf.name;
}

/* ---------------------------------------------------------------- status */

/* One backend as in `status` and `backends`. */
static json_t *
control_backend_json(struct backend *b, uint64_t now)
{
	char	 addr[ADDR_STRLEN];
	json_t	*o;

	if ((o = json_object()) == NULL)
		return NULL;
	control_set(o, "name", control_str(b->conf.name));
	control_set(o, "address", json_string(addr_str((struct sockaddr *)&b->conf.addr,
	    addr, sizeof(addr))));
	control_set(o, "state", json_string(backend_state_str(b)));
	control_set(o, "admin", json_string(backend_admin_str(b->admin)));
	control_set(o, "removed", json_boolean(reload_backend_removed(b)));
	control_set_int(o, "active", b->active);
	control_set_int(o, "total", b->total);
	/* Relay workers add to these: atomic loads. */
	control_set_int(o, "bytes_in", __atomic_load_n(&b->bytes_in, __ATOMIC_RELAXED));
	control_set_int(o, "bytes_out", __atomic_load_n(&b->bytes_out, __ATOMIC_RELAXED));
	control_set_int(o, "connect_failures", b->connect_failures);
	control_set(o, "last_check", json_string(check_result_str(b->last_result)));
	if (b->checked && b->last_check_ms != 0 && now >= b->last_check_ms)
		control_set_int(o, "last_check_age_ms", now - b->last_check_ms);
	else
		control_set(o, "last_check_age_ms", json_null());
	control_set_int(o, "weight", (uint64_t)b->conf.weight);
	control_set_int(o, "checks_skipped", b->checks_skipped);
	return o;
}

/* "21", "1025-1052": the ports as written in the config. */
static json_t *
control_ports_json(const struct service_config *sc)
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
control_service_json(struct service *svc, uint64_t now)
{
	json_t	*o, *backends;
	int	 i;

	if ((o = json_object()) == NULL)
		return NULL;
	control_set(o, "name", control_str(svc->conf.name));
	control_set(o, "ports", control_ports_json(&svc->conf));
	control_set(o, "scheduler", json_string(sched_type_str(svc->conf.sched)));
	control_set_int(o, "active", svc->active);
	control_set_int(o, "total", svc->total);
	control_set_int(o, "refused", svc->refused);
	control_set_int(o, "fd_reserve_pauses", svc->fd_reserve_pauses);
	control_set_int(o, "refused_per_client", svc->refused_per_client);
	control_set_int(o, "clients", clients_size(svc->clients));
	control_set_int(o, "max_connections_per_client",
	    (uint64_t)svc->conf.max_connections_per_client);
	control_set_int(o, "sticky_entries", svc->sticky ? sticky_count(svc->sticky) : 0);
	control_set_int(o, "sticky_evictions", svc->sticky ? sticky_evictions(svc->sticky) : 0);
	if ((backends = json_array()) != NULL)
		for (i = 0; i < svc->nbackends; i++)
			if (reload_backend_listed(&svc->backends[i]))
				json_array_append_new(backends,
				    control_backend_json(&svc->backends[i], now));
	control_set(o, "backends", backends);
	return o;
}

/* "192.168.86.87/24", or NULL when no VIP is configured. */
static json_t *
control_vip_address(const struct lbd_config *conf)
{
	char	 addr[ADDR_STRLEN], buf[ADDR_STRLEN + 8];

	if (conf->vip_addr.ss_family != AF_INET && conf->vip_addr.ss_family != AF_INET6)
		return json_null();
	addr_str((const struct sockaddr *)&conf->vip_addr, addr, sizeof(addr));
	snprintf(buf, sizeof(buf), "%s/%d", addr, conf->vip_prefixlen);
	return json_string(buf);
}

/* The pipe memory budget (node.pipe_memory_max_mb) and its use: relay.c. */
static json_t *
control_pipes_json(void)
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

/* The control socket's clients and refusals: struct control_status. */
static json_t *
control_clients_json(struct lbd *lbd)
{
	struct control_status	 cs;

	control_get_status(lbd->control, &cs);
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
	    "clients", (json_int_t)cs.clients, "monitors", (json_int_t)cs.monitors,
	    "max_clients", (json_int_t)cs.max_clients,
	    "max_monitors", (json_int_t)cs.max_monitors,
	    "request_timeout_ms", (json_int_t)cs.request_timeout_ms,
	    "refused", (json_int_t)cs.refused,
	    "monitors_refused", (json_int_t)cs.monitors_refused,
	    "timeouts", (json_int_t)cs.timeouts);
}

/* The metrics endpoint's connections (struct metrics_status); null when it is off. */
static json_t *
control_metrics_json(struct lbd *lbd)
{
	struct metrics_status	 ms;

	if (lbd->metrics == NULL)
		return json_null();
	metrics_get_status(lbd->metrics, &ms);
	return json_pack("{s:I,s:I,s:I,s:I,s:I}",
	    "connections", (json_int_t)ms.connections,
	    "max_connections", (json_int_t)ms.max_connections,
	    "request_timeout_ms", (json_int_t)ms.request_timeout_ms,
	    "cap_reached", (json_int_t)ms.cap_reached,
	    "timeouts", (json_int_t)ms.timeouts);
}

json_t *
control_status(struct lbd *lbd)
{
	json_t			*o, *vip, *services;
	uint64_t		 now = now_ms();
	int			 i;

	if ((o = json_object()) == NULL)
		return NULL;
	control_set(o, "node", control_str(lbd->conf->node_name));
	control_set(o, "role", cluster_role_json(lbd));
	control_set_int(o, "priority", (uint64_t)lbd->conf->node_priority);
	if ((vip = json_object()) != NULL) {
		control_set(vip, "address", control_vip_address(lbd->conf));
		control_set(vip, "interface", control_str(lbd->conf->vip_interface));
		cluster_vip_json(lbd, vip);	/* held, draining, forwarding */
	}
	control_set(o, "vip", vip);
	control_set(o, "peer", cluster_peer_json(lbd));
	control_set(o, "sync", cluster_sync_json(lbd));
	control_set(o, "ha", cluster_ha_json(lbd));
	control_set_int(o, "uptime_s", now >= lbd->started_ms ? (now - lbd->started_ms) / 1000 : 0);
	control_set_int(o, "relay_threads", (uint64_t)relay_threads());	/* 0: in the main loop */
	control_set(o, "pipes", control_pipes_json());
	if ((services = json_array()) != NULL)
		for (i = 0; i < lbd->nservices; i++)
			json_array_append_new(services,
			    control_service_json(&lbd->services[i], now));
	control_set(o, "services", services);
	control_set(o, "control", control_clients_json(lbd));
	control_set(o, "metrics", control_metrics_json(lbd));
	return o;
}

json_t *
control_backends(struct lbd *lbd)
{
	struct service	*svc;
	json_t		*o, *list, *b;
	uint64_t	 now = now_ms();
	int		 i, j;

	if ((list = json_array()) == NULL)
		return NULL;
	for (i = 0; i < lbd->nservices; i++) {
		svc = &lbd->services[i];
		for (j = 0; j < svc->nbackends; j++) {
			if (!reload_backend_listed(&svc->backends[j]) ||
			    (b = control_backend_json(&svc->backends[j], now)) == NULL)
				continue;
			control_set(b, "service", control_str(svc->conf.name));
			json_array_append_new(list, b);
		}
	}
	if ((o = json_object()) == NULL) {
		json_decref(list);
		return NULL;
	}
	control_set(o, "backends", list);
	return o;
}

/* ---------------------------------------------------------------- sticky */

static void
control_stream_free(struct control_stream *st)
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
control_quote(const char *name)
{
	json_t	*j = control_str(name);
	char	*q = j != NULL ? json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;

	json_decref(j);
	return q;
}

static void
control_snapshot_one(const struct lbd_ip *ip, int backend, uint32_t expires_in_s, void *arg)
{
	struct control_stream *st = arg;
	struct control_sticky_item *it, *p;
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
control_item_cmp(const void *a, const void *b)
{
	const struct control_sticky_item *x = a, *y = b;

	if (x->service != y->service)
		return x->service < y->service ? -1 : 1;
	if (x->expires_in_s != y->expires_in_s)
		return x->expires_in_s > y->expires_in_s ? -1 : 1;
	return memcmp(x->ip.bytes, y->ip.bytes, sizeof(x->ip.bytes));
}

/* Is svc listed by a `sticky list` of only (NULL: every service)? */
static bool
control_sticky_listed(const struct service *svc, const struct service *only)
{
	return (only == NULL || svc == only) && svc->sticky != NULL;
}

/*
 * The cursor of a `sticky list ... from CURSOR`: "SERVICE.SLOT", the
 * service's index and the table slot to go on from, as a reply's "next"
 * gave it. Returns: 0, or -1 and *err set.
 */
static int
control_cursor_parse(struct lbd *lbd, const struct service *only, const char *s,
    int *service, uint32_t *slot, json_t **err)
{
	char		 buf[CONTROL_ECHO_MAX + 8], *end;
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
	*err = control_error("bad sticky list cursor \"%s\": give the \"next\" of the page "
	    "before, with the same SERVICE", control_echo(s, buf, sizeof(buf)));
	return -1;
}

/*
 * Copies one page of the live entries of one service (only != NULL) or all
 * into a new stream: the whole listing, most recently used first, when the
 * tables hold at most CONTROL_STICKY_PAGE slots in use and no cursor is
 * given; else the page from cursor on (NULL: the first), at most
 * CONTROL_STICKY_PAGE entries and CONTROL_STICKY_PAGE_SLOTS slots visited,
 * with the next page's cursor.
 * Returns: the stream, or NULL with *err set (a bad cursor; out of memory, logged).
 */
static struct control_stream *
control_sticky_snapshot(struct lbd *lbd, struct service *only, const char *cursor, json_t **err)
{
	struct control_stream *st;
	struct service	*svc;
	uint32_t	 now = now_s(), used = 0, slot = 0, before, budget = CONTROL_STICKY_PAGE_SLOTS;
	int		 i, j, first = 0;
	bool		 done;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		goto fail;
	for (i = 0; i < lbd->nservices; i++) {
		svc = &lbd->services[i];
		if (!control_sticky_listed(svc, only))
			continue;
		used += sticky_used(svc->sticky);
		st->nbackends[i] = svc->nbackends;
		if ((st->names[i][0] = control_quote(svc->conf.name)) == NULL)
			goto fail;
		for (j = 0; j < svc->nbackends; j++)
			if ((st->names[i][1 + j] = control_quote(svc->backends[j].conf.name)) == NULL)
				goto fail;
	}
	if (cursor != NULL && control_cursor_parse(lbd, only, cursor, &first, &slot, err) == -1) {
		control_stream_free(st);
		return NULL;
	}
	st->paged = cursor != NULL || used > CONTROL_STICKY_PAGE;
	if (!st->paged) {
		/* Bounded: the lists hold at most CONTROL_STICKY_PAGE entries in all. */
		for (i = 0; i < lbd->nservices; i++) {
			if (!control_sticky_listed(&lbd->services[i], only))
				continue;
			st->service = (int16_t)i;
			sticky_foreach(lbd->services[i].sticky, now, control_snapshot_one, st);
		}
		return st;
	}
	/* A whole page's room up front: no entry of a page is dropped. */
	if ((st->items = calloc(CONTROL_STICKY_PAGE, sizeof(*st->items))) == NULL)
		goto fail;
	st->cap = CONTROL_STICKY_PAGE;
	for (i = first; i < lbd->nservices; i++, slot = 0) {
		svc = &lbd->services[i];
		if (!control_sticky_listed(svc, only))
			continue;
		if (st->nitems >= CONTROL_STICKY_PAGE || budget == 0) {
			/* This page is full: the next one starts with this service. */
			snprintf(st->cursor, sizeof(st->cursor), "%d.0", i);
			break;
		}
		st->service = (int16_t)i;
		before = slot;
		done = sticky_foreach_slots(svc->sticky, &slot, now,
		    CONTROL_STICKY_PAGE - (uint32_t)st->nitems, budget, control_snapshot_one, st);
		budget -= slot - before;	/* it visits at most budget slots */
		if (!done) {
			snprintf(st->cursor, sizeof(st->cursor), "%d.%u", i, slot);
			break;
		}
	}
	/* Counting the live entries would walk the tables: their counts stand in. */
	for (i = 0, st->total = 0; i < lbd->nservices; i++)
		if (control_sticky_listed(&lbd->services[i], only))
			st->total += sticky_count(lbd->services[i].sticky);
	if (st->nitems > 1)
		qsort(st->items, st->nitems, sizeof(*st->items), control_item_cmp);
	return st;

fail:
	log_warnx("control: out of memory for a sticky list");
	control_stream_free(st);
	*err = control_error("out of memory");
	return NULL;
}

/*
 * Writes the next slice of st to out: the opening, up to slice entries,
 * and the closing after the last one.
 * Returns: 1 more to write, 0 finished, -1 out of memory.
 */
static int
control_stream_write(struct control_stream *st, struct evbuffer *out, size_t slice)
{
	struct control_sticky_item *it;
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
 * get control_client_stream.
 */
static json_t *
control_sticky_list(struct lbd *lbd, struct service *only, const char *cursor)
{
	struct control_stream *st;
	struct evbuffer	*buf;
	json_t		*o = NULL, *err = NULL;
	size_t		 len;

	if ((st = control_sticky_snapshot(lbd, only, cursor, &err)) == NULL)
		return err;
	if ((buf = evbuffer_new()) != NULL &&
	    control_stream_write(st, buf, SIZE_MAX) == 0 &&
	    (len = evbuffer_get_length(buf)) > 0)
		o = json_loadb((const char *)evbuffer_pullup(buf, -1), len, 0, NULL);
	if (buf != NULL)
		evbuffer_free(buf);
	control_stream_free(st);
	return o;
}

/* The parsed IP argument of sticky get/set/clear. Returns: 0, or -1 and *err set. */
static int
control_ip_arg(const char *s, struct lbd_ip *ip, json_t **err)
{
	char	 buf[CONTROL_ECHO_MAX + 8];

	if (s == NULL) {
		*err = control_error("missing IP address");
		return -1;
	}
	if (ip_parse(s, ip) == -1) {
		*err = control_error("not an IP address: %s", control_echo(s, buf, sizeof(buf)));
		return -1;
	}
	return 0;
}

/* sticky get IP [SERVICE]: the entry, searched in every service when none is named. */
static json_t *
control_sticky_get(struct lbd *lbd, const char *ipstr, const char *service)
{
	struct service	*only, *svc, *found = NULL;
	struct lbd_ip	 ip;
	json_t		*err;
	char		 buf[INET6_ADDRSTRLEN], names[CONTROL_LIST_MAX];
	uint32_t	 now = now_s();
	int64_t		 left = -1, l;
	int		 i, backend = -1, b, nfound = 0;

	if (control_ip_arg(ipstr, &ip, &err) == -1 ||
	    control_service_arg(lbd, service, &only, &err) == -1)
		return err;
	names[0] = '\0';
	for (i = 0; i < lbd->nservices; i++) {
		svc = &lbd->services[i];
		if ((only != NULL && svc != only) || svc->sticky == NULL)
			continue;
		if ((b = sticky_lookup(svc->sticky, &ip, now)) == -1 ||
		    (l = sticky_expires_in(svc->sticky, &ip, now)) == -1)
			continue;
		if (nfound++ > 0)
			control_append(names, ", ", sizeof(names));
		control_append(names, svc->conf.name, sizeof(names));
		found = svc;
		backend = b;
		left = l;
	}
	ip_str(&ip, buf, sizeof(buf));
	if (nfound == 0)
		return control_error("no sticky entry for %s", buf);
	if (nfound > 1)
		return control_error("%s has sticky entries in several services (%s); "
		    "name one: sticky get %s SERVICE", buf, names, buf);
	return json_pack("{s:s, s:o, s:I, s:o}",
	    "client", buf,
	    "backend", control_str(control_backend_name(found, backend)),
	    "expires_in_s", (json_int_t)left,
	    "service", control_str(found->conf.name));
}

/*
 * The backend called name among the services a command acts on (only, or
 * every service with a sticky table when NULL), for `sticky set` of client.
 * Returns: the backend, or NULL and *err set to a new error reply.
 */
static struct backend *
control_sticky_backend(struct lbd *lbd, const char *name, struct service *only,
    const char *client, json_t **err)
{
	struct service	*svc;
	struct backend	*b = NULL;
	char		 buf[CONTROL_ECHO_MAX + 8], names[CONTROL_LIST_MAX], where[CONTROL_LIST_MAX];
	int		 i, j, nfound = 0;

	names[0] = where[0] = '\0';
	for (i = 0; i < lbd->nservices; i++) {
		svc = &lbd->services[i];
		if ((only != NULL && svc != only) || svc->sticky == NULL)
			continue;
		for (j = 0; j < svc->nbackends; j++) {
			if (names[0] != '\0')
				control_append(names, ", ", sizeof(names));
			control_append(names, svc->backends[j].conf.name, sizeof(names));
			if (strcmp(svc->backends[j].conf.name, name) != 0)
				continue;
			if (nfound++ > 0)
				control_append(where, ", ", sizeof(where));
			control_append(where, svc->conf.name, sizeof(where));
			b = &svc->backends[j];
		}
	}
	if (nfound == 1)
		return b;
	if (nfound == 0)
		*err = control_error("no backend named %s%s%s; backends: %s",
		    control_echo(name, buf, sizeof(buf)), only != NULL ? " in service " : "",
		    only != NULL ? only->conf.name : "", names[0] != '\0' ? names : "none");
	else
		*err = control_error("backend %s exists in several services (%s); "
		    "name one: sticky set %s %s SERVICE", b->conf.name, where, client,
		    b->conf.name);
	return NULL;
}

/*
 * sticky set IP BACKEND [SERVICE]: pins a client to a backend, e.g. during
 * a migration. The entry is written as a connection's scheduler pick is
 * (sched_select -> sticky_set): versioned, marked dirty and replicated.
 */
static json_t *
control_sticky_set(struct lbd *lbd, const char *ipstr, const char *backend,
    const char *service)
{
	struct service	*only, *svc;
	struct backend	*b;
	struct lbd_ip	 ip;
	json_t		*err, *r;
	char		 buf[INET6_ADDRSTRLEN];
	uint32_t	 now = now_s();
	int64_t		 left;

	if (control_ip_arg(ipstr, &ip, &err) == -1)
		return err;
	if (backend == NULL)
		return control_error("missing backend name; usage: sticky set IP BACKEND [SERVICE]");
	if (control_service_arg(lbd, service, &only, &err) == -1)
		return err;
	if (only != NULL && only->sticky == NULL)
		return control_error("service %s has no sticky table", only->conf.name);
	ip_str(&ip, buf, sizeof(buf));
	if ((b = control_sticky_backend(lbd, backend, only, buf, &err)) == NULL)
		return err;
	svc = b->service;
	if (reload_backend_removed(b))
		return control_error("backend %s was removed from the configuration by the "
		    "last reload; pin %s to a backend of the current configuration",
		    b->conf.name, buf);
	if (b->admin == BACKEND_DISABLED)
		return control_error("backend %s is disabled and would not keep the client; "
		    "enable it first (backend %s enable %s) or pick another backend",
		    b->conf.name, b->conf.name, svc->conf.name);
	sticky_set(svc->sticky, &ip, b->index, now);
	left = sticky_expires_in(svc->sticky, &ip, now);
	log_info("sticky entry for %s set to %s/%s (by lbctl)", buf, svc->conf.name,
	    b->conf.name);
	r = json_pack("{s:s, s:o, s:I, s:o}",
	    "client", buf,
	    "backend", control_str(b->conf.name),
	    "expires_in_s", (json_int_t)(left < 0 ? 0 : left),
	    "service", control_str(svc->conf.name));
	if (r != NULL && !b->up)
		control_set(r, "warning", json_string("the backend is down: the client's next "
		    "connection picks another backend (and replaces this entry) unless it is "
		    "up by then"));
	return r;
}

/* sticky clear IP [SERVICE]: forgets the client in one or every service. */
static json_t *
control_sticky_clear(struct lbd *lbd, const char *ipstr, const char *service)
{
	struct service	*only, *svc;
	struct lbd_ip	 ip;
	json_t		*err;
	char		 buf[INET6_ADDRSTRLEN];
	int		 i, n = 0;

	if (control_ip_arg(ipstr, &ip, &err) == -1 ||
	    control_service_arg(lbd, service, &only, &err) == -1)
		return err;
	for (i = 0; i < lbd->nservices; i++) {
		svc = &lbd->services[i];
		if ((only != NULL && svc != only) || svc->sticky == NULL)
			continue;
		/* With a peer the delete leaves a tombstone that replicates (sticky.c). */
		n += sticky_delete(svc->sticky, &ip);
	}
	log_info("sticky entry for %s cleared in %s (%d removed, by lbctl)",
	    ip_str(&ip, buf, sizeof(buf)), only ? only->conf.name : "every service", n);
	return json_pack("{s:i}", "cleared", n);
}

/* sticky flush [SERVICE]: empties one or every table. */
static json_t *
control_sticky_flush(struct lbd *lbd, const char *service)
{
	struct service	*only;
	json_t		*err;
	uint64_t	 n;

	if (control_service_arg(lbd, service, &only, &err) == -1)
		return err;
	n = replica_flush(lbd, only);	/* replicated to the peer as a Clear */
	log_info("sticky table of %s flushed (%llu entries, by lbctl)",
	    only ? only->conf.name : "every service", (unsigned long long)n);
	return json_pack("{s:I}", "flushed", (json_int_t)n);
}

/*
 * sticky list [SERVICE] [from CURSOR]: a stream to write when the caller
 * can take one, else the whole reply.
 */
static json_t *
control_sticky_list_cmd(struct lbd *lbd, char **argv, int argc, struct control_stream **stream)
{
	struct service	*only;
	const char	*service = NULL, *cursor = NULL;
	json_t		*err = NULL;

	if (argc == 3)
		service = argv[2];
	else if (argc == 4 && strcmp(argv[2], "from") == 0)
		cursor = argv[3];
	else if (argc == 5 && strcmp(argv[3], "from") == 0) {
		service = argv[2];
		cursor = argv[4];
	} else if (argc > 3)
		return control_error("too many arguments for sticky list; usage: "
		    "sticky list [SERVICE] [from CURSOR]");
	if (control_service_arg(lbd, service, &only, &err) == -1)
		return err;
	if (stream == NULL)
		return control_sticky_list(lbd, only, cursor);
	if (lbd->control != NULL && lbd->control->nstreams >= CONTROL_MAX_STREAMS)
		return control_error("too many sticky lists in progress; try again");
	if ((*stream = control_sticky_snapshot(lbd, only, cursor, &err)) == NULL)
		return err;
	return NULL;
}

static json_t *
control_sticky(struct lbd *lbd, char **argv, int argc, struct control_stream **stream)
{
	char	 buf[CONTROL_ECHO_MAX + 8];

	if (argc < 2)
		return control_error("sticky needs a subcommand: list [SERVICE], "
		    "get IP [SERVICE], set IP BACKEND [SERVICE], clear IP [SERVICE], "
		    "flush [SERVICE]");
	if (strcmp(argv[1], "list") == 0)
		return control_sticky_list_cmd(lbd, argv, argc, stream);
	if (strcmp(argv[1], "get") == 0 && argc <= 4)
		return control_sticky_get(lbd, argc >= 3 ? argv[2] : NULL,
		    argc == 4 ? argv[3] : NULL);
	if (strcmp(argv[1], "set") == 0 && argc <= 5)
		return control_sticky_set(lbd, argc >= 3 ? argv[2] : NULL,
		    argc >= 4 ? argv[3] : NULL, argc == 5 ? argv[4] : NULL);
	if (strcmp(argv[1], "clear") == 0 && argc <= 4)
		return control_sticky_clear(lbd, argc >= 3 ? argv[2] : NULL,
		    argc == 4 ? argv[3] : NULL);
	if (strcmp(argv[1], "flush") == 0 && argc <= 3)
		return control_sticky_flush(lbd, argc == 3 ? argv[2] : NULL);
	if (strcmp(argv[1], "get") == 0 ||
	    strcmp(argv[1], "set") == 0 || strcmp(argv[1], "clear") == 0 ||
	    strcmp(argv[1], "flush") == 0)
		return control_error("too many arguments for sticky %s", argv[1]);
	return control_error("unknown sticky subcommand \"%s\"; valid: list, get, set, clear, "
	    "flush",
	    control_echo(argv[1], buf, sizeof(buf)));
}

/* ---------------------------------------------------------------- backend admin */

/* backend NAME enable|disable|drain [SERVICE] */
static json_t *
control_backend_admin(struct lbd *lbd, char **argv, int argc)
{
	struct service	*only, *svc;
	struct backend	*b = NULL;
	enum backend_admin admin;
	json_t		*err, *ev;
	char		 buf[CONTROL_ECHO_MAX + 8], names[CONTROL_LIST_MAX], where[CONTROL_LIST_MAX];
	int		 i, j, nfound = 0;

	if (argc < 3 || argc > 4)
		return control_error("usage: backend NAME enable|disable|drain [SERVICE]");
	if (strcmp(argv[2], "enable") == 0)
		admin = BACKEND_ENABLED;
	else if (strcmp(argv[2], "disable") == 0)
		admin = BACKEND_DISABLED;
	else if (strcmp(argv[2], "drain") == 0)
		admin = BACKEND_DRAIN;
	else
		return control_error("unknown admin state \"%s\"; valid: enable, disable, drain",
		    control_echo(argv[2], buf, sizeof(buf)));
	if (control_service_arg(lbd, argc == 4 ? argv[3] : NULL, &only, &err) == -1)
		return err;

	names[0] = where[0] = '\0';
	for (i = 0; i < lbd->nservices; i++) {
		svc = &lbd->services[i];
		if (only != NULL && svc != only)
			continue;
		for (j = 0; j < svc->nbackends; j++) {
			if (names[0] != '\0')
				control_append(names, ", ", sizeof(names));
			control_append(names, svc->backends[j].conf.name, sizeof(names));
			if (strcmp(svc->backends[j].conf.name, argv[1]) != 0)
				continue;
			if (nfound++ > 0)
				control_append(where, ", ", sizeof(where));
			control_append(where, svc->conf.name, sizeof(where));
			b = &svc->backends[j];
		}
	}
	if (nfound == 0)
		return control_error("no backend named %s; backends: %s",
		    control_echo(argv[1], buf, sizeof(buf)), names);
	if (nfound > 1)
		return control_error("backend %s exists in several services (%s); "
		    "name one: backend %s %s SERVICE", b->conf.name, where, b->conf.name, argv[2]);

	if (reload_backend_removed(b) && admin != BACKEND_DISABLED)
		return control_error("backend %s was removed from the configuration by the "
		    "last reload; add it back to the file and reload", b->conf.name);
	b->admin = admin;
	log_info("backend %s/%s admin state %s (by lbctl)", b->service->conf.name,
	    b->conf.name, backend_admin_str(admin));
	if ((ev = json_object()) != NULL) {
		control_set(ev, "service", control_str(b->service->conf.name));
		control_set(ev, "backend", control_str(b->conf.name));
		control_set(ev, "state", json_string(backend_state_str(b)));
		control_set(ev, "admin", json_string(backend_admin_str(admin)));
		control_event(lbd, "backend", ev);
	}
	return json_pack("{s:o, s:s, s:o, s:s}",
	    "backend", control_str(b->conf.name),
	    "admin", backend_admin_str(admin),
	    "service", control_str(b->service->conf.name),
	    "state", backend_state_str(b));
}

/* ---------------------------------------------------------------- failover */

/* Hands the VIP to the peer now with a priority-0 advert. */
static json_t *
control_failover(struct lbd *lbd)
{
	const char	*why;

	if (!lbd->conf->has_peer)
		return control_error("standalone node: there is no peer to hand the VIP to");
	if (lbd->ha == NULL)
		return control_error("the heartbeat is not running");
	if ((why = cluster_failover(lbd)) != NULL)
		return control_error("failover refused: %s", why);
	log_info("failover requested by lbctl: handing the VIP to %s", lbd->conf->peer_name);
	return json_pack("{s:s, s:s}", "failover", "started", "to", lbd->conf->peer_name);
}

/* ---------------------------------------------------------------- reload */

/* Re-reads the config file and applies it live (reload.c); the old one stays on error. */
static json_t *
control_reload(struct lbd *lbd)
{
	char	 err[1024];

	log_info("reload requested by lbctl: %s", lbd->conf->path);
	if (reload_apply(lbd, err, sizeof(err)) == -1)
		return control_error("%s", err);
	return json_pack("{s:o}", "reloaded", control_str(lbd->conf->path));
}

/* ---------------------------------------------------------------- commands */

static json_t *
control_help(void)
{
	return json_pack("{s:[s,s,s,s,s,s,s,s,s,s,s,s]}", "commands",
	    "status",
	    "backends",
	    "sticky list [SERVICE] [from CURSOR]",
	    "sticky get IP [SERVICE]",
	    "sticky set IP BACKEND [SERVICE]",
	    "sticky clear IP [SERVICE]",
	    "sticky flush [SERVICE]",
	    "backend NAME enable|disable|drain [SERVICE]",
	    "failover",
	    "reload",
	    "monitor",
	    "help");
}

/* Rejects extra words after a command that takes none. */
static json_t *
control_noargs(int argc, char **argv)
{
	if (argc > 1)
		return control_error("%s takes no arguments", argv[0]);
	return NULL;
}

json_t *
control_handle(struct lbd *lbd, const char *line, bool *monitor)
{
	return control_run(lbd, line, CONTROL_ACCESS_FULL, monitor, NULL);
}

/* True when argv changes nothing: what control.readonly_group may run. */
static bool
control_readonly_command(char **argv, int argc)
{
	static const char *const plain[] = { "status", "backends", "monitor", "help", NULL };
	int	 i;

	for (i = 0; plain[i] != NULL; i++)
		if (strcmp(argv[0], plain[i]) == 0)
			return true;
	return strcmp(argv[0], "sticky") == 0 && (argc == 1 ||
	    strcmp(argv[1], "list") == 0 || strcmp(argv[1], "get") == 0);
}

/*
 * The refusal for a peer whose access does not cover argv, naming the
 * group it needs. Returns: NULL when access suffices, else the error reply.
 */
static json_t *
control_check_access(struct lbd *lbd, char **argv, int argc, enum control_access access)
{
	const struct lbd_config *conf = lbd->conf;
	char	 echo[CONTROL_ECHO_MAX + 8], cmd[2 * CONTROL_ECHO_MAX + 8];

	if (access == CONTROL_ACCESS_FULL ||
	    (access == CONTROL_ACCESS_READONLY && control_readonly_command(argv, argc)))
		return NULL;
	if (access == CONTROL_ACCESS_READONLY) {
		/* "sticky flush", not just "sticky": the subcommand is what is refused. */
		snprintf(cmd, sizeof(cmd), "%s", control_echo(argv[0], echo, sizeof(echo)));
		if (strcmp(argv[0], "sticky") == 0 && argc > 1) {
			control_append(cmd, " ", sizeof(cmd));
			control_append(cmd, control_echo(argv[1], echo, sizeof(echo)), sizeof(cmd));
		}
		return control_error("permission denied: \"%s\" needs group %s; group %s "
		    "may run only " CONTROL_READONLY_COMMANDS, cmd, conf->control_group,
		    conf->control_readonly_group);
	}
	if (conf->control_readonly_group[0] != '\0')
		return control_error("permission denied: lbctl needs group %s (every command) "
		    "or %s (" CONTROL_READONLY_COMMANDS "); root can add you: usermod -aG %s NAME",
		    conf->control_group, conf->control_readonly_group, conf->control_group);
	return control_error("permission denied: lbctl needs root or group %s; root can "
	    "add you: usermod -aG %s NAME", conf->control_group[0] != '\0' ?
	    conf->control_group : LBD_DEFAULT_CONTROL_GROUP,
	    conf->control_group[0] != '\0' ? conf->control_group : LBD_DEFAULT_CONTROL_GROUP);
}

/*
 * Parses and runs one request line. With stream != NULL, `sticky list`
 * may instead leave a snapshot in *stream to be written in slices.
 * Returns: the reply, or NULL with *stream set.
 */
static json_t *
control_run(struct lbd *lbd, const char *line, enum control_access access, bool *monitor,
    struct control_stream **stream)
{
	char	 buf[LBD_CONTROL_LINE_MAX + 1], echo[CONTROL_ECHO_MAX + 8];
	char	*argv[CONTROL_MAX_TOKENS + 1], *p, *save = NULL;
	json_t	*err;
	size_t	 len, i;
	int	 argc = 0;

	*monitor = false;
	len = strlen(line);
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	if (len > LBD_CONTROL_LINE_MAX)
		return control_error("request too long");
	for (i = 0; i < len; i++)
		if (((unsigned char)line[i] < 0x20 && line[i] != '\t') ||
		    (unsigned char)line[i] == 0x7f)
			return control_error("request contains control characters");
	memcpy(buf, line, len);
	buf[len] = '\0';

	for (p = strtok_r(buf, " \t", &save); p != NULL; p = strtok_r(NULL, " \t", &save)) {
		if (argc == CONTROL_MAX_TOKENS)
			return control_error("too many words in request");
		argv[argc++] = p;
	}
	argv[argc] = NULL;

	if (argc == 0)
		return control_error("empty request; valid commands: " CONTROL_VALID_COMMANDS);
	if ((err = control_check_access(lbd, argv, argc, access)) != NULL)
		return err;
	if (strcmp(argv[0], "status") == 0)
		return (err = control_noargs(argc, argv)) ? err : control_status(lbd);
	if (strcmp(argv[0], "backends") == 0)
		return (err = control_noargs(argc, argv)) ? err : control_backends(lbd);
	if (strcmp(argv[0], "sticky") == 0)
		return control_sticky(lbd, argv, argc, stream);
	if (strcmp(argv[0], "backend") == 0)
		return control_backend_admin(lbd, argv, argc);
	if (strcmp(argv[0], "failover") == 0)
		return (err = control_noargs(argc, argv)) ? err : control_failover(lbd);
	if (strcmp(argv[0], "reload") == 0)
		return (err = control_noargs(argc, argv)) ? err : control_reload(lbd);
	if (strcmp(argv[0], "help") == 0)
		return (err = control_noargs(argc, argv)) ? err : control_help();
	if (strcmp(argv[0], "monitor") == 0) {
		if ((err = control_noargs(argc, argv)) != NULL)
			return err;
		*monitor = true;
		return json_pack("{s:s}", "monitor", "started");
	}
	return control_error("unknown command \"%s\"; valid commands: " CONTROL_VALID_COMMANDS,
	    control_echo(argv[0], echo, sizeof(echo)));
}

/* ---------------------------------------------------------------- events */

void
control_event(struct lbd *lbd, const char *type, json_t *obj)
{
	struct control		*c;
	struct control_client	*cl, *next;
	struct timespec		 ts;
	struct tm		 tm;
	struct evbuffer		*out;
	char			 iso[96], *line;
	uint64_t		 ms;
	size_t			 len;

	if (obj == NULL)
		return;
	if (lbd == NULL || (c = lbd->control) == NULL || c->nclients == 0)
		goto done;

	if (clock_gettime(CLOCK_REALTIME, &ts) == -1)
		memset(&ts, 0, sizeof(ts));
	ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(iso, sizeof(iso), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, (int)(ts.tv_nsec / 1000000));
	control_set(obj, "event", json_string(type));
	control_set(obj, "time", json_string(iso));
	control_set_int(obj, "time_ms", ms);

	/* One serialisation for every monitor. */
	if ((line = json_dumps(obj, JSON_COMPACT)) == NULL) {
		log_warnx("control: cannot serialise a %s event", type);
		goto done;
	}
	len = strlen(line);
	for (cl = TAILQ_FIRST(&c->clients); cl != NULL; cl = next) {
		next = TAILQ_NEXT(cl, entry);
		if (!cl->monitor)
			continue;
		out = bufferevent_get_output(cl->bev);
		if (evbuffer_get_length(out) > CONTROL_MONITOR_MAX_OUT) {
			log_warnx("control: dropping a monitor client that does not read its events");
			control_client_free(cl);
			continue;
		}
		if (evbuffer_add(out, line, len) == -1 || evbuffer_add(out, "\n", 1) == -1)
			control_client_free(cl);
	}
	free(line);
done:
	json_decref(obj);
}

/* ---------------------------------------------------------------- clients */

static int
control_dump_to_evbuffer(const char *buf, size_t size, void *arg)
{
	return evbuffer_add(arg, buf, size);
}

/* Queues obj as one compact line. Returns: 0, or -1 when it could not be queued. */
static int
control_send(struct control_client *cl, json_t *obj)
{
	struct evbuffer	*out = bufferevent_get_output(cl->bev);

	if (json_dump_callback(obj, control_dump_to_evbuffer, out, JSON_COMPACT) == -1 ||
	    evbuffer_add(out, "\n", 1) == -1) {
		log_warnx("control: cannot queue a reply");
		return -1;
	}
	return 0;
}

/* Sends the reply to a request (steals it); the connection closes once it is written. */
static void
control_client_reply(struct control_client *cl, json_t *reply)
{
	struct timeval	 wtv = { CONTROL_WRITE_TIMEOUT_S, 0 };

	if (reply == NULL)
		reply = control_error("internal error: out of memory");
	cl->replied = true;
	if (reply == NULL || control_send(cl, reply) == -1) {
		json_decref(reply);
		control_client_free(cl);
		return;
	}
	json_decref(reply);
	/* No read deadline from here on: a monitor stays until the client leaves. */
	bufferevent_set_timeouts(cl->bev, NULL, &wtv);
	bufferevent_enable(cl->bev, EV_WRITE);
}

static void
control_client_error(struct control_client *cl, const char *msg)
{
	control_client_reply(cl, control_error("%s", msg));
}

/* Counts and logs (rate-limited) a `monitor` request turned away. */
static void
control_refused_monitor(struct control *c)
{
	uint64_t	 now = now_ms();

	c->monitors_refused++;
	if (now - c->monitor_logged_ms >= CONTROL_REFUSE_LOG_MS) {
		c->monitor_logged_ms = now;
		log_warnx("control: %d monitors open, refusing more (%" PRIu64 " so far)",
		    c->nmonitors, c->monitors_refused);
	}
}

/* Runs one complete request line of len bytes (not NUL-terminated inside). */
static void
control_client_request(struct control_client *cl, const char *line, size_t len)
{
	struct control_stream *stream = NULL;
	bool	 monitor = false;
	json_t	*reply;

	if (memchr(line, '\0', len) != NULL) {
		control_client_error(cl, "request contains control characters");
		return;
	}
	reply = control_run(cl->control->lbd, line, cl->access, &monitor, &stream);
	if (reply == NULL && stream != NULL) {
		control_client_stream(cl, stream);
		return;
	}
	if (monitor && cl->control->nmonitors >= CONTROL_MAX_MONITORS) {
		/* Monitors never take the slots commands need. */
		json_decref(reply);
		reply = control_error("too many monitors (%d open); stop one or try "
		    "again later", cl->control->nmonitors);
		control_refused_monitor(cl->control);
		monitor = false;
	}
	if (monitor)
		cl->control->nmonitors++;
	cl->monitor = monitor;
	control_client_reply(cl, reply);
}

/* Starts writing a `sticky list` reply in slices (takes st). */
static void
control_client_stream(struct control_client *cl, struct control_stream *st)
{
	struct control	*c = cl->control;
	struct timeval	 wtv = { CONTROL_WRITE_TIMEOUT_S, 0 };

	cl->stream = st;
	c->nstreams++;
	cl->replied = true;
	bufferevent_set_timeouts(cl->bev, NULL, &wtv);
	/* The write callback asks for the next slice once most of one has gone. */
	bufferevent_setwatermark(cl->bev, EV_WRITE, CONTROL_STREAM_LOW, 0);
	bufferevent_enable(cl->bev, EV_WRITE);
	control_client_stream_more(cl);
}

/* Queues the next slice; after the last one the connection closes once drained. */
static void
control_client_stream_more(struct control_client *cl)
{
	int	 rc;

	rc = control_stream_write(cl->stream, bufferevent_get_output(cl->bev),
	    CONTROL_STREAM_SLICE);
	if (rc == 1)
		return;
	if (rc == -1) {
		log_warnx("control: cannot queue a sticky list");
		control_client_free(cl);
		return;
	}
	control_stream_free(cl->stream);
	cl->stream = NULL;
	cl->control->nstreams--;
	bufferevent_setwatermark(cl->bev, EV_WRITE, 0, 0);
}

static void
control_client_read(struct bufferevent *bev, void *arg)
{
	struct control_client *cl = arg;
	struct evbuffer	*in = bufferevent_get_input(bev);
	char		*line;
	size_t		 n;

	if (cl->replied) {
		/* A monitor (or a client that sends more): input is ignored. */
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	if ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF)) == NULL) {
		if (evbuffer_get_length(in) > LBD_CONTROL_LINE_MAX)
			control_client_error(cl, "request too long");
		return;
	}
	if (n > LBD_CONTROL_LINE_MAX)
		control_client_error(cl, "request too long");
	else
		control_client_request(cl, line, n);
	free(line);
}

/* Output drained: a reply is complete, so the connection ends (monitors stay). */
static void
control_client_write(struct bufferevent *bev, void *arg)
{
	struct control_client *cl = arg;

	if (cl->stream != NULL)
		control_client_stream_more(cl);
	else if (cl->replied && !cl->monitor) {
		control_client_drain(cl);
		control_client_free(cl);
	}
}

static void
control_client_event(struct bufferevent *bev, short what, void *arg)
{
	struct control_client *cl = arg;
	struct evbuffer	*in = bufferevent_get_input(bev);
	char		*line;
	size_t		 n;

	if (what & BEV_EVENT_TIMEOUT) {
		if ((what & BEV_EVENT_READING) && !cl->replied)
			control_client_error(cl, "timed out waiting for a request line");
		else
			control_client_free(cl);
		return;
	}
	if ((what & BEV_EVENT_EOF) && !cl->replied) {
		/* The client closed its side: what it sent is the request. */
		n = evbuffer_get_length(in);
		if (n > LBD_CONTROL_LINE_MAX) {
			control_client_error(cl, "request too long");
			return;
		}
		if ((line = malloc(n + 1)) == NULL) {
			control_client_free(cl);
			return;
		}
		evbuffer_remove(in, line, n);
		line[n] = '\0';
		control_client_request(cl, line, n);
		free(line);
		return;
	}
	if ((what & BEV_EVENT_EOF) && !cl->monitor && (cl->stream != NULL ||
	    evbuffer_get_length(bufferevent_get_output(bev)) > 0)) {
		/* Half-closed (socat does this): the reply still goes out, then we close. */
		bufferevent_disable(bev, EV_READ);
		return;
	}
	/* An error, or a monitor leaving. */
	control_client_free(cl);
}

/*
 * Reads and drops what the client sent beyond its request: Linux resets a
 * UNIX stream peer (ECONNRESET) when a socket closes with unread data, and
 * that could reach the client before our EOF.
 */
static void
control_client_drain(struct control_client *cl)
{
	char		 buf[4096];
	evutil_socket_t	 fd = bufferevent_getfd(cl->bev);
	int		 i;

	if (fd == -1)
		return;
	for (i = 0; i < CONTROL_DRAIN_READS; i++)
		if (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) <= 0)
			break;
}

static void
control_client_free(struct control_client *cl)
{
	struct control	*c = cl->control;

	TAILQ_REMOVE(&c->clients, cl, entry);
	c->nclients--;
	if (cl->monitor)
		c->nmonitors--;
	if (cl->ev_deadline != NULL)
		event_free(cl->ev_deadline);
	if (cl->stream != NULL) {
		control_stream_free(cl->stream);
		c->nstreams--;
	}
	bufferevent_free(cl->bev);
	free(cl);
}

/* A client's time from accept to its request line: control.request_timeout_ms. */
static int
control_request_timeout_ms(const struct control *c)
{
	return c->lbd->conf->control_request_timeout_ms > 0 ?
	    c->lbd->conf->control_request_timeout_ms : LBD_DEF_REQUEST_TIMEOUT_MS;
}

/* Turns a connection away when CONTROL_MAX_CLIENTS are open. */
static void
control_refuse(int fd)
{
	static const char msg[] = "{\"error\":\"too many control connections; try again\"}\n";

	/* Best effort: a fresh socket has room for one short line. */
	if (write(fd, msg, sizeof(msg) - 1) == -1)
		log_debug("control: refusing a client: %s", strerror(errno));
	close(fd);
}

/*
 * What the peer on fd may run: root and lbd's own user everything, then
 * by group (its gid or one of its supplementary groups, as they were at
 * connect()). The file mode only keeps strangers out when no read-only
 * group needs the socket open to all; this check is what decides.
 */
static enum control_access
control_peer_access(struct control *c, int fd)
{
	struct ucred	 cred;
	socklen_t	 len = sizeof(cred);
	gid_t		 small[CONTROL_PEER_GROUPS], *groups = small;
	enum control_access access = CONTROL_ACCESS_NONE;
	size_t		 i, n;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1) {
		log_warn("control: SO_PEERCRED");
		return CONTROL_ACCESS_NONE;
	}
	if (cred.uid == 0 || cred.uid == geteuid())
		return CONTROL_ACCESS_FULL;
	len = sizeof(small);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == -1) {
		/* ERANGE: len is the size needed. */
		if (errno != ERANGE || (groups = malloc(len)) == NULL ||
		    getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == -1) {
			log_warn("control: SO_PEERGROUPS");
			len = 0;
		}
	}
	n = len / sizeof(gid_t);
	for (i = 0; i <= n; i++) {
		gid_t	 g = i < n ? groups[i] : cred.gid;

		if (c->has_group && g == c->group) {
			access = CONTROL_ACCESS_FULL;
			break;
		}
		if (c->has_ro_group && g == c->ro_group)
			access = CONTROL_ACCESS_READONLY;
	}
	if (groups != small)
		free(groups);
	return access;
}

static void
control_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct control		*c = arg;
	struct control_client	*cl;
	int			 ms = control_request_timeout_ms(c);
	struct timeval		 rtv = { ms / 1000, (ms % 1000) * 1000 };
	struct timeval		 wtv = { CONTROL_WRITE_TIMEOUT_S, 0 };
	struct timeval		 pause = { CONTROL_ACCEPT_PAUSE_MS / 1000,
				    (CONTROL_ACCEPT_PAUSE_MS % 1000) * 1000 };
	int			 fd;

	if ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) == -1) {
		if (errno == EMFILE || errno == ENFILE) {
			/* The socket stays readable: stop polling it for a while. */
			log_warn("control: accept");
			event_del(c->ev_accept);
			evtimer_add(c->ev_pause, &pause);
		} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
		    errno != ECONNABORTED)
			log_warn("control: accept");
		return;
	}
	if (c->nclients >= CONTROL_MAX_CLIENTS) {
		c->refused++;
		if (now_ms() - c->refuse_logged_ms >= CONTROL_REFUSE_LOG_MS) {
			c->refuse_logged_ms = now_ms();
			log_warnx("control: %d clients open, refusing more (%" PRIu64 " so far)",
			    c->nclients, c->refused);
		}
		control_refuse(fd);
		return;
	}
	if ((cl = calloc(1, sizeof(*cl))) == NULL) {
		log_warn("control: client");
		close(fd);
		return;
	}
	if ((cl->bev = bufferevent_socket_new(c->lbd->base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		log_warnx("control: cannot make a buffered event for a client");
		close(fd);
		free(cl);
		return;
	}
	cl->control = c;
	cl->access = control_peer_access(c, fd);
	TAILQ_INSERT_TAIL(&c->clients, cl, entry);
	c->nclients++;
	bufferevent_setcb(cl->bev, control_client_read, control_client_write,
	    control_client_event, cl);
	/* Read at most one line plus its terminator before judging it. */
	bufferevent_setwatermark(cl->bev, EV_READ, 0, LBD_CONTROL_LINE_MAX + 2);
	/*
	 * A read timeout would restart on every byte: a client trickling a
	 * byte a second would hold its slot for ever. The deadline is absolute.
	 */
	bufferevent_set_timeouts(cl->bev, NULL, &wtv);
	if ((cl->ev_deadline = evtimer_new(c->lbd->base, control_client_deadline, cl)) == NULL ||
	    evtimer_add(cl->ev_deadline, &rtv) == -1 ||
	    bufferevent_enable(cl->bev, EV_READ | EV_WRITE) == -1) {
		log_warnx("control: cannot enable a client");
		control_client_free(cl);
	}
}

/* The request deadline: a client still without a complete request line goes. */
static void
control_client_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct control_client *cl = arg;
	struct control	*c = cl->control;
	uint64_t	 now = now_ms();

	if (cl->replied)
		return;
	c->timeouts++;
	if (now - c->timeout_logged_ms >= CONTROL_REFUSE_LOG_MS) {
		c->timeout_logged_ms = now;
		log_warnx("control: closing a client that sent no request line in time "
		    "(%" PRIu64 " so far)", c->timeouts);
	}
	control_client_error(cl, "timed out waiting for a request line");
}

void
control_get_status(const struct control *c, struct control_status *st)
{
	memset(st, 0, sizeof(*st));
	st->max_clients = CONTROL_MAX_CLIENTS;
	st->max_monitors = CONTROL_MAX_MONITORS;
	if (c == NULL)
		return;
	st->clients = (uint64_t)c->nclients;
	st->monitors = (uint64_t)c->nmonitors;
	st->request_timeout_ms = (uint64_t)control_request_timeout_ms(c);
	st->refused = c->refused;
	st->monitors_refused = c->monitors_refused;
	st->timeouts = c->timeouts;
}

static void
control_resume_accept(evutil_socket_t fd, short what, void *arg)
{
	struct control	*c = arg;

	event_add(c->ev_accept, NULL);
}

/* ---------------------------------------------------------------- socket */

/* mkdir -p for the directory part of path, new levels mode 0755. Returns: 0 or -1 logged. */
static int
control_mkdir_parent(const char *path)
{
	struct stat st;
	char	 dir[LBD_PATH_MAX], *p, saved;

	if ((size_t)snprintf(dir, sizeof(dir), "%s", path) >= sizeof(dir))
		return -1;
	if ((p = strrchr(dir, '/')) == NULL || p == dir)
		return 0;
	*p = '\0';
	for (p = dir + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		saved = *p;
		*p = '\0';
		if (mkdir(dir, 0755) == -1) {
			if (errno != EEXIST) {
				log_warn("control: cannot create directory %s", dir);
				return -1;
			}
			if (stat(dir, &st) == -1 || !S_ISDIR(st.st_mode)) {
				log_warnx("control: %s is in the socket path but is not a directory", dir);
				return -1;
			}
		}
		*p = saved;
		if (saved == '\0')
			break;
	}
	return 0;
}

/*
 * Deals with whatever sits at path already: a socket nobody answers on is
 * a leftover of a crashed run and goes; a live one belongs to another lbd.
 * Returns: 0 path is free now, -1 logged.
 */
static int
control_clear_stale(const struct sockaddr_un *sun)
{
	struct stat	 st;
	int		 fd, rc;

	if (lstat(sun->sun_path, &st) == -1) {
		if (errno == ENOENT)
			return 0;
		log_warn("control: %s", sun->sun_path);
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		log_warnx("control: %s exists and is not a socket; remove it or set "
		    "control.socket to another path", sun->sun_path);
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		log_warn("control: socket");
		return -1;
	}
	rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	close(fd);
	if (rc == 0) {
		log_warnx("control: another lbd is running on %s", sun->sun_path);
		return -1;
	}
	if (errno != ECONNREFUSED) {
		log_warn("control: cannot tell whether %s is in use", sun->sun_path);
		return -1;
	}
	if (unlink(sun->sun_path) == -1 && errno != ENOENT) {
		log_warn("control: cannot remove stale socket %s", sun->sun_path);
		return -1;
	}
	log_info("control: removed stale socket %s", sun->sun_path);
	return 0;
}

/*
 * The gid of group name into *gid. A missing group is an error when
 * required, else a warning and *has = false.
 * Returns: 0, or -1 logged.
 */
static int
control_lookup_group(const char *key, const char *name, bool required, gid_t *gid, bool *has)
{
	struct group	 gr, *res = NULL;
	char		 buf[4096];
	int		 rc;

	*has = false;
	if (name[0] == '\0')
		return 0;
	if ((rc = getgrnam_r(name, &gr, buf, sizeof(buf), &res)) != 0) {
		errno = rc;
		log_warn("control: cannot look up group %s (%s)", name, key);
		return -1;
	}
	if (res == NULL) {
		if (required) {
			log_warnx("control: %s \"%s\": no such group; create it "
			    "(groupadd --system %s) or set %s to an existing group", key, name,
			    name, key);
			return -1;
		}
		log_warnx("control: group %s does not exist (systemd-sysusers creates it): "
		    "only root and lbd's own user can use lbctl", name);
		return 0;
	}
	*gid = gr.gr_gid;
	*has = true;
	return 0;
}

/*
 * Gives the bound socket its group and mode. lbd may chgrp only to a
 * group it is in (no CAP_CHOWN): the unit runs it with Group=lbdctl, so
 * bind() made the socket lbdctl's already and no chown is called (the
 * unit's SystemCallFilter refuses it).
 * Returns: 0, or -1 logged.
 */
static int
control_set_owner(struct control *c, const struct lbd_config *conf)
{
	mode_t		 mode = c->has_ro_group ? CONTROL_MODE_READONLY : CONTROL_MODE;
	struct stat	 st;

	if (stat(c->path, &st) == -1) {
		log_warn("control: stat %s", c->path);
		return -1;
	}
	if (c->has_group && st.st_gid != c->group &&
	    chown(c->path, (uid_t)-1, c->group) == -1) {
		if (errno != EPERM || conf->control_group_set) {
			log_warn("control: cannot give %s to group %s; lbd must run in that group "
			    "(Group= or SupplementaryGroups= in the unit: systemctl edit lbd)",
			    c->path, conf->control_group);
			return -1;
		}
		/* The default group, lbd started by hand: SO_PEERCRED still decides. */
		log_warnx("control: cannot give %s to group %s (lbd is not in it): only root "
		    "and lbd's own user can use lbctl", c->path, conf->control_group);
		c->has_group = false;
	}
	if (chmod(c->path, mode) == -1) {
		log_warn("control: chmod %s", c->path);
		return -1;
	}
	return 0;
}

struct control *
control_open(struct lbd *lbd)
{
	struct control		*c;
	struct sockaddr_un	 sun;
	const char		*path = lbd->conf->control_socket;
	bool			 bound = false;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		log_warn("control: calloc");
		return NULL;
	}
	c->lbd = lbd;
	c->fd = -1;
	TAILQ_INIT(&c->clients);

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (path[0] == '\0') {
		log_warnx("control: control.socket is empty");
		goto fail;
	}
	if (strlen(path) >= sizeof(sun.sun_path)) {
		log_warnx("control: socket path %s is longer than %zu bytes", path,
		    sizeof(sun.sun_path) - 1);
		goto fail;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	snprintf(c->path, sizeof(c->path), "%s", path);

	if (control_lookup_group("control.group", lbd->conf->control_group,
	    lbd->conf->control_group_set, &c->group, &c->has_group) == -1 ||
	    control_lookup_group("control.readonly_group", lbd->conf->control_readonly_group,
	    true, &c->ro_group, &c->has_ro_group) == -1)
		goto fail;
	if (control_mkdir_parent(path) == -1 || control_clear_stale(&sun) == -1)
		goto fail;
	if ((c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1) {
		log_warn("control: socket");
		goto fail;
	}
	if (bind(c->fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		log_warn("control: bind %s", path);
		goto fail;
	}
	bound = true;
	if (control_set_owner(c, lbd->conf) == -1)
		goto fail;
	if (listen(c->fd, 16) == -1) {
		log_warn("control: listen %s", path);
		goto fail;
	}
	if ((c->ev_accept = event_new(lbd->base, c->fd, EV_READ | EV_PERSIST,
	    control_accept, c)) == NULL ||
	    (c->ev_pause = evtimer_new(lbd->base, control_resume_accept, c)) == NULL ||
	    event_add(c->ev_accept, NULL) == -1) {
		log_warnx("control: cannot register the socket with the event loop");
		goto fail;
	}
	log_debug("control: listening on %s", path);
	return c;

fail:
	if (c->ev_accept != NULL)
		event_free(c->ev_accept);
	if (c->ev_pause != NULL)
		event_free(c->ev_pause);
	if (c->fd != -1)
		close(c->fd);
	if (bound)
		unlink(path);
	free(c);
	return NULL;
}

void
control_close(struct control *c)
{
	if (c == NULL)
		return;
	while (!TAILQ_EMPTY(&c->clients))
		control_client_free(TAILQ_FIRST(&c->clients));
	event_free(c->ev_accept);
	event_free(c->ev_pause);
	close(c->fd);
	if (unlink(c->path) == -1 && errno != ENOENT)
		log_warn("control: unlink %s", c->path);
	if (c->lbd->control == c)
		c->lbd->control = NULL;
	free(c);
}
