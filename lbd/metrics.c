/*
 * metrics.c - the optional Prometheus endpoint: lbd's role, VIP, backends,
 * sticky tables, replication and cluster-traffic counters as a text
 * exposition (format 0.0.4) on HTTP GET /metrics, served by libevent's evhttp;
 * the HA and replication lines are cluster.c's.
 */
#include <sys/socket.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "lbd.h"

#define METRICS_PATH		"/metrics"	/* the only resource served */
#define METRICS_CONTENT_TYPE	"text/plain; version=0.0.4; charset=utf-8" /* exposition format */
#define METRICS_TIMEOUT_S	5		/* without progress reading a request or writing a reply */
#define METRICS_MAX_HEADERS	8192		/* bytes of request line and headers */
#define METRICS_MAX_BODY	1024		/* bytes of a request body (GET has none) */
#define METRICS_MAX_CONNS	32		/* connections open at once, counted from accept */
#define METRICS_BACKLOG		128		/* listen(2) backlog: connections waiting past the cap */
#define METRICS_LOG_MS		10000		/* at most one "cap reached"/"timed out" line per this */

struct metrics_conn;

/* The endpoint. */
struct metrics {
	struct lbd	*lbd;			/* owner */
	struct evhttp	*http;			/* libevent's HTTP server */
	struct evhttp_bound_socket *bound;	/* the listening socket, owned by http */
	TAILQ_HEAD(, metrics_conn) conns;	/* every accepted connection still open */
	struct metrics_status *st;		/* &lbd->metrics_stats: connections (length of conns), counters */
	bool		 paused;		/* accept stopped: conns is full */
	bool		 closing;		/* in metrics_close: the listener is going */
	uint64_t	 cap_logged_ms;		/* last "cap reached" log line (rate limit) */
	uint64_t	 timeout_logged_ms;	/* last "timed out" log line (rate limit) */
};

/*
 * One accepted connection, from accept until evhttp frees it. evhttp's own
 * timeout restarts on every byte, so a client trickling its request would
 * hold a slot for ever: this adds an absolute deadline.
 */
struct metrics_conn {
	TAILQ_ENTRY(metrics_conn) entry;	/* in metrics->conns */
	struct metrics	*m;			/* owner */
	struct bufferevent *bev;		/* made for evhttp in metrics_conn_new */
	struct evhttp_connection *evcon;	/* evhttp's connection; NULL until adopted */
	struct event	*ev;			/* adoption (at once), then the deadline */
};

/* A uint64_t field of struct backend or struct service, exported as one family. */
struct metrics_field {
	const char	*name;			/* metric name */
	const char	*type;			/* "counter" or "gauge" */
	const char	*help;			/* HELP text */
	size_t		 offset;		/* offsetof the uint64_t field */
};

static const struct metrics_field metrics_backend_fields[] = {
	{ "lbd_backend_active_connections", "gauge",
	    "Proxied connections open now to the backend.", offsetof(struct backend, active) },
	{ "lbd_backend_connections_total", "counter",
	    "Proxied connections sent to the backend.", offsetof(struct backend, total) },
	{ "lbd_backend_bytes_in_total", "counter",
	    "Bytes from clients to the backend.", offsetof(struct backend, bytes_in) },
	{ "lbd_backend_bytes_out_total", "counter",
	    "Bytes from the backend to clients.", offsetof(struct backend, bytes_out) },
	{ "lbd_backend_connect_failures_total", "counter",
	    "Connections to the backend that failed.", offsetof(struct backend, connect_failures) },
	{ "lbd_backend_checks_skipped_total", "counter",
	    "Health checks not run for lbd's own shortage of descriptors or memory (no verdict).",
	    offsetof(struct backend, checks_skipped) },
};

static const struct metrics_field metrics_service_fields[] = {
	{ "lbd_service_active_connections", "gauge",
	    "Proxied connections open now in the service.", offsetof(struct service, active) },
	{ "lbd_service_connections_total", "counter",
	    "Client connections accepted by the service.", offsetof(struct service, total) },
	{ "lbd_service_refused_total", "counter",
	    "Client connections refused: no usable backend.", offsetof(struct service, refused) },
	{ "lbd_service_fd_reserve_pauses_total", "counter",
	    "Times accepting paused because only the descriptors kept for checks, control and sync were left.",
	    offsetof(struct service, fd_reserve_pauses) },
	{ "lbd_service_refused_per_client_total", "counter",
	    "Client connections refused: the client had max_connections_per_client open.",
	    offsetof(struct service, refused_per_client) },
};

