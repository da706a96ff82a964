/*
 * hasync.h - the HA layer linked into lbd: floating VIP (libnl + GARP/NA),
 * cluster key, the heartbeat with its role state machine, and later the
 * replication channel.
 * It does not include lbd/lbd.h, so its unit tests link it alone.
 */
#ifndef HASYNC_H
#define HASYNC_H

#include <sys/socket.h>
#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HASYNC_KEY_LEN	32	/* bytes of the cluster key */
#define HASYNC_KEY_B64_LEN 45	/* its base64 text (44) plus the NUL: key_generate's buffer */

struct vip;

/* errf.c */
/* Writes a printf-style message into err (nothing when err is NULL). */
void		 hasync_errf(char *err, size_t errlen, const char *fmt, ...)
		    __attribute__((format(printf, 3, 4)));

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

/* ha.c */
/*
 * The role state machine (VRRPv3 semantics, SPEC 6) without any I/O or
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
const char	*ha_role_name(enum hasync_role);

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
 * - hasync_peer_lost() from the sync channel (TCP reset/EOF): at once;
 * - ICMP port unreachable: the peer's kernel answers our next advert when
 *   no lbd listens, so a BACKUP takes over within one advert interval (+1
 *   RTT) of the peer process dying (all paths must refuse);
 * - Master_Down (3 x interval + skew) when the peer host goes silent.
 */
#define HASYNC_INTERVAL_MIN	10	/* shortest advert_interval_ms, as in the config */
#define HASYNC_INTERVAL_MAX	10000	/* longest advert_interval_ms */
#define HASYNC_MAX_PEER_ADDR	4	/* peer paths */
#define HASYNC_NAME_MAX		64	/* node names, with the NUL */

struct hasync;
struct event_base;

/* What lbd tells the heartbeat, mostly straight from struct lbd_config. */
struct hasync_config {
	char		 node_name[HASYNC_NAME_MAX];	/* this node; carried in adverts */
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
};

/* All optional; called from the event loop. They must not call hasync_free. */
struct hasync_callbacks {
	/* After the VIP was added (MASTER) or removed (other roles). */
	void		(*role_changed)(void *arg, enum hasync_role from, enum hasync_role to,
			    const char *reason);
	void		(*log)(void *arg, int level, const char *msg); /* 0 warn, 1 info, 2 debug */
	/* Replication: false until the bulk sync is done (or timed out); NULL = true. */
	bool		(*may_preempt)(void *arg);
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
	uint64_t	 replays;	/* old boot_id/counter */
	uint64_t	 malformed;	/* truncated, oversized, garbage, bad fields */
	uint64_t	 role_changes;	/* transitions since start */
	/* Appended after the fields. */
	int		 advert_priority; /* what we advertise now (0: FAULT, yielding) */
	uint64_t	 unknown_sender; /* authentic adverts naming another node, or us */
	uint64_t	 peer_unreachable; /* ICMP port unreachable from a peer path */
	const char	*reason;	/* why the last transition happened ("" none) */
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
 * becomes MASTER because the peer failed (see ha.c above).
 * Returns: NULL done, or why not (static text: not MASTER, standalone, peer
 * not alive or in FAULT).
 */
const char	*hasync_failover(struct hasync *);
/* Graceful: priority-0 advert (peer takes over at once), VIP removed, role INIT. */
void		 hasync_stop(struct hasync *);
/* The sync channel saw the peer process die: a BACKUP takes over now. */
void		 hasync_peer_lost(struct hasync *, const char *reason);
/* Frees everything; sends nothing and leaves the VIP as it is (call hasync_stop first). */
void		 hasync_free(struct hasync *);
void		 hasync_get_status(struct hasync *, struct hasync_status *);
const char	*hasync_role_str(enum hasync_role);	/* "INIT", "BACKUP", "MASTER", "FAULT" */

#endif /* HASYNC_H */
