/*
 * test_pacer.c - unit tests for hasync/pacer.c on loopback UDP: adverts
 * sealed as heartbeat.c opens them, numbered without gaps by loop and
 * thread alike; a late loop is covered at interval + 1/4; a loop silent
 * past the watchdog is not; nothing is sent after pacer_stop; bad configs.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "hasync.pb-c.h"
#include "hasync_int.h"

#define IV		20	/* advert interval, ms */
#define WATCHDOG_MS	1000	/* the pacer's minimum watchdog */
#define RX_MAX		256	/* adverts one test records */

/* One received advert. */
struct rx {
	uint64_t	 at_ms;		/* arrival */
	uint64_t	 counter;
	uint32_t	 priority;
	uint32_t	 state;
	bool		 vip_held;
	uint64_t	 boot_id;
};

static uint8_t		 key[HASYNC_KEY_LEN];	/* the advert subkey */
static int		 tx_fd = -1;		/* the pacer sends on it */
static int		 rx_fd = -1;		/* the peer's end */
static struct sockaddr_in rx_addr;		/* where rx_fd listens */
static struct rx	 got[RX_MAX];
static int		 ngot;

static int
udp_on_loopback(struct sockaddr_in *sin)
{
	socklen_t len = sizeof(*sin);
	int fd;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(fd != -1);
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)sin, sizeof(*sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)sin, &len), 0);
	return fd;
}

static struct pacer *
pacer_for_test(void)
{
	struct pacer_config pc;
	struct pacer *p;
	char err[256] = "";

	memset(&pc, 0, sizeof(pc));
	pc.fd = tx_fd;
	memcpy(&pc.paths[0].addr, &rx_addr, sizeof(rx_addr));
	pc.paths[0].len = sizeof(rx_addr);
	snprintf(pc.paths[0].text, sizeof(pc.paths[0].text), "127.0.0.1");
	pc.npaths = 1;
	memcpy(pc.key, key, sizeof(key));
	snprintf(pc.node, sizeof(pc.node), "lb1");
	pc.boot_id = 42;
	pc.interval_ms = IV;
	p = pacer_new(&pc, err, sizeof(err));
	if (p == NULL)
		fail_msg("pacer_new: %s", err);
	assert_int_equal(pacer_start(p, err, sizeof(err)), 0);
	if (geteuid() == 0)
		assert_true(pacer_realtime(p));	/* CI runs as root */
	return p;
}

/* Opens one frame as heartbeat.c does; fails the test on a bad one. */
static void
open_frame(const uint8_t *buf, ssize_t n, struct rx *r)
{
	uint8_t plain[PACER_ADVERT_MAX];
	unsigned long long plen = 0;
	Lbd__Advert *adv;

	assert_true(n >= PACER_HEADER_LEN + PACER_TAG_LEN && n <= PACER_FRAME_MAX);
	assert_int_equal(buf[0], PACER_FRAME_VERSION);
	assert_int_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &plen, NULL,
	    buf + PACER_HEADER_LEN, (unsigned long long)n - PACER_HEADER_LEN, buf, 1,
	    buf + 1, key), 0);
	adv = lbd__advert__unpack(NULL, (size_t)plen, plain);
	assert_non_null(adv);
	assert_string_equal(adv->node, "lb1");
	assert_int_equal(adv->interval_ms, IV);
	r->counter = adv->counter;
	r->priority = adv->priority;
	r->state = adv->state;
	r->vip_held = adv->vip_held;
	r->boot_id = adv->boot_id;
	lbd__advert__free_unpacked(adv, NULL);
}

/* Records every advert that arrives within ms. */
static void
receive_for(int ms)
{
	uint64_t end = clock_now_ms() + (uint64_t)ms, now;
	struct pollfd pfd = { .fd = rx_fd, .events = POLLIN };
	uint8_t buf[PACER_FRAME_MAX + 16];
	ssize_t n;

	while ((now = clock_now_ms()) < end) {
		if (poll(&pfd, 1, (int)(end - now)) <= 0)
			continue;
		while ((n = recv(rx_fd, buf, sizeof(buf), 0)) > 0) {
			assert_true(ngot < RX_MAX);
			got[ngot].at_ms = clock_now_ms();
			open_frame(buf, n, &got[ngot]);
			ngot++;
		}
	}
}

/* Counters grow by one from advert to advert: loop and thread share them. */
static void
assert_counters_consecutive(void)
{
	int i;

	for (i = 1; i < ngot; i++) {
		assert_int_equal(got[i].counter, got[i - 1].counter + 1);
		assert_int_equal(got[i].boot_id, 42);
	}
}

static int
setup(void **state)
{
	struct sockaddr_in tx;

	tx_fd = udp_on_loopback(&tx);
	rx_fd = udp_on_loopback(&rx_addr);
	randombytes_buf(key, sizeof(key));
	ngot = 0;
	return 0;
}

static int
teardown(void **state)
{
	close(tx_fd);
	close(rx_fd);
	tx_fd = rx_fd = -1;
	return 0;
}

