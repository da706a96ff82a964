/*
 * vip.c - the floating service address: added to and removed from the
 * interface through libnl (rtnetlink), and announced to the LAN with a
 * gratuitous ARP (IPv4) or an unsolicited Neighbor Advertisement (IPv6).
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <errno.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/icmp6.h>
#include <netinet/if_ether.h>
#include <netinet/in.h>
#include <netpacket/packet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/socket.h>

#include "hasync_int.h"

#define VIP_LABEL_SUFFIX	":lbd"	/* IPv4 label: "<ifname>:lbd", as `ip addr` shows it */
#define VIP_DEL_MAX		8	/* copies of the VIP (prefix lengths) vip_del removes */
#define VIP_NA_HOPS		255	/* RFC 4861 7.1.2: receivers drop NAs with any other hop limit */

/* One floating address on one interface. */
struct vip {
	char		 ifname[IFNAMSIZ];	/* interface the VIP lives on */
	char		 label[IFNAMSIZ];	/* IPv4 address label, "" = none */
	char		 text[INET6_ADDRSTRLEN + 4]; /* "addr/len", for messages */
	int		 ifindex;		/* kernel index of ifname, refreshed */
	int		 family;		/* AF_INET or AF_INET6 */
	uint8_t		 addr[16];		/* the VIP, 4 or 16 bytes used */
	int		 addrlen;		/* 4 or 16 */
	int		 prefixlen;		/* on-link prefix length */
	uint8_t		 mac[ETH_ALEN];		/* interface MAC, refreshed */
	bool		 ethernet;		/* the link has ARP/ND and a 6-byte MAC */
	struct nl_sock	*sk;			/* rtnetlink request socket */
	int		 announce_fd;		/* packet (v4) or ICMPv6 raw (v6) socket */
	bool		 held;			/* we added it and hold it */
};

static int	vip_link_refresh(struct vip *, char *, size_t);
static void	vip_make_label(struct vip *);
static int	vip_open_announce(struct vip *, char *, size_t);
static struct rtnl_addr *vip_template(struct vip *, char *, size_t);
static int	vip_find(struct vip *, struct rtnl_addr **);
static int	vip_send_garp(struct vip *, char *, size_t);
static int	vip_send_na(struct vip *, char *, size_t);

/*
 * Looks the interface up by name and records its index and MAC.
 * Why by name every time: an interface that is deleted and re-created
 * (NIC hot-plug, a bond or VLAN rebuilt by the operator) comes back with a
 * new index and possibly a new MAC; a GARP carrying the old MAC would
 * send the LAN's traffic to a dead address.
 * Returns: 0 done, -1 the interface is gone or netlink failed (err filled).
 */
static int
vip_link_refresh(struct vip *v, char *err, size_t errlen)
{
	struct rtnl_link *link = NULL;
	struct nl_addr *ll;
	int rc;

	rc = rtnl_link_get_kernel(v->sk, 0, v->ifname, &link);
	if (rc < 0) {
		if (rc == -NLE_OBJ_NOTFOUND || rc == -NLE_NODEV)
			hasync_errf(err, errlen, "interface %s does not exist", v->ifname);
		else
			hasync_errf(err, errlen, "interface %s: netlink: %s", v->ifname,
			    nl_geterror(rc));
		return -1;
	}
	v->ifindex = rtnl_link_get_ifindex(link);
	ll = rtnl_link_get_addr(link);
	/*
	 * Only Ethernet-like links resolve addresses with ARP/ND and a 6-byte
	 * MAC; on a point-to-point or IFF_NOARP link nobody caches our MAC,
	 * so there is nothing to announce.
	 */
	v->ethernet = rtnl_link_get_arptype(link) == ARPHRD_ETHER &&
	    !(rtnl_link_get_flags(link) & IFF_NOARP) &&
	    ll != NULL && nl_addr_get_len(ll) == ETH_ALEN;
	if (v->ethernet)
		memcpy(v->mac, nl_addr_get_binary_addr(ll), ETH_ALEN);
	else
		memset(v->mac, 0, sizeof(v->mac));
	rtnl_link_put(link);
	return 0;
}

/*
 * IPv4 label "<ifname>:lbd" so `ip addr` and `ifconfig` show whose address
 * it is. The kernel takes at most IFNAMSIZ-1 characters and tools expect the
 * label to start with the interface name, so the suffix shrinks (":lb",
 * ":l") for long names, and is left out when even that does not fit
 * (the kernel then labels the address with the bare interface name).
 * Labels exist for IPv4 only.
 */
