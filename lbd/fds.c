/*
 * fds.c - lbd's descriptor budget: the open-files limit checked against
 * the configuration at start (and on reload), and a reserve of
 * descriptors that the data plane leaves free at run time for health
 * checks, the control socket and the sync channel.
 *
 * Why a budget and not a reserve of dup'ed /dev/null descriptors freed on
 * EMFILE: such a reserve serves whoever runs into EMFILE first (another
 * accept, a pipe in a worker thread), must be taken back after each use,
 * and a client accepted with it still had to be closed at once. The data
 * plane is the only consumer that grows with load (two sockets per
 * connection, pipe ends while bytes are in flight); everything else is
 * bounded by the configuration. So the relay counts what it holds, and
 * the listeners stop accepting, leaving clients in the kernel backlog,
 * while fewer than the reserve would remain free; they resume as soon as
 * connections close. Pipes beyond the budget are not made: the connection
 * copies through the bounce buffer instead.
 */
#include <sys/resource.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lbd.h"

#define FDS_RESERVE_FIXED	32	/* control clients, metrics, sync channel, libraries' transient sockets */
#define FDS_BASE_FIXED		64	/* stdio, event loops, eventfds, epoll sets, heartbeat, netlink, ARP */

/* Written by the main thread, read by relay workers too (pipes): relaxed atomics. */
static uint64_t	 fds_limit;	/* soft RLIMIT_NOFILE in force; 0: no budget (not started) */
static uint64_t	 fds_base;	/* descriptors open with no client connection */
static uint64_t	 fds_used;	/* descriptors the relay holds: sockets and pipe ends; atomic */
static uint64_t	 fds_reserve_n;	/* kept free for checks, control and sync */

void
fds_plan(const struct lbd_config *conf, uint64_t cur, uint64_t max, struct fds_plan *p)
{
	const struct service_config *sc;
	uint64_t	 fixed;
	int		 i, j;

	memset(p, 0, sizeof(*p));
	for (i = 0; i < conf->nservices; i++) {
		sc = &conf->services[i];
		p->connections += (uint64_t)sc->max_connections;
		p->reserve += (uint64_t)sc->nbackends;	/* one check socket each */
		for (j = 0; j < sc->nranges; j++)
			p->listeners += (uint64_t)(sc->ranges[j].last - sc->ranges[j].first) + 1;
	}
	p->reserve += FDS_RESERVE_FIXED;
	fixed = p->listeners + p->reserve + FDS_BASE_FIXED;
	p->need = p->connections * RELAY_FDS_PER_CONN + fixed;
	/* As before the budget: nothing is gained by holding the soft limit back. */
	p->soft = cur < max ? max : cur;
	p->enough = p->soft >= p->need;
	p->fit = p->soft > fixed ? (p->soft - fixed) / RELAY_FDS_PER_CONN : 0;
}

int
fds_setup(const struct lbd_config *conf)
{
	struct fds_plan	 p;
	struct rlimit	 rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
		log_warn("getrlimit(RLIMIT_NOFILE)");
		return -1;
	}
	fds_plan(conf, (uint64_t)rl.rlim_cur, (uint64_t)rl.rlim_max, &p);
	if (p.soft != (uint64_t)rl.rlim_cur) {
		rl.rlim_cur = (rlim_t)p.soft;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
			log_warn("setrlimit(RLIMIT_NOFILE, %" PRIu64 ")", p.soft);
			if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
				return -1;
			fds_plan(conf, (uint64_t)rl.rlim_cur, (uint64_t)rl.rlim_cur, &p);
		}
	}
	/* A reload: the budget runs already; new backends need their check sockets kept. */
	if (fds_limit_now() != 0) {
		__atomic_store_n(&fds_reserve_n, p.reserve, __ATOMIC_RELAXED);
		__atomic_store_n(&fds_limit, p.soft, __ATOMIC_RELAXED);
	}
	if (p.enough)
		return 0;
	log_warnx("open files limit %" PRIu64 " is below the %" PRIu64 " descriptors this "
	    "configuration can use (max_connections %" PRIu64 " in all x %d + %" PRIu64
	    " kept for checks, control and sync + %" PRIu64 " listeners + %d): set "
	    "LimitNOFILE=%" PRIu64 " in lbd.service (or ulimit -n), or lower "
	    "max_connections to %" PRIu64 " in all; until then clients wait in the "
	    "backlog when descriptors run short", p.soft, p.need, p.connections,
	    RELAY_FDS_PER_CONN, p.reserve, p.listeners, FDS_BASE_FIXED, p.need, p.fit);
	return 1;
}

void
fds_start(const struct lbd_config *conf)
{
	struct fds_plan	 p;
	struct rlimit	 rl;
	int		 n;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || (n = fd_count_open()) == -1) {
		log_warn("descriptor budget off: cannot read the limit or /proc/self/fd");
		return;
	}
	fds_plan(conf, (uint64_t)rl.rlim_cur, (uint64_t)rl.rlim_cur, &p);
	/* Nothing is connected yet: what is open now is lbd's own. */
	fds_budget_set((uint64_t)rl.rlim_cur, (uint64_t)n, p.reserve);
	log_debug("descriptor budget: limit %" PRIu64 ", %d open at start, %" PRIu64
	    " kept free", (uint64_t)rl.rlim_cur, n, p.reserve);
}

void
fds_budget_set(uint64_t limit, uint64_t base, uint64_t reserve)
{
	__atomic_store_n(&fds_base, base, __ATOMIC_RELAXED);
	__atomic_store_n(&fds_reserve_n, reserve, __ATOMIC_RELAXED);
	__atomic_store_n(&fds_limit, limit, __ATOMIC_RELAXED);
}

uint64_t
fds_reserve(void)
{
	return __atomic_load_n(&fds_reserve_n, __ATOMIC_RELAXED);
}

uint64_t
fds_limit_now(void)
{
	return __atomic_load_n(&fds_limit, __ATOMIC_RELAXED);
}

/* The relay opened (delta > 0) or closed descriptors: what fds_room counts. */
void
fds_use(int delta)
{
	if (delta >= 0)
		__atomic_add_fetch(&fds_used, (uint64_t)delta, __ATOMIC_RELAXED);
	else
		__atomic_sub_fetch(&fds_used, (uint64_t)-delta, __ATOMIC_RELAXED);
}

bool
fds_room(unsigned int n)
{
	uint64_t	 limit = fds_limit_now(), used;

	if (limit == 0)
		return true;
	used = __atomic_load_n(&fds_base, __ATOMIC_RELAXED) +
	    __atomic_load_n(&fds_used, __ATOMIC_RELAXED);
	return used + n + fds_reserve() <= limit;
}
