/*
 * lbd.h - the map of the lbd daemon: configuration, runtime state and the
 * prototypes of every lbd/ module, grouped per file.
 */
#ifndef LBD_H
#define LBD_H

#include "clock.h"		/* common/: clock_now_ms, shared with hasync */
#include "sockaddr.h"		/* common/: address text, shared with hasync */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/queue.h>
#include <netinet/in.h>
#include <net/if.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

struct event_base;
struct event;

#define LBD_NAME_MAX		64	/* node, peer, service, backend names */
#define LBD_PATH_MAX		108	/* sun_path of a UNIX socket */
#define LBD_MAX_SERVICES	16	/* services per config */
#define LBD_MAX_BACKENDS	64	/* backends per service */
#define LBD_MAX_RANGES		32	/* port entries ("21", "1025-1052") per service */
#define LBD_MAX_PEER_PATHS	4	/* addresses the peer can be reached at */
#define LBD_ADVERT_INTERVAL_MIN	10	/* cluster.advert_interval_ms lower bound, ms */
#define LBD_ADVERT_INTERVAL_MAX	10000	/* cluster.advert_interval_ms upper bound, ms */
#define LBD_CONTROL_LINE_MAX	1024	/* longest control request line */
#define LBD_DEF_REQUEST_TIMEOUT_MS 5000	/* control/metrics.request_timeout_ms: a request's deadline */
#define LBD_MIRROR_MARK_DEF	0x1bd	/* cluster.mirror_mark unset */
#define LBD_MIRROR_MARK_MAX	(INT32_MAX - 1)	/* cluster.mirror_mark upper bound: + 1 (the release mark) is an int too */
#define LBD_MAX_RELAY_THREADS	64	/* node.relay_threads upper bound */
#define LBD_RELAY_THREADS_AUTO	(-1)	/* node.relay_threads unset: CPUs online - 1 (<= 64); 0 on <= 2 CPUs */
#define LBD_PIPE_MEMORY_AUTO	(-1)	/* node.pipe_memory_max_mb unset: 256, at most RAM / 8 */
#define LBD_PIPE_MEMORY_DEF_MB	256	/* its value on a host with 2 GiB of RAM or more */
#define LBD_PIPE_MEMORY_MAX_MB	1048576	/* node.pipe_memory_max_mb upper bound: 1 TiB */
#define LBD_NELEM(a)		(sizeof(a) / sizeof((a)[0]))	/* entries of a static array */

#define LBD_DEFAULT_CONFIG	"/etc/lbd/lbd.conf"
#define LBD_DEFAULT_SOCKET	"/run/lbd/lbd.sock"
#define LBD_DEFAULT_CONTROL_GROUP "lbdctl"	/* control.group: lbctl users (sysusers.d/lbd.conf) */
#define LBD_DEFAULT_KEY_FILE	"/etc/lbd/cluster.key"

/*
 * An IP address as a sticky key and as a config value: IPv4 is stored
 * v4-mapped (::ffff:a.b.c.d) so both families share one 16-byte key.
 */
struct lbd_ip {
	uint8_t		 bytes[16];	/* IPv6 or v4-mapped IPv6 */
};

/* ---------------------------------------------------------------- config */

struct port_range {
	uint16_t	 first;		/* first port, inclusive */
	uint16_t	 last;		/* last port, inclusive (== first for one) */
};

enum sched_type {
	SCHED_LEASTCONN = 0,		/* fewest active per weight */
	SCHED_ROUNDROBIN		/* smooth weighted round robin */
};

enum source_mode {
	SOURCE_VIP = 0,			/* backend connections leave from the VIP */
	SOURCE_NODE			/* ... from node.address */
};

/* Which lines log.c prints; warnings and fatal errors always print. */
enum log_level {
	LOG_LEVEL_WARNING = 0,		/* warnings only */
	LOG_LEVEL_INFO,			/* and log_info (the default) */
	LOG_LEVEL_DEBUG			/* and log_debug */
};

enum check_type {
	CHECK_NONE = 0,			/* no check: backend always up */
	CHECK_TCP,			/* connect succeeds */
	CHECK_FTP			/* reads a 220 greeting, sends QUIT */
};

struct check_config {
	enum check_type	 type;		/* what to check */
	uint16_t	 port;		/* port to check (default: first service port) */
	int		 interval_ms;	/* time between two checks */
	int		 timeout_ms;	/* one check's deadline */
	int		 rise;		/* successes to go up */
	int		 fall;		/* failures to go down */
};

struct backend_config {
	char		 name[LBD_NAME_MAX];	/* unique within its service */
	struct sockaddr_storage addr;		/* port 0; the service port is used */
	int		 weight;		/* 1-256; relative share */
	int		 line;			/* config line, for messages */
};

struct service_config {
	char		 name[LBD_NAME_MAX];	/* e.g. "FTPS_VIP" */
	struct port_range ranges[LBD_MAX_RANGES]; /* as written in "ports" */
	int		 nranges;
	struct port_range mirror[LBD_MAX_RANGES]; /* mirror_ports: connections to these are mirrored */
	int		 nmirror;
	enum sched_type	 sched;			/* scheduler for new clients */
	int		 sticky_timeout_s;	/* entry lifetime after last use */
	int		 sticky_size;		/* max entries, LRU eviction past it */
	int		 connect_timeout_ms;	/* backend connect deadline */
	int		 idle_timeout_s;	/* no byte either way for this long: close */
	int		 max_connections;	/* concurrent proxied connections */
	int		 max_connections_per_client; /* ... from one client IP, all ports; 0: no cap */
	enum source_mode source;		/* where backend connections leave from */
	struct check_config check;		/* health check */
	struct backend_config backends[LBD_MAX_BACKENDS];
	int		 nbackends;
	int		 line;			/* config line, for messages */
};

struct lbd_config {
	char		 path[PATH_MAX];	/* file it was read from */

	/* node = { ... } */
	char		 node_name[LBD_NAME_MAX];
	struct sockaddr_storage node_addr;	/* health checks and heartbeats leave from it */
	int		 node_priority;		/* 1-254, default 100 */
	int		 relay_threads;		/* 0: relay in the main loop; 1-64; LBD_RELAY_THREADS_AUTO */
	int		 pipe_memory_max_mb;	/* budget of enlarged pipes, MiB; LBD_PIPE_MEMORY_AUTO */

	/* peer = { ... }; absent: standalone node */
	bool		 has_peer;
	char		 peer_name[LBD_NAME_MAX];
	struct sockaddr_storage peer_addr[LBD_MAX_PEER_PATHS];
	int		 npeer_addr;

