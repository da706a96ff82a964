/*
 * test_heartbeat.c - unit tests for hasync/heartbeat.c with real sockets:
 * two nodes (127.0.0.1 and 127.0.0.2) in one event loop elect a MASTER,
 * take over on crash (Master_Down, timed; ICMP port unreachable is only
 * counted, never a takeover by itself), on
 * stop and on failover, and shrug off forged, replayed and garbage
 * datagrams. Runs in a private network namespace when it can (root), which
 * also allows the VIP and link-watch tests on a veth pair there.
 */
#include <sys/socket.h>
#include <sys/syscall.h>

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/addr.h>
#include <netlink/route/link/veth.h>
#include <netlink/socket.h>
#include <sodium.h>

#include "hasync.pb-c.h"
#include "hasync_int.h"
#include "testutil.h"

#define IV		20		/* advert interval, ms: fast, as in the spec's load test */
#define ADDR_A		"127.0.0.1"	/* node lb1, priority 100 */
#define ADDR_B		"127.0.0.2"	/* node lb2, priority 150 */
#define ADDR_RELAY	"127.0.0.3"	/* test relay that records lb1's adverts */
#define ADDR6_A		"fd00::1"	/* IPv6 nodes, on lo of our namespace only */
#define ADDR6_B		"fd00::2"
#define ELECT_MS	2000		/* longest wait for an election */
#define TAKEOVER_MS	2000		/* longest wait for a takeover */
#define VIP_ADDR	"10.99.0.87"	/* documentation-like VIP, only inside our netns */
#define VIP_IF		"eth0"		/* veth end holding the VIP */
#define VIP_PEER_IF	"peer0"		/* other end: down = carrier lost on eth0 */
#define CAPTURE_MAX	64		/* adverts the relay keeps */
#define FRAME_MAX	512		/* room for one test frame */

/* One node under test and what its callbacks saw. */
struct tnode {
	struct hasync	*h;		/* the heartbeat */
	char		 name[HASYNC_NAME_MAX]; /* "lb1", "lb2" */
	enum hasync_role role;		/* last reported by role_changed */
	uint64_t	 role_at;	/* when (ms) */
	int		 changes;	/* role_changed calls */
	char		 reason[200];	/* last reason */
};

static struct event_base *base;		/* the one loop of both nodes */
static struct event	*tick;		/* keeps EVLOOP_ONCE from blocking long */
static uint16_t		 port;		/* heartbeat port of both nodes */
static bool		 netns_ok;	/* private netns with lo up and eth0/peer0 */
static struct nl_sock	*tsk;		/* the test's own netlink socket */
static uint8_t		 cluster_key[HASYNC_KEY_LEN]; /* both nodes' key */
static struct tnode	 na, nb;	/* lb1 and lb2 */

static int64_t		 realtime_shift_s; /* CLOCK_REALTIME as the code sees it is off by this */

static int		 relay_fd = -1;	/* 127.0.0.3: lb1 -> relay -> lb2 (or relay_to) */
static const char	*relay_to = ADDR_B; /* where the relay passes datagrams on */
static struct event	*relay_ev;	/* reads relay_fd */
static uint8_t		 captured[CAPTURE_MAX][FRAME_MAX]; /* lb1's adverts */
static size_t		 captured_len[CAPTURE_MAX];
static int		 ncaptured;

/*
 * Overrides libc's for this program: a clock step (realtime_shift_s) seen
 * by the code under test, without touching the host's clock.
 */
int
clock_gettime(clockid_t clk, struct timespec *ts)
{
	if (syscall(SYS_clock_gettime, clk, ts) == -1)
		return -1;
	if (clk == CLOCK_REALTIME)
		ts->tv_sec += (time_t)realtime_shift_s;
	return 0;
}

static uint64_t
now_ms_test(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
on_role(void *arg, enum hasync_role from, enum hasync_role to, const char *reason)
{
	struct tnode *n = arg;

	assert_int_equal(from, n->role);	/* reported transitions chain up */
	n->role = to;
	n->role_at = now_ms_test();
	n->changes++;
	snprintf(n->reason, sizeof(n->reason), "%s", reason);
}

static void
on_log(void *arg, int level, const char *msg)
{
	struct tnode *n = arg;

	tu_log(n->name, level, msg);
}

/* Runs the loop for ms milliseconds. */
static void
pump(int ms)
{
	uint64_t end = now_ms_test() + (uint64_t)ms;

	while (now_ms_test() < end)
		event_base_loop(base, EVLOOP_ONCE);
}

/* Runs the loop until n has role r. Returns: ms waited, or -1 timed out. */
static int64_t
wait_role(struct tnode *n, enum hasync_role r, int timeout_ms)
{
	uint64_t start = now_ms_test();

	while (n->role != r) {
		if (now_ms_test() - start > (uint64_t)timeout_ms)
			return -1;
		event_base_loop(base, EVLOOP_ONCE);
	}
	return (int64_t)(now_ms_test() - start);
}

/* A paired node config; vip_if NULL = no VIP management. */
static void
make_conf(struct hasync_config *c, const char *name, const char *addr, int prio,
    const char *peer, const char *peer_addr, const char *vip_if)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->node_name, sizeof(c->node_name), "%s", name);
	tu_set_addr(&c->node_addr, addr, 0);
	c->priority = prio;
	c->has_peer = peer != NULL;
	if (peer != NULL) {
		snprintf(c->peer_name, sizeof(c->peer_name), "%s", peer);
		tu_set_addr(&c->peer_addr[0], peer_addr, 0);
		c->npeer_addr = 1;
	}
	c->heartbeat_port = port;
	c->advert_interval_ms = IV;
	c->preempt = true;
	memcpy(c->key, cluster_key, sizeof(c->key));
	if (vip_if != NULL) {
		snprintf(c->vip_ifname, sizeof(c->vip_ifname), "%s", vip_if);
		tu_set_addr(&c->vip_addr, VIP_ADDR, 0);
		c->vip_prefixlen = 24;
		c->garp_interval_ms = 10;
		c->garp_refresh_ms = 100;
	}
}

static void
node_new(struct tnode *n, const struct hasync_config *c)
{
	struct hasync_callbacks cb = { .role_changed = on_role, .log = on_log };
	char err[256] = "";

	memset(n, 0, sizeof(*n));
	snprintf(n->name, sizeof(n->name), "%s", c->node_name);
	n->h = hasync_new(base, c, &cb, n, err, sizeof(err));
	if (n->h == NULL)
		fail_msg("hasync_new %s: %s", c->node_name, err);
}

static void
node_free(struct tnode *n)
{
	hasync_free(n->h);
	n->h = NULL;
}

