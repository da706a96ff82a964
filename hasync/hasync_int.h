/*
 * hasync_int.h - the HA layer's internals, shared by the files of hasync/ and the
 * unit tests that drive a module directly: the VIP, steering, the role
 * state machine, the heartbeat's state and its parts, the advert pacer
 * and its frame layout, the channel's own API. lbd includes hasync.h only.
 */
#ifndef HASYNC_INT_H
#define HASYNC_INT_H

#include <stdarg.h>

#include <event2/util.h>
#include <sodium.h>

#include "clock.h"		/* common/: clock_now_ms and friends, shared with lbd */
#include "hasync.h"
#include "sockaddr.h"		/* common/: address text, shared with lbd */

struct event;
struct evbuffer;
struct nl_sock;

/* addr.c (address text: common/sockaddr.h, shared with lbd) */
/* 16 bytes, IPv4 as ::ffff:a.b.c.d, so both families compare alike. */
void		 hasync_addr16(const struct sockaddr *sa, uint8_t out[16]);

/* confcheck.c: each returns 0 fine, -1 not (err says what to fix) */
/* A name of 1 to HASYNC_NAME_MAX - 1 characters; what is "node" or "peer". */
int		 confcheck_name(const char *name, const char *what, char *err, size_t errlen);
int		 confcheck_peer(const char *node_name, const char *peer_name, char *err,
		    size_t errlen);		/* a valid peer name, not ours */
/* 1 to HASYNC_MAX_PEER_ADDR peer addresses, all of family. */
int		 confcheck_paths(int family, const struct sockaddr_storage *peer_addr,
		    int npeer_addr, char *err, size_t errlen);

/* report.c */
#define HASYNC_MSG_MAX	512	/* one log line */

/* One rate-limited kind of log line. */
struct hasync_rlimit {
	uint64_t	 last_ms;	/* when it was last logged */
	uint64_t	 dropped;	/* lines suppressed since */
};

/* Formats a line for fn (nothing when fn is NULL). */
void		 hasync_vlog(hasync_log_fn *fn, void *arg, int level, const char *fmt,
		    va_list ap) __attribute__((format(printf, 4, 0)));
/* The same, at most one line per interval_ms for rl; later ones say how many were dropped. */
void		 hasync_vlog_limited(hasync_log_fn *fn, void *arg, struct hasync_rlimit *rl,
		    uint64_t interval_ms, int level, const char *fmt, va_list ap)
		    __attribute__((format(printf, 6, 0)));

/* Writes a printf-style message into err (nothing when err is NULL). */
void		 hasync_errf(char *err, size_t errlen, const char *fmt, ...)
		    __attribute__((format(printf, 3, 4)));

struct vip;

/* vip.c */
/*
 * Prepares to manage addr/prefixlen on interface ifname (netlink socket,
 * interface index and MAC, the GARP/NA socket: open it while still
 * privileged). Returns NULL with a message in err when the interface does
 * not exist ("interface eth9 does not exist"), the address or prefix is
 * invalid, or a socket cannot be opened.
 */
struct vip	*vip_open(const char *ifname, const struct sockaddr *addr, int prefixlen,
		    char *err, size_t errlen);
/* Frees v; does NOT remove the VIP from the interface (the caller decides). */
void		 vip_close(struct vip *);
/*
 * Adds the VIP (IPv4 label "<ifname>:lbd", IPv6 NODAD), looking the
 * interface up by name again. Returns: 0 added or already there, -1 failed
 * (err filled).
 */
int		 vip_add(struct vip *, char *err, size_t errlen);
/*
 * Removes every copy of the VIP on the interface, whatever its prefix length.
 * Returns: 0 removed or already absent, -1 failed (err filled).
 */
int		 vip_del(struct vip *, char *err, size_t errlen);
/*
 * Asks the kernel (any prefix length).
 * Returns: 1 the address is on the interface now, 0 not, -1 netlink error.
 */
int		 vip_present(struct vip *);
/*
 * Sends one gratuitous ARP (IPv4) or unsolicited NA (IPv6, needs the VIP on
 * the interface: it is the source). Does nothing on links without ARP/ND.
 * Returns: 0 sent (or nothing to do), -1 failed (err filled).
 */
int		 vip_announce(struct vip *, char *err, size_t errlen);
bool		 vip_held(const struct vip *);	/* we added it and hold it */

/* steer.c */
/*
 * A planned handover (`lbctl failover`, preemption) that breaks no
 * connection. The node taking over forwards every TCP packet for the VIP
 * that belongs to no connection it knows (conntrack state "new" without
 * SYN: the connection began on the old MASTER) to the old MASTER's address
 * (nftables `dup` then drop, through libnftables); the old MASTER moves the
 * VIP to lo, hidden (IPv4: its ARP requests dropped; IPv6 NDP answers only
 * for addresses on the asking interface), and serves those connections to
 * their end. Kernel objects, all named "lbd_steer": table ip|ip6 lbd_steer
 * (forwarding), table arp lbd_steer (hiding), the VIP/32 or /128 on lo with
 * label "lo:lbd".
 */
