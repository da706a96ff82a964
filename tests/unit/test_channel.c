/*
 * test_channel.c - unit tests for hasync/channel.c with real sockets: two
 * nodes (127.0.0.1 lb1, the connecting side, and 127.0.0.2 lb2) in one
 * event loop handshake and exchange frames; peer death, wrong key,
 * attackers (garbage, truncated, oversized, replayed sessions and frames),
 * reconnection, the queue cap, TCP_MD5SIG (unsigned or forged TCP dropped)
 * and forward secrecy. A "raw peer" speaks the wire protocol of
 * proto/README.md by hand, independently of channel.c. Runs in a private
 * network namespace when it can (root).
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <sodium.h>

#include "hasync.pb-c.h"
#include "hasync_int.h"
#include "testutil.h"

#define ADDR_A		"127.0.0.1"	/* lb1: lower address, connects */
#define ADDR_B		"127.0.0.2"	/* lb2: accepts */
#define ADDR_STRANGER	"127.0.0.3"	/* not a peer address */
#define ADDR6_A		"fd00::1"	/* IPv6 lb1, on lo of our namespace only */
#define ADDR6_B		"fd00::2"	/* IPv6 lb2 */
#define UP_MS		200		/* longest wait for a handshake */
#define DEATH_MS	50		/* longest wait for peer death detection */
#define WAIT_MS		1000		/* longest wait for anything else */
#define RAW_BUF		(1 << 16)	/* raw peer's receive buffer */
#define RAW_REC		(1 << 14)	/* raw peer's record of what it sent */
#define KDF_CONTEXT	"lbdsynch"	/* as in proto/README.md */
#define MD5_CONTEXT	"lbdtcpmd"	/* TCP_MD5SIG key, as in proto/README.md */
#define REFUSED_MS	300		/* a dropped SYN: no connection within this */

/* One channel under test and what its callbacks saw. */
struct tnode {
	struct channel	*c;		/* the channel */
	char		 name[HASYNC_NAME_MAX]; /* "lb1", "lb2" */
	int		 ups;		/* up calls */
	int		 downs;		/* down calls */
	bool		 peer_died;	/* of the last down */
	char		 reason[256];	/* of the last down */
	uint64_t	 down_us;	/* when the last down came */
	int		 frames;	/* frames delivered, keepalives excluded */
	int		 keepalives;	/* keepalives delivered */
	uint64_t	 last_ka_sent_ms; /* sent_ms of the last keepalive */
	size_t		 entries;	/* StickyEntry total of EntryBatch frames */
	Lbd__SyncFrame	*last;		/* copy of the last non-keepalive frame */
};

/* The test's own implementation of the peer side of the protocol. */
struct raw {
	int		 fd;		/* connected socket */
	uint8_t		 nonce[32];	/* ours */
	uint8_t		 peer_nonce[32]; /* from the channel's hello */
	uint8_t		 kx_pk[32];	/* our ephemeral crypto_kx key pair (we are the client) */
	uint8_t		 kx_sk[32];
	uint8_t		 static_tx[32];	/* what the keys would be without the kx part */
	uint8_t		 tx[32];	/* sealing key */
	uint8_t		 rx[32];	/* opening key */
	uint64_t	 tx_ctr;	/* last counter sent */
	uint64_t	 rx_ctr;	/* last counter received */
	uint8_t		 buf[RAW_BUF];	/* received, not yet parsed */
	size_t		 len;		/* bytes in buf */
	uint8_t		 rec[RAW_REC];	/* everything sent */
	size_t		 reclen;	/* bytes in rec */
};

static struct event_base *base;		/* the one loop */
static struct event	*tick;		/* keeps EVLOOP_ONCE from blocking long */
static uint16_t		 next_port;	/* each test takes fresh ports */
static uint8_t		 cluster_key[HASYNC_KEY_LEN]; /* both nodes' key */
static struct tnode	 na, nb;	/* lb1 and lb2 */
static bool		 netns_ok;	/* private namespace with lo up and the IPv6 pair */
static char		 last_log[512];	/* the channels' last log line */

/* struct in6_ifreq of <linux/ipv6.h>, which clashes with <netinet/in.h>. */
struct test_in6_ifreq {
	struct in6_addr	 addr;		/* address to add */
	uint32_t	 prefixlen;	/* its prefix length */
	int		 ifindex;	/* interface */
};

/* Runs the loop until *v >= want. Returns: us waited, or -1 timed out. */
static int64_t
wait_int(const int *v, int want, int timeout_ms)
{
	uint64_t start = clock_now_us();

	while (*v < want) {
		if (clock_now_us() - start > (uint64_t)timeout_ms * 1000)
			return -1;
		event_base_loop(base, EVLOOP_ONCE);
	}
	return (int64_t)(clock_now_us() - start);
}

/* Runs the loop until the status counter at offset off grows past was. */
static bool
wait_counter(struct tnode *n, size_t off, uint64_t was, int timeout_ms)
{
	struct channel_status st;
	uint64_t start = clock_now_us();

	for (;;) {
		channel_get_status(n->c, &st);
		if (*(uint64_t *)((char *)&st + off) > was)
			return true;
		if (clock_now_us() - start > (uint64_t)timeout_ms * 1000)
			return false;
		event_base_loop(base, EVLOOP_ONCE);
	}
}

static uint64_t
counter(struct tnode *n, size_t off)
{
	struct channel_status st;

	channel_get_status(n->c, &st);
	return *(uint64_t *)((char *)&st + off);
}

static void
on_up(void *arg)
{
	struct tnode *n = arg;

	n->ups++;
}

static void
on_down(void *arg, const char *reason, bool peer_died)
{
	struct tnode *n = arg;

	n->downs++;
	n->peer_died = peer_died;
	n->down_us = clock_now_us();
	snprintf(n->reason, sizeof(n->reason), "%s", reason);
	/* Down means down: the queue went with the connection. */
	assert_int_equal(channel_queued(n->c), 0);
}

static void
on_frame(void *arg, const Lbd__SyncFrame *f)
{
	struct tnode *n = arg;
	uint8_t buf[4096];
	size_t len;

	if (f->body_case == LBD__SYNC_FRAME__BODY_KEEPALIVE) {
		n->keepalives++;
		n->last_ka_sent_ms = f->keepalive->sent_ms;
		return;
	}
	n->frames++;
	if (f->body_case == LBD__SYNC_FRAME__BODY_ENTRIES)
		n->entries += f->entries->n_entries;
	/* Keep a copy: f is only valid during the call. */
	len = lbd__sync_frame__get_packed_size(f);
	if (len > sizeof(buf))
		return;
	lbd__sync_frame__pack(f, buf);
	if (n->last != NULL)
		lbd__sync_frame__free_unpacked(n->last, NULL);
	n->last = lbd__sync_frame__unpack(NULL, len, buf);
}

static void
on_log(void *arg, int level, const char *msg)
{
	struct tnode *n = arg;

	snprintf(last_log, sizeof(last_log), "%s", msg);
	tu_log(n->name, level, msg);
}

static void
make_conf(struct channel_config *c, const char *name, const char *addr, const char *peer,
    const char *peer_addr, uint16_t port)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->node_name, sizeof(c->node_name), "%s", name);
	tu_set_addr(&c->node_addr, addr, 0);
	snprintf(c->peer_name, sizeof(c->peer_name), "%s", peer);
	tu_set_addr(&c->peer_addr[0], peer_addr, 0);
	c->npeer_addr = 1;
	c->sync_port = port;
	memcpy(c->key, cluster_key, sizeof(c->key));
}

static void
node_new(struct tnode *n, const struct channel_config *conf)
{
	struct channel_callbacks cb = { .up = on_up, .down = on_down, .frame = on_frame,
	    .log = on_log };
	char err[256] = "";

	memset(n, 0, sizeof(*n));
	snprintf(n->name, sizeof(n->name), "%s", conf->node_name);
	n->c = channel_new(base, conf, &cb, n, err, sizeof(err));
	if (n->c == NULL)
		fail_msg("channel_new %s: %s", conf->node_name, err);
	assert_int_equal(channel_start(n->c), 0);
}

