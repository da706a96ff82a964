/*
 * sticky.c - the per-service sticky table: client IP -> backend index, with
 * O(1) lookup, one shared idle timeout and least-recently-used eviction.
 */
#include <sys/random.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "lbd.h"

#define STICKY_NONE		0		/* "no entry" in every uint32 link (links hold index + 1) */
#define STICKY_MAX_ENTRIES	(1U << 30)	/* largest table sticky_new accepts */

/*
 * One client. 48 bytes: links are uint32 indices, not pointers, so a
 * million clients cost 48 MB plus 4 MB of buckets.
 */
struct sticky_entry {
	struct lbd_ip	 ip;		/* the key: client address */
	uint64_t	 version;	/* replication version (last writer wins); 0 until replication sets it */
	uint32_t	 hnext;		/* next in hash chain, or next free entry; index + 1 */
	uint32_t	 lru_prev;	/* towards the most recently used; index + 1 */
	uint32_t	 lru_next;	/* towards the least recently used; index + 1 */
	uint32_t	 expires;	/* monotonic second it dies at: live while now < expires */
	uint16_t	 backend;	/* index in service->backends */
};

struct sticky_table {
	struct sticky_entry *entries;	/* max_entries, preallocated */
	uint32_t	*buckets;	/* nbuckets heads of hash chains; index + 1 */
	uint32_t	 nbuckets;	/* power of two >= max_entries */
	uint32_t	 max_entries;	/* capacity; past it the LRU entry is evicted */
	uint32_t	 count;		/* entries in use */
	uint32_t	 timeout_s;	/* lifetime after last use */
	uint32_t	 lru_head;	/* most recently used; index + 1 */
	uint32_t	 lru_tail;	/* least recently used; index + 1 */
	uint32_t	 free_head;	/* free list through hnext; index + 1 */
	uint64_t	 evictions;	/* live entries dropped because the table was full */
	unsigned char	 hash_key[crypto_shorthash_KEYBYTES]; /* random SipHash key: no forced collisions */
};

/* Entry at link value l (l != STICKY_NONE). */
static inline struct sticky_entry *
sticky_at(const struct sticky_table *t, uint32_t l)
{
	return &t->entries[l - 1];
}

/* Link value (index + 1) of entry e. */
static inline uint32_t
sticky_link(const struct sticky_table *t, const struct sticky_entry *e)
{
	return (uint32_t)(e - t->entries) + 1;
}

/* Bucket of ip: keyed SipHash-2-4, so clients cannot aim at one chain. */
static uint32_t
sticky_bucket(const struct sticky_table *t, const struct lbd_ip *ip)
{
	uint64_t	 h;

	crypto_shorthash((unsigned char *)&h, ip->bytes, sizeof(ip->bytes), t->hash_key);
	return (uint32_t)(h ^ (h >> 32)) & (t->nbuckets - 1);
}

static void
sticky_lru_unlink(struct sticky_table *t, struct sticky_entry *e)
{
	if (e->lru_prev != STICKY_NONE)
		sticky_at(t, e->lru_prev)->lru_next = e->lru_next;
	else
		t->lru_head = e->lru_next;
	if (e->lru_next != STICKY_NONE)
		sticky_at(t, e->lru_next)->lru_prev = e->lru_prev;
	else
		t->lru_tail = e->lru_prev;
	e->lru_prev = e->lru_next = STICKY_NONE;
}

static void
sticky_lru_push_head(struct sticky_table *t, struct sticky_entry *e)
{
	uint32_t	 l = sticky_link(t, e);

	e->lru_prev = STICKY_NONE;
	e->lru_next = t->lru_head;
	if (t->lru_head != STICKY_NONE)
		sticky_at(t, t->lru_head)->lru_prev = l;
	else
		t->lru_tail = l;
	t->lru_head = l;
}

/* Returns: the entry for ip (live or expired), or NULL. */
static struct sticky_entry *
sticky_find(const struct sticky_table *t, const struct lbd_ip *ip)
{
	uint32_t	 l;

	for (l = t->buckets[sticky_bucket(t, ip)]; l != STICKY_NONE; l = sticky_at(t, l)->hnext) {
		struct sticky_entry *e = sticky_at(t, l);

		if (memcmp(e->ip.bytes, ip->bytes, sizeof(ip->bytes)) == 0)
			return e;
	}
	return NULL;
}

/*
 * Takes e out of its hash chain and the LRU list and puts it on the free
 * list. The one place an entry goes away (expiry, eviction, delete); with
 * sticky_set (create, refresh) and sticky_flush (clear) it is where a
 * replication change observer will hook in.
 */
static void
sticky_remove(struct sticky_table *t, struct sticky_entry *e)
{
	uint32_t	*lp, l = sticky_link(t, e);

	for (lp = &t->buckets[sticky_bucket(t, &e->ip)]; *lp != l; lp = &sticky_at(t, *lp)->hnext)
		if (*lp == STICKY_NONE)
			fatalx("%s: entry missing from its hash chain", __func__);
	*lp = e->hnext;
	sticky_lru_unlink(t, e);
	memset(e, 0, sizeof(*e));
	e->hnext = t->free_head;
	t->free_head = l;
	t->count--;
}

static bool
sticky_live(const struct sticky_entry *e, uint32_t now)
{
	return now < e->expires;
}

/* Rebuilds the free list with every entry and empties chains and LRU. */
static void
sticky_reset(struct sticky_table *t)
{
	uint32_t	 i;

	memset(t->buckets, 0, (size_t)t->nbuckets * sizeof(*t->buckets));
	memset(t->entries, 0, (size_t)t->max_entries * sizeof(*t->entries));
	for (i = 0; i < t->max_entries; i++)
		t->entries[i].hnext = i + 1 < t->max_entries ? i + 2 : STICKY_NONE;
	t->free_head = t->max_entries > 0 ? 1 : STICKY_NONE;
	t->lru_head = t->lru_tail = STICKY_NONE;
	t->count = 0;
}