	/* cluster = { ... } */
	char		 key_file[PATH_MAX];
	uint16_t	 heartbeat_port;	/* UDP, default 7411 */
	uint16_t	 sync_port;		/* TCP, default 7412 */
	int		 advert_interval_ms;	/* default 100, 10-10000 */
	bool		 preempt;		/* default true */
	int		 handover_drain_s;	/* old MASTER serves its connections this long; 0 = off */
	bool		 mirror;		/* connection mirroring on (default false for now) */
	int		 mirror_mark;		/* SO_MARK of mirrored sockets: the fence drops their FIN/RST */

	/* vip = { ... } */
	struct sockaddr_storage vip_addr;	/* port 0 */
	int		 vip_prefixlen;		/* from "a.b.c.d/len" */
	char		 vip_interface[IF_NAMESIZE];

	/* control = { ... } */
	char		 control_socket[LBD_PATH_MAX];
	int		 control_request_timeout_ms;	/* from accept to the request line; default 5000 */
	char		 control_group[LBD_NAME_MAX];	/* socket's group: every command; default "lbdctl" */
	bool		 control_group_set;		/* control.group given: a missing group is an error */
	char		 control_readonly_group[LBD_NAME_MAX]; /* read-only commands; "" = none */

	/* metrics = { ... }; absent: no metrics endpoint */
	bool		 metrics_on;		/* the Prometheus endpoint is configured */
	struct sockaddr_storage metrics_addr;	/* where it listens, with its port */
	int		 metrics_request_timeout_ms;	/* from accept (or a reply) to a request; default 5000 */

	enum log_level	 log_level;		/* log_level = "..."; default info */

	struct service_config services[LBD_MAX_SERVICES];
	int		 nservices;
};

/* ---------------------------------------------------------------- runtime */

/* Why a health check ended the way it did. */
enum check_result {
	CHECK_RESULT_NONE = 0,		/* no check has finished yet */
	CHECK_RESULT_OK,		/* connected (tcp) or got 220 (ftp) */
	CHECK_RESULT_CONNECT_REFUSED,	/* RST to our SYN */
	CHECK_RESULT_CONNECT_TIMEOUT,	/* no answer to our SYN in time */
	CHECK_RESULT_CONNECT_ERROR,	/* unreachable or another socket error */
	CHECK_RESULT_READ_TIMEOUT,	/* connected, no greeting in time */
	CHECK_RESULT_BAD_GREETING,	/* connected, greeting is not 220 */
	CHECK_RESULT_CLOSED,		/* connected, closed before a greeting */
	CHECK_RESULT_INTERNAL,		/* could not even start (socket(), bind()) */
	CHECK_RESULT_SKIPPED_FDS,	/* not run: lbd out of descriptors (EMFILE, ENFILE); no verdict */
	CHECK_RESULT_SKIPPED_MEMORY	/* not run: kernel or lbd out of memory (ENOBUFS, ENOMEM); no verdict */
};

enum backend_admin {
	BACKEND_ENABLED = 0,		/* takes new and sticky clients */
	BACKEND_DRAIN,			/* keeps sticky clients, gets no new ones */
	BACKEND_DISABLED		/* gets nothing; sticky clients re-pick */
};

struct service;
struct check;

struct backend {
	struct backend_config conf;	/* static part, from the config */
	struct service	*service;	/* owner */
	int		 index;		/* position in service->backends */

	enum backend_admin admin;	/* set by lbctl */
	bool		 up;		/* health: the last rise/fall verdict */
	bool		 checked;	/* a first check result has arrived */
	int		 rise_count;	/* consecutive successes while down */
	int		 fall_count;	/* consecutive failures while up */
	enum check_result last_result;	/* last check's outcome */
	uint64_t	 last_check_ms;	/* monotonic time of that outcome */
	uint64_t	 checks_skipped; /* checks not run for a local shortage (CHECK_RESULT_SKIPPED_*) */
	struct check	*check;		/* running check state, check.c */

	int		 rr_current;	/* smooth weighted round robin state */
	uint64_t	 active;	/* proxied connections open now */
	uint64_t	 total;		/* proxied connections ever */
	uint64_t	 bytes_in;	/* client -> backend bytes */
	uint64_t	 bytes_out;	/* backend -> client bytes */
	uint64_t	 connect_failures; /* backend connects that failed */
};

struct listener {
	struct service	*service;	/* owner */
	uint16_t	 port;		/* VIP port */
	int		 fd;		/* listening socket */
	struct event	*ev;		/* EV_READ on fd */
	bool		 paused;	/* accept stopped by max_connections */
};

struct sticky_table;
struct client_table;
struct conn;
TAILQ_HEAD(conn_list, conn);

struct service {
	struct service_config conf;	/* static part, from the config */
	struct lbd	*lbd;		/* owner */
	struct backend	 backends[LBD_MAX_BACKENDS];
	int		 nbackends;
	struct sticky_table *sticky;	/* client IP -> backend index */
	struct listener	*listeners;	/* one per port */
	int		 nlisteners;
	struct conn_list conns;		/* open proxied connections */
	uint64_t	 active;	/* open proxied connections */
	uint64_t	 total;		/* accepted, ever */
	uint64_t	 refused;	/* no usable backend */
	uint64_t	 fd_reserve_pauses; /* accepting paused: only the fd reserve was left */
	uint64_t	 refused_per_client; /* closed at accept: the client had max_connections_per_client open */
	struct client_table *clients;	/* open connections per client IP (clients.c); NULL: none yet */
	uint64_t	 rr_next;	/* leastconn tie-break rotation */
};

struct control;
struct hasync;
struct replica;
struct sync;

#define BUS_MAX_SUBSCRIBERS	4	/* listeners on one lbd's event bus (bus.c) */

/*
 * A listener on lbd's event bus: called with the event's type and the
 * event object (borrowed: copy what is kept), which carries "event",
 * "time" and "time_ms" besides the publisher's fields.
 */
typedef void	 bus_fn(void *arg, const char *type, json_t *event);

/* One slot of the event bus. */
struct bus_sub {
	bus_fn		*fn;		/* NULL: a free slot */
	void		*arg;		/* the listener's own */
};

/* The endpoint's connections and deadlines (status "metrics", metrics):
 * plain data in struct lbd, kept by metrics.c, read by the views. */
struct metrics_status {
	uint64_t	 connections;		/* open now, counted from accept */
	uint64_t	 max_connections;	/* open at once; more wait in the backlog */
	uint64_t	 request_timeout_ms;	/* from accept (or the last reply) to a request */
	uint64_t	 cap_reached;		/* times accepting paused at max_connections */
	uint64_t	 timeouts;		/* connections closed at their deadline */
};

