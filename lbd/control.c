/*
 * control.c - the control socket server: accepts lbctl's connections, reads
 * one request line from each before its deadline, checks the peer's access
 * group and hands the line to command.c, then writes the JSON reply (a
 * `sticky list` in slices) or, for `monitor`, the events of the bus.
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
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "lbd.h"

#define CONTROL_MAX_CLIENTS	64		/* concurrent connections; more are turned away */
#define CONTROL_MAX_MONITORS	16		/* of which `monitor` streams: 48 slots stay for commands */
#define CONTROL_WRITE_TIMEOUT_S	10		/* without any progress writing a reply or events */
#define CONTROL_MONITOR_MAX_OUT	(1024 * 1024)	/* unsent event bytes before a monitor is dropped */
#define CONTROL_STREAM_SLICE	2000		/* entries written per loop turn (about 1 ms) */
#define CONTROL_STREAM_LOW	(64 * 1024)	/* unsent bytes below which the next slice goes */
#define CONTROL_MAX_STREAMS	4		/* `sticky list` replies in progress at once */
#define CONTROL_ACCEPT_PAUSE_MS	1000		/* accept() back-off when out of descriptors */
#define CONTROL_REFUSE_LOG_MS	10000		/* at most one log line per kind (full, monitors, timeout) per this */
#define CONTROL_DRAIN_READS	16		/* 4 KiB reads of unread input before a close */
#define CONTROL_MODE		0660		/* socket mode: owner and control.group */
#define CONTROL_MODE_READONLY	0666		/* with control.readonly_group: SO_PEERCRED decides */
#define CONTROL_PEER_GROUPS	64		/* supplementary groups read at first; more: realloc */

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
	enum command_access access;		/* from the peer's credentials at accept */
	struct view_stream *stream;		/* `sticky list` reply being written, or NULL */
};

static void	 control_client_free(struct control_client *);
static void	 control_client_drain(struct control_client *);
static bool	 control_client_write_now(struct control_client *);
static void	 control_client_write(struct bufferevent *, void *);
static void	 control_client_stream(struct control_client *, struct view_stream *);
static void	 control_client_stream_more(struct control_client *);
static void	 control_client_deadline(evutil_socket_t, short, void *);

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
		reply = reply_error("internal error: out of memory");
	cl->replied = true;
	if (reply == NULL || control_send(cl, reply) == -1) {
		json_decref(reply);
		control_client_free(cl);
		return;
	}
	json_decref(reply);
	if (!cl->monitor && control_client_write_now(cl))
		return;
	/* No read deadline from here on: a monitor stays until the client leaves. */
	bufferevent_set_timeouts(cl->bev, NULL, &wtv);
	bufferevent_enable(cl->bev, EV_WRITE);
}

/*
 * Writes a queued reply at once instead of a loop turn later (a reply is
 * a line or two; the socket takes it), then ends the connection as the
 * drained-output callback does.
 * Returns: true when it all went and the client is freed, false when the
 * rest waits for the write event.
 */
static bool
control_client_write_now(struct control_client *cl)
{
	struct evbuffer	*out = bufferevent_get_output(cl->bev);
	evutil_socket_t	 fd = bufferevent_getfd(cl->bev);

	if (fd == -1 || evbuffer_write(out, fd) == -1 || evbuffer_get_length(out) > 0)
		return false;		/* EAGAIN or an error: the write event sees it */
	control_client_write(cl->bev, cl);
	return true;
}

static void
control_client_error(struct control_client *cl, const char *msg)
{
	control_client_reply(cl, reply_error("%s", msg));
}

