/*
 * sticky.c - the per-service sticky table: client IP -> backend index, with
 * O(1) lookup, one shared idle timeout, least-recently-used eviction, and
 * the change tracking that replication (replica.c, SPEC 7) reads.
 *
 * Order: the LRU list is kept sorted by expiry (head: latest). Local sets
 * expire `timeout` after now, the latest possible, so they go to the head;
 * entries from the peer carry a shorter remaining lifetime and are inserted
 * where their expiry belongs, found through `runs` (per expiry second, the
 * head-most entry dying at that second) and `occ`, a 64-ary bitmap tree of
 * the seconds that have a run: the latest occupied second at or before an
 * expiry is a few word scans away (4 levels for a week of seconds), so an
 * insert costs the same whatever the lifetime and the order entries come
 * in. So the tail is always the next to die, sticky_expire stays
 * O(expired) and eviction takes the entry closest to its end. This needs
 * callers to pass a monotonic `now`.
 *
 * Replication: once sticky_replicate() is on, every local change gets a
 * version from the node's hybrid logical clock and a dirty mark: an
 * intrusive FIFO through the entries, so pending changes coalesce per
 * client and can never outnumber the table. A refresh that moves the
 * expiry by less than sticky_resend_s() (1% of the timeout, 1-30 s) is not
 * marked: the peer's copy then dies at most that much early. A delete
 * leaves a tombstone (same slot, same expiry, newer version) so an older
 * copy of the entry arriving later cannot bring it back; a clear leaves a
 * version floor for the same reason. Expiry is not replicated: the peer's
 * copy carries the remaining lifetime and dies on its own.
 *
 * A clear newer than every version in the table empties it at once (a
 * reset: memsets, 20-100 ms for 16M entries). Otherwise some entries
 * outlive it, and removing the rest one by one (8 s for 16M, once in one
 * loop turn) goes in steps of STICKY_CLEAR_SLOTS slots, sticky_clear_step,
 * driven by replica.c a loop turn at a time; until then an entry the
 * clear covers counts as gone: found, it is dropped; walks skip it.
 */
#include <sys/random.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "lbd.h"

#define STICKY_NONE		0		/* "no entry" in every uint32 link (links hold index + 1) */
#define STICKY_MAX_ENTRIES	(1U << 30)	/* largest table sticky_new accepts */
#define STICKY_RESEND_MAX_S	30		/* a refresh is replicated at least this often */
#define STICKY_SCAN_SLOTS	65536		/* slots sticky_scan visits per call at most */
#define STICKY_EVICT_SKIP	8		/* unsent changes eviction passes over, at most */
#define STICKY_CLEAR_SLOTS	2048		/* slots sticky_clear sweeps before it returns (~3 ms at most) */
#define STICKY_F_USED		0x01		/* slot holds an entry (or tombstone) */
#define STICKY_F_TOMB		0x02		/* deleted: kept only to carry the delete's version */
#define STICKY_F_DIRTY		0x04		/* on the dirty list: to be replicated */
#define STICKY_OCC_LEVELS	6		/* bitmap tree levels: 64^6 covers any nruns */

/*
 * One client. 56 bytes: links are uint32 indices, not pointers, so a
 * million clients cost 56 MB plus 4 MB of buckets.
 */
struct sticky_entry {
	struct lbd_ip	 ip;		/* the key: client address */
	uint64_t	 version;	/* replication version (last writer wins) */
	uint32_t	 hnext;		/* next in hash chain, or next free entry; index + 1 */
	uint32_t	 lru_prev;	/* towards the latest expiry (most recently used); index + 1 */
	uint32_t	 lru_next;	/* towards the earliest expiry; index + 1 */
	uint32_t	 dirty_prev;	/* towards older pending changes; index + 1 */
	uint32_t	 dirty_next;	/* towards newer pending changes; index + 1 */
	uint32_t	 expires;	/* monotonic second it dies at: live while now < expires */
	uint32_t	 sent_expires;	/* expires as last replicated (or received) */
	uint16_t	 backend;	/* index in service->backends */
	uint8_t		 origin;	/* STICKY_ORIGIN_SELF or _PEER: who wrote version */
	uint8_t		 flags;		/* STICKY_F_* */
};

