/*
 * chancrypt.c - the replication channel's handshake and frame crypto: the
 * hello and its MAC, the per-connection keys, sealing and opening frames,
 * the replay checks; channel.c has the connections these run on, and
 * carries out what these functions make of a frame (enum chan_verdict):
 * nothing here closes a connection or calls channel.c.
 *
 * Wire format and crypto are written down in proto/README.md. In short:
 * every frame is a 4-byte big-endian body length and a body whose first
 * byte is its kind. Each side first sends a hello (kind 1: a packed
 * SyncFrame{hello} with a fresh 32-byte nonce, then an HMAC-SHA-512-256
 * under a subkey of the cluster key) and a fresh ephemeral crypto_kx
 * public key. Both then derive one key per direction, BLAKE2b(key =
 * session subkey, crypto_kx key of that direction || sender nonce ||
 * receiver nonce), the connecting side as the kx client, wipe the
 * ephemeral secret (forward secrecy: the cluster key and a recording of
 * the session are not enough to open it later), and send only sealed
 * frames (kind 2: a 64-bit counter, then the
 * XChaCha20-Poly1305 ciphertext of a packed SyncFrame; the counter is the
 * nonce, the clear header is the additional data). The first sealed frame
 * each way repeats the hello: it proves the sender holds the key for THIS
 * session, so a recorded session replayed into a new one fails.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <sodium.h>

#include "hasync.pb-c.h"
#include "hasync_int.h"

#define CHAN_PROTOCOL		2	/* Hello.protocol we speak (2: kx_public, forward secrecy) */
#define CHAN_SEAL_HDR		(CHAN_LEN_BYTES + 1 + CHAN_CTR_BYTES) /* clear, authenticated */
#define CHAN_AEAD_NONCE		crypto_aead_xchacha20poly1305_ietf_NPUBBYTES	/* 24 */
#define CHAN_MAC_BYTES		crypto_auth_BYTES	/* 32: HMAC-SHA-512-256 of a hello */