/* The whole daemon. One instance, made in main.c. */
struct lbd {
	struct lbd_config *conf;	/* current configuration */
	struct event_base *base;	/* the one event loop */
	struct service	 services[LBD_MAX_SERVICES];
	int		 nservices;
	struct control	*control;	/* control socket, control.c */
	struct bus_sub	 bus[BUS_MAX_SUBSCRIBERS];	/* event bus listeners, bus.c */
	struct metrics	*metrics;	/* Prometheus endpoint, metrics.c; NULL when off */
	struct metrics_status metrics_stats; /* its figures, kept by metrics.c; zero when off */
	struct hasync	*ha;		/* heartbeat, role and VIP: hasync, opened by cluster.c */
	uint64_t	 started_ms;	/* monotonic start time */
	bool		 stopping;	/* SIGTERM/SIGINT received */
	struct replica	*replica;	/* sticky replication, replica.c; NULL standalone */
};

/* ---------------------------------------------------------------- prototypes */

/* log.c */
void		 log_init(int debug, const char *progname);
void		 log_setverbose(int verbose);
void		 log_setlevel(enum log_level level);	/* config's level; -d keeps debug */
enum log_level	 log_getlevel(void);			/* the level in force */
const char	*log_level_str(enum log_level level);
void		 log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void		 log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void		 log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void		 log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void		 log_hasync(void *arg, int level, const char *msg);	/* hasync's log callback */
/* One rate-limited kind of log line (log_limited); zeroed: nothing logged yet. */
struct log_limit {
	uint64_t	 last_ms;	/* when it was last logged */
	uint64_t	 dropped;	/* lines suppressed since */
};
/* At most one line per interval_ms for l at level (now: clock_now_ms()); the next says how many were dropped. */
void		 log_limited(struct log_limit *l, uint64_t now, uint64_t interval_ms,
		    enum log_level level, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void		 fatal(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));
void		 fatalx(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));

/* util.c */
uint32_t	 now_s(void);			/* CLOCK_MONOTONIC in s */
int		 fd_count_open(void);		/* entries in /proc/self/fd */
struct service	*lbd_service_by_name(struct lbd *, const char *name);

/* addr.c */
int		 addr_parse(const char *s, struct sockaddr_storage *ss);
int		 addr_parse_prefix(const char *s, struct sockaddr_storage *ss, int *prefixlen);
socklen_t	 addr_len(const struct sockaddr *sa);
void		 addr_set_port(struct sockaddr_storage *ss, uint16_t port);
uint16_t	 addr_port(const struct sockaddr *sa);
bool		 addr_equal(const struct sockaddr *a, const struct sockaddr *b);	/* address only */
void		 ip_from_sockaddr(struct lbd_ip *ip, const struct sockaddr *sa);
/* The socket address of ip (AF_INET when v4-mapped) and port. */
void		 ip_to_sockaddr(const struct lbd_ip *ip, uint16_t port, struct sockaddr_storage *ss);
int		 ip_parse(const char *s, struct lbd_ip *ip);
const char	*ip_str(const struct lbd_ip *ip, char *buf, size_t len);
#define ADDR_STRLEN	(INET6_ADDRSTRLEN + 8)	/* room for "[v6]:port" */

/* config.c */
/* metrics.request_timeout_ms, the default when unset (a zeroed config in tests). */
static inline int
config_metrics_timeout_ms(const struct lbd_config *conf)
{
	return conf->metrics_request_timeout_ms > 0 ? conf->metrics_request_timeout_ms :
	    LBD_DEF_REQUEST_TIMEOUT_MS;
}
/*
 * Returns: 0 and *conf filled, or -1 with "FILE:LINE: message" (or
 * "FILE: message" when no line applies) written to err.
 */
int		 config_load(const char *path, struct lbd_config *conf, char *err, size_t errlen);
const char	*sched_type_str(enum sched_type);
const char	*check_type_str(enum check_type);
const char	*source_mode_str(enum source_mode);

/* fds.c */
/* What a configuration asks of RLIMIT_NOFILE (fds_plan). */
struct fds_plan {
	uint64_t	 connections;	/* max_connections summed over the services */
	uint64_t	 listeners;	/* listening sockets: every port of every service */
	uint64_t	 reserve;	/* kept free for checks (one per backend), control and sync */
	uint64_t	 need;		/* descriptors the configuration can use at once */
	uint64_t	 soft;		/* the soft limit to set: the hard one */
	bool		 enough;	/* soft >= need */
	uint64_t	 fit;		/* max_connections in all that soft allows */
};
/* The plan for conf under the limits cur (soft) and max (hard); pure. */
void		 fds_plan(const struct lbd_config *, uint64_t cur, uint64_t max, struct fds_plan *);
/*
 * Raises the soft RLIMIT_NOFILE to the hard one and, when conf can use
 * more, logs one line saying what to change.
 * Returns: 0 enough, 1 not enough (logged), -1 getrlimit failed (logged).
 */
int		 fds_setup(const struct lbd_config *);
/* Start-up done: measures lbd's own descriptors and turns the budget on. */
void		 fds_start(const struct lbd_config *);
void		 fds_budget_set(uint64_t limit, uint64_t base, uint64_t reserve);	/* limit 0: off */
uint64_t	 fds_reserve(void);		/* descriptors kept free */
uint64_t	 fds_limit_now(void);		/* the limit the budget uses; 0: off */
/* May the data plane open n more descriptors and leave the reserve free? */
bool		 fds_room(unsigned int n);
void		 fds_use(int delta);		/* the relay opened (+) or closed (-) descriptors */

/* clients.c */
struct client_table *clients_new(void);			/* NULL when out of memory */
void		 clients_free(struct client_table *);
uint32_t	 clients_count(const struct client_table *, const struct lbd_ip *ip);	/* NULL: 0 */
int		 clients_add(struct client_table *, const struct lbd_ip *ip);	/* Returns: 0, -1 no memory */
void		 clients_del(struct client_table *, const struct lbd_ip *ip);	/* one that clients_add counted */
uint32_t	 clients_size(const struct client_table *);		/* clients with connections open */
size_t		 clients_memory(const struct client_table *);		/* bytes the table holds */

