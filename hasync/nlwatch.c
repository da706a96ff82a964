/*
 * nlwatch.c - the heartbeat's netlink watch of the VIP and its link: it
 * reads the events and tells heartbeat.c what they mean, which carries it
 * out: link down or gone is FAULT (and back), a VIP removed from a MASTER
 * by hand is re-added, one added by hand elsewhere is removed.
 */
#include <net/if.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>
#include <netlink/errno.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/object.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/socket.h>

#include "hasync_int.h"

#define NLWATCH_RCVBUF	(1 << 20)	/* netlink event socket buffer */

static int	nlwatch_valid(struct nl_msg *, void *);
static void	nlwatch_object(struct nl_object *, void *);

/*
 * The netlink watch: one socket subscribed to link events and to address
 * events of the VIP's family, parsed by libnl into rtnl_link/rtnl_addr
 * objects; another for link lookups (a subscribed socket would mix event
 * messages into the replies).
 * Returns: 0, -1 failed (err filled).
 */
int
nlwatch_open(struct hasync *h, char *err, size_t errlen)
{
	int rc, group;

	group = h->conf.vip_addr.ss_family == AF_INET ? RTNLGRP_IPV4_IFADDR :
	    RTNLGRP_IPV6_IFADDR;
	if ((h->nl_event = nl_socket_alloc()) == NULL ||
	    (h->nl_query = nl_socket_alloc()) == NULL) {
		hasync_errf(err, errlen, "out of memory (netlink socket)");
		return -1;
	}
	/* Events are not answers to our requests: no sequence numbers. */
	nl_socket_disable_seq_check(h->nl_event);
	nl_socket_modify_cb(h->nl_event, NL_CB_VALID, NL_CB_CUSTOM, nlwatch_valid, h);
	if ((rc = nl_connect(h->nl_event, NETLINK_ROUTE)) < 0 ||
	    (rc = nl_socket_add_memberships(h->nl_event, RTNLGRP_LINK, group, 0)) < 0 ||
	    (rc = nl_socket_set_nonblocking(h->nl_event)) < 0 ||
	    (rc = nl_connect(h->nl_query, NETLINK_ROUTE)) < 0) {
		hasync_errf(err, errlen, "netlink watch: %s", nl_geterror(rc));
		return -1;
	}
	/*
	 * A big receive buffer: a burst of address changes elsewhere on the
	 * host (containers) must not overflow it. If it still does, we
	 * recheck everything (nlwatch_on_event).
	 */
	if ((rc = nl_socket_set_buffer_size(h->nl_event, NLWATCH_RCVBUF, 0)) < 0)
		hb_log(h, 2, "netlink watch: buffer size: %s", nl_geterror(rc));
	return 0;
}

/*
 * Reads the events waiting, one read per wake-up (heartbeat.c's callback
 * calls it).
 * Returns: true one concerned our link or its addresses, or events were
 * lost: recheck both (nlwatch_link_changed, nlwatch_vip_check); false not.
 */
bool
nlwatch_read(struct hasync *h)
{
	int rc;

	/* One read per wake-up: the loop stays fair; level-triggered wakes again. */
	rc = nl_recvmsgs_default(h->nl_event);
	if (rc < 0 && rc != -NLE_AGAIN) {
		/* NLE_NOMEM is ENOBUFS: events were lost, so look at everything. */
		hb_log_limited(h, HB_LOG_NETLINK, rc == -NLE_NOMEM ? 1 : 0,
		    "netlink watch: %s; rechecking link and VIP", nl_geterror(rc));
		h->nl_dirty = true;
	}
	if (!h->nl_dirty)
		return false;
	h->nl_dirty = false;
	return true;
}

static int
nlwatch_valid(struct nl_msg *msg, void *arg)
{
	nl_msg_parse(msg, nlwatch_object, arg);
	return NL_OK;
}

/* Marks the watch dirty for events about our link or its addresses. */
static void
nlwatch_object(struct nl_object *obj, void *arg)
{
	struct hasync *h = arg;
	const char *type = nl_object_get_type(obj), *name;

	if (type == NULL)
		return;
	if (strcmp(type, "route/link") == 0) {
		name = rtnl_link_get_name((struct rtnl_link *)obj);
		if ((name != NULL && strcmp(name, h->conf.vip_ifname) == 0) ||
		    (h->ifindex != 0 && rtnl_link_get_ifindex((struct rtnl_link *)obj) ==
		    h->ifindex))
			h->nl_dirty = true;
	} else if (strcmp(type, "route/addr") == 0) {
		if (rtnl_addr_get_ifindex((struct rtnl_addr *)obj) == h->ifindex &&
		    rtnl_addr_get_family((struct rtnl_addr *)obj) ==
		    h->conf.vip_addr.ss_family)
			h->nl_dirty = true;
	}
}

/*
 * Is the VIP interface usable? Up (admin) and running (carrier/oper up):
 * without carrier the VIP answers nobody.
 * Returns: 0 and *up set (a missing interface is down), -1 netlink failed.
 */
int
nlwatch_link_query(struct hasync *h, bool *up)
{
	struct rtnl_link *link = NULL;
	unsigned int flags;
	int rc;

	rc = rtnl_link_get_kernel(h->nl_query, 0, h->conf.vip_ifname, &link);
	if (rc == -NLE_OBJ_NOTFOUND || rc == -NLE_NODEV) {
		h->ifindex = 0;
		*up = false;
		return 0;
	}
	if (rc < 0) {
		hb_log_limited(h, HB_LOG_NETLINK, 0, "cannot query interface %s: %s",
		    h->conf.vip_ifname, nl_geterror(rc));
		return -1;
	}
	h->ifindex = rtnl_link_get_ifindex(link);
	flags = rtnl_link_get_flags(link);
	*up = (flags & IFF_UP) && (flags & IFF_RUNNING);
	rtnl_link_put(link);
	return 0;
}

/*
 * After a netlink event: has the link changed (FAULT and back)?
 * Returns: true with *up and msg set (for ha_link_changed), false no change
 * or netlink failed.
 */
bool
nlwatch_link_changed(struct hasync *h, bool *up, char *msg, size_t len)
{
	if (nlwatch_link_query(h, up) != 0 || *up == h->ha.link_up)
		return false;
	snprintf(msg, len, *up ? "VIP interface %s is up again" :
	    "VIP interface %s is down or gone", h->conf.vip_ifname);
	return true;
}

/*
 * After a netlink event, with the role as it is now: is the VIP where the
 * role says? One vanished from a MASTER (someone ran `ip addr del`) is to
 * be re-added, one on anyone else removed; logged here, done by the caller.
 * Returns: NLWATCH_VIP_OK, NLWATCH_VIP_GONE re-add it, NLWATCH_VIP_STRAY
 * remove it.
 */
enum nlwatch_vip
nlwatch_vip_check(struct hasync *h)
{
	int present;

	if ((present = vip_present(h->vip)) == -1)
		return NLWATCH_VIP_OK;
	if (h->ha.role == HASYNC_MASTER && present == 0) {
		hb_log(h, 0, "VIP vanished from %s while MASTER (removed by hand?): re-adding it",
		    h->conf.vip_ifname);
		return NLWATCH_VIP_GONE;
	}
	if (h->ha.role != HASYNC_MASTER && present == 1 && !h->holding) {
		hb_log(h, 0, "VIP found on %s while %s (added by hand?): removing it",
		    h->conf.vip_ifname, ha_role_name(h->ha.role));
		return NLWATCH_VIP_STRAY;
	}
	return NLWATCH_VIP_OK;
}