/*
 * lb1 (100) at addr_a and lb2 (150) at addr_b, both started; lb1 sends to
 * a_peer_addr. Waits for lb2 MASTER, lb1 BACKUP.
 */
static void
elect_at(const char *addr_a, const char *addr_b, const char *a_peer_addr)
{
	struct hasync_config ca, cb;
	struct hasync_status sa, sb;
	uint64_t t0;
	int64_t ms;

	make_conf(&ca, "lb1", addr_a, 100, "lb2", a_peer_addr, NULL);
	make_conf(&cb, "lb2", addr_b, 150, "lb1", addr_a, NULL);
	node_new(&na, &ca);
	node_new(&nb, &cb);
	t0 = now_ms_test();
	assert_int_equal(hasync_start(na.h), 0);
	assert_int_equal(hasync_start(nb.h), 0);
	assert_int_equal(na.role, HASYNC_BACKUP);
	assert_int_equal(nb.role, HASYNC_BACKUP);
	ms = wait_role(&nb, HASYNC_MASTER, ELECT_MS);
	assert_true(ms >= 0);
	/* And the other one settles as BACKUP, hearing a live MASTER. */
	pump(5 * IV);
	assert_int_equal(nb.role, HASYNC_MASTER);
	assert_int_equal(na.role, HASYNC_BACKUP);
	hasync_get_status(na.h, &sa);
	hasync_get_status(nb.h, &sb);
	assert_string_equal(sa.peer_state, "alive");
	assert_string_equal(sb.peer_state, "alive");
	assert_int_equal(sa.peer_role, HASYNC_MASTER);
	assert_int_equal(sa.peer_priority, 150);
	assert_int_equal(sb.peer_role, HASYNC_BACKUP);
	assert_true(sa.last_advert_ms >= 0 && sa.last_advert_ms <= 3 * IV);
	if (getenv("TEST_VERBOSE") != NULL)
		fprintf(stderr, "  election took %lld ms\n", (long long)(nb.role_at - t0));
}

static void
elect(const char *a_peer_addr)
{
	elect_at(ADDR_A, ADDR_B, a_peer_addr);
}

/* ---------------------------------------------------------------- tests */

static void
test_elect_one_master(void **state)
{
	struct hasync_status sa, sb;
	int ca, cb;

	elect(ADDR_B);
	/* Stable: no flapping over 50 intervals. */
	ca = na.changes;
	cb = nb.changes;
	pump(50 * IV);
	assert_int_equal(na.changes, ca);
	assert_int_equal(nb.changes, cb);
	hasync_get_status(na.h, &sa);
	hasync_get_status(nb.h, &sb);
	assert_int_equal(sa.role, HASYNC_BACKUP);
	assert_int_equal(sb.role, HASYNC_MASTER);
	assert_int_equal(sb.priority, 150);
	assert_false(sb.vip_held);	/* no VIP management here */
	assert_true(sa.adverts_received >= 40);
	assert_true(sb.adverts_sent >= 40);
	assert_int_equal(sa.auth_failures + sa.replays + sa.malformed + sa.unknown_sender, 0);
	assert_int_equal(sb.auth_failures + sb.replays + sb.malformed + sb.unknown_sender, 0);
	assert_string_equal(hasync_role_str(sb.role), "MASTER");
	node_free(&na);
	node_free(&nb);
}

/*
 * The MASTER's process is gone: its kernel answers our adverts with ICMP
 * port unreachable. Unauthenticated (anyone can forge one), so it is only
 * counted: the takeover waits for Master_Down. (The fast takeover on a
 * real crash comes from the signed sync channel: test_channel.)
 */
static void
test_icmp_alone_no_takeover(void **state)
{
	struct hasync_status sa;
	uint64_t t0;
	int64_t ms;
	int md;

	elect(ADDR_B);
	node_free(&nb);
	t0 = now_ms_test();
	ms = wait_role(&na, HASYNC_MASTER, TAKEOVER_MS);
	assert_true(ms >= 0);
	ms = (int64_t)(na.role_at - t0);
	md = 3 * IV + (256 - 100) * IV / 1024;
	hasync_get_status(na.h, &sa);
	fprintf(stderr, "  MASTER crash, heartbeat only: %llu ICMP port unreachable counted, "
	    "takeover %lld ms later (Master_Down %d ms)\n",
	    (unsigned long long)sa.peer_unreachable, (long long)ms, md);
	assert_true(sa.peer_unreachable >= 1);
	assert_non_null(strstr(na.reason, "Master_Down"));
	assert_null(strstr(na.reason, "unreachable"));
	assert_true(ms >= md - IV - 2);
	assert_string_equal(sa.peer_state, "dead");
	node_free(&na);
}

static void
test_takeover_master_down(void **state)
{
	struct sockaddr_storage ss;
	struct hasync_status sa;
	int silent, md;
	uint64_t t0;
	int64_t ms;

	elect(ADDR_B);
	/*
	 * The MASTER host goes silent: free lb2 and, before the loop runs
	 * again, bind its address:port with a socket that never reads, so no
	 * ICMP comes back - only Master_Down can end the wait.
	 */
	node_free(&nb);
	t0 = now_ms_test();
	tu_set_addr(&ss, ADDR_B, 0);
	((struct sockaddr_in *)&ss)->sin_port = htons(port);
	silent = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(silent != -1);
	assert_int_equal(bind(silent, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)), 0);
	ms = wait_role(&na, HASYNC_MASTER, TAKEOVER_MS);
	assert_true(ms >= 0);
	ms = (int64_t)(na.role_at - t0);
	md = 3 * IV + (256 - 100) * IV / 1024;
	fprintf(stderr, "  takeover after MASTER went silent (Master_Down %d ms): %lld ms\n",
	    md, (long long)ms);
	assert_non_null(strstr(na.reason, "Master_Down"));
	/* Master_Down counts from lb2's last advert, at most one interval before t0. */
	assert_true(ms >= md - IV - 2);
	assert_true(ms <= md + 30);
	hasync_get_status(na.h, &sa);
	assert_int_equal(sa.peer_unreachable, 0);
	close(silent);
	node_free(&na);
}

/*
 * Both nodes' loop stalls for 10 Master_Down intervals (a busy lbd): the
 * MASTER's pacer thread keeps its adverts going, and the BACKUP, once its
 * loop runs again, reads them before it judges Master_Down: no takeover.
 * A stall past the pacer's watchdog (1 s) is a wedged lbd: the pacer quits.
 */