/* Values of the one-hot lbd_backend_state family, in the order they are written. */
static const char *const metrics_backend_states[] = { "up", "down", "drain", "disabled" };

/* The process itself: up, name and uptime. */
static void
metrics_process(FILE *f, struct lbd *lbd)
{
	const char	*node[] = { "node", lbd->conf->node_name, NULL };

	prom_one(f, "lbd_up", "gauge", "1: lbd is running and answering.", 1);
	prom_family(f, "lbd_info", "gauge", "This node's name, as a label.");
	prom_u64(f, "lbd_info", node, 1);
	prom_one(f, "lbd_uptime_seconds", "gauge", "Seconds since lbd started.",
	    clock_now_ms() >= lbd->started_ms ? (clock_now_ms() - lbd->started_ms) / 1000 : 0);
}

static void
metrics_backends(FILE *f, struct lbd *lbd)
{
	const char	*labels[] = { "service", NULL, "backend", NULL, NULL };
	struct service	*svc;
	struct backend	*b;
	const struct metrics_field *fd;
	size_t		 k;
	int		 i, j;

	prom_family(f, "lbd_backend_up", "gauge",
	    "1: the backend's health check says up.");
	for (i = 0; i < lbd->nservices; i++)
		for (j = 0; j < lbd->services[i].nbackends; j++) {
			b = &lbd->services[i].backends[j];
			if (!reload_backend_listed(b))
				continue;
			labels[1] = lbd->services[i].conf.name;
			labels[3] = b->conf.name;
			prom_u64(f, "lbd_backend_up", labels, b->up);
		}
	prom_family(f, "lbd_backend_state", "gauge",
	    "Backend state as lbctl shows it: 1 for the current one.");
	for (i = 0; i < lbd->nservices; i++)
		for (j = 0; j < lbd->services[i].nbackends; j++) {
			b = &lbd->services[i].backends[j];
			if (!reload_backend_listed(b))
				continue;
			labels[1] = lbd->services[i].conf.name;
			labels[3] = b->conf.name;
			prom_one_hot(f, "lbd_backend_state", labels, "state",
			    metrics_backend_states, LBD_NELEM(metrics_backend_states),
			    backend_state_str(b));
		}
	for (k = 0; k < LBD_NELEM(metrics_backend_fields); k++) {
		fd = &metrics_backend_fields[k];
		prom_family(f, fd->name, fd->type, fd->help);
		for (i = 0; i < lbd->nservices; i++)
			for (j = 0; j < lbd->services[i].nbackends; j++) {
				b = &lbd->services[i].backends[j];
				if (!reload_backend_listed(b))
					continue;
				labels[1] = lbd->services[i].conf.name;
				labels[3] = b->conf.name;
				/* Relay workers add to the byte counters: atomic load. */
				prom_u64(f, fd->name, labels, __atomic_load_n(
				    (const uint64_t *)((const char *)b + fd->offset),
				    __ATOMIC_RELAXED));
			}
	}
	for (k = 0; k < LBD_NELEM(metrics_service_fields); k++) {
		fd = &metrics_service_fields[k];
		prom_family(f, fd->name, fd->type, fd->help);
		for (i = 0; i < lbd->nservices; i++) {
			svc = &lbd->services[i];
			labels[1] = svc->conf.name;
			labels[2] = NULL;
			prom_u64(f, fd->name, labels,
			    *(const uint64_t *)((const char *)svc + fd->offset));
			labels[2] = "backend";
		}
	}
}

/* Counts only: sticky_count and sticky_evictions are O(1), no table walk. */
static void
metrics_sticky(FILE *f, struct lbd *lbd)
{
	const char	*labels[] = { "service", NULL, NULL };
	struct service	*svc;
	int		 i;

	prom_family(f, "lbd_sticky_entries", "gauge", "Live sticky entries.");
	for (i = 0; i < lbd->nservices; i++) {
		svc = &lbd->services[i];
		labels[1] = svc->conf.name;
		prom_u64(f, "lbd_sticky_entries", labels,
		    svc->sticky != NULL ? sticky_count(svc->sticky) : 0);
	}
	prom_family(f, "lbd_sticky_evictions_total", "counter",
	    "Sticky entries evicted because the table was full.");
	for (i = 0; i < lbd->nservices; i++) {
		svc = &lbd->services[i];
		labels[1] = svc->conf.name;
		prom_u64(f, "lbd_sticky_evictions_total", labels,
		    svc->sticky != NULL ? sticky_evictions(svc->sticky) : 0);
	}
}

