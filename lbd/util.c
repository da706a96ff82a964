/*
 * util.c - small helpers shared by the modules: monotonic clock, fd
 * accounting, systemd readiness, services by name.
 */
#include <sys/un.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <dirent.h>
#include <time.h>

#include "lbd.h"

uint32_t
now_s(void)
{
	struct timespec	 ts;

	/* Coarse is enough for sticky expiry and is cheaper on the accept path. */
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint32_t)ts.tv_sec;
}

/* Returns: open descriptors of this process, or -1 when /proc is missing. */
int
fd_count_open(void)
{
	DIR		*d;
	struct dirent	*de;
	int		 n = 0;

	if ((d = opendir("/proc/self/fd")) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;	/* the directory stream's own descriptor */
}

/*
 * Tells systemd (Type=notify) that we are serving: one datagram to
 * $NOTIFY_SOCKET.  Nothing to do when not started by systemd.
 */
void
sd_notify_ready(void)
{
	struct sockaddr_un	 sun;
	const char		*path = getenv("NOTIFY_SOCKET");
	const char		 msg[] = "READY=1";
	socklen_t		 len;
	int			 fd;

	if (path == NULL || path[0] == '\0' || strlen(path) >= sizeof(sun.sun_path))
		return;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path));
	if (sun.sun_path[0] == '@')
		sun.sun_path[0] = '\0';	/* abstract namespace */
	len = offsetof(struct sockaddr_un, sun_path) + strlen(path);
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1) {
		log_warn("sd_notify: socket");
		return;
	}
	if (sendto(fd, msg, sizeof(msg) - 1, 0, (struct sockaddr *)&sun, len) == -1)
		log_warn("sd_notify: sendto %s", path);
	close(fd);
}

/* Returns: the service called name, or NULL. */
struct service *
lbd_service_by_name(struct lbd *lbd, const char *name)
{
	int	 i;

	for (i = 0; i < lbd->nservices; i++)
		if (strcmp(lbd->services[i].conf.name, name) == 0)
			return &lbd->services[i];
	return NULL;
}