#define STEER_TABLE	"lbd_steer"	/* nftables table name in every family */

struct steer;

/*
 * Prepares steering for the VIP addr on interface ifname (a libnftables
 * context, the lo address through vip.c). Nothing changes in the kernel.
 * Returns NULL with err filled when libnftables or lo is unusable.
 */
struct steer	*steer_new(const char *ifname, const struct sockaddr *addr, char *err,
		    size_t errlen);
void		 steer_free(struct steer *);	/* frees; leaves the kernel as it is */
/* Removes a crashed run's leftovers: both tables, the VIP on lo. Returns 0 or -1 (err). */
int		 steer_reset(struct steer *, char *err, size_t errlen);
/*
 * Forwards unknown-connection TCP packets for the VIP to `to` (same family
 * as the VIP; port ignored). Must run BEFORE the VIP is added here, so every
 * connection of this node is tracked from its SYN. Returns 0 or -1 (err).
 */
int		 steer_forward_on(struct steer *, const struct sockaddr *to, char *err,
		    size_t errlen);
int		 steer_forward_off(struct steer *, char *err, size_t errlen); /* 0 or -1 (err) */
/* While forwarding: packets of these connections go to the old MASTER too. Returns 0, -1 (err). */
int		 steer_forward_pairs(struct steer *, const struct hasync_tuple *, size_t n,
		    char *err, size_t errlen);
bool		 steer_forwarding(const struct steer *);
/*
 * Hides the VIP: adds it to lo and (IPv4) drops ARP requests for it. The
 * caller then removes it from the interface (vip_del). Returns 0 or -1 (err).
 */
int		 steer_hide_on(struct steer *, char *err, size_t errlen);
int		 steer_hide_off(struct steer *, char *err, size_t errlen); /* 0 or -1 (err) */
bool		 steer_hidden(const struct steer *);

/* ha.c */
/*
 * The role state machine (VRRPv3 semantics) without any I/O or
 * clock: every entry point takes the monotonic time `now` in ms and returns
 * HA_ACT_* bits that the caller (heartbeat.c) carries out; after each call
 * the caller calls ha_timeout() again at ha_next_deadline(). Tests drive it
 * with a fake clock.
 *
 * Rules (besides VRRPv3's):
 * - BACKUPs advertise too, so each node knows whether its peer lives; only
 *   a MASTER advert (priority > 0) restarts a BACKUP's Master_Down timer.
 * - An advert with priority 0 makes a BACKUP take over at once when the
 *   sender is MASTER (leaving or handing over), FAULT or INIT (stopping);
 *   from a BACKUP (one that handed over earlier, in case the handover
 *   advert was lost) only if this node has not handed over itself.
 * - FAULT keeps advertising, with priority 0, so the peer takes over at
 *   once instead of after Master_Down.
 * - ha_failover: the MASTER becomes BACKUP, sends one advert "MASTER,
 *   priority 0", then advertises "BACKUP, priority 0" until it next becomes
 *   MASTER; until then it never preempts (an operator's handover sticks
 *   even with preempt = true). It becomes MASTER again only when the peer
 *   fails or hands back (Master_Down, priority 0, ha_peer_lost). The rule
 *   is not persisted: after a restart, preemption applies as configured.
 */
#define HA_NEVER		UINT64_MAX	/* a deadline that never comes */
#define HA_ACT_ADVERT		0x01	/* send an advert now (ha_advert_priority/state()) */
#define HA_ACT_BECOME_MASTER	0x02	/* role is now MASTER: add the VIP */
#define HA_ACT_BECOME_BACKUP	0x04	/* role is now BACKUP: remove the VIP */
#define HA_ACT_BECOME_FAULT	0x08	/* role is now FAULT: remove the VIP */
#define HA_ACT_BECOME_INIT	0x10	/* stopped: remove the VIP */
#define HA_ACT_GARP_BURST	0x20	/* announce the VIP: a burst, then one refresh */
/* Any of the transitions: report it (role_changed callback). */
#define HA_ACT_ROLE_CHANGED	(HA_ACT_BECOME_MASTER | HA_ACT_BECOME_BACKUP | \
				 HA_ACT_BECOME_FAULT | HA_ACT_BECOME_INIT)

/* Static settings of the state machine. */
struct ha_config {
	int		 priority;	/* 1-254 */
	int		 interval_ms;	/* our advert interval */
	bool		 has_peer;	/* false: standalone, MASTER from the start */
	bool		 preempt;	/* a higher-priority BACKUP takes over a MASTER */
	bool		(*may_preempt)(void *arg); /* asked before preempting; NULL = yes */
	void		*arg;		/* for may_preempt */
};

/* What the state machine needs of one authenticated advert from the peer. */
struct ha_advert {
	int		 priority;	/* 0-254; 0 = will not or cannot be MASTER */
	enum hasync_role state;		/* the sender's role */
	int		 interval_ms;	/* the sender's advert interval */
	int		 addr_cmp;	/* sign of (sender's node address - ours), never 0 */
	bool		 hears_us;	/* it echoes an advert we sent lately: the sender hears us */
};