/* The control socket and this endpoint: who is connected, who was turned away. */
static void
metrics_clients(FILE *f, struct lbd *lbd)
{
	const char	*full[] = { "reason", "clients", NULL };
	const char	*mon[] = { "reason", "monitors", NULL };
	struct control_status cs;
	struct metrics_status ms;

	control_get_status(lbd->control, &cs);
	metrics_get_status(lbd->metrics, &ms);
	prom_one(f, "lbd_control_clients", "gauge",
	    "Control socket connections open now, monitors included.", cs.clients);
	prom_one(f, "lbd_control_monitors", "gauge",
	    "lbctl monitor streams open now.", cs.monitors);
	prom_family(f, "lbd_control_refused_total", "counter",
	    "Control clients turned away: every slot, or every monitor slot, taken.");
	prom_u64(f, "lbd_control_refused_total", full, cs.refused);
	prom_u64(f, "lbd_control_refused_total", mon, cs.monitors_refused);
	prom_one(f, "lbd_control_timeouts_total", "counter",
	    "Control clients that sent no request line before their deadline.", cs.timeouts);
	prom_one(f, "lbd_metrics_connections", "gauge",
	    "Metrics endpoint connections open now, counted from accept.", ms.connections);
	prom_one(f, "lbd_metrics_cap_reached_total", "counter",
	    "Times the metrics endpoint was full and left new connections in the backlog.",
	    ms.cap_reached);
	prom_one(f, "lbd_metrics_timeouts_total", "counter",
	    "Metrics connections closed at their deadline: request or reply not done in time.",
	    ms.timeouts);
}

/* The relay's pipe memory budget, as in status "pipes". */
static void
metrics_pipes(FILE *f)
{
	struct relay_pipe_stats	 st;

	relay_pipe_stats(&st);
	prom_one(f, "lbd_pipe_memory_bytes", "gauge",
	    "Bytes of enlarged splice pipes that connections hold now.", st.bytes);
	prom_one(f, "lbd_pipe_memory_max_bytes", "gauge",
	    "The budget of enlarged pipe bytes (node.pipe_memory_max_mb).", st.max);
	prom_one(f, "lbd_pipe_memory_peak_bytes", "gauge",
	    "Most enlarged pipe bytes held at once since start.", st.peak);
	prom_one(f, "lbd_pipe_fallbacks_total", "counter",
	    "Pipes handed out at the default size: budget spent or resize refused.",
	    st.fallbacks);
	prom_one(f, "lbd_pipe_resize_refused_total", "counter",
	    "F_SETPIPE_SZ calls the kernel refused (EPERM past fs.pipe-user-pages-soft).",
	    st.refused);
}

/* Connection mirroring, as in status "mirror". */
static void
metrics_mirror(FILE *f)
{
	struct mirror_stats st;

	mirror_get_stats(&st);
	mirror_peer_stats(&st);
	prom_one(f, "lbd_mirror_pairs", "gauge",
	    "Connections mirrored to the peer now.", st.pairs);
	prom_one(f, "lbd_mirror_held_pairs", "gauge",
	    "The peer's mirrored connections held here for a takeover.", st.held);
	prom_one(f, "lbd_mirror_standby_pairs", "gauge",
	    "Held connections whose sockets are made already (standby, repair mode).",
	    st.standby);
	prom_one(f, "lbd_mirror_bytes_total", "counter",
	    "Bytes mirrored to the peer.", st.bytes);
	prom_one(f, "lbd_mirror_given_up_total", "counter",
	    "Connections on mirror_ports not mirrored (no snapshot, queue full, no memory).",
	    st.given_up);
	prom_one(f, "lbd_mirror_rebuilt_total", "counter",
	    "The dead peer's connections rebuilt here at takeovers.", st.rebuilt);
	prom_one(f, "lbd_mirror_failed_total", "counter",
	    "The dead peer's connections that could not be rebuilt.", st.failed);
	prom_one(f, "lbd_mirror_stale_total", "counter",
	    "Rebuilt connections reset because their far end had moved on.", st.stale);
	prom_one(f, "lbd_mirror_rx_bad_total", "counter",
	    "Mirror records from the peer dropped as malformed or not fitting.", st.rx_bad);
	prom_one(f, "lbd_mirror_fence_dropped_total", "counter",
	    "FIN/RST of mirrored sockets the nftables fence dropped.", st.fence_dropped);
	prom_family(f, "lbd_mirror_lag_p99_ms", "gauge",
	    "p99 mirror lag (record made -> batch acked) over the last 1024 batches (absent: none).");
	if (st.lag_p99_ms >= 0)
		prom_double(f, "lbd_mirror_lag_p99_ms", NULL, st.lag_p99_ms);
}