static void
test_stalled_loop_no_false_failover(void **state)
{
	struct hasync_status sa0, sa, sb0, sb;
	struct timespec ts = { 0, 10 * (3 * IV + 4) * 1000000L };
	int ca, cb;

	elect(ADDR_B);
	hasync_get_status(na.h, &sa0);
	hasync_get_status(nb.h, &sb0);
	if (geteuid() == 0)
		assert_true(sb0.advert_realtime);	/* CI runs as root */
	ca = na.changes;
	cb = nb.changes;
	nanosleep(&ts, NULL);		/* the loop does not run: 640 ms */
	pump(5 * IV);
	hasync_get_status(na.h, &sa);
	hasync_get_status(nb.h, &sb);
	fprintf(stderr, "  stalled loop (%ld ms): %llu adverts paced, roles lb1 %s lb2 %s\n",
	    (long)(ts.tv_nsec / 1000000), (unsigned long long)(sb.adverts_paced -
	    sb0.adverts_paced), hasync_role_str(sa.role), hasync_role_str(sb.role));
	assert_int_equal(na.changes, ca);
	assert_int_equal(nb.changes, cb);
	assert_int_equal(na.role, HASYNC_BACKUP);
	assert_int_equal(nb.role, HASYNC_MASTER);
	/* About one per interval, a quarter late: 640 / 25 = 25, all heard. */
	assert_true(sb.adverts_paced - sb0.adverts_paced >= 15);
	assert_true(sa.adverts_received - sa0.adverts_received >= 15);
	assert_int_equal(sb.advert_lapses, 0);

	/* Wedged for 1.4 s: the pacer stops vouching (test_pacer times it). */
	ts.tv_sec = 1;
	ts.tv_nsec = 400 * 1000000L;
	nanosleep(&ts, NULL);
	hasync_get_status(nb.h, &sb);
	assert_int_equal(sb.advert_lapses, 1);
	node_free(&na);
	node_free(&nb);
}

static void
test_ipv6_takeover(void **state)
{
	struct hasync_status sa;
	int64_t ms;
	uint64_t t0;

	if (!netns_ok)
		skip();
	elect_at(ADDR6_A, ADDR6_B, ADDR6_B);
	node_free(&nb);
	t0 = now_ms_test();
	assert_true(wait_role(&na, HASYNC_MASTER, TAKEOVER_MS) >= 0);
	ms = (int64_t)(na.role_at - t0);
	hasync_get_status(na.h, &sa);
	fprintf(stderr, "  IPv6: takeover after MASTER crash: %lld ms, at Master_Down "
	    "(%llu ICMPv6 port unreachable only counted)\n", (long long)ms,
	    (unsigned long long)sa.peer_unreachable);
	assert_true(sa.peer_unreachable >= 1);
	assert_non_null(strstr(na.reason, "Master_Down"));
	assert_true(ms >= 3 * IV + (256 - 100) * IV / 1024 - IV - 2);
	node_free(&na);
}

static void
test_graceful_stop_handover(void **state)
{
	uint64_t t0;
	int64_t ms;

	elect(ADDR_B);
	t0 = now_ms_test();
	hasync_stop(nb.h);
	assert_int_equal(nb.role, HASYNC_INIT);
	ms = wait_role(&na, HASYNC_MASTER, TAKEOVER_MS);
	assert_true(ms >= 0);
	ms = (int64_t)(na.role_at - t0);
	fprintf(stderr, "  takeover after graceful stop (priority 0): %lld ms\n", (long long)ms);
	assert_non_null(strstr(na.reason, "priority 0"));
	assert_true(ms <= 15);
	hasync_stop(nb.h);	/* twice is harmless */
	node_free(&nb);
	node_free(&na);
}

static void
test_failover(void **state)
{
	const char *why;
	int64_t ms;
	uint64_t t0;
	int ca, cb;

	elect(ADDR_B);
	/* Only a MASTER can hand over. */
	why = hasync_failover(na.h);
	assert_non_null(why);
	assert_non_null(strstr(why, "not MASTER"));
	t0 = now_ms_test();
	assert_null(hasync_failover(nb.h));
	assert_int_equal(nb.role, HASYNC_BACKUP);
	ms = wait_role(&na, HASYNC_MASTER, TAKEOVER_MS);
	assert_true(ms >= 0);
	fprintf(stderr, "  takeover after failover command: %lld ms\n",
	    (long long)(na.role_at - t0));
	assert_true(na.role_at - t0 <= 15);
	/* lb2 (150, preempt) stays BACKUP: the handover sticks. */
	pump(30 * IV);
	assert_int_equal(nb.role, HASYNC_BACKUP);
	assert_int_equal(na.role, HASYNC_MASTER);
	/* Hand it back: exactly one transition each, no flapping. */
	ca = na.changes;
	cb = nb.changes;
	assert_null(hasync_failover(na.h));
	assert_true(wait_role(&nb, HASYNC_MASTER, TAKEOVER_MS) >= 0);
	pump(10 * IV);
	assert_int_equal(na.role, HASYNC_BACKUP);
	assert_int_equal(na.changes, ca + 1);
	assert_int_equal(nb.changes, cb + 1);
	node_free(&na);
	node_free(&nb);
}

/*
 * hasync_leave, the first step of a graceful stop: only a MASTER with a
 * live peer hands over; without a VIP or steering (here) there is nothing
 * to wait for afterwards.
 */
static void
test_leave(void **state)
{
	uint64_t t0;

	elect(ADDR_B);
	assert_false(hasync_leaving(nb.h));
	assert_false(hasync_leave(na.h));	/* BACKUP: stop at once */
	assert_int_equal(na.role, HASYNC_BACKUP);
	t0 = now_ms_test();
	assert_true(hasync_leave(nb.h));
	assert_int_equal(nb.role, HASYNC_BACKUP);
	assert_true(wait_role(&na, HASYNC_MASTER, TAKEOVER_MS) >= 0);
	fprintf(stderr, "  takeover after hasync_leave: %lld ms\n",
	    (long long)(na.role_at - t0));
	assert_true(na.role_at - t0 <= 15);
	assert_false(hasync_leaving(nb.h));	/* no VIP held, nothing to drain */
	/* lb2 stops: lb1 has nobody to hand the VIP to, so it would stop at once. */
	hasync_stop(nb.h);
	pump(5 * IV);
	assert_false(hasync_leave(na.h));	/* peer stopped: nobody to hand to */
	assert_int_equal(na.role, HASYNC_MASTER);
	node_free(&nb);
	node_free(&na);
}

