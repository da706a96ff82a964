/* testutil.h - helpers any unit test may use: clock, event loop, socket addresses, strings. */
#ifndef TESTUTIL_H
#define TESTUTIL_H

/*
 * Header-only (static inline), so each test binary takes what it uses and
 * the Makefile's one-source unit rule stays as it is. Include it after
 * <cmocka.h> and its prerequisites (<setjmp.h>, <stdarg.h>, <stddef.h>).
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "clock.h"	/* common/: clock_now_us */

/*
 * Runs base's loop for ms milliseconds, one event_base_loop(flags) at a
 * time: EVLOOP_NONBLOCK spins on an empty loop; EVLOOP_ONCE blocks, so the
 * loop needs a ticking timer to come back by the deadline.
 */
static inline void
tu_pump(struct event_base *base, int ms, int flags)
{
	uint64_t end = clock_now_us() + (uint64_t)ms * 1000;

	while (clock_now_us() < end)
		event_base_loop(base, flags);
}

static inline void
tu_on_tick(evutil_socket_t fd, short what, void *arg)
{
}

/*
 * A new event base with a persistent 5 ms timer *tick, so tu_pump(...,
 * EVLOOP_ONCE) and loops on EVLOOP_ONCE come back at least that often.
 * Returns: the base, or NULL.
 */
static inline struct event_base *
tu_loop_new(struct event **tick)
{
	struct timeval	 tv = { 0, 5000 };
	struct event_base *base;

	if ((base = event_base_new()) == NULL)
		return NULL;
	if ((*tick = event_new(base, -1, EV_PERSIST, tu_on_tick, NULL)) == NULL ||
	    event_add(*tick, &tv) == -1) {
		event_base_free(base);
		return NULL;
	}
	return base;
}

/* Frees what tu_loop_new made, and libevent's globals (for the leak checker). */
static inline void
tu_loop_free(struct event_base *base, struct event *tick)
{
	event_free(tick);
	event_base_free(base);
	libevent_global_shutdown();
}

/* ss = an IPv4 or IPv6 literal s (asserted valid) with port. */
static inline void
tu_set_addr(struct sockaddr_storage *ss, const char *s, uint16_t port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (strchr(s, ':') != NULL) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		assert_int_equal(inet_pton(AF_INET6, s, &sin6->sin6_addr), 1);
		return;
	}
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	assert_int_equal(inet_pton(AF_INET, s, &sin->sin_addr), 1);
}

/* A log line of node name, shown only when TEST_VERBOSE is set. */
static inline void
tu_log(const char *name, int level, const char *msg)
{
	if (getenv("TEST_VERBOSE") != NULL)
		fprintf(stderr, "  [%s %d] %s\n", name, level, msg);
}

/* Counts the occurrences of needle in hay. */
static inline int
tu_count(const char *hay, const char *needle)
{
	int n = 0;

	while ((hay = strstr(hay, needle)) != NULL) {
		n++;
		hay += strlen(needle);
	}
	return n;
}

#endif /* TESTUTIL_H */