/* A loop on time: the thread stays out of the way. */
static void
test_loop_on_time(void **state)
{
	struct pacer_advert a = { .priority = 150, .state = HASYNC_MASTER, .vip_held = true };
	struct pacer *p = pacer_for_test();
	uint64_t sent, paced, lapses;
	int i;

	for (i = 0; i < 25; i++) {
		pacer_send(p, &a);
		receive_for(IV);
	}
	pacer_get_counts(p, &sent, &paced, &lapses);
	fprintf(stderr, "  loop on time: %d adverts, %llu paced\n", ngot,
	    (unsigned long long)paced);
	assert_true(ngot >= 25);
	assert_int_equal((uint64_t)ngot, sent);
	assert_true(paced <= 3);	/* a test thread can oversleep a few ms, rarely */
	assert_int_equal(lapses, 0);
	assert_counters_consecutive();
	assert_int_equal(got[0].priority, 150);
	assert_int_equal(got[0].state, HASYNC_MASTER);
	assert_true(got[0].vip_held);
	pacer_free(p);
}

/* A loop 500 ms late: the thread repeats the last advert each 1.25 intervals. */
static void
test_late_loop_paced(void **state)
{
	struct pacer_advert a = { .priority = 100, .state = HASYNC_BACKUP };
	struct pacer *p = pacer_for_test();
	uint64_t sent, paced, lapses, gap, worst = 0;
	int i;

	pacer_send(p, &a);
	receive_for(500);
	pacer_get_counts(p, &sent, &paced, &lapses);
	for (i = 1; i < ngot; i++) {
		gap = got[i].at_ms - got[i - 1].at_ms;
		if (gap > worst)
			worst = gap;
	}
	fprintf(stderr, "  late loop: %d adverts in 500 ms, %llu paced, worst gap %llu ms\n",
	    ngot, (unsigned long long)paced, (unsigned long long)worst);
	assert_int_equal(ngot, (int)sent);
	assert_int_equal(paced, sent - 1);
	assert_true(ngot >= 500 / (IV + IV / 4) - 2);	/* 20 expected */
	assert_true(ngot <= 500 / IV + 1);		/* never faster than the interval */
	/* Master_Down is 3 intervals: a gap near it would be a false failover. */
	assert_true(worst < 2 * IV);
	for (i = 0; i < ngot; i++) {
		assert_int_equal(got[i].priority, 100);
		assert_int_equal(got[i].state, HASYNC_BACKUP);
	}
	assert_counters_consecutive();
	/* The loop is back with news: the thread repeats that from now on. */
	a.priority = 0;
	a.state = HASYNC_FAULT;
	ngot = 0;
	pacer_send(p, &a);
	receive_for(100);
	assert_true(ngot >= 3);
	for (i = 0; i < ngot; i++)
		assert_int_equal(got[i].state, HASYNC_FAULT);
	pacer_free(p);
}

/* A loop silent past the watchdog: the adverts stop, the peer takes over. */
static void
test_watchdog_quiet(void **state)
{
	struct pacer_advert a = { .priority = 150, .state = HASYNC_MASTER };
	struct pacer *p = pacer_for_test();
	uint64_t t0, sent, paced, lapses, last;

	t0 = clock_now_ms();
	pacer_send(p, &a);
	receive_for(WATCHDOG_MS + 400);
	pacer_get_counts(p, &sent, &paced, &lapses);
	assert_true(ngot > 0);
	last = got[ngot - 1].at_ms - t0;
	fprintf(stderr, "  silent loop: last advert %llu ms after the loop's, %d in all\n",
	    (unsigned long long)last, ngot);
	assert_int_equal(lapses, 1);
	assert_true(last <= WATCHDOG_MS + 2 * IV);
	assert_true(last >= WATCHDOG_MS - 2 * IV);
	/* The loop speaks again: the thread covers it again. */
	ngot = 0;
	pacer_send(p, &a);
	receive_for(4 * IV);
	pacer_get_counts(p, &sent, &paced, &lapses);
	assert_true(ngot >= 2);
	assert_int_equal(lapses, 1);
	pacer_free(p);
}

/* After pacer_stop, the last advert the loop sent (priority 0) is the last. */
static void
test_stop_is_final(void **state)
{
	struct pacer_advert a = { .priority = 150, .state = HASYNC_MASTER };
	struct pacer *p = pacer_for_test();

	pacer_send(p, &a);
	receive_for(3 * IV);
	a.priority = 0;
	a.state = HASYNC_INIT;
	pacer_send(p, &a);
	pacer_stop(p);
	ngot = 0;
	receive_for(10 * IV);
	assert_int_equal(ngot, 1);
	assert_int_equal(got[0].priority, 0);
	assert_int_equal(got[0].state, HASYNC_INIT);
	pacer_stop(p);		/* twice: harmless */
	pacer_free(p);
}

static void
test_bad_config(void **state)
{
	struct pacer_config pc;
	char err[256] = "";

	memset(&pc, 0, sizeof(pc));
	pc.fd = tx_fd;
	pc.interval_ms = IV;
	assert_null(pacer_new(&pc, err, sizeof(err)));	/* no path */
	assert_non_null(strstr(err, "0 peer paths"));
	pc.npaths = 1;
	pc.interval_ms = 0;
	assert_null(pacer_new(&pc, err, sizeof(err)));
	assert_non_null(strstr(err, "interval 0 ms"));
	pacer_free(NULL);
	assert_false(pacer_realtime(NULL));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_loop_on_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_late_loop_paced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watchdog_quiet, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_is_final, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_config, setup, teardown),
	};

	if (sodium_init() == -1)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