static void
test_peer_lost_api(void **state)
{
	elect(ADDR_B);
	/* What the sync channel will call on a TCP reset. */
	hasync_peer_lost(na.h, "sync channel reset by peer");
	assert_int_equal(na.role, HASYNC_MASTER);
	assert_non_null(strstr(na.reason, "sync channel reset"));
	/* lb2 is alive after all: the split brain heals to lb2 (higher priority). */
	assert_true(wait_role(&na, HASYNC_BACKUP, TAKEOVER_MS) >= 0);
	pump(5 * IV);
	assert_int_equal(nb.role, HASYNC_MASTER);
	assert_int_equal(na.role, HASYNC_BACKUP);
	node_free(&na);
	node_free(&nb);
}

/* ---------------------------------------------------------------- security */

/* Relay: records lb1's adverts and passes them on to lb2. */
static void
on_relay(evutil_socket_t fd, short what, void *arg)
{
	struct sockaddr_storage to;
	uint8_t buf[FRAME_MAX];
	ssize_t n;
	int i;

	for (i = 0; i < 16; i++) {
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n <= 0)
			return;
		if (ncaptured < CAPTURE_MAX) {
			memcpy(captured[ncaptured], buf, (size_t)n);
			captured_len[ncaptured++] = (size_t)n;
		}
		tu_set_addr(&to, relay_to, 0);
		((struct sockaddr_in *)&to)->sin_port = htons(port);
		sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&to, sizeof(struct sockaddr_in));
	}
}

static void
relay_open(void)
{
	struct sockaddr_storage ss;

	tu_set_addr(&ss, ADDR_RELAY, 0);
	((struct sockaddr_in *)&ss)->sin_port = htons(port);
	relay_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(relay_fd != -1);
	assert_int_equal(bind(relay_fd, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)), 0);
	relay_ev = event_new(base, relay_fd, EV_READ | EV_PERSIST, on_relay, NULL);
	assert_non_null(relay_ev);
	event_add(relay_ev, NULL);
	ncaptured = 0;
}

static void
relay_close(void)
{
	event_free(relay_ev);
	close(relay_fd);
	relay_fd = -1;
}

/* Sends one datagram to addr:port from an ephemeral port. */
static void
send_raw(const char *addr, const void *buf, size_t len)
{
	struct sockaddr_storage to;
	int fd;

	tu_set_addr(&to, addr, 0);
	((struct sockaddr_in *)&to)->sin_port = htons(port);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd != -1);
	assert_true(sendto(fd, buf, len, 0, (struct sockaddr *)&to,
	    sizeof(struct sockaddr_in)) == (ssize_t)len);
	close(fd);
}

/*
 * Seals bytes as heartbeat.c does (see its frame comment), with the advert
 * subkey derived from key. Returns the frame length.
 */
static size_t
seal_bytes(const uint8_t *key, const uint8_t *plain, size_t plen, uint8_t *frame)
{
	uint8_t sub[HASYNC_KEY_LEN];
	unsigned long long clen;

	crypto_kdf_derive_from_key(sub, sizeof(sub), 1, "lbdadvrt", key);
	frame[0] = 1;
	randombytes_buf(frame + 1, 24);
	crypto_aead_xchacha20poly1305_ietf_encrypt(frame + 25, &clen, plain, plen, frame, 1,
	    NULL, frame + 1, sub);
	return 25 + (size_t)clen;
}

/* An advert as node `name` would send it, sealed with key. Returns the length. */
static size_t
forge(const uint8_t *key, const char *name, int prio, enum hasync_role state,
    uint64_t boot_id, uint64_t counter, uint8_t *frame)
{
	Lbd__Advert adv = LBD__ADVERT__INIT;
	uint8_t plain[256];
	size_t plen;

	adv.node = (char *)name;
	adv.priority = (uint32_t)prio;
	adv.state = (uint32_t)state;
	adv.interval_ms = IV;
	adv.boot_id = boot_id;
	adv.counter = counter;
	plen = lbd__advert__pack(&adv, plain);
	return seal_bytes(key, plain, plen, frame);
}

static void
test_forged_replayed_garbage(void **state)
{
	struct hasync_status sa0, sb0, sa, sb;
	uint8_t wrong[HASYNC_KEY_LEN], frame[FRAME_MAX], big[3000];
	size_t len;
	int ca, cb;
	uint64_t far = (uint64_t)1 << 62;

	/* lb1 -> relay (127.0.0.3) -> lb2, which records lb1's real adverts. */
	relay_open();
	elect(ADDR_RELAY);
	pump(5 * IV);
	assert_true(ncaptured >= 5);
	hasync_get_status(na.h, &sa0);
	hasync_get_status(nb.h, &sb0);
	ca = na.changes;
	cb = nb.changes;

	/* Replayed: lb1's oldest captured advert, sent again to lb2. */
	send_raw(ADDR_B, captured[0], captured_len[0]);
	send_raw(ADDR_B, captured[1], captured_len[1]);
	/* Forged with a wrong key: "lb2 leaves" to lb1 would make it take over. */
	memset(wrong, 0x5a, sizeof(wrong));
	len = forge(wrong, "lb2", 0, HASYNC_MASTER, far, 1, frame);
	send_raw(ADDR_A, frame, len);
	/* ... and "lb1 is MASTER with 254" to lb2. */
	len = forge(wrong, "lb1", 254, HASYNC_MASTER, far, 1, frame);
	send_raw(ADDR_B, frame, len);
	/* A captured frame with one flipped ciphertext bit. */
	memcpy(frame, captured[2], captured_len[2]);
	frame[30] ^= 1;
	send_raw(ADDR_B, frame, captured_len[2]);
	/* Right key, an old boot and no session: a recording of an older lbd's run. */
	len = forge(cluster_key, "lb1", 254, HASYNC_MASTER, 1, 99, frame);
	send_raw(ADDR_B, frame, len);
	/* Right key, strangers' names: another node, and lb2's own name. */
	len = forge(cluster_key, "intruder", 0, HASYNC_MASTER, far, 1, frame);
	send_raw(ADDR_A, frame, len);
	len = forge(cluster_key, "lb2", 254, HASYNC_MASTER, far, 1, frame);
	send_raw(ADDR_B, frame, len);
	/* Garbage: empty, truncated, bad version, oversized, random with version 1. */
	send_raw(ADDR_A, "", 0);
	send_raw(ADDR_A, "\x01\x02\x03", 3);
	memset(big, 0xee, sizeof(big));
	send_raw(ADDR_A, big, 60);		/* version byte 0xee */
	big[0] = 1;
	send_raw(ADDR_A, big, sizeof(big));	/* 3000 bytes */
	send_raw(ADDR_A, big, 400);		/* longer than any frame */
	randombytes_buf(big + 1, 80);
	send_raw(ADDR_A, big, 81);		/* version 1, random: fails authentication */
	/* Right key, not a protobuf Advert / bad fields. */
	len = seal_bytes(cluster_key, (const uint8_t *)"\xff\xff\xff\xff", 4, frame);
	send_raw(ADDR_A, frame, len);
	len = forge(cluster_key, "lb2", 255, HASYNC_MASTER, far, 1, frame);
	send_raw(ADDR_A, frame, len);

	pump(10 * IV);
	hasync_get_status(na.h, &sa);
	hasync_get_status(nb.h, &sb);
	/* lb2: 2 replays (captured), 1 stale (old boot), 2 auth, 1 own name. */
	assert_int_equal(sb.replays - sb0.replays, 2);
	assert_int_equal(sb.stale - sb0.stale, 1);
	assert_int_equal(sb.auth_failures - sb0.auth_failures, 2);
	assert_int_equal(sb.unknown_sender - sb0.unknown_sender, 1);
	assert_int_equal(sb.malformed - sb0.malformed, 0);
	/* lb1: 2 auth (forged, random), 7 malformed, 1 intruder. */
	assert_int_equal(sa.auth_failures - sa0.auth_failures, 2);
	assert_int_equal(sa.malformed - sa0.malformed, 7);
	assert_int_equal(sa.unknown_sender - sa0.unknown_sender, 1);
	assert_int_equal(sa.replays - sa0.replays, 0);
	assert_int_equal(sa.stale - sa0.stale, 0);
	/* Nothing changed: roles, transitions, and the real adverts still flow. */
	assert_int_equal(na.role, HASYNC_BACKUP);
	assert_int_equal(nb.role, HASYNC_MASTER);
	assert_int_equal(na.changes, ca);
	assert_int_equal(nb.changes, cb);
	assert_string_equal(sa.peer_state, "alive");
	assert_string_equal(sb.peer_state, "alive");
	assert_true(sa.adverts_received > sa0.adverts_received);
	assert_true(sb.adverts_received > sb0.adverts_received);
	node_free(&na);
	node_free(&nb);
	relay_close();
}

