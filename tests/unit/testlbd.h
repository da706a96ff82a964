/* testlbd.h - fixtures of lbd unit tests: client addresses, FTPS services, a standalone HA node. */
#ifndef TESTLBD_H
#define TESTLBD_H

/*
 * Header-only (static inline), like testutil.h. Include it after <cmocka.h>
 * and its prerequisites.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "lbd.h"
#include "hasync.h"

/* The IPv4 client a.b.c.d, v4-mapped as lbd keeps it. */
static inline struct lbd_ip
tl_ip4(uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
	struct lbd_ip ip;

	memset(&ip, 0, sizeof(ip));
	ip.bytes[10] = ip.bytes[11] = 0xff;
	ip.bytes[12] = a;
	ip.bytes[13] = b;
	ip.bytes[14] = c;
	ip.bytes[15] = d;
	return ip;
}

/* The FTPS ports: 21, 990 and the passive range 1025-1052 (30 in all). */
static inline void
tl_ftps_ports(struct service_config *sc)
{
	sc->ranges[0].first = sc->ranges[0].last = 21;
	sc->ranges[1].first = sc->ranges[1].last = 990;
	sc->ranges[2].first = 1025;
	sc->ranges[2].last = 1052;
	sc->nranges = 3;
}

/*
 * Adds to conf and lbd a service named name on the FTPS ports, least
 * connections, with backends FTP_SVR1.. at 192.168.86.50.., all up and
 * checked, and a sticky table of 1000 for 1800 s.
 */
static inline struct service *
tl_add_service(struct lbd *lbd, struct lbd_config *conf, const char *name, int nbackends)
{
	struct service_config *sc = &conf->services[conf->nservices++];
	struct service	*svc = &lbd->services[lbd->nservices++];
	int		 i;

	snprintf(sc->name, sizeof(sc->name), "%s", name);
	tl_ftps_ports(sc);
	sc->sched = SCHED_LEASTCONN;
	sc->sticky_timeout_s = 1800;
	sc->sticky_size = 1000;
	sc->nbackends = nbackends;
	for (i = 0; i < nbackends; i++) {
		char	 addr[32];

		snprintf(sc->backends[i].name, sizeof(sc->backends[i].name), "FTP_SVR%d", i + 1);
		snprintf(addr, sizeof(addr), "192.168.86.%d", 50 + i);
		assert_int_equal(addr_parse(addr, &sc->backends[i].addr), 0);
		sc->backends[i].weight = 1;
	}
	svc->conf = *sc;
	svc->lbd = lbd;
	svc->nbackends = nbackends;
	for (i = 0; i < nbackends; i++) {
		struct backend *b = &svc->backends[i];

		b->conf = sc->backends[i];
		b->service = svc;
		b->index = i;
		b->up = true;
		b->checked = true;
		b->last_result = CHECK_RESULT_OK;
		b->last_check_ms = clock_now_ms();
	}
	TAILQ_INIT(&svc->conns);
	svc->sticky = sticky_new((uint32_t)sc->sticky_size, (uint32_t)sc->sticky_timeout_s);
	assert_non_null(svc->sticky);
	return svc;
}

/*
 * A standalone heartbeat "lb1" on lbd->base (which may be NULL) without VIP
 * handling (empty interface), started: MASTER.
 */
static inline void
tl_start_standalone_ha(struct lbd *lbd)
{
	struct hasync_config	 hc;
	char			 err[256];

	memset(&hc, 0, sizeof(hc));
	snprintf(hc.node_name, sizeof(hc.node_name), "lb1");
	assert_int_equal(addr_parse("127.0.0.1", &hc.node_addr), 0);
	hc.priority = 150;
	hc.advert_interval_ms = 100;
	hc.heartbeat_port = 7411;
	lbd->ha = hasync_new(lbd->base, &hc, NULL, NULL, err, sizeof(err));
	if (lbd->ha == NULL)
		fail_msg("hasync_new: %s", err);
	assert_int_equal(hasync_start(lbd->ha), 0);
}

/*
 * A standalone node "lb1" in lbd/conf (zeroed by the caller): priority 150,
 * VIP 192.168.86.87/24 on eth0 (not managed), its own event base, a
 * started heartbeat (tl_start_standalone_ha) and service FTPS_VIP with two
 * backends (tl_add_service).
 */
static inline void
tl_node_init(struct lbd *lbd, struct lbd_config *conf)
{
	lbd->conf = conf;
	snprintf(conf->node_name, sizeof(conf->node_name), "lb1");
	conf->node_priority = 150;
	assert_int_equal(addr_parse_prefix("192.168.86.87/24", &conf->vip_addr,
	    &conf->vip_prefixlen), 0);
	snprintf(conf->vip_interface, sizeof(conf->vip_interface), "eth0");
	lbd->started_ms = clock_now_ms();
	lbd->base = event_base_new();
	assert_non_null(lbd->base);
	tl_start_standalone_ha(lbd);
	tl_add_service(lbd, conf, "FTPS_VIP", 2);
}

/* Undoes tl_node_init and what a test added: the replica, the heartbeat, tables, the base. */
static inline void
tl_node_free(struct lbd *lbd)
{
	int	 i;

	replica_close(lbd);
	if (lbd->ha != NULL)
		hasync_free(lbd->ha);
	for (i = 0; i < lbd->nservices; i++)
		sticky_free(lbd->services[i].sticky);
	if (lbd->base != NULL)
		event_base_free(lbd->base);
}

#endif /* TESTLBD_H */
