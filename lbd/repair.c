/*
 * repair.c - the TCP_REPAIR side of connection mirroring: what a live
 * socket's peer-visible state is (sequence numbers, options, timestamp
 * clock, windows), taken once right after the connection is set up, and
 * the rebuild of a socket from that state on another node, in repair mode
 * so no SYN leaves and the far end sees the same connection go on.
 *
 * - A snapshot reads the sequence number of the next byte lbd will write
 *   and of the next it will read (the kernel's rcv_nxt minus the bytes
 *   queued unread), and, when asked, the bytes still in flight (the send
 *   queue, peeked in repair mode). The caller subtracts the bytes it moved
 *   before (mirror.c takes it 200 ms into a pair's life); from then on
 *   sequence numbers are these plus byte counts, which the mirror keeps:
 *   no more repair-mode calls on live sockets.
 * - The rebuild order is the kernel's: queue sequence numbers while the
 *   socket is still closed, bind (repair mode forces address reuse, so
 *   VIP:21 binds beside the listener), connect (established at once, no
 *   SYN), then the options the handshake negotiated, the timestamp clock
 *   and the windows, and repair off. The window probe, whose answer tells
 *   the new socket the far end's real window and what it has, is the
 *   caller's (repair_probe): at a takeover it waits for the GARP, before
 *   which the answer would go to the dead node. 12 system calls a socket
 *   before it (repair_finish adds TCP_NODELAY, address reuse and the probe).
 * - A standby socket (repair_standby) is the same rebuild made ahead of
 *   time on the BACKUP, for a pair with nothing in flight, and left in
 *   repair mode: established, silent, bound to the VIP it does not have
 *   (IP_TRANSPARENT). A takeover then needs one call for it, repair_ready
 *   (repair off); closed in repair mode, it sends nothing.
 * - Timestamps: each connection has its own clock offset. The rebuilt
 *   clock is the snapshot's value plus the wall time since, plus a margin
 *   for clock skew between the nodes, so it never goes back for the far
 *   end (PAWS would drop every segment). Forward jumps are harmless.
 * - Needs CAP_NET_ADMIN (EPERM otherwise). This file includes the
 *   kernel's <linux/tcp.h> for struct tcp_info with the byte counters
 *   (glibc's is older) and the repair structures; nothing else here may
 *   include <netinet/tcp.h>.
 */
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lbd.h"

#ifndef TCPOPT_MAXSEG
#define TCPOPT_MAXSEG		2	/* kernel option codes for TCP_REPAIR_OPTIONS */
#define TCPOPT_WINDOW		3
#define TCPOPT_SACK_PERM	4
#define TCPOPT_TIMESTAMP	8
#endif
#define REPAIR_TS_OPTLEN	12	/* a timestamp option's bytes in every segment */
#define REPAIR_INQ_TRIES	8	/* tries for a receive queue not moving under the snapshot */
#define REPAIR_QUEUE_SMALL	(64 * 1024)	/* a larger rebuilt send queue gets its own buffer size */
#define REPAIR_QUEUE_MAX	(8 << 20)	/* ... up to this */

/* Sets an int socket option. Returns 0 or -1 (errno). */
static int
repair_set(int fd, int level, int opt, int val)
{
	return setsockopt(fd, level, opt, &val, sizeof(val));
}

/*
 * Leaving repair mode clears the socket's address reuse (sk_reuse): a
 * socket left of a crashed lbd would then keep the next one from binding
 * its listener on VIP:21. Accepted sockets had SO_REUSEADDR from the
 * listener: give it back (a rebuilt one in repair_finish).
 */
static void
repair_reuse(int fd)
{
	(void)repair_set(fd, SOL_SOCKET, SO_REUSEADDR, 1);
}

/* The kernel's view of fd. Returns 0 or -1 (errno). */
static int
repair_tcp_info(int fd, struct tcp_info *ti)
{
	socklen_t	 len = sizeof(*ti);

	memset(ti, 0, sizeof(*ti));
	return getsockopt(fd, IPPROTO_TCP, TCP_INFO, ti, &len);
}