/*
 * Issue 13.2: lb2 restarts with its clock stepped back an hour, so its
 * boot_id is lower than the one lb1 took last. It must be taken as the
 * peer's new run: with preempt, lb2 (150) becomes MASTER and lb1 BACKUP;
 * never both MASTER for good (the old boot_id rule dropped every advert).
 */
static void
test_peer_restart_clock_back(void **state)
{
	struct hasync_config cb;
	struct hasync_status sa0, sa;
	uint64_t t0;
	int64_t ms;
	int ca, cbn;

	elect(ADDR_B);
	node_free(&nb);			/* lb2 crashes: lb1 takes over */
	assert_true(wait_role(&na, HASYNC_MASTER, TAKEOVER_MS) >= 0);
	hasync_get_status(na.h, &sa0);
	realtime_shift_s = -3600;	/* lb2's clock, stepped back an hour */
	make_conf(&cb, "lb2", ADDR_B, 150, "lb1", ADDR_A, NULL);
	node_new(&nb, &cb);
	realtime_shift_s = 0;
	t0 = now_ms_test();
	assert_int_equal(hasync_start(nb.h), 0);
	ms = wait_role(&na, HASYNC_BACKUP, ELECT_MS);
	hasync_get_status(na.h, &sa);
	fprintf(stderr, "  peer restarted with its clock 1 h back: lb1 BACKUP after %lld ms "
	    "(lb1 took %llu of its adverts, %llu dropped as replays)\n", (long long)ms,
	    (unsigned long long)(sa.adverts_received - sa0.adverts_received),
	    (unsigned long long)(sa.replays - sa0.replays));
	assert_true(ms >= 0);
	assert_int_equal(nb.role, HASYNC_MASTER);
	assert_true(na.role_at - t0 <= 3 * 3 * IV);	/* lb2 preempts once it heard lb1 */
	/* One MASTER, and it stays so. */
	ca = na.changes;
	cbn = nb.changes;
	pump(30 * IV);
	assert_int_equal(na.role, HASYNC_BACKUP);
	assert_int_equal(nb.role, HASYNC_MASTER);
	assert_int_equal(na.changes, ca);
	assert_int_equal(nb.changes, cbn);
	hasync_get_status(na.h, &sa);
	assert_string_equal(sa.peer_state, "alive");
	node_free(&na);
	node_free(&nb);
}

/*
 * Issue 13.3: lb1 records nothing of its own; an attacker recorded lb2's
 * MASTER adverts. lb2 dies silently (no ICMP), lb1 restarts, and the
 * recording is played to it, one advert every half interval, in order.
 * lb1 must take over at Master_Down from its start, as with no adverts at
 * all, and the rest of the recording must not make it step down.
 */
static void
test_restart_replayed_adverts(void **state)
{
	struct hasync_config ca, cb;
	struct sockaddr_storage ss;
	struct hasync_status sa;
	int silent, md, i, nrec, before;
	uint64_t t0;
	int64_t ms;

	/* lb2 -> relay (127.0.0.3) -> lb1: the relay records lb2's adverts. */
	relay_to = ADDR_A;
	relay_open();
	make_conf(&ca, "lb1", ADDR_A, 100, "lb2", ADDR_B, NULL);
	make_conf(&cb, "lb2", ADDR_B, 150, "lb1", ADDR_RELAY, NULL);
	node_new(&na, &ca);
	node_new(&nb, &cb);
	assert_int_equal(hasync_start(na.h), 0);
	assert_int_equal(hasync_start(nb.h), 0);
	assert_true(wait_role(&nb, HASYNC_MASTER, ELECT_MS) >= 0);
	pump(5 * IV);
	assert_int_equal(na.role, HASYNC_BACKUP);
	ncaptured = 0;			/* only MASTER adverts from here */
	pump(40 * IV);

	/* lb2 dies silently: its address:port taken by a socket that never reads. */
	node_free(&nb);
	pump(IV);			/* the relay passes on what was in flight */
	relay_close();
	nrec = ncaptured;
	assert_true(nrec >= 30);
	tu_set_addr(&ss, ADDR_B, 0);
	((struct sockaddr_in *)&ss)->sin_port = htons(port);
	silent = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(silent != -1);
	assert_int_equal(bind(silent, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)), 0);
	/* lb1 restarts and hears the recording. */
	node_free(&na);
	node_new(&na, &ca);
	t0 = now_ms_test();
	assert_int_equal(hasync_start(na.h), 0);
	before = -1;
	for (i = 0; i < nrec; i++) {
		send_raw(ADDR_A, captured[i], captured_len[i]);
		pump(IV / 2);
		if (na.role == HASYNC_MASTER && before == -1)
			before = i + 1;
	}
	md = 3 * IV + (256 - 100) * IV / 1024;
	hasync_get_status(na.h, &sa);
	ms = na.role == HASYNC_MASTER ? (int64_t)(na.role_at - t0) : -1;
	fprintf(stderr, "  restart, %d recorded adverts replayed (%d ms): lb1 MASTER after "
	    "%lld ms (Master_Down %d ms), %d replayed before; %llu taken\n", nrec,
	    nrec * IV / 2, (long long)ms, md, before, (unsigned long long)sa.adverts_received);
	assert_int_equal(na.role, HASYNC_MASTER);
	assert_true(ms >= 0 && ms <= md + 30);
	assert_int_equal(na.changes, 2);	/* INIT -> BACKUP -> MASTER, no step down */
	assert_int_equal(sa.adverts_received, 0);
	close(silent);
	node_free(&na);
	relay_to = ADDR_B;
}