static void
node_free(struct tnode *n)
{
	channel_free(n->c);
	n->c = NULL;
	if (n->last != NULL)
		lbd__sync_frame__free_unpacked(n->last, NULL);
	n->last = NULL;
}

/* lb2 then lb1 on a fresh port; waits for both ups. Returns the ms it took. */
static double
pair_up(uint16_t *portp)
{
	struct channel_config ca, cb;
	uint64_t t0;

	*portp = next_port++;
	make_conf(&ca, "lb1", ADDR_A, "lb2", ADDR_B, *portp);
	make_conf(&cb, "lb2", ADDR_B, "lb1", ADDR_A, *portp);
	t0 = clock_now_us();
	node_new(&nb, &cb);
	node_new(&na, &ca);
	assert_true(wait_int(&na.ups, 1, UP_MS) >= 0);
	assert_true(wait_int(&nb.ups, 1, UP_MS) >= 0);
	return (double)(clock_now_us() - t0) / 1000.0;
}

/* An EntryBatch of n entries in caller storage (entries[], ptrs[], ip[] of n). */
static void
make_batch(Lbd__SyncFrame *f, Lbd__EntryBatch *b, Lbd__StickyEntry *e,
    Lbd__StickyEntry **ptrs, uint8_t (*ip)[16], size_t n)
{
	size_t i;

	lbd__sync_frame__init(f);
	lbd__entry_batch__init(b);
	for (i = 0; i < n; i++) {
		lbd__sticky_entry__init(&e[i]);
		memset(ip[i], 0, 16);
		ip[i][10] = ip[i][11] = 0xff;
		ip[i][12] = 192;
		ip[i][13] = 0;
		ip[i][14] = (uint8_t)(i >> 8);
		ip[i][15] = (uint8_t)i;
		e[i].service = "FTPS_VIP";
		e[i].client.data = ip[i];
		e[i].client.len = 16;
		e[i].backend = i % 2 ? "FTP_SVR2" : "FTP_SVR1";
		e[i].expires_in_ms = 1800000 - (uint32_t)i;
		e[i].version = 1000 + i;
		e[i].origin = "lb1";
		ptrs[i] = &e[i];
	}
	b->entries = ptrs;
	b->n_entries = n;
	b->sent_ms = 12345;
	f->body_case = LBD__SYNC_FRAME__BODY_ENTRIES;
	f->entries = b;
}

/*
 * A TCP socket from `from` to addr:port, its segments signed with
 * TCP_MD5SIG under key's subkey as proto/README.md says (key NULL:
 * unsigned), connected within timeout_ms.
 * Returns: the socket, or -1 (not connected: the SYN went unanswered).
 */
static int
tcp_connect(const char *from, const char *addr, uint16_t port, int rcvbuf,
    const uint8_t *key, int timeout_ms)
{
	struct sockaddr_storage l, r;
	struct tcp_md5sig m;
	struct pollfd pfd;
	socklen_t elen = sizeof(int);
	int s, e = 0, fam = strchr(addr, ':') != NULL ? AF_INET6 : AF_INET;
	socklen_t salen = fam == AF_INET ? sizeof(struct sockaddr_in) :
	    sizeof(struct sockaddr_in6);

	s = socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(s != -1);
	if (rcvbuf > 0)
		assert_int_equal(setsockopt(s, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
		    sizeof(rcvbuf)), 0);
	tu_set_addr(&l, from, 0);
	tu_set_addr(&r, addr, port);
	if (key != NULL) {
		memset(&m, 0, sizeof(m));
		tu_set_addr(&m.tcpm_addr, addr, 0);
		m.tcpm_keylen = 32;
		crypto_kdf_derive_from_key(m.tcpm_key, 32, 1, MD5_CONTEXT, key);
		assert_int_equal(setsockopt(s, IPPROTO_TCP, TCP_MD5SIG, &m, sizeof(m)), 0);
	}
	assert_int_equal(bind(s, (struct sockaddr *)&l, salen), 0);
	if (connect(s, (struct sockaddr *)&r, salen) == -1)
		assert_int_equal(errno, EINPROGRESS);
	/* The loop runs meanwhile: the channel under test accepts in it. */
	pfd.fd = s;
	pfd.events = POLLOUT;
	{
		uint64_t start = clock_now_us();

		while (poll(&pfd, 1, 0) == 0) {
			if (clock_now_us() - start > (uint64_t)timeout_ms * 1000) {
				close(s);
				return -1;
			}
			event_base_loop(base, EVLOOP_ONCE);
		}
	}
	assert_int_equal(getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &elen), 0);
	if (e != 0) {
		close(s);
		return -1;
	}
	/* Blocking again, as the tests' sends expect. */
	assert_int_equal(fcntl(s, F_SETFL, 0), 0);
	return s;
}

/*
 * A TCP socket from `from` to addr:port, connected, signed with the
 * cluster key's TCP_MD5SIG subkey as a real peer's are (unsigned from the
 * stranger's address, for which the channel has no key).
 */
static int
tcp_from(const char *from, const char *addr, uint16_t port, int rcvbuf)
{
	int s;

	s = tcp_connect(from, addr, port, rcvbuf,
	    strcmp(from, ADDR_STRANGER) == 0 ? NULL : cluster_key, WAIT_MS);
	assert_true(s != -1);
	return s;
}