/* One node's role and what it knows of its peer. */
struct ha {
	struct ha_config conf;		/* as given to ha_init */
	enum hasync_role role;		/* now */
	enum hasync_role prev_role;	/* before the last transition */
	enum hasync_role advert_state;	/* role to advertise (MASTER once at a handover) */
	bool		 started;	/* between ha_start and ha_stop */
	bool		 link_up;	/* the VIP interface is usable */
	bool		 yielding;	/* handed mastership over: no preemption */
	uint64_t	 next_advert_ms; /* when the next advert is due */
	uint64_t	 master_down_ms; /* BACKUP: take over if no MASTER advert by then */
	uint64_t	 last_garp_ms;	/* when a GARP burst was last asked for */
	bool		 peer_heard;	/* an advert from the peer has arrived */
	bool		 peer_lost;	/* declared dead by ha_peer_lost, until it speaks */
	uint64_t	 peer_last_ms;	/* arrival of its last advert */
	int		 peer_priority;	/* from its last advert */
	enum hasync_role peer_role;	/* from its last advert */
	int		 peer_interval_ms; /* from its last advert */
	uint64_t	 role_changes;	/* transitions so far */
	char		 reason[160];	/* why the last transition happened */
};

void		 ha_init(struct ha *, const struct ha_config *);
unsigned int	 ha_start(struct ha *, uint64_t now);	/* INIT -> BACKUP, or MASTER if standalone */
unsigned int	 ha_stop(struct ha *, uint64_t now);	/* -> INIT, with a priority-0 advert */
unsigned int	 ha_timeout(struct ha *, uint64_t now);	/* adverts due, Master_Down */
unsigned int	 ha_rx_advert(struct ha *, const struct ha_advert *, uint64_t now);
unsigned int	 ha_peer_lost(struct ha *, const char *reason, uint64_t now);
unsigned int	 ha_link_changed(struct ha *, bool up, const char *reason, uint64_t now);
/*
 * Hands mastership to the peer.
 * Returns: the actions; 0 with *why set when refused (not MASTER, no peer,
 * peer not alive or in FAULT: nobody would take over).
 */
unsigned int	 ha_failover(struct ha *, uint64_t now, const char **why);
uint64_t	 ha_next_deadline(const struct ha *);	/* HA_NEVER: nothing scheduled */
int		 ha_advert_priority(const struct ha *);	/* 0 in FAULT, yielding, stopped */
enum hasync_role ha_advert_state(const struct ha *);	/* the role to put in adverts */
/* 3 x the peer's interval (ours until it spoke) + (256 - priority) x interval / 1024 (ha.c says why). */
uint64_t	 ha_master_down_interval(const struct ha *);
const char	*ha_peer_state(const struct ha *, uint64_t now); /* none/unknown/alive/dead */
bool		 ha_peer_alive(const struct ha *, uint64_t now);	/* heard within Master_Down */
const char	*ha_role_name(enum hasync_role);

/* pacer.c */
/*
 * Seals and sends this node's adverts (heartbeat.c's only way to send one)
 * and, from a SCHED_RR thread, repeats the last one when lbd's loop is a
 * quarter interval late, so the data plane needs no real-time scheduling.
 * It stops covering for a loop that has sent nothing for 1 s (or 3
 * intervals): a wedged lbd must lose the VIP.
 *
 * Frame of one advert (one UDP datagram, at most PACER_FRAME_MAX bytes):
 *
 *   offset 0     1 byte    version, PACER_FRAME_VERSION
 *   offset 1    24 bytes   nonce, random per frame
 *   offset 25    n bytes   XChaCha20-Poly1305 (IETF) ciphertext of the
 *                          protobuf-c packed Lbd__Advert (n <= PACER_ADVERT_MAX)
 *   offset 25+n 16 bytes   Poly1305 tag
 *
 * The version byte is the AEAD's additional data (authenticated, clear).
 */
#define PACER_FRAME_VERSION	1	/* first byte of every advert frame */
#define PACER_NONCE_LEN		24	/* crypto_aead_xchacha20poly1305_ietf_NPUBBYTES */
#define PACER_TAG_LEN		16	/* crypto_aead_xchacha20poly1305_ietf_ABYTES */
#define PACER_HEADER_LEN	(1 + PACER_NONCE_LEN)	/* version + nonce */
#define PACER_ADVERT_MAX	256	/* packed Advert bytes accepted (ours: < 150) */
#define PACER_FRAME_MAX		(PACER_HEADER_LEN + PACER_ADVERT_MAX + PACER_TAG_LEN)
#define PACER_SENT_RING		64	/* send times kept of our last adverts (pacer_sent_at) */

struct pacer;

/* One way to reach the peer. */
struct pacer_path {
	struct sockaddr_storage addr;	/* peer address, heartbeat port */
	socklen_t	 len;		/* of addr */
	char		 text[INET6_ADDRSTRLEN]; /* for messages */
};