/* A genuine peer after our restart is taken within about one round trip. */
static void
test_restart_peer_confirmed_fast(void **state)
{
	struct hasync_config ca;
	struct hasync_status sa;
	uint64_t t0, took = 0;
	int cb;

	elect(ADDR_B);
	cb = nb.changes;
	node_free(&na);
	make_conf(&ca, "lb1", ADDR_A, 100, "lb2", ADDR_B, NULL);
	node_new(&na, &ca);
	t0 = now_ms_test();
	assert_int_equal(hasync_start(na.h), 0);
	while (now_ms_test() - t0 < (uint64_t)ELECT_MS) {
		event_base_loop(base, EVLOOP_ONCE);
		hasync_get_status(na.h, &sa);
		if (sa.adverts_received > 0) {
			took = now_ms_test() - t0;
			break;
		}
	}
	fprintf(stderr, "  restart: first advert of the live peer taken after %llu ms "
	    "(interval %d ms)\n", (unsigned long long)took, IV);
	assert_true(sa.adverts_received > 0);
	assert_true(took <= IV + 10);
	pump(20 * IV);
	assert_int_equal(na.role, HASYNC_BACKUP);
	assert_int_equal(na.changes, 1);	/* INIT -> BACKUP only */
	assert_int_equal(nb.role, HASYNC_MASTER);
	assert_int_equal(nb.changes, cb);
	node_free(&na);
	node_free(&nb);
}

/*
 * lb2 restarts (a new run): lb1 takes the new run, and the recording of the
 * old one, played afterwards, is taken by nobody and changes nothing.
 */
static void
test_old_run_replayed_after_peer_restart(void **state)
{
	struct hasync_config ca, cb;
	struct hasync_status sa0, sa;
	int i, nrec, ca0, cb0;

	relay_to = ADDR_A;
	relay_open();
	make_conf(&ca, "lb1", ADDR_A, 100, "lb2", ADDR_B, NULL);
	make_conf(&cb, "lb2", ADDR_B, 150, "lb1", ADDR_RELAY, NULL);
	node_new(&na, &ca);
	node_new(&nb, &cb);
	assert_int_equal(hasync_start(na.h), 0);
	assert_int_equal(hasync_start(nb.h), 0);
	assert_true(wait_role(&nb, HASYNC_MASTER, ELECT_MS) >= 0);
	pump(20 * IV);
	node_free(&nb);			/* crash: lb1 takes over */
	pump(IV);
	relay_close();
	nrec = ncaptured;
	assert_true(wait_role(&na, HASYNC_MASTER, TAKEOVER_MS) >= 0);
	make_conf(&cb, "lb2", ADDR_B, 150, "lb1", ADDR_A, NULL);
	node_new(&nb, &cb);
	assert_int_equal(hasync_start(nb.h), 0);
	assert_true(wait_role(&na, HASYNC_BACKUP, ELECT_MS) >= 0);
	pump(5 * IV);
	assert_int_equal(nb.role, HASYNC_MASTER);
	hasync_get_status(na.h, &sa0);
	ca0 = na.changes;
	cb0 = nb.changes;
	for (i = 0; i < nrec; i++) {
		send_raw(ADDR_A, captured[i], captured_len[i]);
		pump(IV / 4);
	}
	pump(5 * IV);
	hasync_get_status(na.h, &sa);
	fprintf(stderr, "  old run of lb2 replayed after its restart: %d sent, %llu stale, "
	    "%llu replays\n", nrec, (unsigned long long)(sa.stale - sa0.stale),
	    (unsigned long long)(sa.replays - sa0.replays));
	assert_true(sa.stale - sa0.stale >= (uint64_t)nrec);
	assert_int_equal(na.changes, ca0);
	assert_int_equal(nb.changes, cb0);
	assert_int_equal(na.role, HASYNC_BACKUP);
	assert_string_equal(sa.peer_state, "alive");
	assert_true(sa.peer_confirmed);
	node_free(&na);
	node_free(&nb);
	relay_to = ADDR_B;
}

/*
 * A peer running an lbd from before sessions (adverts without one, during
 * an upgrade) is taken under the old rule: boot_id and counter must grow.
 */
static void
test_legacy_peer_old_rule(void **state)
{
	struct hasync_config ca;
	struct sockaddr_storage ss;
	struct hasync_status sa;
	uint8_t frame[FRAME_MAX];
	uint64_t boot = 1000, t0;
	size_t len;
	int silent, i, md;

	tu_set_addr(&ss, ADDR_B, 0);
	((struct sockaddr_in *)&ss)->sin_port = htons(port);
	silent = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(silent != -1);
	assert_int_equal(bind(silent, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)), 0);
	make_conf(&ca, "lb1", ADDR_A, 100, "lb2", ADDR_B, NULL);
	node_new(&na, &ca);
	assert_int_equal(hasync_start(na.h), 0);
	for (i = 1; i <= 40; i++) {
		len = forge(cluster_key, "lb2", 150, HASYNC_MASTER, boot, (uint64_t)i, frame);
		send_raw(ADDR_A, frame, len);
		pump(IV / 2);
	}
	/* The same counter again, and an older boot: replays under the old rule. */
	send_raw(ADDR_A, frame, len);
	len = forge(cluster_key, "lb2", 150, HASYNC_MASTER, boot - 1, 99, frame);
	send_raw(ADDR_A, frame, len);
	t0 = now_ms_test();
	pump(2);
	hasync_get_status(na.h, &sa);
	assert_int_equal(na.role, HASYNC_BACKUP);
	assert_int_equal(sa.adverts_received, 40);
	assert_int_equal(sa.replays, 2);
	assert_true(sa.peer_confirmed);
	/* The older peer goes silent: Master_Down as always. */
	assert_true(wait_role(&na, HASYNC_MASTER, TAKEOVER_MS) >= 0);
	md = 3 * IV + (256 - 100) * IV / 1024;
	assert_true(na.role_at - t0 <= (uint64_t)md + 30);
	close(silent);
	node_free(&na);
}

