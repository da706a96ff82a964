/*
 * benchutil.h - helpers the sticky benchmark tools (stickysize.c,
 * stickyapply.c) share: milliseconds with the fraction, synthetic clients.
 */
#ifndef BENCHUTIL_H
#define BENCHUTIL_H

#include <stdint.h>
#include <string.h>

#include "lbd.h"

/* CLOCK_MONOTONIC in milliseconds, with the fraction. */
static inline double
bench_now_ms(void)
{
	return (double)clock_now_us() / 1e3;
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