char *
metrics_render(struct lbd *lbd)
{
	FILE		*f;
	char		*text = NULL;
	size_t		 len = 0;

	if ((f = open_memstream(&text, &len)) == NULL)
		return NULL;
	metrics_process(f, lbd);
	cluster_metrics(f, lbd);	/* HA and replication */
	metrics_backends(f, lbd);
	metrics_sticky(f, lbd);
	metrics_clients(f, lbd);
	metrics_pipes(f);
	metrics_mirror(f);
	if (ferror(f)) {
		fclose(f);
		free(text);
		return NULL;
	}
	if (fclose(f) == EOF) {
		free(text);
		return NULL;
	}
	return text;
}

/* ---------------------------------------------------------------- HTTP */

/* The request deadline of a connection, in ms: metrics.request_timeout_ms. */
static int
metrics_deadline_ms(const struct metrics *m)
{
	return config_metrics_timeout_ms(m->lbd->conf);
}

/* (Re)arms mc's deadline: metrics_deadline_ms() from now. */
static void
metrics_conn_arm(struct metrics_conn *mc)
{
	int		 ms = metrics_deadline_ms(mc->m);
	struct timeval	 tv = { ms / 1000, (ms % 1000) * 1000 };

	evtimer_add(mc->ev, &tv);
}

/* Forgets mc, and accepts again if that was paused. */
static void
metrics_conn_free(struct metrics_conn *mc)
{
	struct metrics	*m = mc->m;

	TAILQ_REMOVE(&m->conns, mc, entry);
	m->st->connections--;
	event_free(mc->ev);
	free(mc);
	if (m->paused && !m->closing && m->st->connections < METRICS_MAX_CONNS) {
		evconnlistener_enable(evhttp_bound_socket_get_listener(m->bound));
		m->paused = false;
	}
}

/* evhttp freed the connection (closed by either side, timed out, or metrics_close). */
static void
metrics_conn_closed(struct evhttp_connection *evcon, void *arg)
{
	metrics_conn_free(arg);
}

/*
 * mc's timer. First run, right after accept: evhttp has set up its
 * connection on mc->bev by now, with the connection as the callbacks'
 * argument (http.c, evhttp_connection_base_bufferevent_new), which is the
 * only way libevent 2.1 gives it to us before a whole request arrives.
 * Later runs: the deadline passed without a complete request (or the
 * client did not take its reply in time), so the connection goes.
 */
static void
metrics_conn_timer(evutil_socket_t fd, short what, void *arg)
{
	struct metrics_conn *mc = arg;
	struct metrics	*m = mc->m;
	struct bufferevent *bev = mc->bev;
	bufferevent_data_cb readcb;
	void		*cbarg;
	uint64_t	 now = clock_now_ms();

	if (mc->evcon == NULL) {
		bufferevent_getcb(bev, &readcb, NULL, NULL, &cbarg);
		if (readcb == NULL || cbarg == NULL) {
			/* evhttp gave up on it already (bufferevent_free clears the callbacks). */
			metrics_conn_free(mc);
		} else {
			mc->evcon = cbarg;
			evhttp_connection_set_closecb(mc->evcon, metrics_conn_closed, mc);
			metrics_conn_arm(mc);
		}
		bufferevent_decref(bev);	/* the reference taken in metrics_conn_new */
		return;
	}
	m->st->timeouts++;
	if (now - m->timeout_logged_ms >= METRICS_LOG_MS) {
		m->timeout_logged_ms = now;
		log_warnx("metrics: closing a client that did not send its request (or "
		    "take the reply) within %d ms (%" PRIu64 " so far)",
		    metrics_deadline_ms(m), m->st->timeouts);
	}
	/* What evhttp_free does for each connection; closecb frees mc. */
	evhttp_connection_free(mc->evcon);
}

/*
 * evhttp's bufferevent factory, called once per accepted connection before
 * it reads a byte: the place to count connections from accept on. At
 * METRICS_MAX_CONNS accepting pauses, and new connections wait in the
 * kernel backlog until one of these closes.
 */