/* Reads the sequence number of queue q (TCP_SEND_QUEUE or TCP_RECV_QUEUE); fd in repair mode. */
static int
repair_queue_seq(int fd, int q, uint32_t *seq)
{
	socklen_t	 len = sizeof(*seq);

	if (repair_set(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, q) == -1)
		return -1;
	return getsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, seq, &len);
}

/*
 * Reads what rebuilding fd needs, fd in repair mode. The receive queue may
 * grow while we look: the unread count is taken on both sides of rcv_nxt
 * until it holds still.
 */
/*
 * The bytes sent and not acknowledged yet (a snapshot of a socket that
 * has carried bytes already), fd in repair mode with the send queue
 * selected. acked0 and the queue's length are taken until no ACK came
 * between them (three cheap calls: a busy transfer's ACKs come far
 * apart); the contents after, so an ACK meanwhile only shortens them from
 * the front (the copy runs under the socket lock: it is one instant).
 * Returns 0, -1 (errno; EAGAIN: ACKs kept coming in between).
 */
static int
repair_read_sendq(int fd, struct repair_sock *rs, struct repair_sendq *sq)
{
	struct tcp_info	 ti;
	uint64_t	 acked = 0;
	ssize_t		 n;
	int		 i, q = -1;

	sq->buf = NULL;
	sq->len = sq->outq = 0;
	for (i = 0; i < REPAIR_INQ_TRIES; i++) {
		if (repair_tcp_info(fd, &ti) == -1 || ioctl(fd, SIOCOUTQ, &q) == -1 || q < 0)
			return -1;
		acked = ti.tcpi_bytes_acked;
		if (repair_tcp_info(fd, &ti) == -1)
			return -1;
		if (ti.tcpi_bytes_acked == acked)
			break;
	}
	if (i == REPAIR_INQ_TRIES) {
		errno = EAGAIN;
		return -1;
	}
	rs->acked0 = acked;
	sq->outq = (size_t)q;
	if (q == 0)
		return 0;
	if ((sq->buf = malloc((size_t)q)) == NULL)
		return -1;
	/* In repair mode a peek of the send queue reads what is in flight: its tail is ours. */
	if ((n = recv(fd, sq->buf, (size_t)q, MSG_PEEK | MSG_DONTWAIT)) == -1) {
		free(sq->buf);
		sq->buf = NULL;
		return -1;
	}
	sq->len = (size_t)n;
	return 0;
}

static int
repair_read_state(int fd, struct repair_sock *rs, struct repair_sendq *sq)
{
	struct tcp_repair_window w;
	socklen_t	 len;
	uint32_t	 rcv_nxt = 0;
	int		 i, q1 = 0, q2 = -1;

	if (repair_queue_seq(fd, TCP_SEND_QUEUE, &rs->snd_isn) == -1)
		return -1;
	if (sq != NULL && repair_read_sendq(fd, rs, sq) == -1)
		return -1;
	for (i = 0; i < REPAIR_INQ_TRIES && q1 != q2; i++) {
		if (ioctl(fd, SIOCINQ, &q1) == -1 ||
		    repair_queue_seq(fd, TCP_RECV_QUEUE, &rcv_nxt) == -1 ||
		    ioctl(fd, SIOCINQ, &q2) == -1)
			return -1;
	}
	if (q1 != q2 || q1 < 0) {
		errno = EAGAIN;
		return -1;
	}
	rs->rcv_isn = rcv_nxt - (uint32_t)q1;
	len = sizeof(w);
	if (getsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, &w, &len) == -1)
		return -1;
	rs->snd_wnd = w.snd_wnd;
	rs->rcv_wnd = w.rcv_wnd;
	return 0;	/* the queue selector matters in repair mode only */
}

