/*
 * clock.c - the HA layer's clocks: CLOCK_MONOTONIC for every timer and
 * age (HA timers must be immune to clock steps), CLOCK_REALTIME only for
 * what the peer reads as wall time (boot ids, keepalive send times).
 */
#include <time.h>

#include "hasync_int.h"

uint64_t
hasync_now_us(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* The same value as tv_sec * 1000 + tv_nsec / 1000000. */
uint64_t
hasync_now_ms(void)
{
	return hasync_now_us() / 1000;
}

uint64_t
hasync_wall_ns(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