static struct bufferevent *
metrics_conn_new(struct event_base *base, void *arg)
{
	struct metrics	*m = arg;
	struct metrics_conn *mc;
	uint64_t	 now = clock_now_ms();

	if ((mc = calloc(1, sizeof(*mc))) == NULL) {
		log_warn("metrics: calloc");
		return NULL;	/* evhttp makes its own; only its timeout applies */
	}
	mc->m = m;
	/* Options 0, as evhttp's own: evhttp_connection_free closes the fd itself. */
	if ((mc->bev = bufferevent_socket_new(base, -1, 0)) == NULL ||
	    (mc->ev = evtimer_new(base, metrics_conn_timer, mc)) == NULL) {
		log_warnx("metrics: cannot make a buffered event for a client");
		if (mc->bev != NULL)
			bufferevent_free(mc->bev);
		free(mc);
		return NULL;
	}
	/* Held until the first timer run, so mc->bev is valid whatever evhttp does. */
	bufferevent_incref(mc->bev);
	/* Runs in this loop turn, before any byte is read: the deadline starts then. */
	event_active(mc->ev, EV_TIMEOUT, 1);
	TAILQ_INSERT_TAIL(&m->conns, mc, entry);
	m->st->connections++;
	if (m->st->connections >= METRICS_MAX_CONNS && !m->paused) {
		/* The listener checks this after each accept: no more in this turn. */
		evconnlistener_disable(evhttp_bound_socket_get_listener(m->bound));
		m->paused = true;
		m->st->cap_reached++;
		if (now - m->cap_logged_ms >= METRICS_LOG_MS) {
			m->cap_logged_ms = now;
			log_warnx("metrics: %" PRIu64 " connections open, new ones wait (%" PRIu64
			    " times so far)", m->st->connections, m->st->cap_reached);
		}
	}
	return mc->bev;
}

/* A request was answered: the connection's next request gets a fresh deadline. */
static void
metrics_conn_answered(struct metrics *m, struct evhttp_connection *evcon)
{
	struct metrics_conn *mc;

	TAILQ_FOREACH(mc, &m->conns, entry)
		if (mc->evcon == evcon) {
			metrics_conn_arm(mc);
			return;
		}
}

void
metrics_get_status(const struct metrics *m, struct metrics_status *st)
{
	memset(st, 0, sizeof(*st));
	if (m == NULL)
		return;
	*st = *m->st;
	st->request_timeout_ms = (uint64_t)metrics_deadline_ms(m);
}

/* A short text/plain reply (errors). */
static void
metrics_reply_text(struct evhttp_request *req, int code, const char *reason, const char *text)
{
	struct evbuffer	*body = evbuffer_new();

	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	    "text/plain; charset=utf-8");
	if (body != NULL)
		evbuffer_add_printf(body, "%s\n", text);
	evhttp_send_reply(req, code, reason, body);
	if (body != NULL)
		evbuffer_free(body);
}

/*
 * Every request: GET /metrics renders, other paths are 404 and other
 * methods 405. Runs on the event loop, so it only reads counters.
 */
static void
metrics_request(struct evhttp_request *req, void *arg)
{
	struct metrics		*m = arg;
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	const struct evhttp_uri	*uri = evhttp_request_get_evhttp_uri(req);
	const char		*path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	struct evbuffer		*body;
	char			*text;

	if (evcon != NULL)
		metrics_conn_answered(m, evcon);
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET");
		metrics_reply_text(req, 405, "Method Not Allowed", "only GET is allowed");
		return;
	}
	if (path == NULL || strcmp(path, METRICS_PATH) != 0) {
		metrics_reply_text(req, HTTP_NOTFOUND, "Not Found",
		    "not found; metrics are at " METRICS_PATH);
		return;
	}
	if ((text = metrics_render(m->lbd)) == NULL ||
	    (body = evbuffer_new()) == NULL) {
		free(text);
		log_warnx("metrics: out of memory rendering a reply");
		metrics_reply_text(req, HTTP_INTERNAL, "Internal Server Error", "out of memory");
		return;
	}
	evbuffer_add(body, text, strlen(text));
	free(text);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	    METRICS_CONTENT_TYPE);
	evhttp_send_reply(req, HTTP_OK, "OK", body);
	evbuffer_free(body);
}

/* ---------------------------------------------------------------- life */