int
repair_snapshot(int fd, const struct sockaddr *local, const struct sockaddr *remote,
    struct repair_sock *rs, struct repair_sendq *sq)
{
	struct tcp_info	 ti;
	socklen_t	 len;
	uint32_t	 ts = 0;
	int		 rc, saved;

	memset(rs, 0, sizeof(*rs));
	len = sizeof(rs->local);
	if (local != NULL)
		memcpy(&rs->local, local, addr_len(local));
	else if (getsockname(fd, (struct sockaddr *)&rs->local, &len) == -1)
		return -1;
	len = sizeof(rs->remote);
	if (remote != NULL)
		memcpy(&rs->remote, remote, addr_len(remote));
	else if (getpeername(fd, (struct sockaddr *)&rs->remote, &len) == -1)
		return -1;
	if (repair_tcp_info(fd, &ti) == -1)
		return -1;
	/* A FIN already in (CLOSE_WAIT) would need its own sequence number: not mirrored. */
	if (ti.tcpi_state != 1 /* TCP_ESTABLISHED */) {
		errno = ENOTCONN;
		return -1;
	}
	rs->sack = (ti.tcpi_options & TCPI_OPT_SACK) != 0;
	rs->tstamp = (ti.tcpi_options & TCPI_OPT_TIMESTAMPS) != 0;
	rs->wscale = (ti.tcpi_options & TCPI_OPT_WSCALE) != 0;
	rs->snd_wscale = ti.tcpi_snd_wscale;
	rs->rcv_wscale = ti.tcpi_rcv_wscale;
	rs->acked0 = ti.tcpi_bytes_acked;
	/* snd_mss (mss_cache, TCP_MAXSEG's value) leaves room for the timestamp option: the clamp is the peer's MSS. */
	rs->mss = (uint16_t)(ti.tcpi_snd_mss + (rs->tstamp ? REPAIR_TS_OPTLEN : 0));
	if (rs->tstamp) {
		len = sizeof(ts);
		if (getsockopt(fd, IPPROTO_TCP, TCP_TIMESTAMP, &ts, &len) == -1)
			return -1;
	}
	rs->ts_val = ts;
	rs->wall_ms = clock_wall_ns() / 1000000;
	if (repair_set(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_ON) == -1)
		return -1;
	rc = repair_read_state(fd, rs, sq);
	saved = errno;
	/* No probe: nothing changed for the far end. */
	if (repair_set(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_OFF_NO_WP) == -1 && rc == 0)
		return -1;
	errno = saved;
	if (rc == 0)
		repair_reuse(fd);
	return rc;
}

int
repair_clock(int fd, struct repair_sock *rs)
{
	socklen_t	 len = sizeof(rs->ts_val);

	rs->wall_ms = clock_wall_ns() / 1000000;
	if (!rs->tstamp)
		return 0;
	return getsockopt(fd, IPPROTO_TCP, TCP_TIMESTAMP, &rs->ts_val, &len);
}

int
repair_peer_ahead(int fd)
{
	struct tcp_repair_window w;
	socklen_t	 len = sizeof(w);
	uint32_t	 rcv_nxt;
	int		 rc = -1, saved;

	if (repair_set(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_ON) == -1)
		return -1;
	/* snd_wl1: the sequence number of the far end's latest segment that moved the window. */
	if (getsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, &w, &len) == 0 &&
	    repair_queue_seq(fd, TCP_RECV_QUEUE, &rcv_nxt) == 0)
		rc = (int32_t)(w.snd_wl1 - rcv_nxt) > 0;
	saved = errno;
	(void)repair_set(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE);
	(void)repair_set(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_OFF_NO_WP);
	repair_reuse(fd);
	errno = saved;
	return rc;
}