static void
send_all(int fd, const void *buf, size_t len)
{
	assert_int_equal(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* ---------------------------------------------------------------- raw peer */

static void
be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void
be64(uint8_t *p, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/* Errors are ignored: the channel may have closed on us, which tests check otherwise. */
static void
raw_write(struct raw *r, const uint8_t *buf, size_t len)
{
	(void)send(r->fd, buf, len, MSG_NOSIGNAL);
	if (r->reclen + len <= sizeof(r->rec)) {
		memcpy(r->rec + r->reclen, buf, len);
		r->reclen += len;
	}
}

/*
 * The clear hello of proto/README.md, naming `name`, MACed with key's
 * subkey, of the given protocol version, with or without kx_public.
 */
static void
raw_send_hello_v(struct raw *r, const char *name, const uint8_t *key, uint32_t protocol,
    bool kx)
{
	Lbd__SyncFrame f = LBD__SYNC_FRAME__INIT;
	Lbd__Hello h = LBD__HELLO__INIT;
	uint8_t frame[512], hk[crypto_auth_KEYBYTES];
	size_t plen;

	crypto_kdf_derive_from_key(hk, sizeof(hk), 1, KDF_CONTEXT, key);
	h.protocol = protocol;
	h.node = (char *)name;
	h.boot_id = 7;
	h.nonce.data = r->nonce;
	h.nonce.len = 32;
	if (kx) {
		h.kx_public.data = r->kx_pk;
		h.kx_public.len = 32;
	}
	f.body_case = LBD__SYNC_FRAME__BODY_HELLO;
	f.hello = &h;
	plen = lbd__sync_frame__get_packed_size(&f);
	be32(frame, (uint32_t)(1 + plen + 32));
	frame[4] = 1;
	lbd__sync_frame__pack(&f, frame + 5);
	crypto_auth(frame + 5 + plen, frame + 4, 1 + plen, hk);
	raw_write(r, frame, 4 + 1 + plen + 32);
}

/* The hello lbd sends: protocol 2, with our ephemeral key. */
static void
raw_send_hello(struct raw *r, const char *name, const uint8_t *key)
{
	raw_send_hello_v(r, name, key, 2, true);
}

/*
 * Reads one frame, pumping the loop meanwhile.
 * Returns: body length (body copied to out), 0 EOF/reset, -1 timed out.
 */
static ssize_t
raw_read(struct raw *r, uint8_t *out, size_t outlen, int timeout_ms)
{
	uint64_t start = clock_now_us();
	uint32_t len;
	ssize_t n;

	for (;;) {
		if (r->len >= 4) {
			len = (uint32_t)r->buf[0] << 24 | (uint32_t)r->buf[1] << 16 |
			    (uint32_t)r->buf[2] << 8 | r->buf[3];
			assert_true(len <= outlen && len + 4 <= sizeof(r->buf));
			if (r->len >= 4 + len) {
				memcpy(out, r->buf + 4, len);
				memmove(r->buf, r->buf + 4 + len, r->len - 4 - len);
				r->len -= 4 + len;
				return (ssize_t)len;
			}
		}
		n = recv(r->fd, r->buf + r->len, sizeof(r->buf) - r->len, MSG_DONTWAIT);
		if (n == 0 || (n == -1 && errno == ECONNRESET))
			return 0;
		if (n > 0) {
			r->len += (size_t)n;
			continue;
		}
		if (clock_now_us() - start > (uint64_t)timeout_ms * 1000)
			return -1;
		event_base_loop(base, EVLOOP_ONCE);
	}
}

/* Seals f with counter ctr (normally ++tx_ctr) and sends it. */
static void
raw_send_sealed(struct raw *r, const Lbd__SyncFrame *f, uint64_t ctr)
{
	uint8_t frame[4096], plain[4000], nonce[24] = { 0 };
	unsigned long long clen;
	size_t plen;

	plen = lbd__sync_frame__get_packed_size(f);
	assert_true(plen <= sizeof(plain));
	lbd__sync_frame__pack(f, plain);
	be32(frame, (uint32_t)(1 + 8 + plen + 16));
	frame[4] = 2;
	be64(frame + 5, ctr);
	be64(nonce + 16, ctr);
	crypto_aead_xchacha20poly1305_ietf_encrypt(frame + 13, &clen, plain, plen, frame, 13,
	    NULL, nonce, r->tx);
	raw_write(r, frame, 13 + (size_t)clen);
}

/* Opens a sealed body from the channel. Returns the frame, or NULL. */
static Lbd__SyncFrame *
raw_open(struct raw *r, const uint8_t *body, size_t len)
{
	uint8_t hdr[13], plain[4096], nonce[24] = { 0 };
	unsigned long long plen;

	if (len < 25 || body[0] != 2)
		return NULL;
	be32(hdr, (uint32_t)len);
	memcpy(hdr + 4, body, 9);
	memcpy(nonce + 16, body + 1, 8);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &plen, NULL, body + 9, len - 9,
	    hdr, 13, nonce, r->rx) != 0)
		return NULL;
	r->rx_ctr++;
	return lbd__sync_frame__unpack(NULL, (size_t)plen, plain);
}

/*
 * Connects from `from` to ADDR_B:port as node `name` and runs the whole
 * handshake of proto/README.md with key. Returns: 0 up, -1 refused.
 */
static int
raw_handshake(struct raw *r, const char *from, uint16_t port, const char *name,
    const uint8_t *key, int rcvbuf)
{
	Lbd__SyncFrame *pf, cf = LBD__SYNC_FRAME__INIT;
	Lbd__Hello h = LBD__HELLO__INIT;
	uint8_t body[512], hk[crypto_auth_KEYBYTES], sk[32], in[96], ppk[32], krx[32], ktx[32];
	ssize_t n;

	memset(r, 0, sizeof(*r));
	randombytes_buf(r->nonce, sizeof(r->nonce));
	crypto_kx_keypair(r->kx_pk, r->kx_sk);
	/* The TCP_MD5SIG signature comes from the same key as the hello's MAC. */
	if ((r->fd = tcp_connect(from, ADDR_B, port, rcvbuf, key, REFUSED_MS)) == -1)
		return -1;
	raw_send_hello(r, name, key);
	n = raw_read(r, body, sizeof(body), WAIT_MS);
	if (n <= 0)
		return -1;
	/* The channel's hello: kind 1, SyncFrame{hello}, HMAC-SHA-512-256. */
	assert_int_equal(body[0], 1);
	crypto_kdf_derive_from_key(hk, sizeof(hk), 1, KDF_CONTEXT, key);
	if (crypto_auth_verify(body + n - 32, body, (size_t)n - 32, hk) != 0)
		return -1;
	pf = lbd__sync_frame__unpack(NULL, (size_t)n - 33, body + 1);
	assert_non_null(pf);
	assert_int_equal(pf->body_case, LBD__SYNC_FRAME__BODY_HELLO);
	assert_int_equal(pf->hello->nonce.len, 32);
	assert_int_equal(pf->hello->protocol, 2);
	assert_int_equal(pf->hello->kx_public.len, 32);
	memcpy(r->peer_nonce, pf->hello->nonce.data, 32);
	memcpy(ppk, pf->hello->kx_public.data, 32);
	lbd__sync_frame__free_unpacked(pf, NULL);
	/*
	 * Keys: BLAKE2b-256 keyed with subkey 2 over the crypto_kx key of the
	 * direction || sender nonce || receiver nonce; we connected: kx client.
	 */
	assert_int_equal(crypto_kx_client_session_keys(krx, ktx, r->kx_pk, r->kx_sk, ppk), 0);
	crypto_kdf_derive_from_key(sk, sizeof(sk), 2, KDF_CONTEXT, key);
	memcpy(in, ktx, 32);
	memcpy(in + 32, r->nonce, 32);
	memcpy(in + 64, r->peer_nonce, 32);
	crypto_generichash(r->tx, 32, in, 96, sk, 32);
	memcpy(in, krx, 32);
	memcpy(in + 32, r->peer_nonce, 32);
	memcpy(in + 64, r->nonce, 32);
	crypto_generichash(r->rx, 32, in, 96, sk, 32);
	/* What a recording plus the cluster key gives (protocol 1's keys): must not open. */
	memcpy(in, r->peer_nonce, 32);
	memcpy(in + 32, r->nonce, 32);
	crypto_generichash(r->static_tx, 32, in, 64, sk, 32);
	/* Confirmation: our hello again, sealed, counter 1. */
	h.protocol = 2;
	h.node = (char *)name;
	cf.body_case = LBD__SYNC_FRAME__BODY_HELLO;
	cf.hello = &h;
	raw_send_sealed(r, &cf, ++r->tx_ctr);
	/* And the channel's. */
	n = raw_read(r, body, sizeof(body), WAIT_MS);
	if (n <= 0)
		return -1;
	{
		struct raw old = *r;

		memcpy(old.rx, r->static_tx, 32);
		assert_null(raw_open(&old, body, (size_t)n));
	}
	pf = raw_open(r, body, (size_t)n);
	assert_non_null(pf);
	assert_int_equal(pf->body_case, LBD__SYNC_FRAME__BODY_HELLO);
	assert_string_equal(pf->hello->node, "lb2");
	lbd__sync_frame__free_unpacked(pf, NULL);
	return 0;
}

static void
raw_close(struct raw *r)
{
	if (r->fd != -1)
		close(r->fd);
	r->fd = -1;
}

/* ---------------------------------------------------------------- tests */

static void
test_up_and_frames(void **state)
{
	Lbd__SyncFrame f = LBD__SYNC_FRAME__INIT, fb;
	Lbd__Keepalive k = LBD__KEEPALIVE__INIT;
	Lbd__Delete d = LBD__DELETE__INIT;
	Lbd__EntryBatch b;
	Lbd__StickyEntry e[3], *ptrs[3];
	uint8_t ip[3][16];
	struct channel_status sa, sb;
	uint16_t port;
	double ms;

	ms = pair_up(&port);
	fprintf(stderr, "  handshake: both up %.2f ms after start\n", ms);
	channel_get_status(na.c, &sa);
	assert_string_equal(sa.state, "up");
	assert_true(sa.up_since_ms >= 0);
	assert_true(sa.tcp_md5);	/* this kernel has CONFIG_TCP_MD5SIG */
	assert_true(sa.peer_boot_id != 0);

	/* lb1 -> lb2: a keepalive and a batch of 3. */
	k.sent_ms = 42;
	f.body_case = LBD__SYNC_FRAME__BODY_KEEPALIVE;
	f.keepalive = &k;
	assert_int_equal(channel_send(na.c, &f), 0);
	make_batch(&fb, &b, e, ptrs, ip, 3);
	assert_int_equal(channel_send(na.c, &fb), 0);
	assert_true(channel_queued(na.c) > 0);
	/* lb2 -> lb1: a delete. */
	d.service = "FTPS_VIP";
	d.client.data = ip[1];
	d.client.len = 16;
	d.version = 99;
	d.origin = "lb2";
	f.body_case = LBD__SYNC_FRAME__BODY_DELETE;
	f.delete_ = &d;
	assert_int_equal(channel_send(nb.c, &f), 0);

	assert_true(wait_int(&nb.frames, 1, WAIT_MS) >= 0);
	assert_true(wait_int(&na.frames, 1, WAIT_MS) >= 0);
	assert_true(nb.keepalives >= 1);
	assert_true(nb.last_ka_sent_ms == 42 || nb.keepalives > 1);
	assert_non_null(nb.last);
	assert_int_equal(nb.last->body_case, LBD__SYNC_FRAME__BODY_ENTRIES);
	assert_int_equal(nb.last->entries->n_entries, 3);
	assert_int_equal(nb.last->entries->sent_ms, 12345);
	assert_string_equal(nb.last->entries->entries[2]->service, "FTPS_VIP");
	assert_string_equal(nb.last->entries->entries[1]->backend, "FTP_SVR2");
	assert_int_equal(nb.last->entries->entries[2]->version, 1002);
	assert_int_equal(nb.last->entries->entries[2]->client.len, 16);
	assert_memory_equal(nb.last->entries->entries[2]->client.data, ip[2], 16);
	assert_int_equal(na.last->body_case, LBD__SYNC_FRAME__BODY_DELETE);
	assert_int_equal(na.last->delete_->version, 99);
	assert_string_equal(na.last->delete_->origin, "lb2");
	assert_memory_equal(na.last->delete_->client.data, ip[1], 16);

	channel_get_status(na.c, &sa);
	channel_get_status(nb.c, &sb);
	assert_true(sa.frames_sent >= 2);
	assert_true(sb.frames_received >= 2);
	assert_true(sa.bytes_sent > 0 && sb.bytes_received > 0);
	assert_int_equal(channel_queued(na.c), 0);
	assert_int_equal(sa.auth_failures + sa.replays + sa.malformed + sa.oversized +
	    sa.rejected, 0);
	assert_int_equal(sb.auth_failures + sb.replays + sb.malformed + sb.oversized +
	    sb.rejected, 0);
	assert_int_equal(na.downs + nb.downs, 0);
	node_free(&na);
	node_free(&nb);
}

static void
test_keepalive_and_silence(void **state)
{
	struct channel_config ca, cb;
	uint16_t port = next_port++;

	make_conf(&ca, "lb1", ADDR_A, "lb2", ADDR_B, port);
	make_conf(&cb, "lb2", ADDR_B, "lb1", ADDR_A, port);
	ca.keepalive_ms = cb.keepalive_ms = 20;
	ca.dead_ms = cb.dead_ms = 100;
	node_new(&nb, &cb);
	node_new(&na, &ca);
	assert_true(wait_int(&na.ups, 1, UP_MS) >= 0);
	/* Idle for 10 keepalive periods: keepalives flow, nobody is dropped. */
	tu_pump(base, 200, EVLOOP_ONCE);
	assert_true(na.keepalives >= 5 && nb.keepalives >= 5);
	assert_int_equal(na.downs + nb.downs, 0);
	assert_true(na.last_ka_sent_ms > 1000000000000ull);	/* wall clock ms */
	node_free(&na);
	node_free(&nb);
}

static void
test_peer_death(void **state)
{
	struct channel_status st;
	uint16_t port;
	uint64_t t0;
	int64_t us;

	/* The accepting side dies: the connecting side hears it. */
	pair_up(&port);
	tu_pump(base, 5, EVLOOP_ONCE);
	t0 = clock_now_us();
	node_free(&nb);
	us = wait_int(&na.downs, 1, DEATH_MS);
	assert_true(us >= 0);
	us = (int64_t)(na.down_us - t0);
	fprintf(stderr, "  peer death (accepting side freed): down(peer_died) after %.3f ms\n",
	    (double)us / 1000.0);
	assert_true(na.peer_died);
	channel_get_status(na.c, &st);
	assert_int_equal(st.up_since_ms, -1);
	assert_string_not_equal(st.state, "up");
	node_free(&na);

	/* And the other way round. */
	pair_up(&port);
	tu_pump(base, 5, EVLOOP_ONCE);
	t0 = clock_now_us();
	node_free(&na);
	assert_true(wait_int(&nb.downs, 1, DEATH_MS) >= 0);
	fprintf(stderr, "  peer death (connecting side freed): down(peer_died) after %.3f "
	    "ms\n", (double)(nb.down_us - t0) / 1000.0);
	assert_true(nb.peer_died);
	node_free(&nb);
}

static void
test_reconnect(void **state)
{
	struct channel_config cb;
	struct channel_status st;
	uint16_t port;
	int64_t us;

	pair_up(&port);
	node_free(&nb);
	assert_true(wait_int(&na.downs, 1, DEATH_MS) >= 0);
	/* lb1 keeps trying (its signed SYNs go unanswered) until lb2 is back. */
	tu_pump(base, 150, EVLOOP_ONCE);
	make_conf(&cb, "lb2", ADDR_B, "lb1", ADDR_A, port);
	node_new(&nb, &cb);
	us = wait_int(&na.ups, 2, 2000);
	assert_true(us >= 0);
	assert_true(wait_int(&nb.ups, 1, UP_MS) >= 0);
	fprintf(stderr, "  reconnect: up again %.1f ms after the peer restarted\n",
	    (double)us / 1000.0);
	channel_get_status(na.c, &st);
	assert_int_equal(st.reconnects, 1);
	assert_string_equal(st.state, "up");

	/* lb1 restarts: lb2 hears it die, then accepts the new connection. */
	node_free(&na);
	assert_true(wait_int(&nb.downs, 1, DEATH_MS) >= 0);
	assert_true(nb.peer_died);
	{
		struct channel_config ca;

		make_conf(&ca, "lb1", ADDR_A, "lb2", ADDR_B, port);
		node_new(&na, &ca);
	}
	assert_true(wait_int(&nb.ups, 2, UP_MS) >= 0);
	channel_get_status(nb.c, &st);
	assert_int_equal(st.reconnects, 1);
	node_free(&na);
	node_free(&nb);
}

/*
 * channel_kick: once the backoff has grown past 1 s, a restarted peer
 * would wait for it; the kick (the peer's first advert) connects at once.
 */
static void
test_kick(void **state)
{
	struct channel_config cb;
	struct channel_status st;
	uint16_t port;
	uint64_t t0;
	int64_t us;

	pair_up(&port);
	node_free(&nb);
	assert_true(wait_int(&na.downs, 1, DEATH_MS) >= 0);
	tu_pump(base, 1600, EVLOOP_ONCE);	/* refused at 100, 300, 700, 1500 ms: the next wait is 1.6 s */
	make_conf(&cb, "lb2", ADDR_B, "lb1", ADDR_A, port);
	node_new(&nb, &cb);
	tu_pump(base, 20, EVLOOP_ONCE);
	assert_int_equal(na.ups, 1);	/* still waiting out the backoff */
	t0 = clock_now_us();
	channel_kick(na.c);
	channel_kick(nb.c);		/* the accepting side: nothing to do */
	us = wait_int(&na.ups, 2, UP_MS);
	assert_true(us >= 0);
	fprintf(stderr, "  kick: up %.1f ms after channel_kick (the backoff had 1.6 s to go)\n",
	    (double)(clock_now_us() - t0) / 1000.0);
	assert_true(wait_int(&nb.ups, 1, UP_MS) >= 0);
	channel_kick(na.c);		/* while up: nothing */
	tu_pump(base, 20, EVLOOP_ONCE);
	channel_get_status(na.c, &st);
	assert_int_equal(st.reconnects, 1);
	assert_string_equal(st.state, "up");
	node_free(&na);
	node_free(&nb);
}

static void
test_wrong_key(void **state)
{
	struct channel_config ca, cb;
	struct channel_status sa, sb;
	uint16_t port = next_port++;

	make_conf(&ca, "lb1", ADDR_A, "lb2", ADDR_B, port);
	make_conf(&cb, "lb2", ADDR_B, "lb1", ADDR_A, port);
	randombytes_buf(cb.key, sizeof(cb.key));
	node_new(&nb, &cb);
	node_new(&na, &ca);
	tu_pump(base, 400, EVLOOP_ONCE);
	assert_int_equal(na.ups + nb.ups, 0);
	assert_int_equal(na.downs + nb.downs, 0);
	channel_get_status(na.c, &sa);
	channel_get_status(nb.c, &sb);
	/*
	 * The TCP_MD5SIG keys differ too: lb2's kernel drops lb1's SYN, so
	 * the connection never even reaches the hello (no auth_failures).
	 */
	assert_int_equal(sa.auth_failures + sb.auth_failures, 0);
	assert_string_not_equal(sa.state, "up");
	assert_string_not_equal(sb.state, "up");
	assert_string_not_equal(sb.state, "up");
	node_free(&na);
	node_free(&nb);
}

static void
test_attackers(void **state)
{
	struct raw r;
	struct channel_status st;
	uint8_t junk[200];
	uint16_t port;
	size_t off;
	int s, frames;

	/* The real pair is up; attacks on lb2's port must not disturb it. */
	pair_up(&port);
	frames = nb.frames;

	/* A stranger's address: refused at once. */
	s = tcp_from(ADDR_STRANGER, ADDR_B, port, 0);
	assert_true(wait_counter(&nb, offsetof(struct channel_status, rejected), 0, WAIT_MS));
	close(s);

	/* Garbage that looks like a hello: fails the MAC. */
	s = tcp_from(ADDR_A, ADDR_B, port, 0);
	randombytes_buf(junk, sizeof(junk));
	be32(junk, 100);
	junk[4] = 1;
	send_all(s, junk, 104);
	off = offsetof(struct channel_status, auth_failures);
	assert_true(wait_counter(&nb, off, 0, WAIT_MS));
	close(s);

	/* An unknown kind. */
	s = tcp_from(ADDR_A, ADDR_B, port, 0);
	junk[4] = 0x77;
	send_all(s, junk, 104);
	off = offsetof(struct channel_status, malformed);
	assert_true(wait_counter(&nb, off, 0, WAIT_MS));
	close(s);

	/* Truncated: EOF in the middle of a frame. */
	s = tcp_from(ADDR_A, ADDR_B, port, 0);
	junk[4] = 1;
	send_all(s, junk, 54);
	shutdown(s, SHUT_WR);
	assert_true(wait_counter(&nb, off, 1, WAIT_MS));
	close(s);

	/* Oversized length, and an HTTP request (its "GET " is a huge length). */
	s = tcp_from(ADDR_A, ADDR_B, port, 0);
	be32(junk, 0x7fffffff);
	send_all(s, junk, 8);
	off = offsetof(struct channel_status, oversized);
	assert_true(wait_counter(&nb, off, 0, WAIT_MS));
	close(s);
	s = tcp_from(ADDR_A, ADDR_B, port, 0);
	send_all(s, "GET / HTTP/1.0\r\n\r\n", 18);
	assert_true(wait_counter(&nb, off, 1, WAIT_MS));
	close(s);

	/* Right key, wrong name. */
	off = offsetof(struct channel_status, auth_failures);
	assert_int_equal(raw_handshake(&r, ADDR_A, port, "lb9", cluster_key, 0), -1);
	assert_true(wait_counter(&nb, off, 1, WAIT_MS));
	raw_close(&r);

	/* Wrong key: its TCP_MD5SIG signature is wrong, the SYN dropped, nothing counted. */
	frames = (int)counter(&nb, off);
	randombytes_buf(junk, 32);
	assert_int_equal(raw_handshake(&r, ADDR_A, port, "lb1", junk, 0), -1);
	assert_int_equal(counter(&nb, off), (uint64_t)frames);
	raw_close(&r);
	frames = 0;

	/* Connections that never speak: dropped after dead_ms (3 s) - not waited for. */
	tu_pump(base, 20, EVLOOP_ONCE);
	channel_get_status(nb.c, &st);
	fprintf(stderr, "  attackers: rejected %llu, auth %llu, malformed %llu, oversized "
	    "%llu\n", (unsigned long long)st.rejected, (unsigned long long)st.auth_failures,
	    (unsigned long long)st.malformed, (unsigned long long)st.oversized);
	/* Nothing delivered, the real channel untouched. */
	assert_int_equal(nb.frames, frames);
	assert_int_equal(na.downs + nb.downs, 0);
	assert_string_equal(st.state, "up");
	node_free(&na);
	node_free(&nb);
}

/*
 * TCP_MD5SIG on the listener (getsockopt cannot read it back, so by its
 * effect): from a peer address, a connection without the signature, or
 * with one under another key, is never established - the kernel drops
 * its SYN, so nothing reaches the channel - while a signed one is. So a
 * forged FIN or RST, which is unsigned too, cannot close the channel.
 */
static void
test_md5_required(void **state)
{
	struct channel_status st0, st;
	uint8_t other[HASYNC_KEY_LEN];
	uint16_t port;
	int s;

	pair_up(&port);
	channel_get_status(nb.c, &st0);
	s = tcp_connect(ADDR_A, ADDR_B, port, 0, NULL, REFUSED_MS);
	assert_int_equal(s, -1);
	randombytes_buf(other, sizeof(other));
	s = tcp_connect(ADDR_A, ADDR_B, port, 0, other, REFUSED_MS);
	assert_int_equal(s, -1);
	/* The control: signed with the cluster key's subkey, it connects. */
	s = tcp_connect(ADDR_A, ADDR_B, port, 0, cluster_key, REFUSED_MS);
	assert_true(s != -1);
	close(s);
	tu_pump(base, 20, EVLOOP_ONCE);
	channel_get_status(nb.c, &st);
	/* The dropped ones never got as far as accept(): nothing counted. */
	assert_int_equal(st.rejected + st.auth_failures + st.malformed + st.replays,
	    st0.rejected + st0.auth_failures + st0.malformed + st0.replays);
	assert_string_equal(st.state, "up");
	assert_int_equal(na.downs + nb.downs, 0);
	assert_int_equal(nb.ups, 1);
	node_free(&na);
	node_free(&nb);

	/* The accepting side signs too: lb1 cannot reach a listener without the key. */
	{
		struct sockaddr_storage ss;
		struct channel_config ca;
		int l, on = 1;

		port = next_port++;
		l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_true(l != -1);
		assert_int_equal(setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)), 0);
		tu_set_addr(&ss, ADDR_B, port);
		assert_int_equal(bind(l, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)), 0);
		assert_int_equal(listen(l, 4), 0);
		make_conf(&ca, "lb1", ADDR_A, "lb2", ADDR_B, port);
		node_new(&na, &ca);
		tu_pump(base, REFUSED_MS, EVLOOP_ONCE);
		channel_get_status(na.c, &st);
		/* Its SYN-ACK is unsigned: lb1's kernel drops it, the connect hangs. */
		assert_string_not_equal(st.state, "up");
		assert_int_equal(na.ups, 0);
		node_free(&na);
		close(l);
	}
}