/* What the pacer needs to seal and send; copied by pacer_new. */
struct pacer_config {
	int		 fd;		/* the heartbeat socket; the caller closes it after pacer_free */
	struct pacer_path paths[HASYNC_MAX_PEER_ADDR]; /* where adverts go */
	int		 npaths;	/* 1-4 */
	uint8_t		 key[HASYNC_KEY_LEN]; /* advert subkey */
	char		 node[HASYNC_NAME_MAX]; /* our node name */
	char		 version[HASYNC_VERSION_MAX]; /* our lbd version, "" none */
	uint8_t		 node_addr16[16]; /* our node address, v4-mapped (tie-break) */
	uint64_t	 boot_id;	/* CLOCK_REALTIME ns at start */
	uint64_t	 session;	/* random per process start, never 0 (freshness) */
	int		 interval_ms;	/* advert interval */
	hasync_log_fn	*log;		/* thread-safe log sink; NULL: silent */
	void		*log_arg;
};

/* One advert but its counter, which the pacer numbers. */
struct pacer_advert {
	uint32_t	 priority;	/* 0-254 */
	uint32_t	 state;		/* enum hasync_role */
	bool		 vip_held;	/* the VIP is on our interface */
	bool		 bulk_done;	/* our bulk sync is in: we may preempt */
	bool		 draining;	/* old MASTER serving its connections */
	bool		 forwarding;	/* new MASTER forwarding unknown ones */
};

struct pacer	*pacer_new(const struct pacer_config *, char *err, size_t errlen);
/* Starts the thread (real-time when allowed: pacer_realtime). Returns 0 or -1 with err. */
int		 pacer_start(struct pacer *, char *err, size_t errlen);
void		 pacer_stop(struct pacer *);		/* joins the thread; nothing is sent after */
void		 pacer_free(struct pacer *);		/* stops it first */
/* From lbd's loop: send a now, and keep repeating it while the loop is late. */
void		 pacer_send(struct pacer *, const struct pacer_advert *);
bool		 pacer_realtime(const struct pacer *);	/* the thread runs SCHED_RR/FIFO */
/*
 * From lbd's loop: every advert from now on echoes the peer's advert
 * (session, counter) that heartbeat.c took last, so the peer can tell
 * its adverts were heard by this run (freshness, heartbeat.c).
 */
void		 pacer_set_echo(struct pacer *, uint64_t session, uint64_t counter);
/*
 * When our advert numbered counter was sent (clock_now_ms), if it is one
 * of the last PACER_SENT_RING. Returns: true and *ms set, false unknown.
 */
bool		 pacer_sent_at(struct pacer *, uint64_t counter, uint64_t *ms);
/* Datagrams sent; adverts the thread sent for a late loop; times it went quiet. */
void		 pacer_get_counts(struct pacer *, uint64_t *sent, uint64_t *paced,
		    uint64_t *lapses);

/* heartbeat.c, handover.c, nlwatch.c, hbact.c */
/*
 * The heartbeat's state, shared by its four files: heartbeat.c (the
 * advert socket, receive and freshness checks, timers, roles carried out
 * on the VIP), handover.c (a planned handover's hold, drain and
 * forwarding, through steer.c), nlwatch.c (the netlink watch of the
 * VIP and its link) and hbact.c (below them all: the VIP added, removed
 * and announced, an advert sent now, whether the peer lives).
 */
#define HB_RETIRED		8	/* replaced peer sessions remembered */

/* Kinds of rate-limited log lines. */
enum hb_logkind {
	HB_LOG_AUTH = 0,		/* wrong key / forged */
	HB_LOG_REPLAY,			/* old boot_id/counter */
	HB_LOG_STALE,			/* not fresh: a recording, or the peer has not heard us */
	HB_LOG_MALFORMED,		/* bad frame or fields */
	HB_LOG_UNKNOWN,			/* authentic, but another node name */
	HB_LOG_ICMP,			/* errors from the error queue */
	HB_LOG_NETLINK,			/* netlink watch trouble */
	HB_LOG_VIP,			/* VIP add/remove/announce trouble */
	HB_LOG_KINDS
};