/* sticky.c */
struct sticky_table *sticky_new(uint32_t max_entries, uint32_t timeout_s);
void		 sticky_free(struct sticky_table *);
/* Returns: backend index, or -1 when there is no live entry for ip. */
int		 sticky_lookup(struct sticky_table *, const struct lbd_ip *ip, uint32_t now);
/* Insert or overwrite ip -> backend and mark it used at now. */
void		 sticky_set(struct sticky_table *, const struct lbd_ip *ip, int backend, uint32_t now);
/* Returns: 1 removed, 0 there was none. */
int		 sticky_delete(struct sticky_table *, const struct lbd_ip *ip);
void		 sticky_flush(struct sticky_table *);
/* Removes expired entries; returns how many. */
uint32_t	 sticky_expire(struct sticky_table *, uint32_t now);
uint32_t	 sticky_count(const struct sticky_table *);
uint64_t	 sticky_evictions(const struct sticky_table *);
uint32_t	 sticky_timeout(const struct sticky_table *);
/* Seconds left for ip, or -1 when absent. */
int64_t		 sticky_expires_in(struct sticky_table *, const struct lbd_ip *ip, uint32_t now);
/* Calls fn for each live entry, most recently used first. */
void		 sticky_foreach(struct sticky_table *, uint32_t now,
		    void (*fn)(const struct lbd_ip *ip, int backend, uint32_t expires_in_s, void *arg),
		    void *arg);
/*
 * Calls fn for live entries in slot order from *cursor on (0 to start):
 * at most max_entries calls and max_slots slots visited, so a big table
 * is walked a bounded step at a time. An entry stays in its slot while it
 * lives, refreshed or not: one present through the whole walk is seen
 * exactly once; one added meanwhile may or may not be.
 * Returns: true once the end was reached (*cursor: where to go on).
 */
bool		 sticky_foreach_slots(struct sticky_table *, uint32_t *cursor, uint32_t now,
		    uint32_t max_entries, uint32_t max_slots,
		    void (*fn)(const struct lbd_ip *ip, int backend, uint32_t expires_in_s, void *arg),
		    void *arg);
/* Slots in use: live entries, tombstones, dead ones not swept yet (what sticky_foreach walks). */
uint32_t	 sticky_used(const struct sticky_table *);
size_t		 sticky_entry_size(void);
/* Runs examined by inserts sorted by expiry (the peer's entries) so far: their cost. */
uint64_t	 sticky_insert_steps(const struct sticky_table *);
/*
 * Replication (driven by replica.c). Versions come from this node's
 * hybrid logical clock: max(CLOCK_REALTIME ms << 16, last + 1), and every
 * version received moves it forward. name_cmp below is the sign of
 * strcmp(peer name, our name): on equal versions the greater name wins.
 */
#define STICKY_ORIGIN_SELF	0	/* a version written by this node */
#define STICKY_ORIGIN_PEER	1	/* ... by the peer */
/* One entry as replicated: a set, or a delete (backend -1, a tombstone). */
struct sticky_change {
	struct lbd_ip	 ip;		/* client */
	int		 backend;	/* index in service->backends; -1: deleted */
	uint32_t	 expires_in_ms;	/* remaining lifetime (a tombstone's too) */
	uint64_t	 version;	/* clock value of the change */
	int		 origin;	/* STICKY_ORIGIN_*: who wrote it */
};
uint64_t	 sticky_version_next(void);
void		 sticky_version_seen(uint64_t version);
/*
 * Tracks local changes from now on: versions, dirty marks, tombstones for
 * deletes. notify(arg) runs when the table's dirty list becomes non-empty.
 */
void		 sticky_replicate(struct sticky_table *, void (*notify)(void *arg), void *arg);
/* Moves up to max pending changes, oldest first, to out. Returns how many. */
uint32_t	 sticky_take_dirty(struct sticky_table *, uint32_t now, struct sticky_change *out,
		    uint32_t max);
uint32_t	 sticky_dirty_count(const struct sticky_table *);
void		 sticky_dirty_clear(struct sticky_table *);	/* a bulk sync carries them all */
/*
 * Bulk: copies live entries and tombstones from slot *cursor on (0 to
 * start) to out, at most max, visiting a bounded number of slots.
 * Returns: how many; *done once the whole table was visited.
 */
uint32_t	 sticky_scan(struct sticky_table *, uint32_t *cursor, uint32_t now,
		    struct sticky_change *out, uint32_t max, bool *done);
/* Merges a change from the peer. Returns: 1 applied, 0 not newer than ours (or cleared since). */
int		 sticky_apply(struct sticky_table *, const struct sticky_change *, int name_cmp,
		    uint32_t now);
/*
 * Removes every entry older than version and refuses older ones later.
 * At once when every entry is older; else a sweep of STICKY_CLEAR_SLOTS
 * slots now and the rest by sticky_clear_step (the covered entries count
 * as gone meanwhile, but sticky_count still has them).
 * Returns: entries removed so far.
 */
uint32_t	 sticky_clear(struct sticky_table *, uint64_t version, int origin, int name_cmp);
/* Goes on with a clear's sweep over at most max_slots slots. Returns entries removed. */
uint32_t	 sticky_clear_step(struct sticky_table *, uint32_t max_slots);
bool		 sticky_clear_pending(const struct sticky_table *);	/* a sweep is left */

/* sched.c */
bool		 backend_usable_new(const struct backend *);	/* may take a new client */
bool		 backend_usable_sticky(const struct backend *);	/* may keep a sticky client */
/* Returns: a backend by the service's scheduler, or NULL when none is usable. */
struct backend	*sched_pick(struct service *);
/*
 * The backend for a new connection from client: its sticky backend if that
 * one is usable (entry refreshed), else a fresh pick stored in the table.
 * Returns NULL when no backend is usable.
 */
struct backend	*sched_select(struct service *, const struct lbd_ip *client, uint32_t now);
const char	*backend_admin_str(enum backend_admin);
const char	*backend_state_str(const struct backend *);	/* up/down/drain/disabled */

/* check.c */
const char	*check_result_str(enum check_result);
/*
 * Feeds one result into backend b's rise/fall counters; a skipped check
 * (CHECK_RESULT_SKIPPED_*) is recorded and counted but is no verdict.
 * Returns: 1 if b->up changed, 0 otherwise.
 */
int		 check_account(struct backend *b, enum check_result r, uint64_t now);
bool		 check_result_skipped(enum check_result);	/* SKIPPED_*: no verdict */
int		 check_start(struct lbd *, struct backend *);	/* schedules periodic checks */
void		 check_stop(struct backend *);

/* listener.c */
int		 listener_open_all(struct lbd *);		/* Returns: 0, or -1 logged */
void		 listener_close_all(struct lbd *);
/* Stops accepting on every port of svc (max_connections reached, tests). */
void		 listener_pause(struct service *);
/* Accepts again, unless an out-of-descriptors pause still holds (every close, reload). */
void		 listener_resume(struct service *);

