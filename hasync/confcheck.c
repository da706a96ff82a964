/*
 * confcheck.c - the checks the heartbeat's and the channel's configs share:
 * node and peer names, the peer paths, with the same messages for both.
 */
#include <sys/socket.h>

#include <string.h>

#include "hasync_int.h"

int
confcheck_name(const char *name, const char *what, char *err, size_t errlen)
{
	if (name[0] == '\0' || strnlen(name, HASYNC_NAME_MAX) == HASYNC_NAME_MAX) {
		hasync_errf(err, errlen, "%s name must be 1-%d characters", what,
		    HASYNC_NAME_MAX - 1);
		return -1;
	}
	return 0;
}

int
confcheck_peer(const char *node_name, const char *peer_name, char *err, size_t errlen)
{
	if (confcheck_name(peer_name, "peer", err, errlen) == -1)
		return -1;
	if (strcmp(peer_name, node_name) == 0) {
		hasync_errf(err, errlen, "peer name \"%s\" equals the node name; give each node "
		    "its own name", peer_name);
		return -1;
	}
	return 0;
}

int
confcheck_paths(int family, const struct sockaddr_storage *peer_addr, int npeer_addr,
    char *err, size_t errlen)
{
	int i;

	if (npeer_addr < 1 || npeer_addr > HASYNC_MAX_PEER_ADDR) {
		hasync_errf(err, errlen, "%d peer addresses: need 1-%d", npeer_addr,
		    HASYNC_MAX_PEER_ADDR);
		return -1;
	}
	for (i = 0; i < npeer_addr; i++) {
		if (peer_addr[i].ss_family != family) {
			hasync_errf(err, errlen, "peer address %d is not of the node address's "
			    "family (IPv4/IPv6)", i + 1);
			return -1;
		}
	}
	return 0;
}