static int	conn_make_keys(struct chan_conn *, const uint8_t *);
static void	chan_fail(struct chan_why *, enum chan_logkind, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

/* A refusal: why channel.c closes the connection (conn_fail), in why. */
static void
chan_fail(struct chan_why *why, enum chan_logkind kind, const char *fmt, ...)
{
	va_list ap;

	why->kind = kind;
	va_start(ap, fmt);
	vsnprintf(why->text, sizeof(why->text), fmt, ap);
	va_end(ap);
}

void
chan_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

uint32_t
chan_get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void
chan_be64(uint8_t *p, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t
chan_get_be64(const uint8_t *p)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* The AEAD nonce of frame ctr: 16 zero bytes, then the counter big-endian. */
static void
chan_aead_nonce(uint8_t nonce[CHAN_AEAD_NONCE], uint64_t ctr)
{
	memset(nonce, 0, CHAN_AEAD_NONCE);
	chan_be64(nonce + CHAN_AEAD_NONCE - CHAN_CTR_BYTES, ctr);
}

/* Was this hello nonce seen lately? Remembers it if not. */
static bool
chan_nonce_seen(struct channel *ch, const uint8_t *nonce)
{
	int i;

	for (i = 0; i < ch->nseen; i++)
		if (sodium_memcmp(ch->seen[i], nonce, CHAN_NONCE_BYTES) == 0)
			return true;
	memcpy(ch->seen[ch->seen_next], nonce, CHAN_NONCE_BYTES);
	ch->seen_next = (ch->seen_next + 1) % CHAN_NONCES_KEPT;
	if (ch->nseen < CHAN_NONCES_KEPT)
		ch->nseen++;
	return false;
}

/*
 * Our hello: SyncFrame{hello} packed, MACed with the hello subkey.
 * Returns: CHAN_TAKEN queued, CHAN_FAIL not (why says why: close it).
 */
enum chan_verdict
conn_send_hello(struct chan_conn *c, struct chan_why *why)
{
	struct channel *ch = c->ch;
	Lbd__SyncFrame f = LBD__SYNC_FRAME__INIT;
	Lbd__Hello h = LBD__HELLO__INIT;
	uint8_t buf[CHAN_LEN_BYTES + CHAN_HS_FRAME_MAX];
	size_t plen, blen;

	h.protocol = CHAN_PROTOCOL;
	h.node = ch->conf.node_name;
	h.boot_id = ch->boot_id;
	h.nonce.data = c->nonce;
	h.nonce.len = sizeof(c->nonce);
	h.kx_public.data = c->kx_pk;
	h.kx_public.len = sizeof(c->kx_pk);
	f.body_case = LBD__SYNC_FRAME__BODY_HELLO;
	f.hello = &h;
	plen = lbd__sync_frame__get_packed_size(&f);
	blen = 1 + plen + CHAN_MAC_BYTES;
	if (blen > CHAN_HS_FRAME_MAX) {	/* names are < 64 bytes: cannot happen */
		chan_fail(why, CHAN_LOG_IO, "our hello is too big (%zu bytes)", blen);
		return CHAN_FAIL;
	}
	chan_be32(buf, (uint32_t)blen);
	buf[CHAN_LEN_BYTES] = CHAN_KIND_HELLO;
	lbd__sync_frame__pack(&f, buf + CHAN_LEN_BYTES + 1);
	crypto_auth(buf + CHAN_LEN_BYTES + 1 + plen, buf + CHAN_LEN_BYTES, 1 + plen,
	    ch->hello_key);
	if (evbuffer_add(c->out, buf, CHAN_LEN_BYTES + blen) == -1) {
		chan_fail(why, CHAN_LOG_IO, "out of memory");
		return CHAN_FAIL;
	}
	event_add(c->ev_write, NULL);
	return CHAN_TAKEN;
}

/*
 * Seals f, of packed size plen, into c's output queue (no queue cap check:
 * channel_send does it).
 * Returns: 0 queued, -1 out of memory or too big (nothing queued).
 */
int
conn_send(struct chan_conn *c, const Lbd__SyncFrame *f, size_t plen)
{
	struct channel *ch = c->ch;
	struct evbuffer_iovec v;
	uint8_t nonce[CHAN_AEAD_NONCE], *p;
	unsigned long long clen = 0;
	size_t blen;

	if (plen > CHAN_PLAIN_MAX)
		return -1;
	if (ch->tx_plain == NULL && (ch->tx_plain = malloc(CHAN_PLAIN_MAX)) == NULL)
		return -1;
	blen = CHAN_SEAL_OVERHEAD + plen;
	if (evbuffer_reserve_space(c->out, (ev_ssize_t)(CHAN_LEN_BYTES + blen), &v, 1) < 1)
		return -1;
	p = v.iov_base;
	lbd__sync_frame__pack(f, ch->tx_plain);
	c->tx_ctr++;
	chan_be32(p, (uint32_t)blen);
	p[CHAN_LEN_BYTES] = CHAN_KIND_SEALED;
	chan_be64(p + CHAN_LEN_BYTES + 1, c->tx_ctr);
	chan_aead_nonce(nonce, c->tx_ctr);
	crypto_aead_xchacha20poly1305_ietf_encrypt(p + CHAN_SEAL_HDR, &clen, ch->tx_plain,
	    plen, p, CHAN_SEAL_HDR, NULL, nonce, c->tx_key);
	sodium_memzero(ch->tx_plain, plen);	/* client addresses: personal data */
	v.iov_len = CHAN_LEN_BYTES + blen;
	evbuffer_commit_space(c->out, &v, 1);
	if (c->state == CHAN_CONN_UP)
		ch->st.frames_sent++;
	event_add(c->ev_write, NULL);
	return 0;
}

/*
 * A hello body (kind, packed SyncFrame, MAC): checks the MAC, the peer's
 * name and protocol, and that the nonce is fresh; then derives the session
 * keys (conn_make_keys) and sends our confirmation, the first sealed frame.
 * Returns: CHAN_TAKEN taken, CHAN_FAIL refused (why says why: close it).
 */
enum chan_verdict
conn_rx_hello(struct chan_conn *c, const uint8_t *body, size_t len, struct chan_why *why)
{
	struct channel *ch = c->ch;
	Lbd__SyncFrame *f = NULL, cf = LBD__SYNC_FRAME__INIT;
	Lbd__Hello *h, ch_hello = LBD__HELLO__INIT;
	uint8_t peer_pk[crypto_kx_PUBLICKEYBYTES];
	size_t plen;

	if (c->state != CHAN_CONN_HELLO) {
		ch->st.malformed++;
		chan_fail(why, CHAN_LOG_MALFORMED, "second hello on one connection");
		return CHAN_FAIL;
	}
	if (len < 1 + CHAN_MAC_BYTES + 1) {
		ch->st.malformed++;
		chan_fail(why, CHAN_LOG_MALFORMED, "hello of %zu bytes is too short", len);
		return CHAN_FAIL;
	}
	plen = len - 1 - CHAN_MAC_BYTES;
	if (crypto_auth_verify(body + 1 + plen, body, 1 + plen, ch->hello_key) != 0) {
		ch->st.auth_failures++;
		chan_fail(why, CHAN_LOG_AUTH, "hello failed authentication (wrong cluster key on "
		    "one node, or forged)");
		return CHAN_FAIL;
	}
	f = lbd__sync_frame__unpack(NULL, plen, body + 1);
	if (f == NULL || f->body_case != LBD__SYNC_FRAME__BODY_HELLO ||
	    (h = f->hello)->node == NULL || h->nonce.len != CHAN_NONCE_BYTES) {
		ch->st.malformed++;
		chan_fail(why, CHAN_LOG_MALFORMED, "authentic hello with bad fields (other lbd "
		    "version?)");
		goto fail;
	}
	if (h->protocol != CHAN_PROTOCOL) {
		ch->st.malformed++;
		chan_fail(why, CHAN_LOG_MALFORMED, "peer speaks sync protocol %u, we speak %d: "
		    "run the same lbd version on both nodes", h->protocol, CHAN_PROTOCOL);
		goto fail;
	}
	if (h->kx_public.len != sizeof(peer_pk)) {
		ch->st.malformed++;
		chan_fail(why, CHAN_LOG_MALFORMED, "hello carries no ephemeral key (kx_public, %zu "
		    "bytes instead of %zu): no forward secrecy without it; run the same lbd "
		    "version on both nodes", h->kx_public.len, sizeof(peer_pk));
		goto fail;
	}
	if (strcmp(h->node, ch->conf.peer_name) != 0) {
		ch->st.auth_failures++;
		chan_fail(why, CHAN_LOG_AUTH, "hello names node \"%.64s\", not our peer \"%s\"%s",
		    h->node, ch->conf.peer_name, strcmp(h->node, ch->conf.node_name) == 0 ?
		    " (our own hello looped back, or both nodes have this name?)" : "");
		goto fail;
	}
	if (chan_nonce_seen(ch, h->nonce.data) ||
	    sodium_memcmp(h->nonce.data, c->nonce, CHAN_NONCE_BYTES) == 0) {
		ch->st.replays++;
		chan_fail(why, CHAN_LOG_REPLAY, "replayed hello (its nonce was seen before)");
		goto fail;
	}
	memcpy(c->peer_nonce, h->nonce.data, CHAN_NONCE_BYTES);
	memcpy(peer_pk, h->kx_public.data, sizeof(peer_pk));
	c->peer_boot = h->boot_id;
	lbd__sync_frame__free_unpacked(f, NULL);
	if (conn_make_keys(c, peer_pk) == -1) {
		ch->st.malformed++;
		chan_fail(why, CHAN_LOG_MALFORMED, "authentic hello with an unusable ephemeral key "
		    "(not an X25519 public key)");
		return CHAN_FAIL;
	}
	c->state = CHAN_CONN_CONFIRM;

	/* Confirmation: our hello again, sealed, proves we hold this session's key. */
	ch_hello.protocol = CHAN_PROTOCOL;
	ch_hello.node = ch->conf.node_name;
	ch_hello.boot_id = ch->boot_id;
	cf.body_case = LBD__SYNC_FRAME__BODY_HELLO;
	cf.hello = &ch_hello;
	if (conn_send(c, &cf, lbd__sync_frame__get_packed_size(&cf)) == -1) {
		chan_fail(why, CHAN_LOG_IO, "out of memory");
		return CHAN_FAIL;
	}
	return CHAN_TAKEN;
fail:
	if (f != NULL)
		lbd__sync_frame__free_unpacked(f, NULL);
	return CHAN_FAIL;
}

/*
 * The session keys, one per direction:
 *   K = BLAKE2b-256(key = session subkey, kx key || sender nonce || receiver nonce)
 * where the kx key of that direction comes from crypto_kx between our
 * ephemeral key pair and the peer's public key (the connecting side is
 * the kx client, so both sides agree on the roles). The ephemeral secret
 * is wiped here, used or not: once both sides have done so, nothing that
 * survives the connection, the cluster key included, yields its keys.
 * Returns: 0 made, -1 the peer's public key is unusable.
 */
static int
conn_make_keys(struct chan_conn *c, const uint8_t *peer_pk)
{
	struct channel *ch = c->ch;
	uint8_t kx_rx[crypto_kx_SESSIONKEYBYTES], kx_tx[crypto_kx_SESSIONKEYBYTES];
	uint8_t in[crypto_kx_SESSIONKEYBYTES + 2 * CHAN_NONCE_BYTES];
	int rc;

	if (c->outbound)
		rc = crypto_kx_client_session_keys(kx_rx, kx_tx, c->kx_pk, c->kx_sk, peer_pk);
	else
		rc = crypto_kx_server_session_keys(kx_rx, kx_tx, c->kx_pk, c->kx_sk, peer_pk);
	sodium_memzero(c->kx_sk, sizeof(c->kx_sk));
	if (rc != 0)
		goto done;
	/* Sender's nonce first, so each direction has its own key. */
	memcpy(in, kx_tx, sizeof(kx_tx));
	memcpy(in + sizeof(kx_tx), c->nonce, CHAN_NONCE_BYTES);
	memcpy(in + sizeof(kx_tx) + CHAN_NONCE_BYTES, c->peer_nonce, CHAN_NONCE_BYTES);
	crypto_generichash(c->tx_key, sizeof(c->tx_key), in, sizeof(in), ch->session_key,
	    sizeof(ch->session_key));
	memcpy(in, kx_rx, sizeof(kx_rx));
	memcpy(in + sizeof(kx_rx), c->peer_nonce, CHAN_NONCE_BYTES);
	memcpy(in + sizeof(kx_rx) + CHAN_NONCE_BYTES, c->nonce, CHAN_NONCE_BYTES);
	crypto_generichash(c->rx_key, sizeof(c->rx_key), in, sizeof(in), ch->session_key,
	    sizeof(ch->session_key));
done:
	sodium_memzero(kx_rx, sizeof(kx_rx));
	sodium_memzero(kx_tx, sizeof(kx_tx));
	sodium_memzero(in, sizeof(in));
	return rc == 0 ? 0 : -1;
}

/*
 * A sealed frame (frame points at its length prefix; len is the body's):
 * opens it, checks the counter, then either completes the handshake (the
 * confirmation) or delivers the frame.
 * Returns: CHAN_TAKEN delivered or skipped, CHAN_CONFIRMED the peer's
 * confirmation (the connection is up), CHAN_BYE the peer closes (why),
 * CHAN_FAIL refused (why).
 */
enum chan_verdict
conn_rx_sealed(struct chan_conn *c, const uint8_t *frame, size_t len,
    struct chan_why *why)
{
	struct channel *ch = c->ch;
	uint8_t nonce[CHAN_AEAD_NONCE];
	unsigned long long plen = 0;
	Lbd__SyncFrame *f;
	uint64_t ctr;

	if (c->state < CHAN_CONN_CONFIRM) {
		ch->st.malformed++;
		chan_fail(why, CHAN_LOG_MALFORMED, "sealed frame before the hello");
		return CHAN_FAIL;
	}
	if (len < CHAN_SEAL_OVERHEAD) {
		ch->st.malformed++;
		chan_fail(why, CHAN_LOG_MALFORMED, "sealed frame of %zu bytes is too short", len);
		return CHAN_FAIL;
	}
	if (ch->rx_plain == NULL && (ch->rx_plain = malloc(CHAN_PLAIN_MAX)) == NULL) {
		chan_fail(why, CHAN_LOG_IO, "out of memory");
		return CHAN_FAIL;
	}
	ctr = chan_get_be64(frame + CHAN_LEN_BYTES + 1);
	chan_aead_nonce(nonce, ctr);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(ch->rx_plain, &plen, NULL,
	    frame + CHAN_SEAL_HDR, CHAN_LEN_BYTES + len - CHAN_SEAL_HDR, frame, CHAN_SEAL_HDR,
	    nonce, c->rx_key) != 0) {
		ch->st.auth_failures++;
		chan_fail(why, CHAN_LOG_AUTH, "frame %llu failed authentication (forged, "
		    "corrupted, or from another session)", (unsigned long long)ctr);
		return CHAN_FAIL;
	}
	if (ctr != c->rx_ctr + 1) {
		sodium_memzero(ch->rx_plain, (size_t)plen);
		ch->st.replays++;
		chan_fail(why, CHAN_LOG_REPLAY, "frame counter %llu where %llu was due (replayed, "
		    "reordered or dropped frame)", (unsigned long long)ctr,
		    (unsigned long long)(c->rx_ctr + 1));
		return CHAN_FAIL;
	}
	c->rx_ctr = ctr;
	f = lbd__sync_frame__unpack(NULL, (size_t)plen, ch->rx_plain);
	sodium_memzero(ch->rx_plain, (size_t)plen);
	if (f == NULL) {
		ch->st.malformed++;
		chan_fail(why, CHAN_LOG_MALFORMED, "authentic frame %llu does not decode (other "
		    "lbd version?)", (unsigned long long)ctr);
		return CHAN_FAIL;
	}
	c->last_rx_ms = clock_now_ms();
	if (c->state == CHAN_CONN_CONFIRM) {
		if (f->body_case != LBD__SYNC_FRAME__BODY_HELLO || f->hello->node == NULL ||
		    strcmp(f->hello->node, ch->conf.peer_name) != 0) {
			lbd__sync_frame__free_unpacked(f, NULL);
			ch->st.malformed++;
			chan_fail(why, CHAN_LOG_MALFORMED, "first sealed frame is not the peer's "
			    "hello confirmation");
			return CHAN_FAIL;
		}
		lbd__sync_frame__free_unpacked(f, NULL);
		return CHAN_CONFIRMED;
	}
	if (f->body_case == LBD__SYNC_FRAME__BODY_HELLO) {
		lbd__sync_frame__free_unpacked(f, NULL);
		ch->st.malformed++;
		chan_fail(why, CHAN_LOG_MALFORMED, "hello after the handshake");
		return CHAN_FAIL;
	}
	if (f->body_case == LBD__SYNC_FRAME__BODY_BYE) {
		c->bye_received = true;
		snprintf(why->text, sizeof(why->text), "peer closed the channel: %.120s",
		    f->bye->reason != NULL ? f->bye->reason : "");
		lbd__sync_frame__free_unpacked(f, NULL);
		return CHAN_BYE;
	}
	if (f->body_case == LBD__SYNC_FRAME__BODY__NOT_SET) {
		/* Authentic, of a kind a newer peer knows and we do not: skipped. */
		chan_log(ch, 2, "sync channel: skipping frame %llu of an unknown kind",
		    (unsigned long long)ctr);
	} else {
		ch->st.frames_received++;
		if (ch->cb.frame != NULL)
			ch->cb.frame(ch->arg, f);
	}
	lbd__sync_frame__free_unpacked(f, NULL);
	return CHAN_TAKEN;
}