int
repair_info(int fd, struct repair_info *ri)
{
	struct tcp_info	 ti;

	if (repair_tcp_info(fd, &ti) == -1)
		return -1;
	ri->state = ti.tcpi_state;
	ri->bytes_acked = ti.tcpi_bytes_acked;
	ri->bytes_received = ti.tcpi_bytes_received;
	ri->segs_in = ti.tcpi_segs_in;
	ri->ooopack = ti.tcpi_rcv_ooopack;
	ri->unacked = ti.tcpi_unacked;
	return 0;
}

uint32_t
repair_ts_now(const struct repair_sock *rs, uint64_t wall_ms)
{
	uint64_t	 since = wall_ms > rs->wall_ms ? wall_ms - rs->wall_ms : 0;

	return rs->ts_val + (uint32_t)since + REPAIR_TS_SKEW_MS;
}

/*
 * Queues plan's bytes as sent already, fd in repair mode and connected:
 * snd_nxt then covers everything lbd read, so the far end's ACKs and a
 * reset of ours are in its window; what it lacks goes out with the
 * retransmission timer. A large queue gets a send buffer to hold it
 * (a fresh socket's is 16 KiB); what does not fit is the caller's.
 */
static int
repair_queue(int fd, struct repair_plan *plan)
{
	ssize_t		 n;

	plan->queued = 0;
	if (plan->queue_len == 0)
		return 0;
	if (plan->queue_len > REPAIR_QUEUE_SMALL)
		(void)repair_set(fd, SOL_SOCKET, SO_SNDBUFFORCE, (int)(plan->queue_len >
		    REPAIR_QUEUE_MAX ? REPAIR_QUEUE_MAX : plan->queue_len * 2));
	if (repair_set(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE) == -1)
		return -1;
	while (plan->queued < plan->queue_len) {
		n = send(fd, plan->queue + plan->queued, plan->queue_len - plan->queued,
		    MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0)
			return -1;
		plan->queued += (size_t)n;
	}
	return 0;
}

/* The rebuild, fd fresh in repair mode; what names the failing step. */
static int
repair_build(int fd, const struct repair_sock *rs, struct repair_plan *plan,
    bool standby, const char **what)
{
	struct tcp_repair_opt	 opt[4];
	struct tcp_repair_window w;
	uint32_t		 snd_seq = rs->snd_isn + (uint32_t)plan->snd_off;
	uint32_t		 rcv_seq = rs->rcv_isn + (uint32_t)plan->rcv_off;
	int			 n = 0, v6 = rs->local.ss_family == AF_INET6;

	*what = "SO_MARK";
	if (plan->mark != 0 && repair_set(fd, SOL_SOCKET, SO_MARK, (int)plan->mark) == -1)
		return -1;
	/* The queue selector stays where it is left: it matters in repair mode only. */
	*what = "TCP_QUEUE_SEQ";
	if (repair_set(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE) == -1 ||
	    repair_set(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, (int)snd_seq) == -1 ||
	    repair_set(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE) == -1 ||
	    repair_set(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, (int)rcv_seq) == -1)
		return -1;
	/*
	 * The address is there at a takeover (added first); else bound free,
	 * as a listener. A standby socket is made where the address is not:
	 * IP_TRANSPARENT lets it connect (route) from it, IP_FREEBIND would not.
	 */
	*what = "IP_TRANSPARENT";
	if (standby && repair_set(fd, v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_TRANSPARENT :
	    IP_TRANSPARENT, 1) == -1)
		return -1;
	*what = "bind";
	if (bind(fd, (const struct sockaddr *)&rs->local,
	    addr_len((const struct sockaddr *)&rs->local)) == -1) {
		if (errno != EADDRNOTAVAIL)
			return -1;
		*what = "IP_FREEBIND";
		if (repair_set(fd, v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_FREEBIND :
		    IP_FREEBIND, 1) == -1)
			return -1;
		*what = "bind";
		if (bind(fd, (const struct sockaddr *)&rs->local,
		    addr_len((const struct sockaddr *)&rs->local)) == -1)
			return -1;
	}
	*what = "connect";
	if (connect(fd, (const struct sockaddr *)&rs->remote,
	    addr_len((const struct sockaddr *)&rs->remote)) == -1)
		return -1;
	opt[n].opt_code = TCPOPT_MAXSEG;
	opt[n++].opt_val = rs->mss;
	if (rs->wscale) {
		opt[n].opt_code = TCPOPT_WINDOW;
		opt[n++].opt_val = (uint32_t)rs->snd_wscale | (uint32_t)rs->rcv_wscale << 16;
	}
	if (rs->sack) {
		opt[n].opt_code = TCPOPT_SACK_PERM;
		opt[n++].opt_val = 0;
	}
	if (rs->tstamp) {
		opt[n].opt_code = TCPOPT_TIMESTAMP;
		opt[n++].opt_val = 0;
	}
	*what = "TCP_REPAIR_OPTIONS";
	if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_OPTIONS, opt,
	    (socklen_t)(n * (int)sizeof(opt[0]))) == -1)
		return -1;
	*what = "TCP_TIMESTAMP";
	if (rs->tstamp && repair_set(fd, IPPROTO_TCP, TCP_TIMESTAMP, (int)plan->ts) == -1)
		return -1;
	*what = "the send queue";
	if (repair_queue(fd, plan) == -1)
		return -1;
	/* The windows of the snapshot; the window probe brings the real ones. */
	w.snd_wl1 = rcv_seq;
	w.snd_wnd = rs->snd_wnd;
	w.max_window = rs->snd_wnd;
	w.rcv_wnd = rs->rcv_wnd;
	w.rcv_wup = rcv_seq;
	*what = "TCP_REPAIR_WINDOW";
	if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, &w, sizeof(w)) == -1)
		return -1;
	/* No window probe, no TCP_NODELAY, no reuse here: repair_finish, after the GARP. */
	*what = "TCP_REPAIR off";
	return standby ? 0 : repair_ready(fd);
}

