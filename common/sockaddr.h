/*
 * sockaddr.h - socket addresses as text for messages, shared by lbd and
 * hasync, header-only so that hasync still links alone.
 */
#ifndef COMMON_SOCKADDR_H
#define COMMON_SOCKADDR_H

#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>

/* The address of sa ("a.b.c.d" or "x::y") in buf; "(family N)" for others. */
static inline const char *
sockaddr_str(const struct sockaddr *sa, char *buf, size_t len)
{
	const void	*a;

	if (sa->sa_family == AF_INET)
		a = &((const struct sockaddr_in *)sa)->sin_addr;
	else if (sa->sa_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
	else {
		snprintf(buf, len, "(family %d)", sa->sa_family);
		return buf;
	}
	if (inet_ntop(sa->sa_family, a, buf, (socklen_t)len) == NULL)
		snprintf(buf, len, "(bad address)");
	return buf;
}

/* "a.b.c.d:port" or "[x::y]:port" in buf; "(family N)" for others. */
static inline const char *
sockaddr_port_str(const struct sockaddr *sa, char *buf, size_t len)
{
	const struct sockaddr_in	*sin = (const struct sockaddr_in *)sa;
	const struct sockaddr_in6	*sin6 = (const struct sockaddr_in6 *)sa;
	char				 a[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET && inet_ntop(AF_INET, &sin->sin_addr, a, sizeof(a)))
		snprintf(buf, len, "%s:%u", a, ntohs(sin->sin_port));
	else if (sa->sa_family == AF_INET6 &&
	    inet_ntop(AF_INET6, &sin6->sin6_addr, a, sizeof(a)))
		snprintf(buf, len, "[%s]:%u", a, ntohs(sin6->sin6_port));
	else
		snprintf(buf, len, "(family %d)", sa->sa_family);
	return buf;
}

#endif