struct conn_mirror;
/* relay.c */
#define RELAY_FDS_PER_CONN	6	/* descriptors of a connection: 2 sockets, a pipe (2 ends) per direction */
int		 relay_init(struct lbd *);
void		 relay_shutdown(struct lbd *);		/* closes every connection */
/* Takes an accepted client fd of svc: picks a backend and connects. */
void		 relay_accept(struct service *svc, int cfd, const struct sockaddr *client,
		    const struct sockaddr *local);
/*
 * Adopts an already connected pair: a client socket and its backend
 * socket made elsewhere (a session the new MASTER rebuilt with TCP_REPAIR
 * after an unplanned failover), relayed like an accepted one.
 * Returns: 0, or -1 and both fds closed.
 */
int		 relay_adopt(struct service *svc, struct backend *be, int cfd, int bfd);
/* Bytes a direction (DIR_C2B 0, DIR_B2C 1) is to write first; buf malloc'd, taken. */
struct relay_pending {
	uint8_t		*buf;		/* NULL: none */
	size_t		 len;
};
/*
 * relay_adopt of a pair rebuilt from the peer's mirror: m its state and
 * left[2] what each direction still has to write, both taken.
 * Returns 0, -1 all freed.
 */
int		 relay_rebuilt(struct service *svc, struct backend *be, int cfd, int bfd,
		    struct conn_mirror *m, struct relay_pending left[2]);
uint64_t	 relay_active(void);			/* open connections (main thread's count) */
void		 relay_set_splice(bool on);	/* false: new connections copy with recv/send */
size_t		 relay_conn_size(void);		/* bytes of one connection record */
/*
 * The accepting side's hook: room false when a new connection of svc
 * reaches max_connections, true when one ends below it (on every such
 * close: it must be cheap) and not shutting down. listener.c sets it;
 * the relay calls no listener function itself.
 */
typedef void	 relay_room_fn(struct service *svc, bool room);
void		 relay_set_room_fn(relay_room_fn *);	/* NULL: nobody to tell */

/* relay_worker.c */
int		 relay_threads(void);			/* worker threads running; 0: relay in the main loop */
/* Main thread: every worker sends the peer each of its mirrored connections again. */
void		 relay_mirror_resync_all(void);

/* relay_pump.c */
/* The node's pipe memory budget (node.pipe_memory_max_mb) and its use. */
struct relay_pipe_stats {
	uint64_t	 bytes;		/* capacity of the enlarged pipes connections hold now */
	uint64_t	 max;		/* the budget, bytes */
	uint64_t	 peak;		/* most bytes held at once since start */
	uint64_t	 fallbacks;	/* pipes handed out at the default size (budget spent or refused) */
	uint64_t	 refused;	/* F_SETPIPE_SZ refused by the kernel (EPERM...) */
	uint64_t	 pipe_size;	/* bytes of one enlarged pipe */
};
void		 relay_pipe_stats(struct relay_pipe_stats *);
void		 relay_pipe_budget(const struct lbd_config *);	/* at start and on reload */

/* repair.c */
/*
 * One TCP socket's state as a rebuild needs it (connection mirroring):
 * sequence numbers of stream offset 0 both ways, the options of the
 * handshake, its timestamp clock and windows. Taken before lbd moved a
 * byte on it; later positions are these plus byte counts.
 */
#define REPAIR_TS_SKEW_MS	60000	/* a rebuilt timestamp clock runs this far ahead (node clock skew) */
struct repair_sock {
	struct sockaddr_storage local;	/* our address and port */
	struct sockaddr_storage remote;	/* the far end's */
	uint32_t	 snd_isn;	/* sequence number of the first byte lbd writes */
	uint32_t	 rcv_isn;	/* ... of the first byte lbd reads */
	uint32_t	 ts_val;	/* TCP_TIMESTAMP when taken (0: no timestamps) */
	uint64_t	 wall_ms;	/* CLOCK_REALTIME ms when taken */
	uint32_t	 snd_wnd;	/* the far end's window then */
	uint32_t	 rcv_wnd;	/* ours then */
	uint64_t	 acked0;	/* tcpi_bytes_acked then: acked offsets are relative to it */
	uint16_t	 mss;		/* the far end's MSS (clamp) */
	uint8_t		 snd_wscale;	/* window scale shifts, when wscale */
	uint8_t		 rcv_wscale;
	bool		 sack;		/* SACK permitted */
	bool		 tstamp;	/* timestamps on */
	bool		 wscale;	/* window scaling on */
};
/* A socket's progress, from TCP_INFO (the mirror's acks and stale checks). */
struct repair_info {
	uint8_t		 state;		/* TCP_ESTABLISHED... */
	uint64_t	 bytes_acked;	/* bytes we sent that the far end acknowledged */
	uint64_t	 bytes_received; /* bytes the far end sent us, in order */
	uint32_t	 segs_in;	/* segments received */
	uint32_t	 ooopack;	/* segments queued out of order */
	uint32_t	 unacked;	/* segments in flight */
};
/* A socket's bytes in flight (sent, not acknowledged), as a late snapshot reads them. */
struct repair_sendq {
	size_t		 outq;		/* bytes unacknowledged when acked0 was read */
	uint8_t		*buf;		/* the last len bytes written (len <= outq: ACKs since
					 * took the rest); malloc'd, NULL when none */
	size_t		 len;
};
/*
 * Takes fd's state, established; local and remote are its addresses when
 * the caller knows them (NULL: asked of the socket). The sequence numbers
 * are those of the next byte either way, and acked0 the bytes
 * acknowledged so far: the caller subtracts the bytes it moved. With sq,
 * the bytes in flight too (acked0 then matches them). Returns 0, -1
 * (errno; EPERM: no CAP_NET_ADMIN).
 */
int		 repair_snapshot(int fd, const struct sockaddr *local,
		    const struct sockaddr *remote, struct repair_sock *, struct repair_sendq *sq);
int		 repair_info(int fd, struct repair_info *);	/* Returns 0 or -1 (errno) */
/*
 * Whether the far end of fd has sent past our rcv_nxt: its latest segment
 * carried a later sequence number (bytes a dead node acknowledged and
 * never read, or a loss it will retransmit). Briefly in repair mode.
 * Returns 1, 0, or -1 (errno).
 */
