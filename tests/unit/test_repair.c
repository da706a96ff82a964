/*
 * test_repair.c - unit tests of repair.c against the real kernel: a TCP
 * connection over loopback in a network namespace of the test's own, one
 * end snapshotted, "killed" silently and rebuilt, and the far end must
 * not notice: the bytes go on both ways, duplicates are dropped by
 * sequence number, and a rebuild that missed bytes shows as out-of-order
 * segments without progress (the mirror's stale rule).
 * Needs root (unshare, TCP_REPAIR): without it the test says so loudly
 * and skips; CI runs it as root.
 */
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lbd.h"

#define PORT	2121		/* the first test's; each test takes the next */

static int port = PORT;

/* Brings lo up in the test's namespace. */
static int
lo_up(void)
{
	struct ifreq	 ifr;
	int		 s, rc;

	if ((s = socket(AF_INET, SOCK_DGRAM, 0)) == -1)
		return -1;
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	rc = ioctl(s, SIOCGIFFLAGS, &ifr);
	ifr.ifr_flags |= IFF_UP;
	if (rc == 0)
		rc = ioctl(s, SIOCSIFFLAGS, &ifr);
	close(s);
	return rc;
}

static int
setup(void **state)
{
	if (geteuid() != 0) {
		fprintf(stderr, "\n*** test_repair SKIPPED: needs root (unshare, TCP_REPAIR) ***\n\n");
		*state = NULL;
		return 0;
	}
	if (unshare(CLONE_NEWNET) == -1 || lo_up() == -1) {
		fprintf(stderr, "test_repair: cannot make a network namespace: %s\n", strerror(errno));
		return -1;
	}
	*state = (void *)1;
	return 0;
}

/*
 * A connected pair over loopback: *c the far end (blocking), *s ours
 * (non-blocking), accepted from a listener that stays open, as lbd's on
 * VIP:21 does while a rebuild binds beside it. Returns the listener.
 */