/*
 * Forward secrecy (protocol 2): the session keys mix an ephemeral
 * crypto_kx exchange into the cluster-key derivation. raw_handshake checks
 * that the channel's confirmation does not open under the key the cluster
 * key and both recorded nonces give (protocol 1's); here two connections
 * with the same cluster key get different keys, and a hello without the
 * ephemeral key, or of protocol 1, is refused saying why.
 */
static void
test_forward_secrecy(void **state)
{
	struct channel_config cb;
	struct raw r1, r2;
	uint8_t body[512];
	uint16_t port = next_port++;
	size_t off = offsetof(struct channel_status, malformed);

	make_conf(&cb, "lb2", ADDR_B, "lb1", ADDR_A, port);
	node_new(&nb, &cb);
	assert_int_equal(raw_handshake(&r1, ADDR_A, port, "lb1", cluster_key, 0), 0);
	assert_true(wait_int(&nb.ups, 1, UP_MS) >= 0);
	assert_int_equal(raw_handshake(&r2, ADDR_A, port, "lb1", cluster_key, 0), 0);
	assert_true(wait_int(&nb.ups, 2, UP_MS) >= 0);
	assert_memory_not_equal(r1.tx, r2.tx, 32);
	assert_memory_not_equal(r1.rx, r2.rx, 32);
	assert_memory_not_equal(r1.tx, r1.rx, 32);
	raw_close(&r1);
	raw_close(&r2);
	tu_pump(base, 10, EVLOOP_ONCE);

	/* Protocol 2 but no kx_public: refused, and the log says what is missing. */
	memset(&r1, 0, sizeof(r1));
	randombytes_buf(r1.nonce, sizeof(r1.nonce));
	r1.fd = tcp_from(ADDR_A, ADDR_B, port, 0);
	raw_send_hello_v(&r1, "lb1", cluster_key, 2, false);
	assert_true(wait_counter(&nb, off, 0, WAIT_MS));
	assert_non_null(strstr(last_log, "no ephemeral key"));
	/* Our hello came, then the close: no sealed frame. */
	assert_true(raw_read(&r1, body, sizeof(body), WAIT_MS) > 0);
	assert_int_equal(body[0], 1);
	assert_int_equal(raw_read(&r1, body, sizeof(body), WAIT_MS), 0);
	raw_close(&r1);

	/* An lbd of protocol 1: refused with both versions named. */
	memset(&r1, 0, sizeof(r1));
	randombytes_buf(r1.nonce, sizeof(r1.nonce));
	r1.fd = tcp_from(ADDR_A, ADDR_B, port, 0);
	raw_send_hello_v(&r1, "lb1", cluster_key, 1, false);
	assert_true(wait_counter(&nb, off, 1, WAIT_MS));
	assert_non_null(strstr(last_log, "protocol 1, we speak 2"));
	raw_close(&r1);
	assert_int_equal(nb.ups, 2);
	node_free(&nb);
}