/* repair_rebuild and repair_standby. */
static int
repair_make(const struct repair_sock *rs, struct repair_plan *plan, bool standby,
    char *err, size_t errlen)
{
	const char	*what = "socket";
	int		 fd, saved;

	if (standby && plan->queue_len > 0) {
		snprintf(err, errlen, "a standby socket has nothing to send");
		errno = EINVAL;
		return -1;
	}
	if ((fd = socket(rs->local.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1)
		goto fail;
	what = "TCP_REPAIR";
	if (repair_set(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_ON) == -1)
		goto fail;
	if (repair_build(fd, rs, plan, standby, &what) == -1)
		goto fail;
	return fd;
fail:
	saved = errno;
	snprintf(err, errlen, "%s: %s%s", what, strerror(saved), saved == EPERM ?
	    " (TCP_REPAIR needs CAP_NET_ADMIN)" : "");
	if (fd != -1)
		repair_drop(fd);
	errno = saved;
	return -1;
}

int
repair_rebuild(const struct repair_sock *rs, struct repair_plan *plan, char *err,
    size_t errlen)
{
	return repair_make(rs, plan, false, err, errlen);
}

int
repair_standby(const struct repair_sock *rs, const struct repair_plan *plan, char *err,
    size_t errlen)
{
	struct repair_plan p = *plan;

	return repair_make(rs, &p, true, err, errlen);
}

int
repair_ready(int fd)
{
	return repair_set(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_OFF_NO_WP);
}

int
repair_probe(int fd)
{
	int	 rc;

	if (repair_set(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_ON) == -1)
		return -1;
	rc = repair_set(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_OFF);
	repair_reuse(fd);
	return rc;
}

int
repair_finish(int fd)
{
	if (repair_set(fd, IPPROTO_TCP, TCP_NODELAY, 1) == -1)
		return -1;
	return repair_probe(fd);
}

void
repair_drop(int fd)
{
	/* In repair mode close() sends nothing: the far end's connection lives on elsewhere. */
	(void)repair_set(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_ON);
	close(fd);
}
