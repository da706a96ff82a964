/*
 * hasync.h - the HA layer's public face, all that lbd uses: the heartbeat
 * (roles, the VIP, failover) with its config and status, the cluster key,
 * the log sink, and sticky replication over the sync channel.
 * It does not include lbd/lbd.h: hasync links alone (its unit tests do).
 * The modules' internals are in hasync_int.h.
 */
#ifndef HASYNC_H
#define HASYNC_H

#include <sys/socket.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HASYNC_KEY_LEN	32	/* bytes of the cluster key */
#define HASYNC_KEY_B64_LEN 45	/* its base64 text (44) plus the NUL: key_generate's buffer */

/* report.c */
/* lbd's log sink: level 0 warn, 1 info, 2 debug. */
typedef void	 hasync_log_fn(void *arg, int level, const char *msg);

/* key.c */
/*
 * Writes a new random key, base64 without newline, to buf (len >=
 * HASYNC_KEY_B64_LEN). Returns 0, or -1 (buffer too small, no libsodium).
 */
int		 key_generate(char *buf, size_t len);
/*
 * Reads a key file (mode at most 0640, one base64 line). Returns 0, or -1
 * with err filled ("FILE: cannot open: ...", "... run `chmod 600 FILE`",
 * "FILE: not a cluster key ..."); key is zeroed on failure.
 */
int		 key_load(const char *path, uint8_t key[HASYNC_KEY_LEN], char *err, size_t errlen);

/*
 * Roles, in the same order as lbd's enum ha_role, so lbd converts with a
 * cast.
 */
enum hasync_role {
	HASYNC_INIT = 0,		/* not started, or stopped */
	HASYNC_BACKUP,			/* peer is (or may become) MASTER; VIP not held */
	HASYNC_MASTER,			/* holds the VIP */
	HASYNC_FAULT			/* VIP interface down: cannot serve; VIP not held */
};

/* heartbeat.c */
/*
 * The heartbeat: sealed UDP adverts to the peer, the VIP, and a netlink
 * watch of the VIP and its link, all driven by ha.c on lbd's event loop.
 *
 * Integration (lbd): fill a struct hasync_config from struct lbd_config
 * (key from key_load), hasync_new(), hasync_start(); on SIGTERM
 * hasync_stop() then hasync_free(). `lbctl failover` calls
 * hasync_failover(); status reads hasync_get_status(). The hasync owns the
 * VIP: lbd must not vip_open/vip_add it itself. Optionally call
 * event_base_priority_init(base, 2) before anything adds events: heartbeat
 * events use priority 0 and then run before relay traffic under load.
 *
 * Peer death detection, fastest first:
 * - hasync_peer_lost() from the sync channel (reset/EOF of a connection
 *   whose segments are TCP_MD5SIG-signed, so only the peer's kernel can
 *   close it): at once;
 * - Master_Down (3 x interval + skew) when the peer goes silent.
 * ICMP port unreachable for an advert is only counted (peer_unreachable)
 * and logged: it is not authenticated, so it never causes a takeover.
 */
#define HASYNC_INTERVAL_MIN	10	/* shortest advert_interval_ms, as in the config */
#define HASYNC_INTERVAL_MAX	10000	/* longest advert_interval_ms */
#define HASYNC_MAX_PEER_ADDR	4	/* peer paths */
#define HASYNC_NAME_MAX		64	/* node names, with the NUL */
#define HASYNC_VERSION_MAX	32	/* lbd version strings in adverts, with the NUL */
#define HASYNC_RT_PRIORITY	10	/* SCHED_RR priority of the pacer, as keepalived's */

struct hasync;
struct event_base;