/* The Internet checksum of the buffers a and b, one after the other. */
static uint16_t
inet_csum(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	uint32_t sum = 0;
	size_t i;

	for (i = 0; i + 1 < alen; i += 2)
		sum += (uint32_t)a[i] << 8 | a[i + 1];
	for (i = 0; i + 1 < blen; i += 2)
		sum += (uint32_t)b[i] << 8 | b[i + 1];
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/*
 * Sends, with a raw socket, the RST that fd's peer would take as fd's
 * own: fd's address and port, exactly the sequence number the peer
 * expects next (read in TCP_REPAIR mode, so it needs CAP_NET_ADMIN).
 * Returns: 0 sent, -1 not possible here.
 */
static int
forge_rst(int fd)
{
	struct sockaddr_in l, r;
	socklen_t len = sizeof(l);
	uint8_t pkt[40], pseudo[12];
	uint32_t seq = 0, ack = 0;
	int on = 1, off = 0, q, raw;

	if (getsockname(fd, (struct sockaddr *)&l, &len) == -1 ||
	    getpeername(fd, (struct sockaddr *)&r, &len) == -1)
		return -1;
	if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &on, sizeof(on)) == -1)
		return -1;
	q = TCP_SEND_QUEUE;
	len = sizeof(seq);
	assert_int_equal(setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &q, sizeof(q)), 0);
	assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, &seq, &len), 0);
	q = TCP_RECV_QUEUE;
	assert_int_equal(setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &q, sizeof(q)), 0);
	assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, &ack, &len), 0);
	assert_int_equal(setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &off, sizeof(off)), 0);
	if ((raw = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW)) == -1)
		return -1;
	memset(pkt, 0, sizeof(pkt));
	pkt[0] = 0x45;
	pkt[3] = sizeof(pkt);
	pkt[8] = 64;
	pkt[9] = IPPROTO_TCP;
	memcpy(pkt + 12, &l.sin_addr, 4);
	memcpy(pkt + 16, &r.sin_addr, 4);
	memcpy(pkt + 20, &l.sin_port, 2);
	memcpy(pkt + 22, &r.sin_port, 2);
	be32(pkt + 24, seq);
	be32(pkt + 28, ack);
	pkt[32] = 5 << 4;
	pkt[33] = 0x14;			/* RST + ACK */
	memcpy(pseudo, pkt + 12, 8);
	pseudo[8] = 0;
	pseudo[9] = IPPROTO_TCP;
	pseudo[10] = 0;
	pseudo[11] = 20;
	q = inet_csum(pseudo, sizeof(pseudo), pkt + 20, 20);
	pkt[36] = (uint8_t)(q >> 8);
	pkt[37] = (uint8_t)q;
	q = inet_csum(pkt, 20, NULL, 0);
	pkt[10] = (uint8_t)(q >> 8);
	pkt[11] = (uint8_t)q;
	assert_int_equal(sendto(raw, pkt, sizeof(pkt), 0, (struct sockaddr *)&r, sizeof(r)),
	    (ssize_t)sizeof(pkt));
	close(raw);
	return 0;
}