static void
vip_make_label(struct vip *v)
{
	static const char *const suffixes[] = { VIP_LABEL_SUFFIX, ":lb", ":l" };
	size_t n = strlen(v->ifname), i;

	v->label[0] = '\0';
	if (v->family != AF_INET)
		return;
	for (i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		if (n + strlen(suffixes[i]) < sizeof(v->label)) {
			snprintf(v->label, sizeof(v->label), "%s%s", v->ifname, suffixes[i]);
			return;
		}
	}
}

/*
 * Opens the announcement socket now, while we still have CAP_NET_RAW, so
 * lbd can drop privileges later.
 * Returns: 0 done, -1 failed (err filled).
 */
static int
vip_open_announce(struct vip *v, char *err, size_t errlen)
{
	struct icmp6_filter filter;
	int hops = VIP_NA_HOPS, loop = 0;

	if (v->family == AF_INET) {
		/*
		 * AF_PACKET/SOCK_DGRAM: the kernel adds the Ethernet header
		 * from the sockaddr_ll we pass, so we only build the ARP
		 * payload. Protocol 0: the socket is for sending and receives
		 * nothing, so unread ARP traffic never piles up in its buffer.
		 */
		v->announce_fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (v->announce_fd == -1) {
			hasync_errf(err, errlen, "cannot open packet socket for gratuitous ARP: %s"
			    "%s", strerror(errno), errno == EPERM ? " (needs CAP_NET_RAW)" : "");
			return -1;
		}
		return 0;
	}
	/*
	 * A raw ICMPv6 socket: the kernel builds the IPv6 header and fills in
	 * the ICMPv6 checksum (mandatory on IPPROTO_ICMPV6 raw sockets), so
	 * we only write the NA body.
	 */
	v->announce_fd = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6);
	if (v->announce_fd == -1) {
		hasync_errf(err, errlen, "cannot open ICMPv6 socket for neighbor advertisements: %s"
		    "%s", strerror(errno), errno == EPERM ? " (needs CAP_NET_RAW)" : "");
		return -1;
	}
	/* Send-only: block every ICMPv6 type so nothing queues up unread. */
	ICMP6_FILTER_SETBLOCKALL(&filter);
	if (setsockopt(v->announce_fd, IPPROTO_ICMPV6, ICMP6_FILTER, &filter,
	    sizeof(filter)) == -1 ||
	    setsockopt(v->announce_fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops,
	    sizeof(hops)) == -1 ||
	    setsockopt(v->announce_fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &loop,
	    sizeof(loop)) == -1) {
		hasync_errf(err, errlen, "ICMPv6 socket options: %s", strerror(errno));
		return -1;
	}
	return 0;
}

struct vip *
vip_open(const char *ifname, const struct sockaddr *addr, int prefixlen,
    char *err, size_t errlen)
{
	struct vip *v = NULL;
	char buf[INET6_ADDRSTRLEN];
	int rc, maxlen;

	if (ifname == NULL || ifname[0] == '\0') {
		hasync_errf(err, errlen, "VIP interface name is empty");
		return NULL;
	}
	if (strlen(ifname) >= IFNAMSIZ) {
		hasync_errf(err, errlen, "interface name %s is too long (at most %d characters)",
		    ifname, IFNAMSIZ - 1);
		return NULL;
	}
	if (addr == NULL || (addr->sa_family != AF_INET && addr->sa_family != AF_INET6)) {
		hasync_errf(err, errlen, "VIP must be an IPv4 or IPv6 address");
		return NULL;
	}
	/* The kernel would add ::ffff:a.b.c.d as an IPv6 address nobody reaches. */
	if (addr->sa_family == AF_INET6 &&
	    IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)addr)->sin6_addr)) {
		hasync_errf(err, errlen, "VIP is a v4-mapped IPv6 address: give it as IPv4");
		return NULL;
	}
	maxlen = addr->sa_family == AF_INET ? 32 : 128;
	if (prefixlen < 1 || prefixlen > maxlen) {
		hasync_errf(err, errlen, "VIP prefix length %d out of range 1-%d", prefixlen, maxlen);
		return NULL;
	}

	if ((v = calloc(1, sizeof(*v))) == NULL) {
		hasync_errf(err, errlen, "out of memory");
		return NULL;
	}
	v->announce_fd = -1;
	snprintf(v->ifname, sizeof(v->ifname), "%s", ifname);
	v->family = addr->sa_family;
	v->prefixlen = prefixlen;
	if (v->family == AF_INET) {
		v->addrlen = 4;
		memcpy(v->addr, &((const struct sockaddr_in *)addr)->sin_addr, 4);
	} else {
		v->addrlen = 16;
		memcpy(v->addr, &((const struct sockaddr_in6 *)addr)->sin6_addr, 16);
	}
	inet_ntop(v->family, v->addr, buf, sizeof(buf));
	snprintf(v->text, sizeof(v->text), "%s/%d", buf, prefixlen);
	vip_make_label(v);

	if ((v->sk = nl_socket_alloc()) == NULL) {
		hasync_errf(err, errlen, "out of memory (netlink socket)");
		goto fail;
	}
	if ((rc = nl_connect(v->sk, NETLINK_ROUTE)) < 0) {
		hasync_errf(err, errlen, "cannot open netlink route socket: %s", nl_geterror(rc));
		goto fail;
	}
	if (vip_link_refresh(v, err, errlen) == -1)
		goto fail;
	/*
	 * No ARP/ND on the link (lo, where steering hides the VIP): no
	 * announce socket either. A packet socket costs an RCU grace period
	 * when it closes, and a killed lbd closes its files before its peer
	 * hears of the death.
	 */
	if (v->ethernet && vip_open_announce(v, err, errlen) == -1)
		goto fail;
	return v;