/* The heartbeat of one node. */
struct hasync {
	struct event_base *base;	/* lbd's loop */
	struct hasync_config conf;	/* copy, defaults applied */
	struct hasync_callbacks cb;	/* copy */
	void		*arg;		/* for the callbacks */
	struct ha	 ha;		/* the role state machine */
	uint8_t		 key[HASYNC_KEY_LEN]; /* advert subkey */
	uint8_t		 node_addr16[16]; /* our node address, v4-mapped: tie-break */
	int		 family;	/* AF_INET or AF_INET6 */
	int		 fd;		/* UDP heartbeat socket */
	struct event	*ev_read;	/* adverts and ICMP errors in */
	struct event	*ev_timer;	/* ha_next_deadline */
	struct event	*ev_garp;	/* announcement schedule */
	struct event	*ev_hold;	/* handover: release the VIP when it fires */
	bool		 holding;	/* BACKUP that keeps the VIP until the peer is MASTER */
	struct steer	*steer;		/* NULL: a handover releases the VIP at once */
	struct event	*ev_steer;	/* drain and forwarding checks, every interval */
	bool		 draining;	/* old MASTER: VIP hidden on lo for connections begun here */
	uint64_t	 drain_start_ms; /* when draining began */
	uint64_t	 fwd_start_ms;	/* when forwarding began */
	bool		 peer_draining;	/* the peer's last advert said draining */
	bool		 peer_forwarding; /* the peer's last advert said forwarding */
	char		 peer_version[HASYNC_VERSION_MAX]; /* the peer's last advert's lbd version */
	struct event	*ev_nl;		/* netlink events in */
	struct pacer_path paths[HASYNC_MAX_PEER_ADDR]; /* where adverts go */
	int		 npaths;
	uint64_t	 boot_id;	/* ours: CLOCK_REALTIME ns at hasync_new (older peers) */
	uint64_t	 session;	/* ours: random per process start, never 0 */
	struct pacer	*pacer;		/* seals and sends our adverts; NULL standalone */
	bool		 peer_confirmed; /* peer_session was confirmed by a fresh advert */
	uint64_t	 peer_session;	/* the peer's run whose adverts we take */
	uint64_t	 peer_counter;	/* last taken advert's counter */
	uint64_t	 cand_session;	/* latest unconfirmed session heard (echoed), 0 none */
	uint64_t	 cand_counter;	/* its highest counter heard */
	struct hb_retired {
		uint64_t session;	/* a peer session replaced by a newer run */
		uint64_t counter;	/* the last counter taken from it: its floor */
	}		 retired[HB_RETIRED]; /* recordings of these are never taken again */
	int		 nretired;	/* sessions retired so far (slots reused round robin) */
	uint64_t	 last_reply_ms;	/* when we last sent an advert at once to a new session */
	bool		 legacy_seen;	/* an advert without session was taken (older peer) */
	uint64_t	 legacy_boot;	/* its boot_id */
	uint64_t	 legacy_counter; /* its counter */
	bool		 legacy_warned;	/* the older-peer warning was logged */
	bool		 started;	/* between hasync_start and hasync_stop */
	struct vip	*vip;		/* NULL: no VIP management */
	struct nl_sock	*nl_event;	/* subscribed to link and address events */
	struct nl_sock	*nl_query;	/* link lookups */
	int		 ifindex;	/* of the VIP interface, 0 = unknown/gone */
	bool		 nl_dirty;	/* an event concerned our link or addresses */
	int		 garp_left;	/* announcements still to send */
	uint64_t	 received;	/* valid adverts taken */
	uint64_t	 auth_failures;	/* failed authentication */
	uint64_t	 replays;	/* not newer than the last taken */
	uint64_t	 stale;		/* authentic but not fresh: recorded, or peer has not heard us */
	uint64_t	 malformed;	/* bad frame or fields */
	uint64_t	 unknown_sender; /* authentic, another node name */
	uint64_t	 unreachable;	/* ICMP port unreachable from a path */
	struct hasync_rlimit rl[HB_LOG_KINDS]; /* log rate limit per kind */
};

/* hbact.c: below heartbeat.c, handover.c and nlwatch.c; calls none of them */
void		 hb_send_advert(struct hasync *);	/* one advert to every path, as of now */
bool		 hb_peer_alive(struct hasync *); /* ha.c says the peer is alive */
void		 hb_vip_take(struct hasync *);	/* adds the VIP (retried every interval) */
void		 hb_vip_release(struct hasync *); /* removes it; ends a hold and the GARPs */
void		 hb_garp_start(struct hasync *); /* burst of announcements, then one refresh */
void		 hb_on_garp(evutil_socket_t, short, void *); /* the next announcement is due */

/* heartbeat.c */
void		 hb_apply(struct hasync *, unsigned int acts); /* ha.c's actions; re-arms the timer */
void		 hb_schedule(struct hasync *);	/* arms the timer for ha.c's next deadline */

/* handover.c */
void		 handover_open(struct hasync *); /* steering if the kernel allows; logs if not */
/* Keeps the VIP until the peer says MASTER, at most HANDOVER_HOLD_INTERVALS. */
void		 handover_hold_start(struct hasync *);
void		 handover_on_hold(evutil_socket_t, short, void *); /* hold over: VIP released */
/* Peer took the VIP and forwards: hide it on lo and drain, or release it now. */
void		 handover_step_aside(struct hasync *);
void		 handover_drain_end(struct hasync *, const char *why); /* hidden VIP leaves lo */
/* Now MASTER with a live peer: its connections' packets go back to it. */
void		 handover_forward_start(struct hasync *);
void		 handover_forward_stop(struct hasync *, const char *why);
void		 handover_on_timer(evutil_socket_t, short, void *); /* drain/forward over? */

/* nlwatch.c */
/* Opens the event and query sockets (vip_addr's family). Returns 0, -1 (err). */
int		 nlwatch_open(struct hasync *, char *err, size_t errlen);
/* What the VIP's place needs after a netlink event (nlwatch_vip_check). */
enum nlwatch_vip {
	NLWATCH_VIP_OK = 0,		/* where the role says (or netlink failed) */
	NLWATCH_VIP_GONE,		/* vanished from a MASTER: re-add it */
	NLWATCH_VIP_STRAY		/* on a node not MASTER: remove it */
};