static void
test_bad_config(void **state)
{
	struct hasync_config c;
	char err[256];

	make_conf(&c, "lb1", ADDR_A, 0, "lb2", ADDR_B, NULL);
	assert_null(hasync_new(base, &c, NULL, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "priority"));
	make_conf(&c, "lb1", ADDR_A, 100, "lb1", ADDR_B, NULL);
	assert_null(hasync_new(base, &c, NULL, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "equals the node name"));
	make_conf(&c, "lb1", ADDR_A, 100, "lb2", ADDR_B, NULL);
	c.advert_interval_ms = 5;
	assert_null(hasync_new(base, &c, NULL, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "interval"));
	make_conf(&c, "lb1", ADDR_A, 100, "lb2", ADDR_B, NULL);
	c.npeer_addr = 0;
	assert_null(hasync_new(base, &c, NULL, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "peer addresses"));
	/* Address not on this host. */
	make_conf(&c, "lb1", "192.0.2.1", 100, "lb2", ADDR_B, NULL);
	assert_null(hasync_new(base, &c, NULL, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "cannot bind"));
	/* Port taken by another instance. */
	make_conf(&c, "lb1", ADDR_A, 100, "lb2", ADDR_B, NULL);
	node_new(&na, &c);
	assert_null(hasync_new(base, &c, NULL, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "another lbd"));
	node_free(&na);
	/* VIP on an interface that does not exist. */
	make_conf(&c, "lb1", ADDR_A, 100, NULL, NULL, "nosuch0");
	assert_null(hasync_new(base, &c, NULL, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "nosuch0"));
}

/* ---------------------------------------------------------------- VIP */

/* Sets or clears IFF_UP on a link of our namespace. */
static void
link_set_up(const char *name, bool up)
{
	struct rtnl_link *old = NULL, *chg;

	assert_true(rtnl_link_get_kernel(tsk, 0, name, &old) >= 0);
	chg = rtnl_link_alloc();
	assert_non_null(chg);
	if (up)
		rtnl_link_set_flags(chg, IFF_UP);
	else
		rtnl_link_unset_flags(chg, IFF_UP);
	assert_true(rtnl_link_change(tsk, old, chg, 0) >= 0);
	rtnl_link_put(old);
	rtnl_link_put(chg);
}

/* A second handle on the VIP, to look at and meddle with the interface. */
static struct vip *
vip_probe(void)
{
	struct sockaddr_storage ss;
	struct vip *v;
	char err[256];

	tu_set_addr(&ss, VIP_ADDR, 0);
	v = vip_open(VIP_IF, (struct sockaddr *)&ss, 24, err, sizeof(err));
	if (v == NULL)
		fail_msg("vip_open: %s", err);
	return v;
}

/* Runs the loop until the VIP's presence is want. Returns: ms, or -1. */
static int64_t
wait_vip(struct vip *probe, int want, int timeout_ms)
{
	uint64_t start = now_ms_test();

	while (vip_present(probe) != want) {
		if (now_ms_test() - start > (uint64_t)timeout_ms)
			return -1;
		pump(2);
	}
	return (int64_t)(now_ms_test() - start);
}

static void
test_vip_standalone_watch(void **state)
{
	struct hasync_config c;
	struct hasync_status st;
	struct vip *probe;
	char err[256];
	int64_t ms;

	if (!netns_ok)
		skip();
	probe = vip_probe();
	make_conf(&c, "lb1", ADDR_A, 100, NULL, NULL, VIP_IF);
	node_new(&na, &c);
	assert_int_equal(vip_present(probe), 0);
	assert_int_equal(hasync_start(na.h), 0);
	assert_int_equal(na.role, HASYNC_MASTER);
	assert_int_equal(vip_present(probe), 1);
	hasync_get_status(na.h, &st);
	assert_true(st.vip_held);
	assert_string_equal(st.peer_state, "none");

	/* Someone runs `ip addr del`: the MASTER puts it back. */
	assert_int_equal(vip_del(probe, err, sizeof(err)), 0);
	assert_int_equal(vip_present(probe), 0);
	ms = wait_vip(probe, 1, 1000);
	assert_true(ms >= 0);
	fprintf(stderr, "  VIP re-added %lld ms after `ip addr del`\n", (long long)ms);

	/* Carrier lost (the other veth end goes down): FAULT, VIP removed. */
	link_set_up(VIP_PEER_IF, false);
	assert_true(wait_role(&na, HASYNC_FAULT, 1000) >= 0);
	assert_int_equal(vip_present(probe), 0);
	assert_non_null(strstr(na.reason, "down"));
	/* Carrier back: standalone goes straight back to MASTER. */
	link_set_up(VIP_PEER_IF, true);
	assert_true(wait_role(&na, HASYNC_MASTER, 1000) >= 0);
	assert_int_equal(vip_present(probe), 1);
	/* Admin down on the VIP interface itself. */
	link_set_up(VIP_IF, false);
	assert_true(wait_role(&na, HASYNC_FAULT, 1000) >= 0);
	assert_int_equal(vip_present(probe), 0);
	link_set_up(VIP_IF, true);
	assert_true(wait_role(&na, HASYNC_MASTER, 1000) >= 0);
	assert_int_equal(vip_present(probe), 1);
	/* Garp burst and refresh run without trouble. */
	pump(150);

	/* Graceful stop removes the VIP. */
	hasync_stop(na.h);
	assert_int_equal(na.role, HASYNC_INIT);
	assert_int_equal(vip_present(probe), 0);
	node_free(&na);
	vip_close(probe);
}