/*
 * A forged in-window RST, as from the peer's address and port with the
 * exact next sequence number: it resets an unsigned connection (the
 * control: the forgery is right), but the channel's kernel drops it for
 * lacking the TCP_MD5SIG signature, so no down(peer_died) and no takeover.
 */
static void
test_forged_rst(void **state)
{
	struct sockaddr_storage ss;
	struct channel_config cb;
	struct raw r;
	uint8_t b;
	uint16_t port = next_port++;
	int l, c, a, on = 1;

	if (!netns_ok || geteuid() != 0) {
		fprintf(stderr, "  forged RST: skipped (needs root in a private namespace)\n");
		skip();
	}
	/* Control: a plain connection is reset by the forgery. */
	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(l != -1);
	assert_int_equal(setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)), 0);
	tu_set_addr(&ss, ADDR_B, port);
	assert_int_equal(bind(l, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)), 0);
	assert_int_equal(listen(l, 4), 0);
	c = tcp_connect(ADDR_A, ADDR_B, port, 0, NULL, WAIT_MS);
	assert_true(c != -1);
	a = accept(l, NULL, NULL);
	assert_true(a != -1);
	if (forge_rst(c) == -1) {
		close(a);
		close(c);
		close(l);
		fprintf(stderr, "  forged RST: skipped (no TCP_REPAIR or raw socket: %s)\n",
		    strerror(errno));
		skip();
	}
	tu_pump(base, 20, EVLOOP_ONCE);
	assert_int_equal(recv(a, &b, 1, MSG_DONTWAIT), -1);
	assert_int_equal(errno, ECONNRESET);
	close(a);
	close(c);
	close(l);

	/* The channel: its kernel drops the same forgery. */
	port = next_port++;
	make_conf(&cb, "lb2", ADDR_B, "lb1", ADDR_A, port);
	node_new(&nb, &cb);
	assert_int_equal(raw_handshake(&r, ADDR_A, port, "lb1", cluster_key, 0), 0);
	assert_true(wait_int(&nb.ups, 1, UP_MS) >= 0);
	tu_pump(base, 5, EVLOOP_ONCE);
	assert_int_equal(forge_rst(r.fd), 0);
	tu_pump(base, 50, EVLOOP_ONCE);
	assert_int_equal(nb.downs, 0);
	{
		struct channel_status st;

		channel_get_status(nb.c, &st);
		assert_string_equal(st.state, "up");
	}
	/* The real close still counts: the raw peer's kernel signs its FIN. */
	raw_close(&r);
	assert_true(wait_int(&nb.downs, 1, DEATH_MS) >= 0);
	assert_true(nb.peer_died);
	node_free(&nb);
}

