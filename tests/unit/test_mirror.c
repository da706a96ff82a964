/*
 * test_mirror.c - unit tests of mirror_peer.c's table of the peer's
 * pairs: records that fit are held, bytes trimmed by acknowledgements;
 * malformed ones, gaps, unknown pairs and acknowledgements past what was
 * read are counted and dropped without a crash or a leak; a reset batch
 * forgets everything; a planned takeover rebuilds nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lbd.h"
#include "hasync.pb-c.h"

static uint8_t	 client[16] = { [10] = 0xff, [11] = 0xff, 192, 168, 86, 100 };
static uint8_t	 vip[16] = { [10] = 0xff, [11] = 0xff, 192, 168, 86, 87 };
static uint8_t	 server[16] = { [10] = 0xff, [11] = 0xff, 192, 168, 86, 50 };

/* One record in a batch of its own, handed to mirror_rx. */
static void
rx(Lbd__PairRecord *r, bool reset)
{
	Lbd__PairBatch	 b = LBD__PAIR_BATCH__INIT;
	Lbd__PairRecord	*rp[1] = { r };

	b.records = r != NULL ? rp : NULL;
	b.n_records = r != NULL ? 1 : 0;
	b.reset = reset;
	mirror_rx(NULL, &b);
}

static void
sock(Lbd__PairSock *s, uint8_t *local, uint32_t lport, uint8_t *remote, uint32_t rport)
{
	lbd__pair_sock__init(s);
	s->local.data = local;
	s->local.len = 16;
	s->local_port = lport;
	s->remote.data = remote;
	s->remote.len = 16;
	s->remote_port = rport;
	s->mss = 1448;
	s->snd_wscale = s->rcv_wscale = 7;
	s->flags = MIRROR_PB_SACK | MIRROR_PB_TSTAMP | MIRROR_PB_WSCALE;
}

static void
open_pair(uint64_t id, Lbd__PairSock *front, Lbd__PairSock *back)
{
	Lbd__PairRecord	 r = LBD__PAIR_RECORD__INIT;
	Lbd__PairOpen	 o = LBD__PAIR_OPEN__INIT;

	o.id = id;
	o.service = (char *)"FTPS_VIP";
	o.backend = (char *)"FTP_SVR1";
	o.front = front;
	o.back = back;
	r.body_case = LBD__PAIR_RECORD__BODY_OPEN;
	r.open = &o;
	rx(&r, false);
}

static void
bytes(uint64_t id, uint32_t dir, uint64_t off, const char *data)
{
	Lbd__PairRecord	 r = LBD__PAIR_RECORD__INIT;
	Lbd__PairBytes	 b = LBD__PAIR_BYTES__INIT;

	b.id = id;
	b.dir = dir;
	b.offset = off;
	b.data.data = (uint8_t *)(uintptr_t)data;
	b.data.len = strlen(data);
	r.body_case = LBD__PAIR_RECORD__BODY_BYTES;
	r.bytes = &b;
	rx(&r, false);
}

static void
ack(uint64_t id, uint64_t c2b, uint64_t b2c)
{
	Lbd__PairRecord	 r = LBD__PAIR_RECORD__INIT;
	Lbd__PairAck	 a = LBD__PAIR_ACK__INIT;

	a.id = id;
	a.acked_c2b = c2b;
	a.acked_b2c = b2c;
	r.body_case = LBD__PAIR_RECORD__BODY_ACK;
	r.ack = &a;
	rx(&r, false);
}

static struct mirror_stats
stats(void)
{
	struct mirror_stats st;

	memset(&st, 0, sizeof(st));
	mirror_get_stats(&st);
	mirror_peer_stats(&st);
	return st;
}