/* What lbd tells the heartbeat, mostly straight from struct lbd_config. */
struct hasync_config {
	char		 node_name[HASYNC_NAME_MAX];	/* this node; carried in adverts */
	char		 version[HASYNC_VERSION_MAX];	/* this lbd's version; carried in adverts */
	struct sockaddr_storage node_addr;	/* adverts leave from it (port ignored) */
	int		 priority;		/* 1-254 */
	bool		 has_peer;		/* false: standalone, no adverts */
	char		 peer_name[HASYNC_NAME_MAX];	/* adverts from any other name are dropped */
	struct sockaddr_storage peer_addr[HASYNC_MAX_PEER_ADDR]; /* paths (port ignored) */
	int		 npeer_addr;		/* 1-4 when has_peer */
	uint16_t	 heartbeat_port;	/* UDP, same on both nodes */
	int		 advert_interval_ms;	/* HASYNC_INTERVAL_MIN..MAX */
	bool		 preempt;		/* a higher-priority BACKUP takes over */
	uint8_t		 key[HASYNC_KEY_LEN];	/* cluster key */
	char		 vip_ifname[IF_NAMESIZE]; /* "" = no VIP and no link watch (tests) */
	struct sockaddr_storage vip_addr;	/* the VIP (port ignored) */
	int		 vip_prefixlen;		/* on-link prefix length */
	int		 garp_count;		/* announcements at takeover; 0 = 3 */
	int		 garp_interval_ms;	/* between them; 0 = 200 */
	int		 garp_refresh_ms;	/* one more after the burst; 0 = 5000, -1 = none */
	/* Planned handovers keep connections (handover.c, steer.c); 0 = off. */
	int		 handover_drain_s;	/* the old MASTER serves its connections at most this long */
};

/* All optional; called from the event loop. They must not call hasync_free. */
struct hasync_callbacks {
	/* After the VIP was added (MASTER) or removed (other roles). */
	void		(*role_changed)(void *arg, enum hasync_role from, enum hasync_role to,
			    const char *reason);
	void		(*log)(void *arg, int level, const char *msg); /* 0 warn, 1 info, 2 debug */
	/* Replication: false until the bulk sync is done (or timed out); NULL = true. */
	bool		(*may_preempt)(void *arg);
	/*
	 * Planned-handover steering changed: state "draining", "drained",
	 * "forwarding" or "forwarding stopped"; detail says why or how much.
	 */
	void		(*handover)(void *arg, const char *state, const char *detail);
	/* The peer was heard anew (first advert, restart, after a silence). */
	void		(*peer_heard)(void *arg);
	/* Proxied connections open now: a draining old MASTER waits for 0. NULL = 0. */
	uint64_t	(*connections)(void *arg);
	/*
	 * Becoming MASTER, the VIP just added, before it is announced (GARP/NA)
	 * and before role_changed: connection mirroring rebuilds the dead
	 * peer's connections here (peer_dead: it is not alive, so nobody else
	 * serves them; false in a planned handover, whose old MASTER keeps its
	 * own). Must be quick: the announcement waits.
	 */
	void		(*taking_over)(void *arg, bool peer_dead);
};

