/*
 * addr.c - IP address parsing and printing, and the 16-byte client key
 * (IPv4 v4-mapped) used by the sticky table.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lbd.h"

/* Returns: 0 and ss set (port 0), -1 when s is not an IPv4/IPv6 literal. */
int
addr_parse(const char *s, struct sockaddr_storage *ss)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, s, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		return 0;
	}
	memset(ss, 0, sizeof(*ss));
	return -1;
}

/* Returns: 0 for "addr/len" with len in range for the family, else -1. */
int
addr_parse_prefix(const char *s, struct sockaddr_storage *ss, int *prefixlen)
{
	char		 buf[INET6_ADDRSTRLEN + 8], *slash, *end;
	long		 len;

	if (strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	if ((slash = strchr(buf, '/')) == NULL)
		return -1;
	*slash++ = '\0';
	if (*slash == '\0')
		return -1;
	len = strtol(slash, &end, 10);
	if (*end != '\0' || addr_parse(buf, ss) == -1)
		return -1;
	if (len < 1 || len > (ss->ss_family == AF_INET ? 32 : 128))
		return -1;
	*prefixlen = (int)len;
	return 0;
}

socklen_t
addr_len(const struct sockaddr *sa)
{
	return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in);
}

void
addr_set_port(struct sockaddr_storage *ss, uint16_t port)
{
	if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
	else
		((struct sockaddr_in *)ss)->sin_port = htons(port);
}

uint16_t
addr_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	return ntohs(((const struct sockaddr_in *)sa)->sin_port);
}

bool
addr_equal(const struct sockaddr *a, const struct sockaddr *b)
{
	struct lbd_ip	 ia, ib;

	if (a->sa_family != b->sa_family)
		return false;
	ip_from_sockaddr(&ia, a);
	ip_from_sockaddr(&ib, b);
	return memcmp(&ia, &ib, sizeof(ia)) == 0;
}

void
ip_from_sockaddr(struct lbd_ip *ip, const struct sockaddr *sa)
{
	memset(ip, 0, sizeof(*ip));
	if (sa->sa_family == AF_INET6) {
		memcpy(ip->bytes, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	} else if (sa->sa_family == AF_INET) {
		ip->bytes[10] = 0xff;
		ip->bytes[11] = 0xff;
		memcpy(ip->bytes + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	}
}

void
ip_to_sockaddr(const struct lbd_ip *ip, uint16_t port, struct sockaddr_storage *ss)
{
	static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (memcmp(ip->bytes, v4mapped, sizeof(v4mapped)) == 0) {
		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, ip->bytes + 12, 4);
		sin->sin_port = htons(port);
	} else {
		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, ip->bytes, 16);
		sin6->sin6_port = htons(port);
	}
}

/* Returns: 0 and ip set, -1 when s is not an IPv4/IPv6 literal. */
int
ip_parse(const char *s, struct lbd_ip *ip)
{
	struct sockaddr_storage	 ss;

	if (addr_parse(s, &ss) == -1)
		return -1;
	ip_from_sockaddr(ip, (struct sockaddr *)&ss);
	return 0;
}

const char *
ip_str(const struct lbd_ip *ip, char *buf, size_t len)
{
	static const uint8_t	 v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (memcmp(ip->bytes, v4mapped, sizeof(v4mapped)) == 0) {
		if (inet_ntop(AF_INET, ip->bytes + 12, buf, len) == NULL)
			snprintf(buf, len, "?");
	} else if (inet_ntop(AF_INET6, ip->bytes, buf, len) == NULL)
		snprintf(buf, len, "?");
	return buf;
}