fail:
	vip_close(v);
	return NULL;
}

void
vip_close(struct vip *v)
{
	if (v == NULL)
		return;
	if (v->announce_fd != -1)
		close(v->announce_fd);
	if (v->sk != NULL)
		nl_socket_free(v->sk);	/* also closes it */
	free(v);
}

/*
 * Builds the rtnl_addr that describes the VIP.
 * Returns: the object (caller puts it), or NULL (err filled).
 */
static struct rtnl_addr *
vip_template(struct vip *v, char *err, size_t errlen)
{
	struct rtnl_addr *a;
	struct nl_addr *local = NULL, *brd = NULL;
	uint32_t host, mask;
	int rc;

	if ((a = rtnl_addr_alloc()) == NULL)
		goto nomem;
	if ((local = nl_addr_build(v->family, v->addr, v->addrlen)) == NULL)
		goto nomem;
	rtnl_addr_set_ifindex(a, v->ifindex);
	rtnl_addr_set_family(a, v->family);
	if ((rc = rtnl_addr_set_local(a, local)) < 0)
		goto nlfail;
	rtnl_addr_set_prefixlen(a, v->prefixlen);
	if (v->family == AF_INET) {
		/*
		 * The kernel does not derive a broadcast address by itself
		 * (that is `ip addr add ... brd +`); set it like an operator
		 * would, so the address looks and acts like a hand-made one.
		 * /31 and /32 have no broadcast address (RFC 3021).
		 */
		if (v->prefixlen <= 30) {
			memcpy(&host, v->addr, 4);
			mask = htonl(0xffffffffu << (32 - v->prefixlen));
			host |= ~mask;
			if ((brd = nl_addr_build(AF_INET, &host, 4)) == NULL)
				goto nomem;
			if ((rc = rtnl_addr_set_broadcast(a, brd)) < 0)
				goto nlfail;
		}
		if (v->label[0] != '\0' && (rc = rtnl_addr_set_label(a, v->label)) < 0)
			goto nlfail;
	} else {
		/*
		 * IFA_F_NODAD: during a split brain both nodes hold the VIP;
		 * with duplicate address detection the second one would put
		 * it into "dadfailed" and never use it, even after the peer
		 * gives it up. VRRP owns the uniqueness of this address.
		 */
		rtnl_addr_set_flags(a, IFA_F_NODAD);
	}
	nl_addr_put(local);
	nl_addr_put(brd);
	return a;
nomem:
	hasync_errf(err, errlen, "out of memory (netlink address)");
	goto fail;
nlfail:
	hasync_errf(err, errlen, "VIP %s: %s", v->text, nl_geterror(rc));
fail:
	nl_addr_put(local);
	nl_addr_put(brd);
	if (a != NULL)
		rtnl_addr_put(a);
	return NULL;
}

