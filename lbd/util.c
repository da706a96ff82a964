/*
 * util.c - small helpers shared by the modules: monotonic clock, fd
 * accounting, services by name.
 */
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
