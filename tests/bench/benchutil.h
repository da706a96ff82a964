/*
 * benchutil.h - helpers the sticky benchmark tools (stickysize.c,
 * stickyapply.c) share: a monotonic clock in ms and synthetic clients.
 */
#ifndef BENCHUTIL_H
#define BENCHUTIL_H

#include <stdint.h>
#include <string.h>
#include <time.h>

#include "lbd.h"

/* CLOCK_MONOTONIC in milliseconds, with the fraction. */
static inline double
bench_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Client i as a v4-mapped address 10.x.y.z. */
static inline void
bench_client_ip(struct lbd_ip *ip, uint32_t i)
{
	memset(ip, 0, sizeof(*ip));
	ip->bytes[10] = 0xff;
	ip->bytes[11] = 0xff;
	ip->bytes[12] = 10;
	ip->bytes[13] = (uint8_t)(i >> 16);
	ip->bytes[14] = (uint8_t)(i >> 8);
	ip->bytes[15] = (uint8_t)i;
}

#endif