static void
test_replays(void **state)
{
	Lbd__SyncFrame fb, *pf;
	Lbd__EntryBatch b;
	Lbd__StickyEntry e[2], *ptrs[2];
	struct channel_config cb;
	struct raw r, atk;
	uint8_t ip[2][16], body[4096], rec[RAW_REC];
	size_t reclen, off;
	uint16_t port = next_port++;
	ssize_t n;

	/* lb2 alone; the raw peer plays lb1 and sends two batches. */
	make_conf(&cb, "lb2", ADDR_B, "lb1", ADDR_A, port);
	node_new(&nb, &cb);
	assert_int_equal(raw_handshake(&r, ADDR_A, port, "lb1", cluster_key, 0), 0);
	assert_true(wait_int(&nb.ups, 1, UP_MS) >= 0);
	make_batch(&fb, &b, e, ptrs, ip, 2);
	raw_send_sealed(&r, &fb, ++r.tx_ctr);
	raw_send_sealed(&r, &fb, ++r.tx_ctr);
	assert_true(wait_int(&nb.frames, 2, WAIT_MS) >= 0);
	assert_int_equal(nb.entries, 4);
	reclen = r.reclen;
	memcpy(rec, r.rec, reclen);

	/* The recorded session replayed on a new connection: its hello is stale. */
	off = offsetof(struct channel_status, replays);
	atk.fd = tcp_from(ADDR_A, ADDR_B, port, 0);
	send_all(atk.fd, rec, reclen);
	assert_true(wait_counter(&nb, off, 0, WAIT_MS));
	close(atk.fd);
	assert_int_equal(nb.frames, 2);

	/* A frame replayed inside the live session: counter 2 again. */
	raw_send_sealed(&r, &fb, 2);
	assert_true(wait_counter(&nb, off, 1, WAIT_MS));
	assert_true(wait_int(&nb.downs, 1, WAIT_MS) >= 0);
	assert_false(nb.peer_died);
	assert_int_equal(nb.frames, 2);
	/* lb2 said why it closed: the peer can tell that from a death. */
	n = raw_read(&r, body, sizeof(body), WAIT_MS);
	assert_true(n > 0);
	pf = raw_open(&r, body, (size_t)n);
	while (pf != NULL && pf->body_case == LBD__SYNC_FRAME__BODY_KEEPALIVE) {
		lbd__sync_frame__free_unpacked(pf, NULL);
		n = raw_read(&r, body, sizeof(body), WAIT_MS);
		assert_true(n > 0);
		pf = raw_open(&r, body, (size_t)n);
	}
	assert_non_null(pf);
	assert_int_equal(pf->body_case, LBD__SYNC_FRAME__BODY_BYE);
	assert_non_null(strstr(pf->bye->reason, "replayed"));
	lbd__sync_frame__free_unpacked(pf, NULL);
	raw_close(&r);
	node_free(&nb);

	/* A restarted lb2 (nonce memory gone): the replay fails at the confirmation. */
	node_new(&nb, &cb);
	atk.fd = tcp_from(ADDR_A, ADDR_B, port, 0);
	send_all(atk.fd, rec, reclen);
	assert_true(wait_counter(&nb, offsetof(struct channel_status, auth_failures), 0,
	    WAIT_MS));
	close(atk.fd);
	assert_int_equal(nb.ups + nb.frames, 0);
	assert_int_equal(counter(&nb, off), 0);
	node_free(&nb);
}

static void
test_bye_replace_and_queue_cap(void **state)
{
	Lbd__SyncFrame fb, f = LBD__SYNC_FRAME__INIT;
	Lbd__Bye bye = LBD__BYE__INIT;
	Lbd__EntryBatch b;
	Lbd__StickyEntry e[500], *ptrs[500];
	struct channel_config cb;
	struct channel_status st;
	struct raw r1, r2;
	uint8_t ip[500][16];
	uint16_t port = next_port++;
	uint64_t t0;
	int i, rc = 0;

	make_conf(&cb, "lb2", ADDR_B, "lb1", ADDR_A, port);
	cb.max_queue_bytes = 1 << 20;
	cb.keepalive_ms = 100;
	cb.dead_ms = 600;
	node_new(&nb, &cb);

	/* A peer that says Bye: down, but not peer_died. */
	assert_int_equal(raw_handshake(&r1, ADDR_A, port, "lb1", cluster_key, 0), 0);
	assert_true(wait_int(&nb.ups, 1, UP_MS) >= 0);
	bye.reason = "testing";
	f.body_case = LBD__SYNC_FRAME__BODY_BYE;
	f.bye = &bye;
	raw_send_sealed(&r1, &f, ++r1.tx_ctr);
	assert_true(wait_int(&nb.downs, 1, WAIT_MS) >= 0);
	assert_false(nb.peer_died);
	assert_non_null(strstr(nb.reason, "testing"));
	raw_close(&r1);

	/* A new authenticated connection replaces the old one. */
	assert_int_equal(raw_handshake(&r1, ADDR_A, port, "lb1", cluster_key, 0), 0);
	assert_true(wait_int(&nb.ups, 2, UP_MS) >= 0);
	/* This one never reads, with a tiny receive buffer. */
	assert_int_equal(raw_handshake(&r2, ADDR_A, port, "lb1", cluster_key, 2048), 0);
	assert_true(wait_int(&nb.ups, 3, UP_MS) >= 0);
	assert_int_equal(nb.downs, 2);
	assert_non_null(strstr(nb.reason, "replaced"));
	raw_close(&r1);

	/* Fill: channel_send fails at the cap instead of growing the queue. */
	make_batch(&fb, &b, e, ptrs, ip, 500);
	t0 = clock_now_us();
	for (i = 0; i < 5000 && clock_now_us() - t0 < 1000000; i++) {
		if ((rc = channel_send(nb.c, &fb)) == -1)
			break;
		if (i % 8 == 0)
			event_base_loop(base, EVLOOP_NONBLOCK);
	}
	assert_int_equal(rc, -1);
	assert_true(channel_queued(nb.c) <= cb.max_queue_bytes);
	assert_true(channel_queued(nb.c) > cb.max_queue_bytes / 2);
	channel_get_status(nb.c, &st);
	assert_true(st.queue_full >= 1);
	fprintf(stderr, "  queue cap: send refused after %d frames of %zu bytes, %zu queued\n",
	    i, lbd__sync_frame__get_packed_size(&fb), channel_queued(nb.c));

	/* The raw peer also never sends: dropped as silent, which is no death. */
	assert_true(wait_int(&nb.downs, 3, 2 * (int)cb.dead_ms) >= 0);
	assert_false(nb.peer_died);
	assert_non_null(strstr(nb.reason, "silent"));
	assert_int_equal(channel_queued(nb.c), 0);
	raw_close(&r2);
	node_free(&nb);
}