int		 repair_peer_ahead(int fd);
/* Reads fd's timestamp clock into rs again, with the wall time (a resend of rs). Returns 0, -1. */
int		 repair_clock(int fd, struct repair_sock *rs);
/* The timestamp a rebuild at wall_ms gives: never behind the far end's view. */
uint32_t	 repair_ts_now(const struct repair_sock *, uint64_t wall_ms);
/* How to rebuild a socket (repair_rebuild). */
struct repair_plan {
	uint64_t	 snd_off;	/* offset of the first byte not known acknowledged */
	uint64_t	 rcv_off;	/* bytes read: offset of the next byte to receive */
	uint32_t	 ts;		/* timestamp clock (repair_ts_now) */
	uint32_t	 mark;		/* SO_MARK; 0 none */
	const uint8_t	*queue;		/* bytes from snd_off on: queued as sent (the far end may have them) */
	size_t		 queue_len;
	size_t		 queued;	/* out: how many of them fit; the rest is the caller's to send */
};
/*
 * Rebuilds the socket of rs as plan says. Repair mode is off on return;
 * repair_finish is still to come (no probe yet: the far end's answer would
 * reach the dead node before the GARP). Returns the non-blocking fd, or -1 with err
 * ("bind: Address in use", "TCP_REPAIR: ... CAP_NET_ADMIN").
 */
int		 repair_rebuild(const struct repair_sock *rs, struct repair_plan *plan,
		    char *err, size_t errlen);
/*
 * The same rebuild ahead of time, where the address is not (the BACKUP):
 * plan's queue must be empty, the socket stays in repair mode (silent,
 * no timer) until repair_ready, or repair_drop. Returns fd or -1 (err).
 */
int		 repair_standby(const struct repair_sock *rs, const struct repair_plan *plan,
		    char *err, size_t errlen);
int		 repair_ready(int fd);	/* repair mode off, no probe yet; 0 or -1 (errno) */
/* Closes fd sending nothing, neither FIN nor RST (repair mode first). */
void		 repair_drop(int fd);
/*
 * Sends fd's far end a window probe (repair mode on and off): a segment
 * just below its window, which it answers with an ACK carrying its next
 * sequence numbers (at most once per tcp_invalid_ratelimit). Returns 0, -1.
 */
int		 repair_probe(int fd);
/* A rebuilt socket made whole once the far end can answer: TCP_NODELAY, address reuse, repair_probe. */
int		 repair_finish(int fd);

/* fence.c */
/*
 * Installs (atomically replacing a crashed run's) nftables table inet
 * lbd_fence: outgoing TCP FIN/RST with meta mark == mark are dropped and
 * counted, and so is any RST on a 4-tuple that carried mark and was not
 * released since (the kernel's mark-0 answer once the orphan is gone).
 * Mirrored sockets carry mark (SO_MARK) until just before an intentional
 * shutdown/close, which sets fence_release_mark(mark): its FIN/RST pass.
 * mark must be neither 0 nor UINT32_MAX.
 * Returns: 0, or -1 with "fence: ..." in err (the old table, if any, stays).
 */
int		 fence_install(uint32_t mark, char *err, size_t errlen);
uint32_t	 fence_release_mark(uint32_t mark);	/* mark + 1: what lbd sets before its own close */
/*
 * For kick.c: every segment the far end of each of fds[0..n) sends from
 * now on (FENCE_KICK_S) is answered with the RST the kernel builds from
 * it (sequence number = its ACK: in its window whatever ours say); the
 * sockets get the release mark, so the fence lets that RST out. The
 * table's kick chain is added at the first call. Returns 0, -1 (logged).
 */
int		 fence_kick(const int *fds, size_t n);
void		 fence_remove(void);		/* ours or a crashed run's; silent if absent, logs a failure */
int		 fence_dropped(uint64_t *packets);	/* the drop counter; -1 not installed/unreadable */
bool		 fence_active(void);		/* installed by this process */

/* kick.c */
int		 kick_init(struct event_base *);	/* at start; 0, -1 logged */
/*
 * Takes fd, a rebuilt socket this node does not carry on, and resets its
 * far end with the sequence number that far end expects (kick.c says
 * how), then closes it sending nothing. Main thread.
 */
void		 kick_socket(int fd);
uint64_t	 kick_total(void);		/* sockets kicked, ever */
void		 kick_shutdown(void);		/* at exit, before the fence comes down */

/* mirror.c */
/*
 * Connection mirroring (MIRRORING.md): the MASTER streams each connection
 * on a service's mirror_ports to the peer (mirror.c), which holds them
 * (mirror_peer.c) and rebuilds them with TCP_REPAIR when it takes over
 * from a dead MASTER, before announcing the VIP.
 */
#define MIRROR_LAG_WINDOW	1024	/* lag samples kept for p50/p99 */
#define MIRROR_PB_SACK		1	/* PairSock.flags */
#define MIRROR_PB_TSTAMP	2
#define MIRROR_PB_WSCALE	4
/* For status and metrics. */
struct mirror_stats {
	bool		 on;		/* cluster.mirror with a peer */
	uint64_t	 pairs;		/* connections mirrored now */
	uint64_t	 opens;		/* Open records sent (resyncs included) */
	uint64_t	 bytes;		/* bytes mirrored */
	uint64_t	 given_up;	/* connections not mirrored: no snapshot, queue full, no memory */
	uint64_t	 stale;		/* rebuilt connections reset: their far end had moved on */
	uint64_t	 batches;	/* PairBatch frames sent */
	uint64_t	 records;	/* records in them */
	uint64_t	 send_failures;	/* batches the channel refused while up (a resync followed) */
	uint64_t	 resyncs;	/* generations: the peer was sent every pair again */
	double		 lag_p50_ms;	/* record made -> its batch acked, last MIRROR_LAG_WINDOW; -1 none */
	double		 lag_p99_ms;
	/* mirror_peer.c: the peer's connections held here */
	uint64_t	 held;		/* pairs held */
	uint64_t	 held_bytes;	/* bytes not yet acknowledged, held for them */
	uint64_t	 rx_records;	/* records received */
	uint64_t	 rx_bad;	/* records dropped: malformed, unknown pair, gaps, over the caps */
	uint64_t	 takeovers;	/* takeovers from a dead peer that rebuilt */
	uint64_t	 rebuilt;	/* pairs rebuilt, all takeovers */
	uint64_t	 failed;	/* pairs that could not be rebuilt (reset), all takeovers */
	uint64_t	 last_rebuilt;	/* ... at the last takeover */
	uint64_t	 last_failed;
	uint64_t	 last_reset;	/* ... not rebuilt, or rebuilt and found stale since */
	double		 last_rebuild_ms; /* how long the last takeover's rebuild took; -1 none */
	uint64_t	 standby;	/* held pairs whose sockets are made already (standby) */
	uint64_t	 standby_failed; /* standby attempts that failed, ever */
	uint64_t	 last_standby;	/* pairs of the last takeover taken from standby sockets */
	/* fence.c */
	bool		 fence;		/* the nftables fence is installed */
	uint64_t	 fence_dropped;	/* FIN/RST of mirrored sockets it dropped */
};
/* A pair held for the peer (mirror_peer.c), as a rebuild takes it. */
struct mirror_pair {
	char		 service[LBD_NAME_MAX];
	char		 backend[LBD_NAME_MAX];
	struct repair_sock front, back;
	uint64_t	 read[2];	/* per direction (DIR_C2B 0, DIR_B2C 1): bytes read by the peer */
	uint64_t	 base[2];	/* offset of buf[di][0]: the destination has everything below */
	uint8_t		*buf[2];	/* bytes the destination may not have, base to read */
	size_t		 len[2];	/* read - base */
	size_t		 cap[2];
};
struct Lbd__PairBatch;
/* What mirror.c needs of the rest of lbd, given by main.c (no import circle). */
struct mirror_ops {
	bool		 threaded;	/* workers run in threads of their own */
	int		(*send)(struct lbd *, const struct Lbd__PairBatch *);	/* replica_send_pairs */
	bool		(*up)(struct lbd *);	/* replica_sync_up */
	void		(*resync_all)(void);	/* relay_mirror_resync_all */
};
int		 mirror_init(struct lbd *, const struct mirror_ops *);	/* after relay_init; 0, -1 logged */
void		 mirror_shutdown(void);		/* after relay_shutdown: the fence comes down */
void		 mirror_peer_up(struct lbd *);	/* the channel came up: a new generation */
void		 mirror_acked_batch(uint64_t sequence);
void		 mirror_get_stats(struct mirror_stats *);	/* this node's side; mirror_peer_stats the rest */
uint32_t	 mirror_fence_mark(void);	/* SO_MARK of mirrored sockets, 0 when off */
uint64_t	 mirror_stale_total(void);	/* rebuilt pairs reset as stale, ever */
/*
 * Rebuilt sockets send their window probes (repair_probe) from ms on
 * (UINT64_MAX: not yet, the takeover is still rebuilding); mirror_takeover
 * sets it, any thread reads it.
 */