/* For `lbctl status`; the strings stay valid until the next hasync_* call. */
struct hasync_status {
	enum hasync_role role;		/* now */
	int		 priority;	/* configured */
	bool		 vip_held;	/* the VIP is on our interface, added by us */
	const char	*peer_state;	/* "none", "unknown", "alive", "dead" */
	int		 peer_priority;	/* from its last advert, 0 if none */
	enum hasync_role peer_role;	/* from its last advert, INIT if none */
	int64_t		 last_advert_ms; /* age of the peer's last valid advert, -1 never */
	uint64_t	 adverts_sent;	/* datagrams sent (one per path) */
	uint64_t	 adverts_received; /* valid adverts from the peer */
	uint64_t	 auth_failures;	/* wrong key or forged */
	uint64_t	 replays;	/* counter not newer than the last taken (same peer run) */
	uint64_t	 malformed;	/* truncated, oversized, garbage, bad fields */
	uint64_t	 role_changes;	/* transitions since start */
	int		 advert_priority; /* what we advertise now (0: FAULT, yielding) */
	uint64_t	 unknown_sender; /* authentic adverts naming another node, or us */
	uint64_t	 peer_unreachable; /* ICMP port unreachable from a peer path */
	const char	*reason;	/* why the last transition happened ("" none) */
	bool		 draining;	/* old MASTER: VIP hidden on lo, serving its connections */
	bool		 forwarding;	/* new MASTER: unknown connections go to the old one */
	bool		 steering;	/* handover steering available (libnftables, config) */
	uint64_t	 adverts_paced;	/* sent by the pacer thread because the loop was late */
	uint64_t	 advert_lapses;	/* times the pacer went quiet for a silent loop */
	bool		 advert_realtime; /* the pacer thread runs SCHED_RR */
	uint64_t	 stale;		/* authentic adverts not fresh: recorded, or peer has not heard us */
	bool		 peer_confirmed; /* a run of the peer was confirmed fresh (or is an older lbd) */
	const char	*peer_version;	/* from its last advert: "" none heard or an lbd without versions */
};

/*
 * Opens the heartbeat socket (bound to node_addr:heartbeat_port, or to the
 * wildcard when there are several peer paths) and, if vip_ifname is set,
 * the VIP and the netlink watch. Nothing is sent before hasync_start.
 * Returns NULL with a message in err on a bad config or a system error.
 */
struct hasync	*hasync_new(struct event_base *, const struct hasync_config *,
		    const struct hasync_callbacks *, void *arg, char *err, size_t errlen);
/* INIT -> MASTER (standalone: VIP added, GARP) or BACKUP (stale VIP removed). Returns 0 or -1. */
int		 hasync_start(struct hasync *);
/*
 * `lbctl failover`: MASTER sends a priority-0 advert and becomes BACKUP; the
 * peer takes over at once. This node then does not preempt until it next
 * becomes MASTER because the peer failed (ha.c, in hasync_int.h).
 * Returns: NULL done, or why not (static text: not MASTER, standalone, peer
 * not alive or in FAULT, peer still draining the last handover).
 */
const char	*hasync_failover(struct hasync *);
/*
 * The first step of a graceful stop on a MASTER whose peer lives: a
 * handover as by hasync_failover, after which this node keeps the VIP
 * until the peer says MASTER, then (steering) serves the connections begun
 * here until they end. Returns: true started (poll hasync_leaving), false
 * nothing to wait for (not MASTER, standalone, peer dead or draining).
 */
bool		 hasync_leave(struct hasync *);
bool		 hasync_leaving(const struct hasync *); /* the handover or the drain goes on */
/* Graceful: priority-0 advert (peer takes over at once), VIP removed, role INIT. */
void		 hasync_stop(struct hasync *);
/* A connection of this node as the far ends see it: their address and port, our port. */
struct hasync_tuple {
	struct sockaddr_storage remote;
	uint16_t	 local_port;
};
/*
 * A planned takeover (taking_over with peer_dead false): the peer's
 * mirrored connections, which it keeps serving, are forwarded to it by
 * their 4-tuple as well, whatever this node's conntrack remembers of
 * them. Returns 0, -1 (not forwarding; logged).
 */
int		 hasync_forward_pairs(struct hasync *, const struct hasync_tuple *, size_t n);
/* The sync channel saw the peer process die: a BACKUP takes over now. */
void		 hasync_peer_lost(struct hasync *, const char *reason);
/* Frees everything; sends nothing and leaves the VIP as it is (call hasync_stop first). */
void		 hasync_free(struct hasync *);
void		 hasync_get_status(struct hasync *, struct hasync_status *);
const char	*hasync_role_str(enum hasync_role);	/* "INIT", "BACKUP", "MASTER", "FAULT" */

