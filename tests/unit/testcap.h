/* testcap.h - a sync transport for unit tests that keeps every frame sent, packed, for decoding. */
#ifndef TESTCAP_H
#define TESTCAP_H

/*
 * Header-only (static inline), like testutil.h. Include it after <cmocka.h>
 * and its prerequisites. Zero-initialise a struct tc_cap, attach it, and
 * tc_free it at the end.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hasync.pb-c.h"
#include "hasync.h"
#include "testutil.h"

/* Frames a test transport captured. */
struct tc_cap {
	uint8_t		**buf;		/* packed frames */
	size_t		*len;		/* their lengths */
	int		 n, cap;	/* count, room */
	size_t		 queued;	/* what queued() answers */
	bool		 fail;		/* send() refuses */
};

static inline int
tc_send(void *arg, const Lbd__SyncFrame *f)
{
	struct tc_cap	*c = arg;
	size_t		 len;

	if (c->fail)
		return -1;
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 64;
		c->buf = realloc(c->buf, (size_t)c->cap * sizeof(*c->buf));
		c->len = realloc(c->len, (size_t)c->cap * sizeof(*c->len));
		assert_non_null(c->buf);
		assert_non_null(c->len);
	}
	len = lbd__sync_frame__get_packed_size(f);
	c->buf[c->n] = malloc(len + 1);
	assert_non_null(c->buf[c->n]);
	lbd__sync_frame__pack(f, c->buf[c->n]);
	c->len[c->n++] = len;
	return 0;
}

static inline size_t
tc_queued(void *arg)
{
	struct tc_cap *c = arg;

	return c->queued;
}

/* Frames go to c from now on. */
static inline void
tc_attach(struct sync *s, struct tc_cap *c)
{
	struct sync_transport t = { tc_send, tc_queued };

	sync_set_transport(s, &t, c);
}

/* Forgets the frames captured so far. */
static inline void
tc_reset(struct tc_cap *c)
{
	for (int i = 0; i < c->n; i++)
		free(c->buf[i]);
	c->n = 0;
}

static inline void
tc_free(struct tc_cap *c)
{
	tc_reset(c);
	free(c->buf);
	free(c->len);
	memset(c, 0, sizeof(*c));
}

/* Frame i, decoded (caller frees with lbd__sync_frame__free_unpacked). */
static inline Lbd__SyncFrame *
tc_frame(const struct tc_cap *c, int i)
{
	Lbd__SyncFrame *f;

	assert_true(i < c->n);
	f = lbd__sync_frame__unpack(NULL, c->len[i], c->buf[i]);
	assert_non_null(f);
	return f;
}

/*
 * Runs base's loop (EVLOOP_NONBLOCK) until c holds n frames or timeout_ms
 * passed: a wait on the outcome, not a guess at how long it takes.
 * Returns: whether c holds n frames (or more).
 */
static inline bool
tc_wait(struct event_base *base, const struct tc_cap *c, int n, int timeout_ms)
{
	uint64_t end = clock_now_us() + (uint64_t)timeout_ms * 1000;

	while (c->n < n && clock_now_us() < end)
		event_base_loop(base, EVLOOP_NONBLOCK);
	return c->n >= n;
}

#endif /* TESTCAP_H */