/* Reads the waiting events. Returns: true recheck the link and the VIP, false not. */
bool		 nlwatch_read(struct hasync *);
/* The VIP interface is up and running. Returns 0 and *up, -1 netlink failed. */
int		 nlwatch_link_query(struct hasync *, bool *up);
/* The link changed since ha.c last heard. Returns: true with *up and msg (why), false not. */
bool		 nlwatch_link_changed(struct hasync *, bool *up, char *msg, size_t len);
enum nlwatch_vip nlwatch_vip_check(struct hasync *);	/* logs what it finds */

/* channel.c */
/*
 * The replication channel: ONE TCP connection between the two nodes on
 * sync_port, authenticated and encrypted with keys derived from the cluster
 * key and both sides' fresh nonces (wire format: proto/README.md). It
 * carries Lbd__SyncFrame messages, sends keepalives, and reports the peer's
 * process death at once (its kernel closes the socket: EOF or reset; the
 * segments are TCP_MD5SIG-signed, so no other host can fake that close).
 *
 * The node whose node address is the lower one connects (peer paths in
 * turn, exponential backoff), the other only accepts; peer_addr[0] must be
 * the peer's node address so both nodes agree. A new authenticated
 * connection replaces an old one.
 *
 * Integration (lbd): down(peer_died = true) -> hasync_peer_lost(). A
 * graceful stop closes the channel too and is reported the same way; the
 * heartbeat's priority-0 advert, sent first, has then already handed over.
 */
#define CHANNEL_KEEPALIVE_MS	1000		/* default keepalive_ms */
#define CHANNEL_DEAD_MS		3000		/* default dead_ms */
#define CHANNEL_QUEUE_MAX	(64u << 20)	/* default max_queue_bytes: 64 MiB */
#define CHANNEL_FRAME_MAX	(1u << 20)	/* largest frame body on the wire */

/* All optional; called from the event loop. They must not call channel_free. */
struct channel_callbacks {
	void		(*up)(void *arg);	/* authenticated: send the bulk now */
	/*
	 * The up channel closed (handshake failures are not reported: it was
	 * never up). peer_died: EOF or reset from the authenticated peer, i.e.
	 * its process is gone; false for drops we decided (bad frame, silence,
	 * replaced).
	 */
	void		(*down)(void *arg, const char *reason, bool peer_died);
	/* One authenticated frame, Keepalive included; valid during the call only. */
	void		(*frame)(void *arg, const struct Lbd__SyncFrame *f);
	void		(*log)(void *arg, int level, const char *msg); /* 0 warn, 1 info, 2 debug */
};

/*
 * Checks the config and derives the channel keys (the cluster key is not
 * kept). Nothing is opened before channel_start.
 * Returns NULL with a message in err on a bad config or no memory.
 */
struct channel	*channel_new(struct event_base *, const struct channel_config *,
		    const struct channel_callbacks *, void *arg, char *err, size_t errlen);
/*
 * Listens on node_addr:sync_port (SO_REUSEADDR; the wildcard with several
 * peer paths) and, on the connecting side, connects to the peer.
 * Returns: 0 listening, -1 failed (logged: port in use, address not here).
 */
int		 channel_start(struct channel *);
/*
 * Seals f into the output queue. Returns: 0 queued, -1 not up, queue
 * would exceed max_queue_bytes, frame over CHANNEL_FRAME_MAX, or a Hello/Bye
 * (the channel's own).
 */
int		 channel_send(struct channel *, const struct Lbd__SyncFrame *);
size_t		 channel_queued(const struct channel *);	/* bytes waiting to be written */
/* Writes what is queued now instead of on the next loop turn (errors surface there). */
void		 channel_flush(struct channel *);
/*
 * The peer was just heard again (its first advert, a restart, or after a
 * silence): a connector waiting out its backoff connects now, with the
 * backoff reset. Nothing happens on the accepting side or while connected.
 */
void		 channel_kick(struct channel *);
/* Closes everything at once (the peer sees EOF: peer_died); calls no callback. */
void		 channel_free(struct channel *);

/* channel.c, chancrypt.c */
/*
 * The channel's state, shared by channel.c (listening, connecting, reading
 * and writing, keepalives) and chancrypt.c (the handshake and the frame
 * crypto). Wire format: proto/README.md.
 */
