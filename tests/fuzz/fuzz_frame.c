/*
 * fuzz_frame.c - libFuzzer harness for the replication frame path after
 * decryption: bytes -> SyncFrame decode -> sync layer checks -> replica ->
 * sticky merge, into real sticky tables. Run by `make fuzz`.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "lbd.h"
#include "hasync.pb-c.h"
#include "hasync.h"

#define FUZZ_TABLE	256	/* entries per sticky table: small, so eviction runs too */

static struct lbd	 fz_lbd;	/* a daemon with two services */
static struct lbd_config fz_conf;	/* its config: lb1, peer lb2 */
static uint64_t	 fz_frames;	/* frames "sent" (acks, bulk) */

static int
fz_send(void *arg, const Lbd__SyncFrame *f)
{
	uint8_t	 buf[64];

	/* Packing what we would send checks our own frames too. */
	if (lbd__sync_frame__get_packed_size(f) <= sizeof(buf))
		lbd__sync_frame__pack(f, buf);
	fz_frames++;
	return 0;
}

static size_t
fz_queued(void *arg)
{
	return 0;
}

static void
fz_service(struct service *svc, const char *name, int nb)
{
	snprintf(svc->conf.name, sizeof(svc->conf.name), "%s", name);
	svc->conf.sticky_timeout_s = 1800;
	svc->lbd = &fz_lbd;
	svc->nbackends = nb;
	for (int i = 0; i < nb; i++) {
		snprintf(svc->backends[i].conf.name, sizeof(svc->backends[i].conf.name),
		    "FTP_SVR%d", i + 1);
		svc->backends[i].index = i;
		svc->backends[i].service = svc;
		svc->backends[i].conf.weight = 1;
		svc->backends[i].up = true;
	}
	if ((svc->sticky = sticky_new(FUZZ_TABLE, 1800)) == NULL)
		abort();
}

static void
fz_init(void)
{
	struct sync_transport t = { fz_send, fz_queued };

	log_init(0, "fuzz_frame");
	log_setverbose(0);
	snprintf(fz_conf.node_name, sizeof(fz_conf.node_name), "lb1");
	snprintf(fz_conf.peer_name, sizeof(fz_conf.peer_name), "lb2");
	fz_conf.has_peer = true;
	fz_conf.mirror = true;		/* PairBatch frames reach mirror_peer.c's table */
	fz_lbd.conf = &fz_conf;
	if ((fz_lbd.base = event_base_new()) == NULL)
		abort();
	fz_lbd.nservices = 2;
	fz_service(&fz_lbd.services[0], "FTPS_VIP", 2);
	fz_service(&fz_lbd.services[1], "OTHER", 1);
	if (replica_init(&fz_lbd) == -1)
		abort();
	sync_set_transport(replica_sync(&fz_lbd), &t, NULL);
	sync_on_up(replica_sync(&fz_lbd));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int	 ready;
	struct sync_status st;

	if (!ready) {
		fz_init();
		ready = 1;
	}
	(void)sync_on_bytes(replica_sync(&fz_lbd), data, size);
	/* Local activity in between, so merges meet local entries and tombstones. */
	if (size > 0) {
		struct lbd_ip ip;

		memset(&ip, 0, sizeof(ip));
		ip.bytes[15] = data[0];
		if (data[0] & 1)
			sticky_set(fz_lbd.services[0].sticky, &ip, data[0] % 2, now_s());
		else
			(void)sticky_delete(fz_lbd.services[0].sticky, &ip);
	}
	/* Runs the pending flush and bulk slices. */
	event_base_loop(fz_lbd.base, EVLOOP_NONBLOCK);
	sync_get_status(replica_sync(&fz_lbd), &st);
	if (sticky_count(fz_lbd.services[0].sticky) > FUZZ_TABLE)
		abort();
	return 0;
}