int
vip_add(struct vip *v, char *err, size_t errlen)
{
	struct rtnl_addr *a;
	int rc;

	if (vip_link_refresh(v, err, errlen) == -1)
		return -1;
	if ((a = vip_template(v, err, errlen)) == NULL)
		return -1;
	/*
	 * NLM_F_REPLACE: an address left by a crashed run, or added by hand
	 * with a finite lifetime, becomes ours as we describe it (permanent;
	 * for IPv6 with NODAD) instead of an error. NLE_EXIST still counts as
	 * success: the address is on the interface, which is what we want.
	 */
	rc = rtnl_addr_add(v->sk, a, NLM_F_REPLACE);
	rtnl_addr_put(a);
	if (rc < 0 && rc != -NLE_EXIST) {
		hasync_errf(err, errlen, "cannot add VIP %s to %s: %s", v->text, v->ifname,
		    nl_geterror(rc));
		return -1;
	}
	v->held = true;
	return 0;
}

/*
 * Looks for the VIP on the interface in a fresh address dump, whatever its
 * prefix length (a stale VIP from an older config may have another one).
 * Returns: 1 found (*found holds a reference when found != NULL),
 * 0 not there, -1 netlink failed.
 */
static int
vip_find(struct vip *v, struct rtnl_addr **found)
{
	struct nl_cache *cache = NULL;
	struct nl_object *obj;
	struct rtnl_addr *a;
	struct nl_addr *local;
	int hit = 0;

	if (found != NULL)
		*found = NULL;
	if (rtnl_addr_alloc_cache(v->sk, &cache) < 0)
		return -1;
	for (obj = nl_cache_get_first(cache); obj != NULL; obj = nl_cache_get_next(obj)) {
		a = (struct rtnl_addr *)obj;
		if (rtnl_addr_get_ifindex(a) != v->ifindex ||
		    rtnl_addr_get_family(a) != v->family)
			continue;
		local = rtnl_addr_get_local(a);
		if (local == NULL || nl_addr_get_len(local) != (unsigned int)v->addrlen ||
		    memcmp(nl_addr_get_binary_addr(local), v->addr, v->addrlen) != 0)
			continue;
		hit = 1;
		if (found != NULL) {
			nl_object_get(obj);
			*found = a;
		}
		break;
	}
	nl_cache_free(cache);
	return hit;
}

int
vip_del(struct vip *v, char *err, size_t errlen)
{
	struct rtnl_addr *a;
	int i, rc;

	/*
	 * Delete the kernel's own objects rather than our template: the kernel
	 * matches IPv4 deletions on the prefix length too, and a stale VIP
	 * from a crashed run may carry an older one (or sit there twice, with
	 * two prefix lengths). Bounded, in case someone keeps re-adding it.
	 * Note: deleting a *primary* IPv4 address also deletes the secondaries
	 * of its subnet unless net.ipv4.conf.*.promote_secondaries=1; the VIP
	 * is normally secondary to the node's own address on that subnet.
	 */
	for (i = 0; i < VIP_DEL_MAX; i++) {
		rc = vip_find(v, &a);
		if (rc == -1) {
			hasync_errf(err, errlen, "cannot list addresses of %s", v->ifname);
			return -1;
		}
		if (rc == 0) {
			v->held = false;
			return 0;
		}
		rc = rtnl_addr_delete(v->sk, a, 0);
		rtnl_addr_put(a);
		/* Gone in between (link deleted, operator): still what we want. */
		if (rc < 0 && rc != -NLE_NOADDR && rc != -NLE_OBJ_NOTFOUND &&
		    rc != -NLE_NODEV) {
			hasync_errf(err, errlen, "cannot remove VIP %s from %s: %s", v->text,
			    v->ifname, nl_geterror(rc));
			return -1;
		}
	}
	hasync_errf(err, errlen, "VIP %s keeps coming back on %s", v->text, v->ifname);
	return -1;
}

int
vip_present(struct vip *v)
{
	return vip_find(v, NULL);
}

bool
vip_held(const struct vip *v)
{
	return v->held;
}

/*
 * Gratuitous ARP in the RFC 5227 "ARP Announcement" form: a broadcast
 * *request* with sender IP = target IP = VIP. Chosen over an unsolicited
 * reply because every common stack (Linux, BSD, Windows, switches) updates
 * an existing cache entry from a broadcast request, while some ignore
 * replies they did not ask for; keepalived sends the same form.
 * Returns: 0 sent, -1 failed (err filled).
 */