/* channel.c */
/* The replication channel (hasync_int.h says how it works); sync.c owns it. */
struct channel;
struct Lbd__SyncFrame;
struct Lbd__PairBatch;

/* Static settings, mostly straight from struct lbd_config. */
struct channel_config {
	char		 node_name[HASYNC_NAME_MAX];	/* this node; sent in the hello */
	struct sockaddr_storage node_addr;	/* listen here; outbound connections leave from it */
	char		 peer_name[HASYNC_NAME_MAX];	/* the only node name accepted */
	struct sockaddr_storage peer_addr[HASYNC_MAX_PEER_ADDR]; /* paths, [0] = peer's node address */
	int		 npeer_addr;		/* 1-4 */
	uint16_t	 sync_port;		/* TCP, same on both nodes */
	uint8_t		 key[HASYNC_KEY_LEN];	/* cluster key */
	int		 keepalive_ms;		/* keepalive period; 0 = CHANNEL_KEEPALIVE_MS */
	int		 dead_ms;		/* no frame for this long: drop; 0 = CHANNEL_DEAD_MS */
	size_t		 max_queue_bytes;	/* output queue cap; 0 = CHANNEL_QUEUE_MAX */
};

/* For `lbctl status`. */
struct channel_status {
	const char	*state;		/* "down", "connecting", "handshake", "up" */
	uint64_t	 frames_sent;	/* sealed frames queued while up, keepalives included */
	uint64_t	 frames_received; /* authenticated frames taken while up */
	uint64_t	 bytes_sent;	/* wire bytes written, all connections */
	uint64_t	 bytes_received; /* wire bytes read, all connections */
	uint64_t	 auth_failures;	/* wrong key, forged, or a hello naming another node */
	uint64_t	 replays;	/* replayed hello or frame, reordered or dropped frame */
	uint64_t	 malformed;	/* garbage, bad fields, truncated (EOF mid-frame) */
	uint64_t	 oversized;	/* length over the limit */
	uint64_t	 reconnects;	/* times the channel came up again after being up */
	int64_t		 up_since_ms;	/* how long it has been up, -1 when it is not */
	uint64_t	 rejected;	/* connections refused: not from a peer address, or wrong side */
	uint64_t	 queue_full;	/* channel_send refused: output queue at max_queue_bytes */
	uint64_t	 peer_boot_id;	/* peer's Hello.boot_id, 0 before the first handshake */
	bool		 tcp_md5;	/* segments TCP_MD5SIG-signed: a close is taken for a death */
};

void		 channel_get_status(struct channel *, struct channel_status *);

/* sync.c */
/*
 * Replication of lbd's sticky tables over the channel; the store
 * (the tables) stays in lbd, behind struct sync_callbacks.
 *
 * - Incremental: the store keeps a dirty mark per entry (pending changes
 *   coalesce per client, bounded by the table); sync_kick() says there are
 *   some. They go out once the callback that made them returns, or SYNC_FLUSH_GAP_US
 *   after the last batch when that was sooner, in EntryBatch frames of at
 *   most SYNC_BATCH_MAX entries, but only while channel_queued() is under
 *   queue_high: a slow peer means more coalescing, not more memory.
 * - Bulk: on every channel up each side sends BulkBegin, its pending
 *   Clears, its whole table (SYNC_BULK_PER_TURN batches per loop turn),
 *   BulkEnd. A send that fails while up (queue full) starts a new bulk
 *   once the queue drains: nothing is lost.
 * - Acks: the receiver acks each batch; lag = ack time - when the oldest
 *   change in the batch was made (one clock, conservative).
 * - Bad entries (unknown service or backend, client not 16 bytes, absurd
 *   lifetime, unknown origin) are counted, logged (rate-limited), dropped.
 * - may_preempt: false until the peer's BulkEnd was applied, unless the
 *   channel stayed down connect_wait_ms after start or the bulk did not
 *   end bulk_wait_ms after up. Once true it stays true.
 */