static void
test_held_and_trimmed(void **state)
{
	Lbd__PairSock	 f, b;
	Lbd__PairRecord	 r = LBD__PAIR_RECORD__INIT;
	Lbd__PairClose	 c = LBD__PAIR_CLOSE__INIT;

	rx(NULL, true);
	sock(&f, vip, 21, client, 40000);
	sock(&b, vip, 50000, server, 21);
	open_pair(1, &f, &b);
	assert_int_equal(stats().held, 1);
	bytes(1, 1, 0, "220 hi\r\n");
	bytes(1, 0, 0, "USER x\r\n");
	bytes(1, 0, 4, " x\r\nPASS");		/* overlaps: only "PASS" is new */
	assert_int_equal(stats().held_bytes, 20);
	ack(1, 8, 8);				/* USER and 220 arrived */
	assert_int_equal(stats().held_bytes, 4);
	ack(1, 4, 4);				/* old news */
	assert_int_equal(stats().held_bytes, 4);
	c.id = 1;
	r.body_case = LBD__PAIR_RECORD__BODY_CLOSE;
	r.close = &c;
	rx(&r, false);
	assert_int_equal(stats().held, 0);
	assert_int_equal(stats().held_bytes, 0);
}

static void
test_bad_records(void **state)
{
	Lbd__PairSock	 f, b;
	uint64_t	 bad;

	rx(NULL, true);
	bad = stats().rx_bad;
	sock(&f, vip, 21, client, 40001);
	sock(&b, vip, 50001, server, 21);
	f.local.len = 4;			/* not 16 bytes */
	open_pair(2, &f, &b);
	assert_int_equal(stats().held, 0);
	f.local.len = 16;
	f.mss = 0;				/* no MSS */
	open_pair(2, &f, &b);
	f.mss = 1448;
	b.snd_wscale = 15;			/* past 14 */
	open_pair(2, &f, &b);
	b.snd_wscale = 7;
	open_pair(0, &f, &b);			/* id 0 */
	assert_int_equal(stats().held, 0);
	assert_int_equal(stats().rx_bad, bad + 4);
	bytes(9, 0, 0, "x");			/* unknown pair */
	ack(9, 1, 1);
	assert_int_equal(stats().rx_bad, bad + 6);
	open_pair(3, &f, &b);
	ack(3, 5, 0);				/* past what was read */
	assert_int_equal(stats().held, 1);
	bytes(3, 2, 0, "x");			/* no such direction: the pair goes */
	assert_int_equal(stats().held, 0);
	open_pair(3, &f, &b);
	bytes(3, 0, 10, "gap");			/* bytes 0-9 never came */
	assert_int_equal(stats().held, 0);
	assert_int_equal(stats().held_bytes, 0);
	assert_int_equal(stats().rx_bad, bad + 9);
}

static void
test_reset_and_planned_takeover(void **state)
{
	Lbd__PairSock	 f, b;
	int		 i;

	static struct lbd_config conf;
	static struct lbd lbd;

	snprintf(conf.peer_name, sizeof(conf.peer_name), "lb2");
	lbd.conf = &conf;
	rx(NULL, true);
	sock(&f, vip, 21, client, 41000);
	sock(&b, vip, 51000, server, 21);
	for (i = 1; i <= 10; i++) {
		f.remote_port = 41000 + (uint32_t)i;
		open_pair((uint64_t)i, &f, &b);
		bytes((uint64_t)i, 1, 0, "220 hi\r\n");
	}
	assert_int_equal(stats().held, 10);
	/* The peer lives: nothing rebuilt, nothing forgotten (no cluster: no steering). */
	{
		struct sockaddr_storage *remote;
		uint16_t	*port;
		size_t		 n;

		assert_int_equal(mirror_takeover(&lbd, false, &remote, &port, &n), 0);
		assert_int_equal(n, 20);	/* both sides of each, for steering */
		assert_int_equal(port[0], 21);
		free(remote);
		free(port);
	}
	assert_int_equal(stats().held, 10);
	assert_int_equal(stats().takeovers, 0);
	rx(NULL, true);
	assert_int_equal(stats().held, 0);
	assert_int_equal(stats().held_bytes, 0);
}

static int
teardown(void **state)
{
	mirror_peer_free();
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_held_and_trimmed),
		cmocka_unit_test(test_bad_records),
		cmocka_unit_test(test_reset_and_planned_takeover),
	};

	return cmocka_run_group_tests(tests, NULL, teardown);
}