static int
vip_send_garp(struct vip *v, char *err, size_t errlen)
{
	struct ether_arp arp;
	struct sockaddr_ll to;

	memset(&arp, 0, sizeof(arp));
	arp.arp_hrd = htons(ARPHRD_ETHER);
	arp.arp_pro = htons(ETHERTYPE_IP);
	arp.arp_hln = ETH_ALEN;
	arp.arp_pln = 4;
	arp.arp_op = htons(ARPOP_REQUEST);
	memcpy(arp.arp_sha, v->mac, ETH_ALEN);
	memcpy(arp.arp_spa, v->addr, 4);
	/* arp_tha stays zero: RFC 5227 says it is ignored and SHOULD be zero. */
	memcpy(arp.arp_tpa, v->addr, 4);

	memset(&to, 0, sizeof(to));
	to.sll_family = AF_PACKET;
	to.sll_protocol = htons(ETH_P_ARP);
	to.sll_ifindex = v->ifindex;
	to.sll_halen = ETH_ALEN;
	memset(to.sll_addr, 0xff, ETH_ALEN);	/* Ethernet broadcast */

	if (sendto(v->announce_fd, &arp, sizeof(arp), 0, (struct sockaddr *)&to,
	    sizeof(to)) == -1) {
		hasync_errf(err, errlen, "gratuitous ARP for %s on %s: %s", v->text,
		    v->ifname, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Unsolicited Neighbor Advertisement (RFC 4861 7.2.6) to all-nodes
 * ff02::1, Override set so neighbours replace the old MAC at once,
 * Solicited clear (nobody asked), Router clear (we are a host), with a
 * Target Link-Layer Address option carrying our MAC. The source is the VIP
 * itself (like keepalived): it is on the interface with NODAD, so it is
 * usable at once, whereas the link-local address may still be tentative.
 * Returns: 0 sent, -1 failed (err filled).
 */
static int
vip_send_na(struct vip *v, char *err, size_t errlen)
{
	uint8_t pkt[sizeof(struct nd_neighbor_advert) + 8];
	struct nd_neighbor_advert na;
	struct nd_opt_hdr opt;
	struct sockaddr_in6 to;
	struct in6_pktinfo pi;
	union {
		char		buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
		struct cmsghdr	align;
	} cbuf;
	struct msghdr msg;
	struct cmsghdr *cm;
	struct iovec iov;

	memset(&na, 0, sizeof(na));
	na.nd_na_type = ND_NEIGHBOR_ADVERT;
	na.nd_na_code = 0;
	na.nd_na_flags_reserved = ND_NA_FLAG_OVERRIDE;
	memcpy(&na.nd_na_target, v->addr, 16);
	opt.nd_opt_type = ND_OPT_TARGET_LINKADDR;
	opt.nd_opt_len = 1;			/* in units of 8 bytes */
	memcpy(pkt, &na, sizeof(na));
	memcpy(pkt + sizeof(na), &opt, sizeof(opt));
	memcpy(pkt + sizeof(na) + sizeof(opt), v->mac, ETH_ALEN);

	memset(&to, 0, sizeof(to));
	to.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "ff02::1", &to.sin6_addr);
	to.sin6_scope_id = v->ifindex;

	/* IPV6_PKTINFO picks both the outgoing interface and the source. */
	memset(&pi, 0, sizeof(pi));
	memcpy(&pi.ipi6_addr, v->addr, 16);
	pi.ipi6_ifindex = v->ifindex;
	memset(&cbuf, 0, sizeof(cbuf));
	iov.iov_base = pkt;
	iov.iov_len = sizeof(pkt);
	memset(&msg, 0, sizeof(msg));
	msg.msg_name = &to;
	msg.msg_namelen = sizeof(to);
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cbuf.buf;
	msg.msg_controllen = sizeof(cbuf.buf);
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = IPPROTO_IPV6;
	cm->cmsg_type = IPV6_PKTINFO;
	cm->cmsg_len = CMSG_LEN(sizeof(pi));
	memcpy(CMSG_DATA(cm), &pi, sizeof(pi));

	if (sendmsg(v->announce_fd, &msg, 0) == -1) {
		hasync_errf(err, errlen, "neighbor advertisement for %s on %s: %s%s", v->text,
		    v->ifname, strerror(errno),
		    errno == EADDRNOTAVAIL || errno == EINVAL ? " (is the VIP on the interface?)" : "");
		return -1;
	}
	return 0;
}

int
vip_announce(struct vip *v, char *err, size_t errlen)
{
	if (vip_link_refresh(v, err, errlen) == -1)
		return -1;
	if (!v->ethernet)
		return 0;	/* no ARP/ND on this link: nothing to update */
	if (v->family == AF_INET)
		return vip_send_garp(v, err, errlen);
	return vip_send_na(v, err, errlen);
}