#define SYNC_BATCH_MAX		1000	/* entries per EntryBatch frame */
#define SYNC_FLUSH_GAP_US	20	/* batches of changes at most this often */
#define SYNC_QUEUE_HIGH		(4u << 20)	/* default queue_high: bytes queued in the channel */
#define SYNC_BULK_PER_TURN	8	/* bulk batches per event-loop turn */
#define SYNC_CONNECT_WAIT_MS	3000	/* default connect_wait_ms */
#define SYNC_BULK_WAIT_MS	10000	/* default bulk_wait_ms */
#define SYNC_LIFETIME_MAX_MS	(31u * 24 * 3600 * 1000)	/* longer lifetimes are absurd */
#define SYNC_LAG_WINDOW		1024	/* lag samples kept for p50/p99 */

struct sync;

/* One sticky entry as the sync layer and its store exchange it. */
struct sync_entry {
	const char	*service;	/* service name */
	uint8_t		 client[16];	/* IPv6 or v4-mapped IPv6 */
	const char	*backend;	/* backend name; unused for a delete */
	uint32_t	 expires_in_ms;	/* remaining lifetime (a tombstone's for a delete) */
	uint64_t	 version;	/* hybrid logical clock value of the change */
	bool		 origin_peer;	/* the peer wrote this version (else this node) */
	bool		 deleted;	/* a delete */
};

/* What the store did with a remote entry. */
enum sync_apply {
	SYNC_APPLY_OK = 0,		/* merged: newer than its copy */
	SYNC_APPLY_STALE,		/* its copy is as new or newer: ignored */
	SYNC_APPLY_UNKNOWN_SERVICE,	/* no service of that name here */
	SYNC_APPLY_UNKNOWN_BACKEND	/* no backend of that name in the service */
};

/* The store and the owner's hooks; all called from the event loop. */
struct sync_callbacks {
	/* Moves up to max pending local changes to out, oldest first. Returns how many. */
	size_t		(*take_dirty)(void *arg, struct sync_entry *out, size_t max);
	/* Bulk, from *cursor (0 at start). Returns how many (maybe 0); *done at the end. */
	size_t		(*scan)(void *arg, uint64_t *cursor, struct sync_entry *out, size_t max,
			    bool *done);
	void		(*bulk_start)(void *arg);	/* a bulk carries the pending changes */
	enum sync_apply	(*apply)(void *arg, const struct sync_entry *);
	/* A Clear from the peer; service "" = every service. Returns 0, -1 unknown service. */
	int		(*clear)(void *arg, const char *service, uint64_t version, bool origin_peer);
	void		(*state_changed)(void *arg, const char *state);	/* sync_status.state */
	void		(*peer_lost)(void *arg, const char *reason);	/* peer process died */
	void		(*log)(void *arg, int level, const char *msg);	/* 0 warn, 1 info, 2 debug */
	/*
	 * Connection mirroring (optional, all three or none): the channel came
	 * up (send a PairBatch with reset, then every pair); a PairBatch from
	 * the peer (acked by sync itself); the peer acked our batch sequence.
	 */
	void		(*pairs_up)(void *arg);
	void		(*pairs)(void *arg, const struct Lbd__PairBatch *);
	void		(*pairs_acked)(void *arg, uint64_t sequence);
};

struct sync_config {
	char		 node_name[HASYNC_NAME_MAX];	/* origin of our changes */
	char		 peer_name[HASYNC_NAME_MAX];	/* origin of the peer's */
	size_t		 queue_high;	/* hold sending above this many queued bytes; 0 = default */
	int		 connect_wait_ms; /* 0 = SYNC_CONNECT_WAIT_MS */
	int		 bulk_wait_ms;	/* 0 = SYNC_BULK_WAIT_MS */
};