#define CHAN_KIND_HELLO		1	/* body kind: MACed hello in clear */
#define CHAN_KIND_SEALED	2	/* body kind: counter + AEAD-sealed SyncFrame */
#define CHAN_LEN_BYTES		4	/* big-endian body length before every body */
#define CHAN_CTR_BYTES		8	/* big-endian frame counter of a sealed body */
#define CHAN_TAG_BYTES		crypto_aead_xchacha20poly1305_ietf_ABYTES	/* 16 */
#define CHAN_SEAL_OVERHEAD	(1 + CHAN_CTR_BYTES + CHAN_TAG_BYTES) /* body minus plaintext */
#define CHAN_NONCE_BYTES	32	/* Hello.nonce */
#define CHAN_SESSION_KEY	32	/* per-direction key: crypto_aead_..._KEYBYTES */
#define CHAN_HS_FRAME_MAX	512	/* largest body before authentication */
#define CHAN_PLAIN_MAX		(CHANNEL_FRAME_MAX - CHAN_SEAL_OVERHEAD) /* largest packed frame */
#define CHAN_MD5_KEY_BYTES	32	/* TCP_MD5SIG key length (kernel max 80) */
#define CHAN_PENDING_MAX	4	/* connections in handshake at once */
#define CHAN_NONCES_KEPT	64	/* recent peer hello nonces: a replayed hello is caught */
#define CHAN_ADDR_MAX		(INET6_ADDRSTRLEN + 8)	/* "[addr]:port" */
/* How far a connection got. */
enum chan_conn_state {
	CHAN_CONN_CONNECTING = 0,	/* outbound TCP connect in progress */
	CHAN_CONN_HELLO,		/* our hello sent, waiting for the peer's */
	CHAN_CONN_CONFIRM,		/* keys derived, waiting for the peer's first sealed frame */
	CHAN_CONN_UP			/* authenticated: frames flow */
};

/* What conn_process left behind. */
enum chan_rx_result {
	CHAN_RX_DONE = 0,		/* no complete frame left */
	CHAN_RX_MORE,			/* budget spent: continues from ev_more */
	CHAN_RX_CLOSED			/* the connection was closed and freed */
};

/* Kinds of rate-limited log lines. */
enum chan_logkind {
	CHAN_LOG_AUTH = 0,		/* wrong key, forged, wrong node name */
	CHAN_LOG_REPLAY,		/* replayed hello or frame */
	CHAN_LOG_MALFORMED,		/* garbage, bad fields, truncated */
	CHAN_LOG_OVERSIZED,		/* length over the limit */
	CHAN_LOG_REJECTED,		/* connection from a non-peer address */
	CHAN_LOG_CONNECT,		/* outbound connect failed */
	CHAN_LOG_IO,			/* accept/read/write/send trouble */
	CHAN_LOG_KINDS
};

/* One TCP connection, in handshake or up. */
struct chan_conn {
	struct channel	*ch;		/* owner */
	int		 fd;		/* the socket */
	enum chan_conn_state state;	/* handshake progress */
	bool		 outbound;	/* we connected */
	bool		 md5;		/* its segments are TCP_MD5SIG-signed: its close is the peer's */
	int		 path;		/* outbound: index into peer_addr */
	char		 text[CHAN_ADDR_MAX]; /* peer address:port, for messages */
	struct event	*ev_read;	/* socket readable */
	struct event	*ev_write;	/* socket writable (connect done, queue to flush) */
	struct event	*ev_more;	/* activated by hand: frames left after the budget */
	struct evbuffer	*in;		/* bytes read, not yet taken */
	struct evbuffer	*out;		/* sealed frames not yet written */
	bool		 eof;		/* read side ended (EOF or error) */
	bool		 bye_received;	/* the peer said it is closing on purpose */
	int		 rd_errno;	/* 0: EOF, else the read error */
	uint64_t	 started_ms;	/* socket opened or accepted */
	uint64_t	 last_rx_ms;	/* last authenticated frame (or start) */
	uint64_t	 last_ka_ms;	/* last keepalive queued */
	uint8_t		 nonce[CHAN_NONCE_BYTES]; /* ours, fresh */
	uint8_t		 peer_nonce[CHAN_NONCE_BYTES]; /* from the peer's hello */
	uint8_t		 kx_pk[crypto_kx_PUBLICKEYBYTES]; /* our ephemeral public key, in the hello */
	uint8_t		 kx_sk[crypto_kx_SECRETKEYBYTES]; /* its secret: wiped once the keys are made */
	uint8_t		 tx_key[CHAN_SESSION_KEY]; /* seals our frames */
	uint8_t		 rx_key[CHAN_SESSION_KEY]; /* opens the peer's */
	uint64_t	 tx_ctr;	/* counter of the last frame sealed */
	uint64_t	 rx_ctr;	/* counter of the last frame opened */
	uint64_t	 peer_boot;	/* the peer's Hello.boot_id */
};