struct sticky_table {
	struct sticky_entry *entries;	/* max_entries, preallocated */
	uint32_t	*buckets;	/* nbuckets heads of hash chains; index + 1 */
	uint32_t	 nbuckets;	/* power of two >= max_entries */
	uint32_t	 max_entries;	/* capacity; past it the LRU entry is evicted */
	uint32_t	 count;		/* slots in use (entries and tombstones) */
	uint32_t	 ntombs;	/* of which tombstones */
	uint32_t	 timeout_s;	/* lifetime after last use */
	uint32_t	 lru_head;	/* latest expiry; index + 1 */
	uint32_t	 lru_tail;	/* earliest expiry; index + 1 */
	uint32_t	 free_head;	/* free list through hnext; index + 1 */
	uint32_t	 fresh;		/* entries[fresh..] never used yet: zero, not on the free list */
	uint32_t	*runs;		/* nruns: per expiry second % nruns, its head-most entry */
	uint32_t	 nruns;		/* timeout_s + 2: no two live seconds share a slot */
	uint64_t	*occ;		/* bitmap tree: level 0 bit i set iff runs[i] is set */
	uint32_t	 occ_off[STICKY_OCC_LEVELS]; /* first word of each level in occ */
	int		 occ_levels;	/* levels in use; the last one is one word */
	uint64_t	 insert_steps;	/* runs examined by sorted inserts (a cost counter) */
	uint64_t	 evictions;	/* live entries dropped because the table was full */
	bool		 replicate;	/* track changes for replication */
	void		(*notify)(void *); /* the dirty list became non-empty */
	void		*notify_arg;	/* for notify */
	uint32_t	 dirty_head;	/* oldest pending change; index + 1 */
	uint32_t	 dirty_tail;	/* newest pending change; index + 1 */
	uint32_t	 ndirty;	/* entries on the dirty list */
	uint64_t	 floor_version;	/* last clear: older remote entries are refused */
	uint8_t		 floor_origin;	/* who wrote that clear */
	int8_t		 floor_name_cmp; /* the name_cmp it came with: for sticky_floored */
	uint64_t	 max_version;	/* greatest version given to an entry since the last reset */
	uint32_t	 clear_next;	/* a clear's sweep: next slot to look at */
	uint32_t	 clear_end;	/* ... up to here (fresh at the clear); == clear_next: none */
	unsigned char	 hash_key[crypto_shorthash_KEYBYTES]; /* random SipHash key: no forced collisions */
};

static uint64_t	 sticky_hlc;		/* this node's hybrid logical clock: last version */

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

/* ---------------------------------------------------------------- versions */

uint64_t
sticky_version_next(void)
{
	struct timespec	 ts;
	uint64_t	 v;

	clock_gettime(CLOCK_REALTIME, &ts);
	v = ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000) << 16;
	if (v <= sticky_hlc)
		v = sticky_hlc + 1;
	sticky_hlc = v;
	return v;
}

void
sticky_version_seen(uint64_t version)
{
	if (version > sticky_hlc)
		sticky_hlc = version;
}

/*
 * The tie-break: does a change written by origin a beat one with the same
 * version written by origin b? name_cmp is the sign of strcmp(peer name,
 * our name): the greater node name wins.
 */
static bool
sticky_origin_wins(int a, int b, int name_cmp)
{
	if (a == b)
		return false;
	return a == STICKY_ORIGIN_PEER ? name_cmp > 0 : name_cmp < 0;
}

static bool
sticky_newer(uint64_t va, int oa, uint64_t vb, int ob, int name_cmp)
{
	return va > vb || (va == vb && sticky_origin_wins(oa, ob, name_cmp));
}

/* ---------------------------------------------------------------- occupancy */