/* Where frames go: the channel, or a test's stand-in. */
struct sync_transport {
	int		(*send)(void *arg, const struct Lbd__SyncFrame *);	/* 0, or -1 */
	size_t		(*queued)(void *arg);	/* bytes not yet written */
};

/* For `lbctl status`. */
struct sync_status {
	const char	*state;		/* "down", "connecting", "bulk", "synced" */
	bool		 bulk_done;	/* the peer's bulk arrived (or we stopped waiting) */
	uint64_t	 entries_sent;	/* entries put in batches, bulk included */
	uint64_t	 entries_received; /* entries in batches received */
	uint64_t	 entries_applied; /* ... that were newer than ours */
	uint64_t	 entries_stale;	/* ... that were not */
	uint64_t	 bad_entries;	/* dropped: unknown names, bad client, lifetime, origin */
	uint64_t	 malformed;	/* frames that did not decode or carried nothing */
	uint64_t	 batches_sent;	/* EntryBatch frames */
	uint64_t	 batches_received; /* EntryBatch frames from the peer */
	uint64_t	 acks;		/* acks received for our batches */
	uint64_t	 bulks_sent;	/* BulkEnd frames sent */
	uint64_t	 bulks_received; /* BulkEnd frames received */
	uint64_t	 last_bulk_entries; /* entries in the last bulk received */
	int64_t		 last_bulk_ms;	/* how long it took, BulkBegin to BulkEnd; -1 none */
	uint64_t	 clears_sent;	/* Clear frames sent */
	uint64_t	 clears_received; /* Clear frames from the peer */
	uint64_t	 resyncs;	/* bulks restarted after a failed send */
	uint64_t	 held;		/* flushes held back: channel queue over queue_high */
	double		 lag_ms;	/* last ack's lag; -1 none yet */
	double		 lag_p50_ms;	/* over the last SYNC_LAG_WINDOW acks; -1 none */
	double		 lag_p99_ms;	/* ... p99; -1 none */
};

/* Returns NULL with a message in err (bad names, no memory). */
struct sync	*sync_new(struct event_base *, const struct sync_config *,
		    const struct sync_callbacks *, void *arg, char *err, size_t errlen);
/* Makes the channel (cc: the peer's node and key) and starts it. Returns 0, or -1 and err. */
int		 sync_start(struct sync *, const struct channel_config *cc, char *err,
		    size_t errlen);
/* Tests: frames go to t instead of a channel; call sync_on_up/down yourself. */
void		 sync_set_transport(struct sync *, const struct sync_transport *t, void *arg);
void		 sync_kick(struct sync *);	/* the store has new pending changes */
void		 sync_peer_heard(struct sync *); /* heartbeat heard the peer anew: channel_kick */
/* Replicates a clear (service "" = all) now, or right after the next BulkBegin. */
void		 sync_send_clear(struct sync *, const char *service, uint64_t version);
bool		 sync_may_preempt(struct sync *);
/*
 * Sends a PairBatch (connection mirroring) and writes it to the socket at
 * once: mirror lag is the point. Returns 0, or -1 (channel down, queue
 * full, frame too big: the caller resyncs when the channel is up again).
 */
int		 sync_send_pairs(struct sync *, const struct Lbd__PairBatch *);
bool		 sync_up(const struct sync *);	/* the channel is up (pairs may go) */
void		 sync_get_status(struct sync *, struct sync_status *);
struct channel	*sync_channel(struct sync *);	/* NULL with a test transport */
void		 sync_free(struct sync *);
/* The channel's callbacks; public for tests and the fuzzer. */
void		 sync_on_up(struct sync *);
void		 sync_on_down(struct sync *, const char *reason, bool peer_died);
void		 sync_on_frame(struct sync *, const struct Lbd__SyncFrame *);
/* Unpacks one SyncFrame and handles it. Returns 0, or -1 undecodable (counted). */
int		 sync_on_bytes(struct sync *, const uint8_t *buf, size_t len);

#endif /* HASYNC_H */
