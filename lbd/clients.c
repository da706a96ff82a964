/*
 * clients.c - per service, how many proxied connections each client IP
 * has open: the count behind max_connections_per_client.
 *
 * An open-addressing hash table (linear probing, backward-shift delete)
 * of 20-byte slots holding only clients with a connection open, so its
 * size follows the distinct clients connected, not the traffic: it grows
 * at half full and shrinks at an eighth, from CLIENTS_MIN_SLOTS. The hash
 * is SipHash with a random key (libsodium crypto_shorthash), so client
 * addresses cannot be chosen to collide into long probe runs.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "lbd.h"

#define CLIENTS_MIN_SLOTS	64	/* smallest table; a power of two */

/* One client with connections open; count 0: the slot is empty. */
struct client_slot {
	struct lbd_ip	 ip;		/* client address (v4-mapped for IPv4) */
	uint32_t	 count;		/* its open connections */
};

struct client_table {
	struct client_slot *slots;	/* nslots of them */
	uint32_t	 nslots;	/* a power of two */
	uint32_t	 used;		/* slots with count > 0 */
	unsigned char	 key[crypto_shorthash_KEYBYTES]; /* random SipHash key */
};

static uint32_t
clients_hash(const struct client_table *t, const struct lbd_ip *ip)
{
	uint64_t	 h;

	crypto_shorthash((unsigned char *)&h, ip->bytes, sizeof(ip->bytes), t->key);
	return (uint32_t)h & (t->nslots - 1);
}

/* Returns: ip's slot, or the empty slot where it would go. */
static struct client_slot *
clients_find(const struct client_table *t, const struct lbd_ip *ip)
{
	uint32_t	 i = clients_hash(t, ip);

	while (t->slots[i].count != 0 &&
	    memcmp(&t->slots[i].ip, ip, sizeof(*ip)) != 0)
		i = (i + 1) & (t->nslots - 1);
	return &t->slots[i];
}

/* Moves every client to a table of nslots. Returns 0, or -1 (t unchanged). */
static int
clients_resize(struct client_table *t, uint32_t nslots)
{
	struct client_slot	*old = t->slots, *s;
	uint32_t		 oldn = t->nslots, i;

	if ((t->slots = calloc(nslots, sizeof(*t->slots))) == NULL) {
		t->slots = old;
		return -1;
	}
	t->nslots = nslots;
	for (i = 0; i < oldn; i++) {
		if (old[i].count == 0)
			continue;
		s = clients_find(t, &old[i].ip);
		*s = old[i];
	}
	free(old);
	return 0;
}

struct client_table *
clients_new(void)
{
	struct client_table	*t;

	if (sodium_init() == -1 || (t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	if ((t->slots = calloc(CLIENTS_MIN_SLOTS, sizeof(*t->slots))) == NULL) {
		free(t);
		return NULL;
	}
	t->nslots = CLIENTS_MIN_SLOTS;
	crypto_shorthash_keygen(t->key);
	return t;
}

void
clients_free(struct client_table *t)
{
	if (t == NULL)
		return;
	free(t->slots);
	free(t);
}

uint32_t
clients_count(const struct client_table *t, const struct lbd_ip *ip)
{
	if (t == NULL)
		return 0;
	return clients_find(t, ip)->count;
}

int
clients_add(struct client_table *t, const struct lbd_ip *ip)
{
	struct client_slot	*s = clients_find(t, ip);

	if (s->count == 0) {
		/* Keep the table at most half full: probe runs stay short. */
		if ((t->used + 1) * 2 > t->nslots) {
			if (clients_resize(t, t->nslots * 2) == -1)
				return -1;
			s = clients_find(t, ip);
		}
		s->ip = *ip;
		t->used++;
	}
	s->count++;
	return 0;
}

void
clients_del(struct client_table *t, const struct lbd_ip *ip)
{
	struct client_slot	*s = clients_find(t, ip);
	uint32_t		 i, j, home, mask = t->nslots - 1;

	if (s->count == 0)
		fatalx("%s: client without a counted connection", __func__);
	if (--s->count > 0)
		return;
	t->used--;
	/* Backward shift: pull later members of the probe run into the hole. */
	i = (uint32_t)(s - t->slots);
	for (j = (i + 1) & mask; t->slots[j].count != 0; j = (j + 1) & mask) {
		home = clients_hash(t, &t->slots[j].ip);
		/* j may move to i unless its home lies cyclically in (i, j]. */
		if (((j - home) & mask) >= ((j - i) & mask)) {
			t->slots[i] = t->slots[j];
			t->slots[j].count = 0;
			i = j;
		}
	}
	/* Give memory back after a crowd has gone (not below the start size). */
	if (t->nslots > CLIENTS_MIN_SLOTS && t->used * 8 < t->nslots)
		(void)clients_resize(t, t->nslots / 2);
}

uint32_t
clients_size(const struct client_table *t)
{
	return t == NULL ? 0 : t->used;
}

size_t
clients_memory(const struct client_table *t)
{
	return t == NULL ? 0 : sizeof(*t) + (size_t)t->nslots * sizeof(*t->slots);
}