static void
test_vip_stale_removed_then_takeover(void **state)
{
	struct hasync_config ca, cb;
	struct vip *probe;
	char err[256];

	if (!netns_ok)
		skip();
	probe = vip_probe();
	/* lb2 (no VIP here) is MASTER first. */
	make_conf(&cb, "lb2", ADDR_B, 150, "lb1", ADDR_A, NULL);
	make_conf(&ca, "lb1", ADDR_A, 100, "lb2", ADDR_B, VIP_IF);
	node_new(&nb, &cb);
	node_new(&na, &ca);
	assert_int_equal(hasync_start(nb.h), 0);
	assert_true(wait_role(&nb, HASYNC_MASTER, ELECT_MS) >= 0);
	/* A crashed run of lb1 left the VIP behind. */
	assert_int_equal(vip_add(probe, err, sizeof(err)), 0);
	assert_int_equal(vip_present(probe), 1);
	assert_int_equal(hasync_start(na.h), 0);
	assert_int_equal(na.role, HASYNC_BACKUP);
	assert_int_equal(vip_present(probe), 0);
	pump(10 * IV);
	assert_int_equal(na.role, HASYNC_BACKUP);
	assert_int_equal(vip_present(probe), 0);
	/* Added by hand on the BACKUP: removed again. */
	assert_int_equal(vip_add(probe, err, sizeof(err)), 0);
	assert_true(wait_vip(probe, 0, 1000) >= 0);
	/* lb2 crashes: lb1 takes over and adds the VIP. */
	node_free(&nb);
	assert_true(wait_role(&na, HASYNC_MASTER, TAKEOVER_MS) >= 0);
	assert_int_equal(vip_present(probe), 1);
	hasync_stop(na.h);
	assert_int_equal(vip_present(probe), 0);
	node_free(&na);
	vip_close(probe);
}

/* ---------------------------------------------------------------- set-up */

/* Puts an IPv6 /128 on lo (no DAD: usable at once). Returns 0 or -1. */
static int
lo_add6(const char *s)
{
	struct rtnl_addr *a;
	struct nl_addr *local;
	struct in6_addr in6;
	int rc;

	if (inet_pton(AF_INET6, s, &in6) != 1 || (a = rtnl_addr_alloc()) == NULL)
		return -1;
	local = nl_addr_build(AF_INET6, &in6, sizeof(in6));
	rtnl_addr_set_ifindex(a, 1);	/* lo */
	rtnl_addr_set_local(a, local);
	rtnl_addr_set_prefixlen(a, 128);
	rtnl_addr_set_flags(a, IFA_F_NODAD);
	rc = rtnl_addr_add(tsk, a, 0);
	nl_addr_put(local);
	rtnl_addr_put(a);
	return rc < 0 ? -1 : 0;
}

static int
group_setup(void **state)
{
	struct rtnl_link *lo = NULL, *chg = NULL;

	if (sodium_init() == -1)
		return -1;
	randombytes_buf(cluster_key, sizeof(cluster_key));
	port = 7411;
	if (unshare(CLONE_NEWNET) == -1) {
		fprintf(stderr, "test_heartbeat: unshare(CLONE_NEWNET): %s; running on the "
		    "host's loopback, VIP tests skipped\n", strerror(errno));
		port = (uint16_t)(22000 + getpid() % 1500);	/* below the ephemeral range */
	} else {
		if ((tsk = nl_socket_alloc()) == NULL || nl_connect(tsk, NETLINK_ROUTE) < 0)
			return -1;
		/* A new namespace's lo is down: 127.0.0.0/8 works once it is up. */
		if (rtnl_link_get_kernel(tsk, 0, "lo", &lo) < 0 ||
		    (chg = rtnl_link_alloc()) == NULL)
			return -1;
		rtnl_link_set_flags(chg, IFF_UP);
		if (rtnl_link_change(tsk, lo, chg, 0) < 0)
			return -1;
		rtnl_link_put(lo);
		rtnl_link_put(chg);
		if (rtnl_link_veth_add(tsk, VIP_IF, VIP_PEER_IF, getpid()) < 0)
			return -1;
		if (lo_add6(ADDR6_A) == -1 || lo_add6(ADDR6_B) == -1)
			return -1;
		netns_ok = true;
		link_set_up(VIP_IF, true);
		link_set_up(VIP_PEER_IF, true);
	}
	if ((base = tu_loop_new(&tick)) == NULL)
		return -1;
	return 0;
}

static int
group_teardown(void **state)
{
	tu_loop_free(base, tick);
	/* The namespace, with its links, dies with this process. */
	if (tsk != NULL)
		nl_socket_free(tsk);
	return 0;
}

/*
 * Each node's lbd version rides in its adverts (Advert.version), so that
 * a pair half-way through an upgrade shows both; an lbd that sends none
 * (an older one, stood in for by an empty version) reads "", and a mixed
 * pair elects as any other.
 */
static void
test_peer_version(void **state)
{
	struct hasync_config ca, cb;
	struct hasync_status sa, sb;

	make_conf(&ca, "lb1", ADDR_A, 100, "lb2", ADDR_B, NULL);
	make_conf(&cb, "lb2", ADDR_B, 150, "lb1", ADDR_A, NULL);
	snprintf(ca.version, sizeof(ca.version), "0.9.0");
	node_new(&na, &ca);
	node_new(&nb, &cb);
	hasync_get_status(na.h, &sa);
	assert_string_equal(sa.peer_version, "");	/* nothing heard yet */
	assert_int_equal(hasync_start(na.h), 0);
	assert_int_equal(hasync_start(nb.h), 0);
	assert_true(wait_role(&nb, HASYNC_MASTER, ELECT_MS) >= 0);
	pump(5 * IV);
	hasync_get_status(na.h, &sa);
	hasync_get_status(nb.h, &sb);
	assert_int_equal(na.role, HASYNC_BACKUP);
	assert_string_equal(sb.peer_version, "0.9.0");
	assert_string_equal(sa.peer_version, "");
	assert_int_equal(sa.malformed + sb.malformed, 0);
	node_free(&na);
	node_free(&nb);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_elect_one_master),
		cmocka_unit_test(test_peer_version),
		cmocka_unit_test(test_icmp_alone_no_takeover),
		cmocka_unit_test(test_takeover_master_down),
		cmocka_unit_test(test_stalled_loop_no_false_failover),
		cmocka_unit_test(test_ipv6_takeover),
		cmocka_unit_test(test_graceful_stop_handover),
		cmocka_unit_test(test_failover),
		cmocka_unit_test(test_leave),
		cmocka_unit_test(test_peer_lost_api),
		cmocka_unit_test(test_forged_replayed_garbage),
		cmocka_unit_test(test_peer_restart_clock_back),
		cmocka_unit_test(test_restart_replayed_adverts),
		cmocka_unit_test(test_restart_peer_confirmed_fast),
		cmocka_unit_test(test_old_run_replayed_after_peer_restart),
		cmocka_unit_test(test_legacy_peer_old_rule),
		cmocka_unit_test(test_bad_config),
		cmocka_unit_test(test_vip_standalone_watch),
		cmocka_unit_test(test_vip_stale_removed_then_takeover),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
