/*
 * clock.h - the clocks lbd and hasync share, header-only so that hasync
 * still links alone: CLOCK_MONOTONIC for every timer and age (immune to
 * clock steps), CLOCK_REALTIME only for what a peer reads as wall time.
 */
#ifndef COMMON_CLOCK_H
#define COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in microseconds. */
static inline uint64_t
clock_now_us(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* CLOCK_MONOTONIC in milliseconds: tv_sec * 1000 + tv_nsec / 1000000. */
static inline uint64_t
clock_now_ms(void)
{
	return clock_now_us() / 1000;
}

/* CLOCK_REALTIME in nanoseconds (boot ids, keepalive send times). */
static inline uint64_t
clock_wall_ns(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#endif