static int
pair(int *c, int *s)
{
	struct sockaddr_in a;
	int		 l, one = 1;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port++);	/* a closed test's sockets may linger */
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_not_equal(l = socket(AF_INET, SOCK_STREAM, 0), -1);
	assert_int_equal(setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
	assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_not_equal(*c = socket(AF_INET, SOCK_STREAM, 0), -1);
	assert_int_equal(connect(*c, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_not_equal(*s = accept4(l, NULL, NULL, SOCK_NONBLOCK), -1);
	return l;
}

/* Reads exactly n bytes from fd within 2 s. */
static void
read_exact(int fd, char *buf, size_t n)
{
	struct pollfd	 p = { .fd = fd, .events = POLLIN };
	size_t		 got = 0;
	ssize_t		 r;

	while (got < n) {
		assert_true(poll(&p, 1, 2000) == 1);
		r = recv(fd, buf + got, n - got, MSG_DONTWAIT);
		if (r == -1 && errno == EAGAIN)
			continue;
		assert_true(r > 0);
		got += (size_t)r;
	}
}

/* Nothing more arrives on fd within ms (no FIN, no RST, no duplicate). */
static void
read_nothing(int fd, int ms)
{
	struct pollfd	 p = { .fd = fd, .events = POLLIN };

	assert_int_equal(poll(&p, 1, ms), 0);
}

/* repair_rebuild with the timestamp clock of now, then repair_finish as a takeover does. */
static int
rebuild(const struct repair_sock *rs, struct repair_plan *plan, char *err, size_t len)
{
	int	 fd;

	plan->ts = repair_ts_now(rs, clock_wall_ns() / 1000000);
	if ((fd = repair_rebuild(rs, plan, err, len)) != -1 && repair_finish(fd) == -1) {
		snprintf(err, len, "repair_finish: %s", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void
send_all(int fd, const char *s)
{
	assert_int_equal(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

/*
 * The far end sees one connection: a snapshot at setup, bytes both ways,
 * a silent death, a rebuild at the byte counts, and the dialogue goes on;
 * the rebuilt side resends its last reply (offset 0) and the far end
 * drops it as a duplicate.
 */
static void
test_rebuild_goes_on(void **state)
{
	struct repair_sock rs, given;
	socklen_t	 len;
	int		 mss;
	struct repair_plan plan = { 0 };
	char		 buf[64], err[128];
	int		 c, s, r, l;

	if (*state == NULL)
		skip();
	l = pair(&c, &s);
	assert_int_equal(repair_snapshot(s, NULL, NULL, &rs, NULL), 0);
	assert_true(rs.tstamp && rs.sack && rs.wscale);
	/* The peer's MSS: TCP_MAXSEG's, with the timestamp option's 12 bytes. */
	len = sizeof(mss);
	assert_int_equal(getsockopt(s, IPPROTO_TCP, TCP_MAXSEG, &mss, &len), 0);
	assert_int_equal(rs.mss, mss + 12);
	/* Addresses the caller knows are taken as given, the rest is the same. */
	assert_int_equal(repair_snapshot(s, (struct sockaddr *)&rs.local,
	    (struct sockaddr *)&rs.remote, &given, NULL), 0);
	assert_int_equal(given.snd_isn, rs.snd_isn);
	assert_int_equal(given.rcv_isn, rs.rcv_isn);
	assert_int_equal(given.mss, rs.mss);
	assert_memory_equal(&given.local, &rs.local, sizeof(rs.local));
	assert_memory_equal(&given.remote, &rs.remote, sizeof(rs.remote));
	send_all(s, "220 hi\r\n");
	read_exact(c, buf, 8);
	send_all(c, "USER x\r\n");
	read_exact(s, buf, 8);
	assert_memory_equal(buf, "USER x\r\n", 8);
	send_all(s, "331 ok\r\n");
	read_exact(c, buf, 8);
	usleep(50 * 1000);		/* the far end's ACK of 331 */
	repair_drop(s);			/* the MASTER died */
	read_nothing(c, 100);		/* no FIN, no RST */

	/* Rebuilt knowing 16 bytes written but assuming none acknowledged. */
	plan.snd_off = 0;
	plan.rcv_off = 8;
	plan.queue = (const uint8_t *)"220 hi\r\n331 ok\r\n";	/* duplicates: dropped */
	plan.queue_len = 16;
	r = rebuild(&rs, &plan, err, sizeof(err));
	if (r == -1)
		fail_msg("rebuild: %s", err);
	assert_int_equal(plan.queued, 16);
	send_all(r, "230 in\r\n");
	read_exact(c, buf, 8);
	assert_memory_equal(buf, "230 in\r\n", 8);
	send_all(c, "PASS y\r\n");
	read_exact(r, buf, 8);
	assert_memory_equal(buf, "PASS y\r\n", 8);
	read_nothing(c, 50);
	close(c);
	close(r);
	close(l);
}

/*
 * A standby socket (the BACKUP's, made ahead of a takeover): established
 * in repair mode, it sends nothing while it waits, nor when it is
 * dropped; one made again and readied goes on with the dialogue. One
 * with bytes to send is refused (those need the rebuild at the takeover).
 */
static void
test_standby_goes_on(void **state)
{
	struct repair_sock rs;
	struct repair_plan plan = { 0 };
	char		 buf[16], err[128];
	int		 c, s, r, l;

	if (*state == NULL)
		skip();
	l = pair(&c, &s);
	assert_int_equal(repair_snapshot(s, NULL, NULL, &rs, NULL), 0);
	send_all(s, "220 hi\r\n");
	read_exact(c, buf, 8);
	send_all(c, "USER x\r\n");
	read_exact(s, buf, 8);
	usleep(50 * 1000);		/* every byte acknowledged: nothing in flight */
	repair_drop(s);			/* the MASTER died */

	plan.snd_off = 8;
	plan.rcv_off = 8;
	plan.ts = repair_ts_now(&rs, clock_wall_ns() / 1000000);
	if ((r = repair_standby(&rs, &plan, err, sizeof(err))) == -1)
		fail_msg("standby: %s", err);
	read_nothing(c, 300);		/* no segment while it stands by */
	repair_drop(r);
	read_nothing(c, 100);		/* nor when it goes */

	plan.queue = (const uint8_t *)"331 ok\r\n";
	plan.queue_len = 8;
	assert_int_equal(repair_standby(&rs, &plan, err, sizeof(err)), -1);
	assert_int_equal(errno, EINVAL);
	plan.queue = NULL;
	plan.queue_len = 0;
	if ((r = repair_standby(&rs, &plan, err, sizeof(err))) == -1)
		fail_msg("standby again: %s", err);
	usleep(200 * 1000);		/* time passes on its timestamp clock too */
	assert_int_equal(repair_ready(r), 0);
	assert_int_equal(repair_finish(r), 0);
	send_all(r, "331 ok\r\n");
	read_exact(c, buf, 8);
	assert_memory_equal(buf, "331 ok\r\n", 8);
	send_all(c, "PASS y\r\n");
	read_exact(r, buf, 8);
	assert_memory_equal(buf, "PASS y\r\n", 8);
	read_nothing(c, 50);
	close(c);
	close(r);
	close(l);
}

/*
 * A rebuild behind what the dead kernel acknowledged (the unread gap):
 * the far end's next bytes start past our rcv_nxt, so they queue out of
 * order and nothing is ever read: the signal the stale rule acts on.
 */
static void
test_rebuild_behind_is_visible(void **state)
{
	struct repair_sock rs;
	struct repair_plan plan = { 0 };
	struct repair_info ri;
	char		 buf[16], err[128];
	int		 c, s, r, i, l;

	if (*state == NULL)
		skip();
	l = pair(&c, &s);
	assert_int_equal(repair_snapshot(s, NULL, NULL, &rs, NULL), 0);
	send_all(c, "LIST\r\n");	/* acknowledged by the kernel, never read by lbd */
	usleep(50 * 1000);
	repair_drop(s);
	plan.rcv_off = 0;
	r = rebuild(&rs, &plan, err, sizeof(err));
	if (r == -1)
		fail_msg("rebuild: %s", err);
	for (i = 0; i < 3; i++) {
		send_all(c, "NOOP\r\n");
		usleep(20 * 1000);
	}
	assert_int_equal(repair_info(r, &ri), 0);
	assert_true(ri.ooopack > 0);
	assert_int_equal(ri.bytes_received, 0);
	assert_int_equal(recv(r, buf, sizeof(buf), MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
	close(c);
	close(r);
	close(l);
}

/* The implicit-TLS case: the client spoke before lbd read a byte; the snapshot counts it unread. */
static void
test_snapshot_counts_unread(void **state)
{
	struct repair_sock rs;
	struct repair_plan plan = { 0 };
	char		 buf[16], err[128];
	int		 c, s, r, l;

	if (*state == NULL)
		skip();
	l = pair(&c, &s);
	send_all(c, "HELLO");
	usleep(20 * 1000);
	assert_int_equal(repair_snapshot(s, NULL, NULL, &rs, NULL), 0);
	read_exact(s, buf, 5);		/* lbd reads the 5 bytes, offset 0-4 */
	repair_drop(s);
	plan.rcv_off = 5;
	r = rebuild(&rs, &plan, err, sizeof(err));
	if (r == -1)
		fail_msg("rebuild: %s", err);
	send_all(c, "AGAIN");
	read_exact(r, buf, 5);
	assert_memory_equal(buf, "AGAIN", 5);
	close(c);
	close(r);
	close(l);
}

/*
 * Bytes lbd read but had not forwarded when it died: queued in the
 * rebuilt socket as sent, the far end gets them from the retransmission
 * timer; and a reset from the rebuilt socket is in the far end's window.
 */
static void
test_rebuild_queue_delivers(void **state)
{
	struct repair_sock rs;
	struct repair_plan plan = { 0 };
	char		 buf[16], err[128];
	int		 c, s, r, l;

	if (*state == NULL)
		skip();
	l = pair(&c, &s);
	assert_int_equal(repair_snapshot(s, NULL, NULL, &rs, NULL), 0);
	send_all(s, "150 go\r\n");
	read_exact(c, buf, 8);
	usleep(50 * 1000);
	repair_drop(s);
	plan.snd_off = 0;			/* the 150 again, then the 226 it never sent */
	plan.queue = (const uint8_t *)"150 go\r\n226 ok\r\n";
	plan.queue_len = 16;
	r = rebuild(&rs, &plan, err, sizeof(err));
	if (r == -1)
		fail_msg("rebuild: %s", err);
	read_exact(c, buf, 8);
	assert_memory_equal(buf, "226 ok\r\n", 8);
	/* A reset (SO_LINGER 0) from the rebuilt side ends the far end's connection. */
	{
		struct linger	 lg = { .l_onoff = 1, .l_linger = 0 };

		assert_int_equal(setsockopt(r, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
	}
	close(r);
	usleep(50 * 1000);
	assert_int_equal(recv(c, buf, sizeof(buf), MSG_DONTWAIT), -1);
	assert_int_equal(errno, ECONNRESET);
	close(c);
	close(l);
}

/*
 * A late snapshot (mirror.c takes one once a pair lived a while): minus
 * the bytes moved, its sequence numbers are the early one's, and the
 * bytes in flight it reads back from the send queue are the tail of what
 * was written, acked0 matching them.
 */
static void
test_late_snapshot(void **state)
{
	struct repair_sock early, late;
	struct repair_sendq sq;
	static char	 big[256 * 1024];
	char		 buf[16];
	size_t		 i, sent = 0;
	ssize_t		 n;
	int		 c, s, l, small = 4096;

	if (*state == NULL)
		skip();
	l = pair(&c, &s);
	assert_int_equal(setsockopt(c, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
	assert_int_equal(repair_snapshot(s, NULL, NULL, &early, NULL), 0);
	send_all(s, "220 hi\r\n");
	read_exact(c, buf, 8);
	send_all(c, "USER x\r\n");
	read_exact(s, buf, 8);
	usleep(20 * 1000);		/* every byte acknowledged */
	assert_int_equal(repair_snapshot(s, NULL, NULL, &late, &sq), 0);
	assert_int_equal(late.snd_isn - 8, early.snd_isn);
	assert_int_equal(late.rcv_isn - 8, early.rcv_isn);
	assert_int_equal(sq.len, 0);
	assert_int_equal(sq.outq, 0);
	assert_null(sq.buf);
	/* c reads no more: most of a large write stays in s's send queue. */
	for (i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7 + 3);
	while (sent < sizeof(big) && (n = send(s, big + sent, sizeof(big) - sent,
	    MSG_DONTWAIT)) > 0)
		sent += (size_t)n;
	usleep(50 * 1000);
	assert_int_equal(repair_snapshot(s, NULL, NULL, &late, &sq), 0);
	assert_true(sq.len > 0 && sq.len <= sq.outq && sq.outq <= sent);
	assert_int_equal(late.snd_isn - 8 - (uint32_t)sent, early.snd_isn);
	assert_memory_equal(sq.buf, big + sent - sq.len, sq.len);
	/* acknowledged when acked0 was read: 8 bytes and what had left the queue */
	assert_true(late.acked0 - early.acked0 == 8 + sent - sq.outq);
	free(sq.buf);
	close(c);
	close(s);
	close(l);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rebuild_goes_on),
		cmocka_unit_test(test_rebuild_behind_is_visible),
		cmocka_unit_test(test_standby_goes_on),
		cmocka_unit_test(test_snapshot_counts_unread),
		cmocka_unit_test(test_rebuild_queue_delivers),
		cmocka_unit_test(test_late_snapshot),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