/* A listening TCP socket on addr. Returns: the fd, or -1 logged. */
static int
metrics_listen(const struct sockaddr_storage *addr)
{
	char	 buf[ADDR_STRLEN];
	int	 fd, on = 1;

	sockaddr_port_str((const struct sockaddr *)addr, buf, sizeof(buf));
	if ((fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1) {
		log_warn("metrics: socket");
		return -1;
	}
	/* A restart must not wait for TIME_WAIT connections of the last run. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1)
		log_warn("metrics: SO_REUSEADDR");
	/* [::]:port means IPv6 only; 0.0.0.0:port is the way to IPv4. */
	if (addr->ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) == -1)
		log_warn("metrics: IPV6_V6ONLY");
	if (bind(fd, (const struct sockaddr *)addr, addr_len((const struct sockaddr *)addr)) == -1) {
		log_warn("metrics: cannot listen on %s (metrics.listen)", buf);
		goto fail;
	}
	/*
	 * Past METRICS_MAX_CONNS accept pauses and the kernel queues new
	 * connections here; a full queue drops SYNs, and a client's retry
	 * (1 s, 3 s, 7 s later) can miss the moment slots free up again.
	 */
	if (listen(fd, METRICS_BACKLOG) == -1) {
		log_warn("metrics: listen %s", buf);
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

struct metrics *
metrics_open(struct lbd *lbd)
{
	struct metrics	*m;
	struct timeval	 tv = { METRICS_TIMEOUT_S, 0 };
	char		 buf[ADDR_STRLEN];
	int		 fd = -1;

	if ((m = calloc(1, sizeof(*m))) == NULL) {
		log_warn("metrics: calloc");
		return NULL;
	}
	m->lbd = lbd;
	m->st = &lbd->metrics_stats;
	memset(m->st, 0, sizeof(*m->st));
	m->st->max_connections = METRICS_MAX_CONNS;
	TAILQ_INIT(&m->conns);
	if ((m->http = evhttp_new(lbd->base)) == NULL) {
		log_warnx("metrics: cannot create the HTTP server");
		goto fail;
	}
	/* Every method reaches metrics_request, which answers 405 (libevent: 501). */
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
	    EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
	    EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_timeout_tv(m->http, &tv);
	evhttp_set_max_headers_size(m->http, METRICS_MAX_HEADERS);
	evhttp_set_max_body_size(m->http, METRICS_MAX_BODY);
	evhttp_set_gencb(m->http, metrics_request, m);
	evhttp_set_bevcb(m->http, metrics_conn_new, m);
	if ((fd = metrics_listen(&lbd->conf->metrics_addr)) == -1)
		goto fail;
	if ((m->bound = evhttp_accept_socket_with_handle(m->http, fd)) == NULL) {
		log_warnx("metrics: cannot register the socket with the HTTP server");
		goto fail;
	}
	sockaddr_str((const struct sockaddr *)&lbd->conf->metrics_addr, buf, sizeof(buf));
	log_info("metrics: serving http://%s%s%s:%u" METRICS_PATH,
	    lbd->conf->metrics_addr.ss_family == AF_INET6 ? "[" : "", buf,
	    lbd->conf->metrics_addr.ss_family == AF_INET6 ? "]" : "", metrics_port(m));
	return m;
fail:
	if (m->bound == NULL && fd != -1)
		close(fd);
	if (m->http != NULL)
		evhttp_free(m->http);
	free(m);
	return NULL;
}

void
metrics_close(struct metrics *m)
{
	struct metrics_conn *mc;
	struct bufferevent *bev;

	if (m == NULL)
		return;
	m->closing = true;
	evhttp_free(m->http);	/* closes the socket and every connection (closecb frees each) */
	/* Accepted in this very turn, not adopted yet: the first timer run never comes. */
	while ((mc = TAILQ_FIRST(&m->conns)) != NULL) {
		bev = mc->evcon == NULL ? mc->bev : NULL;
		metrics_conn_free(mc);
		if (bev != NULL)
			bufferevent_decref(bev);
	}
	free(m);
}

uint16_t
metrics_port(const struct metrics *m)
{
	struct sockaddr_storage	 ss;
	socklen_t		 len = sizeof(ss);

	if (m == NULL || getsockname(evhttp_bound_socket_get_fd(m->bound),
	    (struct sockaddr *)&ss, &len) == -1)
		return 0;
	return addr_port((const struct sockaddr *)&ss);
}
