/*
 * bus.c - lbd's event bus: modules publish what happens (role, backend,
 * sync, handover) as a type and a JSON object; listeners (the control
 * socket's `monitor` clients) subscribe, so publishers need not know them.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lbd.h"

/* Sets key on an event; a NULL value (out of memory) is logged. */
static void
bus_set(json_t *obj, const char *type, const char *key, json_t *value)
{
	if (value == NULL || json_object_set_new(obj, key, value) == -1)
		log_warnx("bus: cannot add \"%s\" to a %s event", key, type);
}

int
bus_subscribe(struct lbd *lbd, bus_fn *fn, void *arg)
{
	int	 i;

	for (i = 0; i < BUS_MAX_SUBSCRIBERS; i++)
		if (lbd->bus[i].fn == NULL) {
			lbd->bus[i].fn = fn;
			lbd->bus[i].arg = arg;
			return 0;
		}
	log_warnx("bus: %d listeners already", BUS_MAX_SUBSCRIBERS);
	return -1;
}

void
bus_unsubscribe(struct lbd *lbd, bus_fn *fn, void *arg)
{
	int	 i;

	for (i = 0; i < BUS_MAX_SUBSCRIBERS; i++)
		if (lbd->bus[i].fn == fn && lbd->bus[i].arg == arg)
			lbd->bus[i].fn = NULL;
}

void
bus_publish(struct lbd *lbd, const char *type, json_t *obj)
{
	struct timespec	 ts;
	struct tm	 tm;
	char		 iso[96];
	uint64_t	 ms;
	int		 i;

	if (obj == NULL)
		return;
	if (lbd == NULL)
		goto done;
	for (i = 0; i < BUS_MAX_SUBSCRIBERS && lbd->bus[i].fn == NULL; i++)
		;
	if (i == BUS_MAX_SUBSCRIBERS)
		goto done;		/* nobody listens: no stamp */

	if (clock_gettime(CLOCK_REALTIME, &ts) == -1)
		memset(&ts, 0, sizeof(ts));
	ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(iso, sizeof(iso), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, (int)(ts.tv_nsec / 1000000));
	bus_set(obj, type, "event", json_string(type));
	bus_set(obj, type, "time", json_string(iso));
	bus_set(obj, type, "time_ms", json_integer((json_int_t)ms));

	for (i = 0; i < BUS_MAX_SUBSCRIBERS; i++)
		if (lbd->bus[i].fn != NULL)
			lbd->bus[i].fn(lbd->bus[i].arg, type, obj);
done:
	json_decref(obj);
}