struct sticky_table *
sticky_new(uint32_t max_entries, uint32_t timeout_s)
{
	struct sticky_table *t = NULL;
	ssize_t		 n;

	if (max_entries == 0 || max_entries > STICKY_MAX_ENTRIES) {
		log_warnx("sticky table size %u out of range 1-%u", max_entries,
		    STICKY_MAX_ENTRIES);
		return NULL;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		log_warn("%s: calloc", __func__);
		goto fail;
	}
	t->max_entries = max_entries;
	t->timeout_s = timeout_s;
	for (t->nbuckets = 1; t->nbuckets < max_entries; t->nbuckets <<= 1)
		;
	if ((t->entries = calloc(max_entries, sizeof(*t->entries))) == NULL ||
	    (t->buckets = calloc(t->nbuckets, sizeof(*t->buckets))) == NULL) {
		log_warn("sticky table of %u entries", max_entries);
		goto fail;
	}
	/* Idempotent; libsodium asks for it before any other call. */
	if (sodium_init() == -1) {
		log_warnx("%s: sodium_init failed", __func__);
		goto fail;
	}
	do
		n = getrandom(t->hash_key, sizeof(t->hash_key), 0);
	while (n == -1 && errno == EINTR);
	if (n == -1 || (size_t)n != sizeof(t->hash_key)) {
		log_warn("%s: getrandom", __func__);
		goto fail;
	}
	sticky_reset(t);
	return t;
fail:
	sticky_free(t);
	return NULL;
}

void
sticky_free(struct sticky_table *t)
{
	if (t == NULL)
		return;
	free(t->entries);
	free(t->buckets);
	free(t);
}

int
sticky_lookup(struct sticky_table *t, const struct lbd_ip *ip, uint32_t now)
{
	struct sticky_entry *e;

	if ((e = sticky_find(t, ip)) == NULL)
		return -1;
	if (!sticky_live(e, now)) {
		sticky_remove(t, e);
		return -1;
	}
	return e->backend;
}

void
sticky_set(struct sticky_table *t, const struct lbd_ip *ip, int backend, uint32_t now)
{
	struct sticky_entry *e;
	uint32_t	 b;

	if (backend < 0 || backend > UINT16_MAX)
		fatalx("%s: backend index %d out of range", __func__, backend);

	if ((e = sticky_find(t, ip)) != NULL) {
		sticky_lru_unlink(t, e);
	} else {
		if (t->free_head == STICKY_NONE) {
			/* Full: the LRU tail goes; only a live one counts as evicted. */
			e = sticky_at(t, t->lru_tail);
			if (sticky_live(e, now))
				t->evictions++;
			sticky_remove(t, e);
		}
		e = sticky_at(t, t->free_head);
		t->free_head = e->hnext;
		e->ip = *ip;
		b = sticky_bucket(t, ip);
		e->hnext = t->buckets[b];
		t->buckets[b] = sticky_link(t, e);
		t->count++;
	}
	e->backend = (uint16_t)backend;
	/* Saturate instead of wrapping to a time in the past. */
	e->expires = now > UINT32_MAX - t->timeout_s ? UINT32_MAX : now + t->timeout_s;
	sticky_lru_push_head(t, e);
}

int
sticky_delete(struct sticky_table *t, const struct lbd_ip *ip)
{
	struct sticky_entry *e;

	if ((e = sticky_find(t, ip)) == NULL)
		return 0;
	sticky_remove(t, e);
	return 1;
}

void
sticky_flush(struct sticky_table *t)
{
	sticky_reset(t);
}

/*
 * Every entry shares one timeout, so LRU order is expiry order: walk from
 * the tail and stop at the first live entry. O(expired entries).
 */
uint32_t
sticky_expire(struct sticky_table *t, uint32_t now)
{
	uint32_t	 n = 0;

	while (t->lru_tail != STICKY_NONE && !sticky_live(sticky_at(t, t->lru_tail), now)) {
		sticky_remove(t, sticky_at(t, t->lru_tail));
		n++;
	}
	return n;
}

uint32_t
sticky_count(const struct sticky_table *t)
{
	return t->count;
}

uint64_t
sticky_evictions(const struct sticky_table *t)
{
	return t->evictions;
}

uint32_t
sticky_timeout(const struct sticky_table *t)
{
	return t->timeout_s;
}

int64_t
sticky_expires_in(struct sticky_table *t, const struct lbd_ip *ip, uint32_t now)
{
	struct sticky_entry *e;

	if ((e = sticky_find(t, ip)) == NULL)
		return -1;
	if (!sticky_live(e, now)) {
		sticky_remove(t, e);
		return -1;
	}
	return (int64_t)e->expires - now;
}

/* fn may delete the entry it is given, but nothing else. */
void
sticky_foreach(struct sticky_table *t, uint32_t now,
    void (*fn)(const struct lbd_ip *ip, int backend, uint32_t expires_in_s, void *arg),
    void *arg)
{
	uint32_t	 l, next;

	for (l = t->lru_head; l != STICKY_NONE; l = next) {
		struct sticky_entry *e = sticky_at(t, l);

		next = e->lru_next;
		if (sticky_live(e, now))
			fn(&e->ip, e->backend, e->expires - now, arg);
	}
}

size_t
sticky_entry_size(void)
{
	return sizeof(struct sticky_entry);
}