/* Counts and logs (rate-limited) a `monitor` request turned away. */
static void
control_refused_monitor(struct control *c)
{
	uint64_t	 now = clock_now_ms();

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
	struct control_status	 cs;
	struct view_stream	*stream = NULL;
	struct command_req	 req = { .lbd = cl->control->lbd, .access = cl->access,
				    .server = &cs, .stream = &stream };
	bool			 monitor;
	json_t			*reply;

	if (memchr(line, '\0', len) != NULL) {
		control_client_error(cl, "request contains control characters");
		return;
	}
	control_get_status(cl->control, &cs);
	req.streams_full = cl->control->nstreams >= CONTROL_MAX_STREAMS;
	reply = command_run(&req, line);
	monitor = req.monitor;
	if (reply == NULL && stream != NULL) {
		control_client_stream(cl, stream);
		return;
	}
	if (monitor && cl->control->nmonitors >= CONTROL_MAX_MONITORS) {
		/* Monitors never take the slots commands need. */
		json_decref(reply);
		reply = reply_error("too many monitors (%d open); stop one or try "
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
control_client_stream(struct control_client *cl, struct view_stream *st)
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

	rc = view_stream_write(cl->stream, bufferevent_get_output(cl->bev),
	    CONTROL_STREAM_SLICE);
	if (rc == 1)
		return;
	if (rc == -1) {
		log_warnx("control: cannot queue a sticky list");
		control_client_free(cl);
		return;
	}
	view_stream_free(cl->stream);
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
		view_stream_free(cl->stream);
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
static enum command_access
control_peer_access(struct control *c, int fd)
{
	struct ucred	 cred;
	socklen_t	 len = sizeof(cred);
	gid_t		 small[CONTROL_PEER_GROUPS], *groups = small;
	enum command_access access = COMMAND_ACCESS_NONE;
	size_t		 i, n;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1) {
		log_warn("control: SO_PEERCRED");
		return COMMAND_ACCESS_NONE;
	}
	if (cred.uid == 0 || cred.uid == geteuid())
		return COMMAND_ACCESS_FULL;
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
			access = COMMAND_ACCESS_FULL;
			break;
		}
		if (c->has_ro_group && g == c->ro_group)
			access = COMMAND_ACCESS_READONLY;
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
		if (clock_now_ms() - c->refuse_logged_ms >= CONTROL_REFUSE_LOG_MS) {
			c->refuse_logged_ms = clock_now_ms();
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
		return;
	}
	/*
	 * A client usually writes its line right after connecting: read it
	 * now rather than a loop turn later. Nothing there yet (EAGAIN), EOF
	 * or an error: the read event handles it as before.
	 */
	if (evbuffer_read(bufferevent_get_input(cl->bev), fd, LBD_CONTROL_LINE_MAX + 2) > 0)
		control_client_read(cl->bev, cl);	/* may free cl */
}

/* The request deadline: a client still without a complete request line goes. */
static void
control_client_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct control_client *cl = arg;
	struct control	*c = cl->control;
	uint64_t	 now = clock_now_ms();

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

/* ---------------------------------------------------------------- events */

/* The bus listener: writes each event to every `monitor` client as one line. */
static void
control_monitor_event(void *arg, const char *type, json_t *obj)
{
	struct control		*c = arg;
	struct control_client	*cl, *next;
	struct evbuffer		*out;
	char			*line;
	size_t			 len;

	if (c->nclients == 0)
		return;
	/* One serialisation for every monitor. */
	if ((line = json_dumps(obj, JSON_COMPACT)) == NULL) {
		log_warnx("control: cannot serialise a %s event", type);
		return;
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
}

/* ---------------------------------------------------------------- in the process */

json_t *
control_handle(struct lbd *lbd, const char *line, bool *monitor)
{
	struct control_status	 cs;
	struct command_req	 req = { .lbd = lbd, .access = COMMAND_ACCESS_FULL, .server = &cs };
	json_t			*reply;

	control_get_status(lbd->control, &cs);
	reply = command_run(&req, line);
	*monitor = req.monitor;
	return reply;
}

json_t *
control_status(struct lbd *lbd)
{
	struct control_status	 cs;

	control_get_status(lbd->control, &cs);
	return view_status(lbd, &cs);
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
	if (bus_subscribe(lbd, control_monitor_event, c) == -1)
		goto fail;
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
	bus_unsubscribe(c->lbd, control_monitor_event, c);
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