/* The channel of one node. */
struct channel {
	struct event_base *base;	/* lbd's loop */
	struct channel_config conf;	/* copy, defaults applied, key zeroed */
	struct channel_callbacks cb;	/* copy */
	void		*arg;		/* for the callbacks */
	uint8_t		 hello_key[crypto_auth_KEYBYTES]; /* hello MAC subkey */
	uint8_t		 session_key[crypto_generichash_KEYBYTES]; /* per-direction KDF subkey */
	uint8_t		 md5_key[CHAN_MD5_KEY_BYTES]; /* TCP_MD5SIG key of every socket */
	bool		 md5;		/* the listener took the TCP_MD5SIG keys */
	uint64_t	 boot_id;	/* ours: CLOCK_REALTIME ns at channel_new */
	int		 family;	/* AF_INET or AF_INET6 */
	socklen_t	 salen;		/* sockaddr length of that family */
	bool		 connector;	/* our node address is the lower: we connect */
	bool		 started;	/* channel_start succeeded */
	char		 peer_text[CHAN_ADDR_MAX]; /* peer_addr[0], for messages */
	int		 lfd;		/* listening socket, -1 none */
	struct event	*ev_accept;	/* lfd readable */
	struct event	*ev_accept_pause; /* re-enables ev_accept after EMFILE */
	struct event	*ev_retry;	/* connector: next connection attempt */
	struct event	*ev_tick;	/* keepalives and silence checks */
	int		 tick_ms;	/* ev_tick period */
	struct chan_conn *up;		/* the authenticated connection, or NULL */
	struct chan_conn *pending[CHAN_PENDING_MAX]; /* connections in handshake */
	int		 npending;	/* used slots of pending[] */
	int		 next_path;	/* connector: path of the next attempt */
	int		 backoff_ms;	/* connector: delay before the next round */
	bool		 was_up;	/* has been up before: the next up is a reconnect */
	uint64_t	 up_at_ms;	/* when the current connection came up */
	uint8_t		 seen[CHAN_NONCES_KEPT][CHAN_NONCE_BYTES]; /* recent peer hello nonces */
	int		 nseen;		/* used entries of seen[] */
	int		 seen_next;	/* ring position of the next one */
	uint8_t		*tx_plain;	/* packing buffer, CHAN_PLAIN_MAX when allocated */
	uint8_t		*rx_plain;	/* opening buffer, CHAN_PLAIN_MAX when allocated */
	struct channel_status st;	/* counters (state, up_since filled on demand) */
	struct hasync_rlimit rl[CHAN_LOG_KINDS]; /* log rate limit per kind */
};


/* chancrypt.c */
void		 chan_be32(uint8_t *p, uint32_t v);	/* big-endian, as the length prefix */
uint32_t	 chan_get_be32(const uint8_t *p);
/* What chancrypt.c made of a frame (or of our hello), for channel.c to carry out. */
enum chan_verdict {
	CHAN_TAKEN = 0,			/* done: the connection goes on */
	CHAN_CONFIRMED,			/* the peer's confirmation: conn_become_up */
	CHAN_BYE,			/* the peer closes on purpose: conn_close(why) */
	CHAN_FAIL			/* refused: conn_fail(why) */
};

/* Why, with CHAN_BYE and CHAN_FAIL. */
struct chan_why {
	enum chan_logkind kind;		/* CHAN_FAIL: kind of the log line */
	char		 text[HASYNC_MSG_MAX / 2]; /* the reason, as conn_close logs it */
};

enum chan_verdict conn_send_hello(struct chan_conn *, struct chan_why *); /* TAKEN queued, FAIL */
/* Seals f (packed size plen) into c's queue. Returns 0, -1 no memory or too big. */
int		 conn_send(struct chan_conn *, const struct Lbd__SyncFrame *f, size_t plen);
/* The peer's hello (body after the length). Returns TAKEN or FAIL. */
enum chan_verdict conn_rx_hello(struct chan_conn *, const uint8_t *body, size_t len,
		    struct chan_why *);
/* A sealed frame (at its length prefix). Returns TAKEN, CONFIRMED, BYE or FAIL. */
enum chan_verdict conn_rx_sealed(struct chan_conn *, const uint8_t *frame, size_t len,
		    struct chan_why *);

/* report.c: the heartbeat's and the channel's log lines (after their structs) */
#define HB_LOG_INTERVAL_MS	1000	/* heartbeat: at most one line per kind per second */
#define CHAN_LOG_INTERVAL_MS	1000	/* channel: at most one line per kind per second */

/* Logs through fn; rl NULL: always, else at most one line per interval_ms for rl. */
void		 hasync_log(hasync_log_fn *fn, void *arg, struct hasync_rlimit *rl,
		    uint64_t interval_ms, int level, const char *fmt, ...)
		    __attribute__((format(printf, 6, 7)));
/* hb_log(h, level, fmt, ...): the heartbeat's log line. */
#define hb_log(h, level, ...) \
	hasync_log((h)->cb.log, (h)->arg, NULL, 0, (level), __VA_ARGS__)
/* Logs at most one line per kind per HB_LOG_INTERVAL_MS; counts the rest. */
#define hb_log_limited(h, kind, level, ...) \
	hasync_log((h)->cb.log, (h)->arg, &(h)->rl[(kind)], HB_LOG_INTERVAL_MS, (level), \
	    __VA_ARGS__)
/* chan_log(ch, level, fmt, ...): the channel's log line. */
#define chan_log(ch, level, ...) \
	hasync_log((ch)->cb.log, (ch)->arg, NULL, 0, (level), __VA_ARGS__)
/* Logs at most one line per kind per CHAN_LOG_INTERVAL_MS; counts the rest. */
#define chan_log_limited(ch, kind, level, ...) \
	hasync_log((ch)->cb.log, (ch)->arg, &(ch)->rl[(kind)], CHAN_LOG_INTERVAL_MS, (level), \
	    __VA_ARGS__)

#endif /* HASYNC_INT_H */