/* Marks run slot i occupied, and its words' bits up the tree. */
static void
sticky_occ_set(struct sticky_table *t, uint32_t i)
{
	uint64_t	*w;
	int		 lv;

	for (lv = 0; lv < t->occ_levels; lv++, i /= 64) {
		w = &t->occ[t->occ_off[lv] + i / 64];
		if (*w & (1ULL << (i % 64)))
			return;
		*w |= 1ULL << (i % 64);
		if (*w != 1ULL << (i % 64))
			return;		/* the word had bits: the levels above know */
	}
}

/* Marks run slot i empty; a word left empty clears its bit a level up. */
static void
sticky_occ_clear(struct sticky_table *t, uint32_t i)
{
	uint64_t	*w;
	int		 lv;

	for (lv = 0; lv < t->occ_levels; lv++, i /= 64) {
		w = &t->occ[t->occ_off[lv] + i / 64];
		*w &= ~(1ULL << (i % 64));
		if (*w != 0)
			return;
	}
}

/* Returns: the greatest occupied run slot <= i, or -1. O(levels). */
static int64_t
sticky_occ_prev(const struct sticky_table *t, uint32_t i)
{
	uint64_t	 w, idx = i;
	int		 lv = 0, b;

	for (;;) {
		b = (int)(idx % 64);
		w = t->occ[t->occ_off[lv] + idx / 64] & (b == 63 ? ~0ULL : (1ULL << (b + 1)) - 1);
		if (w != 0) {
			idx = idx / 64 * 64 + (uint64_t)(63 - __builtin_clzll(w));
			break;
		}
		if (idx < 64)
			return -1;	/* no earlier word at this level */
		idx = idx / 64 - 1;	/* the words before, one level up */
		lv++;
	}
	/* Down again: the highest bit of each word leads to the latest slot. */
	while (lv-- > 0)
		idx = idx * 64 + (uint64_t)(63 - __builtin_clzll(t->occ[t->occ_off[lv] + idx]));
	return (int64_t)idx;
}

/* ---------------------------------------------------------------- lists */

/* Drops e from runs if it is the head-most entry of its expiry second. */
static void
sticky_run_leave(struct sticky_table *t, struct sticky_entry *e)
{
	uint32_t	*r = &t->runs[e->expires % t->nruns];

	if (*r != sticky_link(t, e))
		return;
	if (e->lru_next != STICKY_NONE && sticky_at(t, e->lru_next)->expires == e->expires)
		*r = e->lru_next;
	else {
		*r = STICKY_NONE;
		sticky_occ_clear(t, e->expires % t->nruns);
	}
}