void		 mirror_probe_after(uint64_t ms);
/* A rebuilt pair's mirror state; NULL out of memory. */
struct conn_mirror *mirror_adopted(const struct mirror_pair *);

/* mirror_peer.c */
int		 mirror_peer_init(struct lbd *);	/* at start; 0, -1 logged */
void		 mirror_peer_free(void);		/* at exit */
void		 mirror_rx(struct lbd *, const struct Lbd__PairBatch *);	/* a batch from the peer */
/*
 * Becoming MASTER before the VIP is announced: rebuilds the dead peer's
 * pairs. With the peer alive nothing is rebuilt: *remote / *local_port /
 * *n (malloc'd, the caller frees) are both sides of each held pair, to
 * be steered back to the peer (cluster.c). Returns the pairs rebuilt.
 */
uint64_t	 mirror_takeover(struct lbd *, bool peer_dead, struct sockaddr_storage **remote,
		    uint16_t **local_port, size_t *n);
void		 mirror_peer_stats(struct mirror_stats *);

/* replica.c */
/*
 * The sticky tables as the sync layer's store: tracks every table's
 * changes, hands them to the sync layer, applies the peer's. Started by
 * cluster_open, which gives the sync layer its channel; tests attach a
 * transport to replica_sync() instead. Returns: 0, -1 logged.
 */
int		 replica_init(struct lbd *);
void		 replica_close(struct lbd *);
struct sync	*replica_sync(struct lbd *);		/* NULL standalone */
/* hasync's may_preempt: true standalone, else once the peer's bulk is in (or timed out). */
bool		 replica_may_preempt(struct lbd *);
/* Connection mirroring's batches over the sync channel (sync_send_pairs). Returns 0, -1. */
int		 replica_send_pairs(struct lbd *, const struct Lbd__PairBatch *);
bool		 replica_sync_up(struct lbd *);	/* the channel is up */
/* `sticky flush`: empties svc's table (NULL: every table), replicated. Returns entries removed. */
uint64_t	 replica_flush(struct lbd *, struct service *svc);

/* cluster.c */
/*
 * The heartbeat (role, VIP, handover) and, with a peer, the sticky
 * replication over the channel, from one translation of the config and
 * one read of the cluster key. Returns: 0, -1 logged (cluster_close cleans up).
 */
int		 cluster_open(struct lbd *);
void		 cluster_close(struct lbd *);	/* priority-0 advert first, then the channel */
/* Graceful stop: hands the VIP over. Returns: true started (poll cluster_leaving). */
bool		 cluster_leave(struct lbd *);
bool		 cluster_leaving(struct lbd *);		/* the handover or the drain goes on */
/* `lbctl failover` on a running heartbeat. Returns: NULL started, else why not. */
const char	*cluster_failover(struct lbd *);
int		 cluster_key_generate(char *buf, size_t len);	/* base64 key for `lbd --genkey`; -1 */
/* The HA and sync parts of `status`. */
bool		 cluster_quiet_backup(struct lbd *);	/* BACKUP, VIP not here, not draining */
json_t		*cluster_role_json(struct lbd *);	/* "INIT" while the heartbeat is not running */
void		 cluster_vip_json(struct lbd *, json_t *vip);	/* adds held, draining, forwarding */
json_t		*cluster_peer_json(struct lbd *);	/* name, state, priority, last_advert_ms, role */
json_t		*cluster_ha_json(struct lbd *);		/* heartbeat counters; null when not running */
json_t		*cluster_sync_json(struct lbd *);	/* state, entries, lag and counters */
/* The HA and replication lines of the metrics exposition. */
void		 cluster_metrics(FILE *, struct lbd *);
/* The one-line summary's parts (sdnotify.c): "MASTER, VIP held"; "peer lb2 alive (BACKUP)". */
void		 cluster_summary_role(struct lbd *, char *buf, size_t len);
void		 cluster_summary_peer(struct lbd *, char *buf, size_t len);

/* sdnotify.c: systemd's notify protocol through libsystemd (sd_notify(3)). */
/*
 * Subscribes to the event bus (role, backend, sync, handover: the STATUS=
 * line follows them), starts the slow STATUS= timer and, when systemd
 * asks for it (WatchdogSec=), the WATCHDOG=1 timer. Returns 0, -1 logged.
 */
