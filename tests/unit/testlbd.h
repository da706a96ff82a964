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
		b->last_check_ms = now_ms();
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

#endif /* TESTLBD_H */
