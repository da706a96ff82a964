/*
 * hasync.h - the HA layer linked into lbd: floating VIP (libnl + GARP/NA),
 * cluster key, and later the heartbeat and the replication channel.
 * It does not include lbd/lbd.h, so its unit tests link it alone.
 */
#ifndef HASYNC_H
#define HASYNC_H

#include <sys/socket.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HASYNC_KEY_LEN	32	/* bytes of the cluster key */

struct vip;

/* vip.c */
/*
 * Prepares to manage addr/prefixlen on interface ifname (netlink socket,
 * interface index). Returns NULL with a message in err when the interface
 * does not exist or netlink cannot be opened.
 */
struct vip	*vip_open(const char *ifname, const struct sockaddr *addr, int prefixlen,
		    char *err, size_t errlen);
void		 vip_close(struct vip *);
/* Returns: 0 added or already there, -1 failed (err filled). */
int		 vip_add(struct vip *, char *err, size_t errlen);
/* Returns: 0 removed or already absent, -1 failed (err filled). */
int		 vip_del(struct vip *, char *err, size_t errlen);
/* Returns: 1 the address is on the interface now, 0 not, -1 error. */
int		 vip_present(struct vip *);
/* Sends one gratuitous ARP (IPv4) or unsolicited NA (IPv6). Returns 0 or -1. */
int		 vip_announce(struct vip *, char *err, size_t errlen);
bool		 vip_held(const struct vip *);	/* we added it and hold it */

/* key.c */
/* Writes a new key, base64, to buf. Returns 0 or -1. */
int		 key_generate(char *buf, size_t len);
/* Reads a key file. Returns 0, or -1 with err filled. */
int		 key_load(const char *path, uint8_t key[HASYNC_KEY_LEN], char *err, size_t errlen);

#endif /* HASYNC_H */