static void
sticky_lru_unlink(struct sticky_table *t, struct sticky_entry *e)
{
	sticky_run_leave(t, e);
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

/* Links e just before pos (STICKY_NONE: at the tail); e heads its run. */
static void
sticky_lru_insert_before(struct sticky_table *t, struct sticky_entry *e, uint32_t pos)
{
	uint32_t	 l = sticky_link(t, e);
	uint32_t	 prev = pos != STICKY_NONE ? sticky_at(t, pos)->lru_prev : t->lru_tail;

	e->lru_next = pos;
	e->lru_prev = prev;
	if (prev != STICKY_NONE)
		sticky_at(t, prev)->lru_next = l;
	else
		t->lru_head = l;
	if (pos != STICKY_NONE)
		sticky_at(t, pos)->lru_prev = l;
	else
		t->lru_tail = l;
	t->runs[e->expires % t->nruns] = l;
	sticky_occ_set(t, e->expires % t->nruns);
}

/* A local use: the latest expiry there is, so the head. */
static void
sticky_lru_push_head(struct sticky_table *t, struct sticky_entry *e)
{
	sticky_lru_insert_before(t, e, t->lru_head);
}

/*
 * Links e where its expiry belongs: before the head-most entry of the
 * latest second in (now, e->expires] that has entries, found in the
 * occupancy tree (the seconds wrap around runs, so the search may go on
 * from its top). Seconds past now only: sticky_apply has swept the dead
 * ones, so a run found is that second's; one left by an entry that died
 * without a sweep is passed over. O(levels) per run examined.
 */
static void
sticky_lru_insert_sorted(struct sticky_table *t, struct sticky_entry *e, uint32_t now)
{
	uint32_t	 s = e->expires, slot, back, l;
	int64_t		 p;

	while (s > now) {
		t->insert_steps++;
		slot = s % t->nruns;
		if ((p = sticky_occ_prev(t, slot)) == -1 &&
		    (p = sticky_occ_prev(t, t->nruns - 1)) == -1)
			break;		/* no run at all */
		/* Slot p is this many seconds before s (behind slot 0 when p > slot). */
		back = (uint32_t)(((int64_t)slot - p + t->nruns) % t->nruns);
		if (back >= s - now)
			break;		/* the nearest run is not live: e goes to the tail */
		s -= back;
		l = t->runs[p];
		if (sticky_at(t, l)->expires == s && (sticky_at(t, l)->flags & STICKY_F_USED)) {
			sticky_lru_insert_before(t, e, l);
			return;
		}
		s--;
	}
	sticky_lru_insert_before(t, e, STICKY_NONE);
}

static void
sticky_dirty_unlink(struct sticky_table *t, struct sticky_entry *e)
{
	if (!(e->flags & STICKY_F_DIRTY))
		return;
	if (e->dirty_prev != STICKY_NONE)
		sticky_at(t, e->dirty_prev)->dirty_next = e->dirty_next;
	else
		t->dirty_head = e->dirty_next;
	if (e->dirty_next != STICKY_NONE)
		sticky_at(t, e->dirty_next)->dirty_prev = e->dirty_prev;
	else
		t->dirty_tail = e->dirty_prev;
	e->dirty_prev = e->dirty_next = STICKY_NONE;
	e->flags &= ~STICKY_F_DIRTY;
	t->ndirty--;
}

/* Queues e for replication; a second change before it is sent coalesces. */
static void
sticky_dirty_mark(struct sticky_table *t, struct sticky_entry *e)
{
	uint32_t	 l = sticky_link(t, e);

	if (e->flags & STICKY_F_DIRTY)
		return;
	e->flags |= STICKY_F_DIRTY;
	e->dirty_next = STICKY_NONE;
	e->dirty_prev = t->dirty_tail;
	if (t->dirty_tail != STICKY_NONE)
		sticky_at(t, t->dirty_tail)->dirty_next = l;
	else
		t->dirty_head = l;
	t->dirty_tail = l;
	if (t->ndirty++ == 0 && t->notify != NULL)
		t->notify(t->notify_arg);
}

/* Is e covered by a clear whose sweep has not reached it yet (so gone in all but memory)? */
static bool
sticky_floored(const struct sticky_table *t, const struct sticky_entry *e)
{
	return t->clear_next < t->clear_end &&
	    !sticky_newer(e->version, e->origin, t->floor_version, t->floor_origin,
	    t->floor_name_cmp);
}

/* Gives e a version (and notes the table's greatest). */
static void
sticky_stamp(struct sticky_table *t, struct sticky_entry *e, uint64_t version, int origin)
{
	e->version = version;
	e->origin = (uint8_t)origin;
	if (version > t->max_version)
		t->max_version = version;
}

static void	sticky_remove(struct sticky_table *, struct sticky_entry *);

/*
 * Returns: the entry for ip (live, expired or tombstone), or NULL. One a
 * pending clear covers is removed on the way: NULL.
 */
static struct sticky_entry *
sticky_find(struct sticky_table *t, const struct lbd_ip *ip)
{
	uint32_t	 l;

	for (l = t->buckets[sticky_bucket(t, ip)]; l != STICKY_NONE; l = sticky_at(t, l)->hnext) {
		struct sticky_entry *e = sticky_at(t, l);

		if (memcmp(e->ip.bytes, ip->bytes, sizeof(ip->bytes)) == 0) {
			if (!sticky_floored(t, e))
				return e;
			sticky_remove(t, e);
			return NULL;
		}
	}
	return NULL;
}

/*
 * Takes e out of its hash chain and the LRU and dirty lists and puts it on
 * the free list: expiry, eviction, a tombstone's end, a clear.
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
	sticky_dirty_unlink(t, e);
	if (e->flags & STICKY_F_TOMB)
		t->ntombs--;
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

/*
 * The entry a full table gives up: the LRU tail, unless it is a live
 * change the peer has not been sent yet (above all a delete's tombstone:
 * dropped, the delete never reaches the peer, whose copy lives on). Then
 * the first entry without one among the next STICKY_EVICT_SKIP towards
 * the head, or the tail after all when they are all pending.
 */
static struct sticky_entry *
sticky_evictee(struct sticky_table *t, uint32_t now)
{
	struct sticky_entry *tail = sticky_at(t, t->lru_tail), *e = tail;
	int		 i;

	for (i = 0; i < STICKY_EVICT_SKIP; i++) {
		if (!(e->flags & STICKY_F_DIRTY) || !sticky_live(e, now))
			return e;
		if (e->lru_prev == STICKY_NONE)
			break;
		e = sticky_at(t, e->lru_prev);
	}
	return tail;
}

/* Returns: a free slot for ip, linked in its hash chain (LRU: caller's job). */
static struct sticky_entry *
sticky_alloc(struct sticky_table *t, const struct lbd_ip *ip, uint32_t now)
{
	struct sticky_entry *e;
	uint32_t	 b;

	if (t->free_head == STICKY_NONE && t->fresh < t->max_entries) {
		e = &t->entries[t->fresh++];	/* zero since calloc or sticky_reset */
	} else {
		if (t->free_head == STICKY_NONE) {
			/* Full: the LRU tail goes; only a live entry counts as evicted. */
			e = sticky_evictee(t, now);
			if (sticky_live(e, now) && !(e->flags & STICKY_F_TOMB) && !sticky_floored(t, e))
				t->evictions++;
			sticky_remove(t, e);
		}
		e = sticky_at(t, t->free_head);
		t->free_head = e->hnext;
		memset(e, 0, sizeof(*e));
	}
	e->ip = *ip;
	e->flags = STICKY_F_USED;
	b = sticky_bucket(t, ip);
	e->hnext = t->buckets[b];
	t->buckets[b] = sticky_link(t, e);
	t->count++;
	return e;
}

/*
 * Empties chains and lists; every entry is fresh again. Only the entries
 * ever used are cleared: a new table's calloc'd memory is left untouched,
 * so its pages are not faulted in before use (a 1M-entry table took about
 * 370 ms to start when every entry was linked into a free list up front).
 */
static void
sticky_reset(struct sticky_table *t)
{
	if (t->fresh > 0) {
		memset(t->buckets, 0, (size_t)t->nbuckets * sizeof(*t->buckets));
		memset(t->runs, 0, (size_t)t->nruns * sizeof(*t->runs));
		memset(t->occ, 0, (size_t)t->occ_off[t->occ_levels - 1] * sizeof(*t->occ) +
		    sizeof(*t->occ));
		memset(t->entries, 0, (size_t)t->fresh * sizeof(*t->entries));
	}
	t->fresh = 0;
	t->clear_next = t->clear_end = 0;
	t->max_version = 0;
	t->free_head = STICKY_NONE;
	t->lru_head = t->lru_tail = STICKY_NONE;
	t->dirty_head = t->dirty_tail = STICKY_NONE;
	t->count = t->ntombs = t->ndirty = 0;
}

/* ---------------------------------------------------------------- table */

struct sticky_table *
sticky_new(uint32_t max_entries, uint32_t timeout_s)
{
	struct sticky_table *t = NULL;
	uint64_t	 words, bits;
	ssize_t		 n;

	if (max_entries == 0 || max_entries > STICKY_MAX_ENTRIES) {
		log_warnx("sticky table size %u out of range 1-%u", max_entries,
		    STICKY_MAX_ENTRIES);
		return NULL;
	}
	if (timeout_s > UINT32_MAX / 2) {
		log_warnx("sticky timeout %u s out of range", timeout_s);
		return NULL;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		log_warn("%s: calloc", __func__);
		goto fail;
	}
	t->max_entries = max_entries;
	t->timeout_s = timeout_s;
	t->nruns = timeout_s + 2;
	/* Level sizes: 64 bits per word, up to the level of one word. */
	for (words = 0, bits = t->nruns; t->occ_levels == 0 || bits > 1; bits = (bits + 63) / 64) {
		if (t->occ_levels == STICKY_OCC_LEVELS)
			fatalx("%s: %u run slots need more bitmap levels", __func__, t->nruns);
		t->occ_off[t->occ_levels++] = words;
		words += (bits + 63) / 64;
	}
	for (t->nbuckets = 1; t->nbuckets < max_entries; t->nbuckets <<= 1)
		;
	if ((t->entries = calloc(max_entries, sizeof(*t->entries))) == NULL ||
	    (t->buckets = calloc(t->nbuckets, sizeof(*t->buckets))) == NULL ||
	    (t->runs = calloc(t->nruns, sizeof(*t->runs))) == NULL ||
	    (t->occ = calloc(words, sizeof(*t->occ))) == NULL) {
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
	free(t->runs);
	free(t->occ);
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
	if (e->flags & STICKY_F_TOMB)
		return -1;
	return e->backend;
}

/* How far a refresh must move the expiry to be replicated: 1% of the timeout, 1-30 s. */
static uint32_t
sticky_resend_s(const struct sticky_table *t)
{
	uint32_t	 s = t->timeout_s / 100;

	return s < 1 ? 1 : s > STICKY_RESEND_MAX_S ? STICKY_RESEND_MAX_S : s;
}

void
sticky_set(struct sticky_table *t, const struct lbd_ip *ip, int backend, uint32_t now)
{
	struct sticky_entry *e;
	bool		 changed;

	if (backend < 0 || backend > UINT16_MAX)
		fatalx("%s: backend index %d out of range", __func__, backend);

	if ((e = sticky_find(t, ip)) != NULL) {
		/* A dead entry or a tombstone comes back as a new one. */
		changed = !sticky_live(e, now) || (e->flags & STICKY_F_TOMB) ||
		    e->backend != (uint16_t)backend;
		if (e->flags & STICKY_F_TOMB) {
			e->flags &= ~STICKY_F_TOMB;
			t->ntombs--;
		}
		sticky_lru_unlink(t, e);
	} else {
		e = sticky_alloc(t, ip, now);
		changed = true;
	}
	e->backend = (uint16_t)backend;
	/* Saturate instead of wrapping to a time in the past. */
	e->expires = now > UINT32_MAX - t->timeout_s ? UINT32_MAX : now + t->timeout_s;
	sticky_lru_push_head(t, e);
	if (t->replicate &&
	    (changed || e->expires - e->sent_expires >= sticky_resend_s(t) ||
	    e->sent_expires > e->expires)) {
		sticky_stamp(t, e, sticky_version_next(), STICKY_ORIGIN_SELF);
		sticky_dirty_mark(t, e);
	}
}

int
sticky_delete(struct sticky_table *t, const struct lbd_ip *ip)
{
	struct sticky_entry *e;

	if ((e = sticky_find(t, ip)) == NULL || (e->flags & STICKY_F_TOMB))
		return 0;
	if (!t->replicate) {
		sticky_remove(t, e);
		return 1;
	}
	/* The tombstone dies when the entry would have: no older copy outlives it. */
	e->flags |= STICKY_F_TOMB;
	t->ntombs++;
	sticky_stamp(t, e, sticky_version_next(), STICKY_ORIGIN_SELF);
	sticky_dirty_mark(t, e);
	return 1;
}

void
sticky_flush(struct sticky_table *t)
{
	sticky_reset(t);
}

/*
 * The list is sorted by expiry, so walk from the tail and stop at the
 * first live entry. O(expired entries).
 */
uint32_t
sticky_expire(struct sticky_table *t, uint32_t now)
{
	uint32_t	 n = 0;
	struct sticky_entry *e;

	while (t->lru_tail != STICKY_NONE && !sticky_live(e = sticky_at(t, t->lru_tail), now)) {
		if (!(e->flags & STICKY_F_TOMB))
			n++;
		sticky_remove(t, e);
	}
	return n;
}

uint32_t
sticky_count(const struct sticky_table *t)
{
	return t->count - t->ntombs;
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
	if (e->flags & STICKY_F_TOMB)
		return -1;
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
		if (sticky_live(e, now) && !(e->flags & STICKY_F_TOMB) && !sticky_floored(t, e))
			fn(&e->ip, e->backend, e->expires - now, arg);
	}
}

bool
sticky_foreach_slots(struct sticky_table *t, uint32_t *cursor, uint32_t now,
    uint32_t max_entries, uint32_t max_slots,
    void (*fn)(const struct lbd_ip *ip, int backend, uint32_t expires_in_s, void *arg),
    void *arg)
{
	uint32_t	 i, n = 0, end;

	end = *cursor < t->fresh && t->fresh - *cursor > max_slots ? *cursor + max_slots : t->fresh;
	for (i = *cursor; i < end && n < max_entries; i++) {
		struct sticky_entry *e = &t->entries[i];

		if (!(e->flags & STICKY_F_USED) || (e->flags & STICKY_F_TOMB) || !sticky_live(e, now) ||
		    sticky_floored(t, e))
			continue;
		fn(&e->ip, e->backend, e->expires - now, arg);
		n++;
	}
	*cursor = i;
	return i >= t->fresh;
}

uint32_t
sticky_used(const struct sticky_table *t)
{
	return t->count;
}

uint64_t
sticky_insert_steps(const struct sticky_table *t)
{
	return t->insert_steps;
}

size_t
sticky_entry_size(void)
{
	return sizeof(struct sticky_entry);
}

/* ---------------------------------------------------------------- replication */

void
sticky_replicate(struct sticky_table *t, void (*notify)(void *arg), void *arg)
{
	uint32_t	 i;

	/* Entries made before tracking began get a version (the bulk sends them). */
	if (!t->replicate)
		for (i = 0; i < t->fresh; i++)
			if ((t->entries[i].flags & STICKY_F_USED) && t->entries[i].version == 0)
				sticky_stamp(t, &t->entries[i], sticky_version_next(),
				    STICKY_ORIGIN_SELF);
	t->replicate = true;
	t->notify = notify;
	t->notify_arg = arg;
}

/* The replicated form of e at now (e live). */
static void
sticky_change_of(const struct sticky_entry *e, uint32_t now, struct sticky_change *c)
{
	c->ip = e->ip;
	c->backend = (e->flags & STICKY_F_TOMB) ? -1 : e->backend;
	c->expires_in_ms = (e->expires - now) > UINT32_MAX / 1000 ?
	    UINT32_MAX / 1000 * 1000 : (e->expires - now) * 1000;
	c->version = e->version;
	c->origin = e->origin;
}

uint32_t
sticky_take_dirty(struct sticky_table *t, uint32_t now, struct sticky_change *out, uint32_t max)
{
	struct sticky_entry *e;
	uint32_t	 n = 0;

	while (n < max && t->dirty_head != STICKY_NONE) {
		e = sticky_at(t, t->dirty_head);
		sticky_dirty_unlink(t, e);
		if (!sticky_live(e, now) || sticky_floored(t, e))
			continue;	/* the peer's copy dies on its own, or was cleared too */
		sticky_change_of(e, now, &out[n++]);
		e->sent_expires = e->expires;
	}
	return n;
}

uint32_t
sticky_dirty_count(const struct sticky_table *t)
{
	return t->ndirty;
}

void
sticky_dirty_clear(struct sticky_table *t)
{
	while (t->dirty_head != STICKY_NONE) {
		struct sticky_entry *e = sticky_at(t, t->dirty_head);

		sticky_dirty_unlink(t, e);
		e->sent_expires = e->expires;
	}
}

uint32_t
sticky_scan(struct sticky_table *t, uint32_t *cursor, uint32_t now,
    struct sticky_change *out, uint32_t max, bool *done)
{
	uint32_t	 i, n = 0, visited = 0;

	for (i = *cursor; i < t->fresh && n < max && visited < STICKY_SCAN_SLOTS;
	    i++, visited++) {
		struct sticky_entry *e = &t->entries[i];

		if (!(e->flags & STICKY_F_USED) || !sticky_live(e, now) || sticky_floored(t, e))
			continue;
		sticky_change_of(e, now, &out[n++]);
	}
	*cursor = i;
	*done = i >= t->fresh;		/* entries made later are dirty: sent anyway */
	return n;
}

int
sticky_apply(struct sticky_table *t, const struct sticky_change *c, int name_cmp, uint32_t now)
{
	struct sticky_entry *e;
	uint32_t	 life_s;

	sticky_version_seen(c->version);
	if (c->backend > UINT16_MAX)
		return 0;
	life_s = c->expires_in_ms / 1000 + (c->expires_in_ms % 1000 != 0);
	if (life_s > t->timeout_s)
		life_s = t->timeout_s;	/* the nodes' timeouts differ: ours rules */
	/* Dead tails out first: then every remaining expiry is past now (runs are exact). */
	sticky_expire(t, now);
	if ((e = sticky_find(t, &c->ip)) != NULL) {
		if (!sticky_newer(c->version, c->origin, e->version, e->origin, name_cmp))
			return 0;
	} else {
		if (!sticky_newer(c->version, c->origin, t->floor_version, t->floor_origin,
		    name_cmp))
			return 0;	/* cleared since */
		if (c->backend < 0 && life_s == 0)
			return 1;	/* a delete of nothing, with no lifetime to block */
		if (life_s == 0)
			return 0;
		e = sticky_alloc(t, &c->ip, now);
		e->expires = now + life_s;
		sticky_lru_insert_sorted(t, e, now);
	}
	/* Newer than anything we had: our own pending change is moot. */
	sticky_dirty_unlink(t, e);
	sticky_stamp(t, e, c->version, c->origin);
	if (c->backend < 0) {
		if (!(e->flags & STICKY_F_TOMB)) {
			e->flags |= STICKY_F_TOMB;
			t->ntombs++;
		}
	} else {
		if (e->flags & STICKY_F_TOMB) {
			e->flags &= ~STICKY_F_TOMB;
			t->ntombs--;
		}
		e->backend = (uint16_t)c->backend;
		if (life_s > 0 && e->expires != now + life_s) {
			sticky_lru_unlink(t, e);
			e->expires = now + life_s;
			sticky_lru_insert_sorted(t, e, now);
		}
	}
	e->sent_expires = e->expires;	/* applied, not to be echoed */
	return 1;
}

uint32_t
sticky_clear(struct sticky_table *t, uint64_t version, int origin, int name_cmp)
{
	uint32_t	 n;

	sticky_version_seen(version);
	if (!sticky_newer(version, origin, t->floor_version, t->floor_origin, name_cmp))
		return 0;	/* the floor covers it: what it removes is gone or going */
	t->floor_version = version;
	t->floor_origin = (uint8_t)origin;
	t->floor_name_cmp = (int8_t)name_cmp;
	if (t->count == 0)
		return 0;
	if (version > t->max_version) {
		/* Newer than every entry: all go, in one memset. */
		n = sticky_count(t);
		sticky_reset(t);
		return n;
	}
	/* Some outlive it: a sweep, from the start again if one was under way. */
	t->clear_next = 0;
	t->clear_end = t->fresh;
	return sticky_clear_step(t, STICKY_CLEAR_SLOTS);
}

uint32_t
sticky_clear_step(struct sticky_table *t, uint32_t max_slots)
{
	uint32_t	 i, end, n = 0;

	end = t->clear_end - t->clear_next > max_slots ? t->clear_next + max_slots : t->clear_end;
	for (i = t->clear_next; i < end; i++) {
		struct sticky_entry *e = &t->entries[i];

		if (!(e->flags & STICKY_F_USED) || !sticky_floored(t, e))
			continue;
		if (!(e->flags & STICKY_F_TOMB))
			n++;
		sticky_remove(t, e);
	}
	t->clear_next = i;
	if (t->clear_next >= t->clear_end)
		t->clear_next = t->clear_end = 0;
	return n;
}

bool
sticky_clear_pending(const struct sticky_table *t)
{
	return t->clear_next < t->clear_end;
}
