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
#include <string.h>
#include <time.h>

#include <event2/event.h>

/* Microseconds on CLOCK_MONOTONIC. */
static inline uint64_t
tu_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/*
 * Runs base's loop for ms milliseconds, one event_base_loop(flags) at a
 * time: EVLOOP_NONBLOCK spins on an empty loop; EVLOOP_ONCE blocks, so the
 * loop needs a ticking timer to come back by the deadline.
 */
static inline void
tu_pump(struct event_base *base, int ms, int flags)
{
	uint64_t end = tu_now_us() + (uint64_t)ms * 1000;

	while (tu_now_us() < end)
		event_base_loop(base, flags);
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