int		 sdnotify_open(struct lbd *);
void		 sdnotify_close(struct lbd *);
void		 sdnotify_ready(struct lbd *);		/* READY=1 and the STATUS= line: serving */
void		 sdnotify_reloading(void);		/* RELOADING=1: reload_apply begins */
void		 sdnotify_reloaded(struct lbd *);	/* READY=1: reload_apply is over, either way */
void		 sdnotify_stopping(struct lbd *, const char *what); /* STOPPING=1, STATUS=what */
void		 sdnotify_status(struct lbd *);		/* STATUS= now, if it changed */
/* The STATUS= line: "MASTER, VIP held, 2/2 backends up, 12 active, peer lb2 alive (BACKUP)". */
void		 sdnotify_summary(struct lbd *, char *buf, size_t len);

/* bus.c */
int		 bus_subscribe(struct lbd *, bus_fn *, void *arg);	/* -1: BUS_MAX_SUBSCRIBERS listen */
void		 bus_unsubscribe(struct lbd *, bus_fn *, void *arg);
/* Publishes an event {"event": type, ...obj} to every listener. Steals obj; NULL lbd or obj is harmless. */
void		 bus_publish(struct lbd *, const char *type, json_t *obj);

/* control.c */
struct control	*control_open(struct lbd *);		/* NULL on error, logged */
void		 control_close(struct control *);
/* Runs one request line with every right; returns a new JSON reply object (caller decrefs). */
json_t		*control_handle(struct lbd *, const char *line, bool *monitor);
json_t		*control_status(struct lbd *);		/* the `status` object */

/* The control socket's clients and what it turned away (status "control", metrics). */
struct control_status {
	uint64_t	 clients;		/* connections open now, monitors included */
	uint64_t	 monitors;		/* of which `monitor` streams */
	uint64_t	 max_clients;		/* connections served at once */
	uint64_t	 max_monitors;		/* `monitor` streams at once */
	uint64_t	 request_timeout_ms;	/* from accept to the request line */
	uint64_t	 refused;		/* connections turned away: max_clients open */
	uint64_t	 monitors_refused;	/* `monitor` requests turned away: max_monitors open */
	uint64_t	 timeouts;		/* clients that sent no request line in time */
};
void		 control_get_status(const struct control *, struct control_status *);

/* reply.c */
#define REPLY_ECHO_MAX		64	/* bytes of user input quoted back in an error */
/* s cut for quoting in a message: printable ASCII, at most REPLY_ECHO_MAX bytes and "...". */
const char	*reply_echo(const char *s, char *buf, size_t len);
json_t		*reply_str(const char *s);		/* JSON string; bad UTF-8 replaced, never dropped */
json_t		*reply_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void		 reply_set(json_t *obj, const char *key, json_t *value);	/* NULL value: logged */
void		 reply_set_int(json_t *obj, const char *key, uint64_t v);
json_t		*reply_ms(double ms);			/* a figure in ms; null when < 0 (none yet) */
void		 reply_append(char *buf, const char *s, size_t len);	/* cut to len */

/* view.c */
struct evbuffer;
struct view_stream;
json_t		*view_status(struct lbd *, const struct control_status *);
json_t		*view_backends(struct lbd *);
/* One page of the sticky tables (only: one service, NULL: all) from cursor (NULL: first). NULL: *err set. */
struct view_stream *view_sticky_snapshot(struct lbd *, struct service *only, const char *cursor,
		    json_t **err);
/* Writes up to slice entries of the page. Returns: 1 more to write, 0 finished, -1 out of memory. */
int		 view_stream_write(struct view_stream *, struct evbuffer *out, size_t slice);
void		 view_stream_free(struct view_stream *);
/* The same page as one parsed reply (callers in the process). */
json_t		*view_sticky_list(struct lbd *, struct service *only, const char *cursor);

/* command.c */
/* What a connected peer may run, from its SO_PEERCRED/SO_PEERGROUPS. */
enum command_access {
	COMMAND_ACCESS_NONE = 0,		/* nothing: not root, lbd's user nor a group member */
	COMMAND_ACCESS_READONLY,		/* control.readonly_group: commands that change nothing */
	COMMAND_ACCESS_FULL,			/* root, lbd's own user, control.group */
};

/* One request line to run, and what it leaves for the control socket. */
struct command_req {
	struct lbd	*lbd;			/* the daemon */
	enum command_access access;		/* what the peer may run */
	const struct control_status *server;	/* the socket's figures, for `status` */
	bool		 streams_full;		/* no `sticky list` stream may start now */
	bool		 monitor;		/* out: the line was `monitor` */
	struct view_stream **stream;		/* NULL: whole replies; else `sticky list` may set *stream */
};
/* Parses and runs one request line. Returns: the reply, or NULL with *req->stream set. */
json_t		*command_run(struct command_req *, const char *line);

/* metrics.c */
struct metrics;
/* The Prometheus endpoint (HTTP GET /metrics) on conf->metrics_addr. NULL on error, logged. */
struct metrics	*metrics_open(struct lbd *);
void		 metrics_close(struct metrics *);
uint16_t	 metrics_port(const struct metrics *);	/* port bound (tests ask for port 0) */

void		 metrics_get_status(const struct metrics *, struct metrics_status *);
/* lbd's state now in the text exposition format 0.0.4; malloc'ed, NULL when out of memory. */
char		*metrics_render(struct lbd *);

/* prom.c */
/* A family's HELP and TYPE lines. */
void		 prom_family(FILE *, const char *name, const char *type, const char *help);
/* name{k1="v1",...} v with labels = { k1, v1, ..., NULL } (NULL: none). */
void		 prom_u64(FILE *, const char *name, const char *const *labels, uint64_t v);
void		 prom_double(FILE *, const char *name, const char *const *labels, double v);
/* A family with one unlabelled sample. */
void		 prom_one(FILE *, const char *name, const char *type, const char *help, uint64_t v);
/* One series per value of label key: 1 for current, 0 for the others. */
void		 prom_one_hot(FILE *, const char *name, const char *const *labels, const char *key,
		    const char *const *values, size_t nvalues, const char *current);

/* reload.c */
/* Runtime services from lbd->conf: backends start up until checked. Returns: 0, -1 logged. */
int		 reload_services_init(struct lbd *);
void		 reload_services_free(struct lbd *);	/* stops checks, frees sticky tables */
/*
 * Re-reads lbd->conf->path (heap-allocated) and applies it live, keeping
 * connections, sticky entries and backend slots (by name).
 * Returns: 0 (lbd->conf replaced), or -1 with "FILE:LINE: ..." or
 * "needs a restart: ..." in err and nothing changed.
 */
int		 reload_apply(struct lbd *, char *err, size_t errlen);
/* The backend's slot is kept for its connections but it left the config. */
bool		 reload_backend_removed(const struct backend *);
/* Shown in status, backends and metrics: not a removed backend whose connections all ended. */
bool		 reload_backend_listed(const struct backend *);

#endif /* LBD_H */