static void
test_throughput(void **state)
{
	Lbd__SyncFrame fb;
	Lbd__EntryBatch b;
	Lbd__StickyEntry *e, **ptrs;
	uint8_t (*ip)[16];
	uint16_t port;
	struct rusage ru0, ru1;
	uint64_t t0, us, cpu;
	int sent = 0, want = 1000;

	e = calloc(1000, sizeof(*e));
	ptrs = calloc(1000, sizeof(*ptrs));
	ip = calloc(1000, sizeof(*ip));
	assert_true(e != NULL && ptrs != NULL && ip != NULL);
	make_batch(&fb, &b, e, ptrs, ip, 1000);
	pair_up(&port);
	getrusage(RUSAGE_SELF, &ru0);
	t0 = clock_now_us();
	while (nb.frames < want && clock_now_us() - t0 < 1500000) {
		/* Keep about 4 MiB in flight, as a bulk sync would. */
		while (sent < want && channel_queued(na.c) < (4u << 20) &&
		    channel_send(na.c, &fb) == 0)
			sent++;
		event_base_loop(base, EVLOOP_ONCE);
	}
	us = clock_now_us() - t0;
	getrusage(RUSAGE_SELF, &ru1);
	cpu = (uint64_t)((ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec + ru1.ru_stime.tv_sec -
	    ru0.ru_stime.tv_sec) * 1000000 + ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec +
	    ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec);
	assert_true(nb.frames >= 1);
	/* Both ends share this one thread: the figures are for sender + receiver. */
	fprintf(stderr, "  throughput: %d EntryBatch frames of 1000 entries (%zu bytes) in "
	    "%.1f ms: %.0f frames/s, %.0f entries/s, %.1f MB/s; CPU %.0f us/frame (both "
	    "ends)\n", nb.frames, lbd__sync_frame__get_packed_size(&fb), (double)us / 1000.0,
	    nb.frames * 1e6 / (double)us, (double)nb.entries * 1e6 / (double)us,
	    (double)nb.frames * (double)lbd__sync_frame__get_packed_size(&fb) / (double)us,
	    (double)cpu / nb.frames);
	assert_int_equal(nb.entries, (size_t)nb.frames * 1000);
	assert_int_equal(na.downs + nb.downs, 0);
	node_free(&na);
	node_free(&nb);
	free(e);
	free(ptrs);
	free(ip);
}

static void
test_ipv6(void **state)
{
	Lbd__SyncFrame f = LBD__SYNC_FRAME__INIT;
	Lbd__Clear cl = LBD__CLEAR__INIT;
	struct channel_config ca, cb;
	uint16_t port = next_port++;

	if (!netns_ok) {
		fprintf(stderr, "  IPv6: skipped (no private network namespace)\n");
		skip();
	}
	make_conf(&ca, "lb1", ADDR6_A, "lb2", ADDR6_B, port);
	make_conf(&cb, "lb2", ADDR6_B, "lb1", ADDR6_A, port);
	node_new(&nb, &cb);
	node_new(&na, &ca);
	assert_true(wait_int(&na.ups, 1, UP_MS) >= 0);
	assert_true(wait_int(&nb.ups, 1, UP_MS) >= 0);
	cl.service = "FTPS_VIP";
	cl.version = 5;
	cl.origin = "lb2";
	f.body_case = LBD__SYNC_FRAME__BODY_CLEAR;
	f.clear = &cl;
	assert_int_equal(channel_send(nb.c, &f), 0);
	assert_true(wait_int(&na.frames, 1, WAIT_MS) >= 0);
	assert_int_equal(na.last->body_case, LBD__SYNC_FRAME__BODY_CLEAR);
	assert_string_equal(na.last->clear->service, "FTPS_VIP");
	node_free(&nb);
	assert_true(wait_int(&na.downs, 1, DEATH_MS) >= 0);
	assert_true(na.peer_died);
	node_free(&na);
}

static void
test_own_frames_refused(void **state)
{
	Lbd__SyncFrame f = LBD__SYNC_FRAME__INIT;
	Lbd__Hello h = LBD__HELLO__INIT;
	Lbd__Bye b = LBD__BYE__INIT;
	uint16_t port;

	pair_up(&port);
	f.body_case = LBD__SYNC_FRAME__BODY_HELLO;
	f.hello = &h;
	assert_int_equal(channel_send(na.c, &f), -1);
	f.body_case = LBD__SYNC_FRAME__BODY_BYE;
	f.bye = &b;
	assert_int_equal(channel_send(na.c, &f), -1);
	assert_int_equal(channel_send(na.c, NULL), -1);
	tu_pump(base, 10, EVLOOP_ONCE);
	assert_int_equal(na.downs + nb.downs, 0);
	node_free(&na);
	node_free(&nb);
}

static void
test_bad_config(void **state)
{
	struct channel_config c;
	char err[256];

	make_conf(&c, "lb1", ADDR_A, "lb1", ADDR_B, 7412);
	assert_null(channel_new(base, &c, NULL, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "equals the node name"));
	make_conf(&c, "lb1", ADDR_A, "lb2", ADDR_A, 7412);
	assert_null(channel_new(base, &c, NULL, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "distinct"));
	make_conf(&c, "lb1", ADDR_A, "lb2", ADDR_B, 0);
	assert_null(channel_new(base, &c, NULL, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "sync port"));
	make_conf(&c, "lb1", ADDR_A, "lb2", ADDR_B, 7412);
	c.npeer_addr = 0;
	assert_null(channel_new(base, &c, NULL, NULL, err, sizeof(err)));
	make_conf(&c, "lb1", ADDR_A, "lb2", ADDR_B, 7412);
	c.keepalive_ms = 500;
	c.dead_ms = 400;
	assert_null(channel_new(base, &c, NULL, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "must exceed"));
	/* A port in use: channel_start fails, no leak. */
	make_conf(&c, "lb1", ADDR_A, "lb2", ADDR_B, next_port);
	node_new(&na, &c);
	{
		struct channel_callbacks cbs = { .log = on_log };
		struct channel *ch = channel_new(base, &c, &cbs, &na, err, sizeof(err));

		assert_non_null(ch);
		assert_int_equal(channel_start(ch), -1);
		channel_free(ch);
	}
	node_free(&na);
	next_port++;
}

/* Brings lo up in a fresh network namespace (no libnl needed for that). */
static int
lo_up(void)
{
	struct ifreq ifr;
	int s, rc;

	if ((s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	rc = ioctl(s, SIOCGIFFLAGS, &ifr);
	if (rc == 0) {
		ifr.ifr_flags |= IFF_UP;
		rc = ioctl(s, SIOCSIFFLAGS, &ifr);
	}
	close(s);
	return rc;
}

/* Adds addr/128 to lo. */
static int
lo_add6(const char *addr)
{
	struct test_in6_ifreq r;
	int s, rc;

	memset(&r, 0, sizeof(r));
	if (inet_pton(AF_INET6, addr, &r.addr) != 1 ||
	    (r.ifindex = (int)if_nametoindex("lo")) == 0)
		return -1;
	r.prefixlen = 128;
	if ((s = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	rc = ioctl(s, SIOCSIFADDR, &r);
	close(s);
	return rc;
}

static int
group_setup(void **state)
{

	if (sodium_init() == -1)
		return -1;
	randombytes_buf(cluster_key, sizeof(cluster_key));
	next_port = 7412;
	if (unshare(CLONE_NEWNET) == -1 || lo_up() == -1) {
		fprintf(stderr, "test_channel: no private network namespace (%s); running on "
		    "the host's loopback\n", strerror(errno));
		next_port = (uint16_t)(20000 + getpid() % 1500);	/* below the ephemeral range */
	} else {
		netns_ok = lo_add6(ADDR6_A) == 0 && lo_add6(ADDR6_B) == 0;
	}
	if ((base = tu_loop_new(&tick)) == NULL)
		return -1;
	return 0;
}

static int
group_teardown(void **state)
{
	tu_loop_free(base, tick);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_up_and_frames),
		cmocka_unit_test(test_keepalive_and_silence),
		cmocka_unit_test(test_peer_death),
		cmocka_unit_test(test_reconnect),
		cmocka_unit_test(test_kick),
		cmocka_unit_test(test_wrong_key),
		cmocka_unit_test(test_attackers),
		cmocka_unit_test(test_md5_required),
		cmocka_unit_test(test_forward_secrecy),
		cmocka_unit_test(test_forged_rst),
		cmocka_unit_test(test_replays),
		cmocka_unit_test(test_bye_replace_and_queue_cap),
		cmocka_unit_test(test_throughput),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test(test_own_frames_refused),
		cmocka_unit_test(test_bad_config),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
