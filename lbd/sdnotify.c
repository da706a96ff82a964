/*
 * sdnotify.c - tells systemd how lbd is doing, through libsystemd's
 * sd_notify(3): READY=1 once serving, RELOADING=1 / READY=1 around a
 * reload, STOPPING=1 while a stop hands over and drains, a STATUS= line
 * (`systemctl status lbd`: role, VIP, backends, connections, peer) kept
 * current, and WATCHDOG=1 from the event loop when the unit sets
 * WatchdogSec=, so that a wedged lbd is killed and restarted (its stop
 * hook removes the VIP) while its peer takes over.
 *
 * Without $NOTIFY_SOCKET (not started by systemd) every call is a no-op.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <systemd/sd-daemon.h>

#include "lbd.h"

#define SDNOTIFY_STATUS_MS	5000	/* STATUS= refresh (connection counts) when nothing happened */
#define SDNOTIFY_WATCHDOG_DIV	4	/* WATCHDOG=1 every WATCHDOG_USEC / this: margin for a busy loop */
#define SDNOTIFY_STATUS_MAX	256	/* the STATUS= text */
#define SDNOTIFY_HANG_MAX_S	300	/* the test-only hang ends after this long at most */

static struct event	*ev_status;	/* slow STATUS= timer */
static struct event	*ev_watchdog;	/* WATCHDOG=1 timer; NULL: no WatchdogSec= */
static char		 last_status[SDNOTIFY_STATUS_MAX]; /* sent last: only changes are sent */
static bool		 subscribed;	/* on the event bus */

static void	 sdnotify_on_event(void *arg, const char *type, json_t *event);
static void	 sdnotify_on_status(evutil_socket_t fd, short what, void *arg);
static void	 sdnotify_on_watchdog(evutil_socket_t fd, short what, void *arg);
static void	 sdnotify_test_hang(void);

/* Sends msg; a failure (systemd gone) is logged at debug: nothing else to do. */
static void
sdnotify_send(const char *msg)
{
	int	 r;

	if ((r = sd_notify(0, msg)) < 0)
		log_debug("sd_notify \"%s\": %s", msg, strerror(-r));
}

int
sdnotify_open(struct lbd *lbd)
{
	struct timeval	 tv = { SDNOTIFY_STATUS_MS / 1000, (SDNOTIFY_STATUS_MS % 1000) * 1000 };
	uint64_t	 usec = 0;
	int		 r;

	if (getenv("NOTIFY_SOCKET") == NULL)
		return 0;
	if (bus_subscribe(lbd, sdnotify_on_event, lbd) == -1)
		return -1;
	subscribed = true;
	if ((ev_status = event_new(lbd->base, -1, EV_PERSIST, sdnotify_on_status, lbd)) == NULL ||
	    event_add(ev_status, &tv) == -1) {
		log_warnx("sdnotify: cannot start the status timer");
		return -1;
	}
	/* Only our own pid: WATCHDOG_PID names the process systemd watches. */
	if ((r = sd_watchdog_enabled(0, &usec)) < 0)
		log_warnx("sdnotify: bad WATCHDOG_USEC/WATCHDOG_PID from systemd: %s", strerror(-r));
	if (r > 0 && usec > 0) {
		struct timeval wtv;
		uint64_t every = usec / SDNOTIFY_WATCHDOG_DIV;

		wtv.tv_sec = (time_t)(every / 1000000);
		wtv.tv_usec = (suseconds_t)(every % 1000000);
		if ((ev_watchdog = event_new(lbd->base, -1, EV_PERSIST, sdnotify_on_watchdog,
		    lbd)) == NULL || event_add(ev_watchdog, &wtv) == -1) {
			log_warnx("sdnotify: cannot start the watchdog timer");
			return -1;
		}
		log_info("systemd watchdog: %llu ms, WATCHDOG=1 every %llu ms from the event loop",
		    (unsigned long long)(usec / 1000), (unsigned long long)(every / 1000));
	}
	return 0;
}

void
sdnotify_close(struct lbd *lbd)
{
	if (subscribed)
		bus_unsubscribe(lbd, sdnotify_on_event, lbd);
	subscribed = false;
	if (ev_status != NULL)
		event_free(ev_status);
	if (ev_watchdog != NULL)
		event_free(ev_watchdog);
	ev_status = ev_watchdog = NULL;
}

void
sdnotify_summary(struct lbd *lbd, char *buf, size_t len)
{
	char		 role[96], peer[160];
	uint64_t	 active = 0;
	int		 i, j, up = 0, n = 0;

	for (i = 0; i < lbd->nservices; i++) {
		active += lbd->services[i].active;
		for (j = 0; j < lbd->services[i].nbackends; j++) {
			const struct backend *b = &lbd->services[i].backends[j];

			if (!reload_backend_listed(b))
				continue;
			n++;
			if (strcmp(backend_state_str(b), "up") == 0)
				up++;
		}
	}
	cluster_summary_role(lbd, role, sizeof(role));
	cluster_summary_peer(lbd, peer, sizeof(peer));
	snprintf(buf, len, "%s, %d/%d backends up, %llu active, %s", role, up, n,
	    (unsigned long long)active, peer);
}

void
sdnotify_status(struct lbd *lbd)
{
	char	 line[SDNOTIFY_STATUS_MAX], msg[SDNOTIFY_STATUS_MAX + 8];

	if (getenv("NOTIFY_SOCKET") == NULL)
		return;
	sdnotify_summary(lbd, line, sizeof(line));
	if (strcmp(line, last_status) == 0)
		return;
	snprintf(last_status, sizeof(last_status), "%s", line);
	snprintf(msg, sizeof(msg), "STATUS=%s", line);
	sdnotify_send(msg);
}

void
sdnotify_ready(struct lbd *lbd)
{
	sdnotify_send("READY=1");
	sdnotify_status(lbd);
}

void
sdnotify_reloading(void)
{
	sdnotify_send("RELOADING=1");
}

void
sdnotify_reloaded(struct lbd *lbd)
{
	sdnotify_send("READY=1");
	sdnotify_status(lbd);
}

void
sdnotify_stopping(struct lbd *lbd, const char *what)
{
	char	 msg[SDNOTIFY_STATUS_MAX + 32];

	snprintf(msg, sizeof(msg), "STOPPING=1\nSTATUS=%s", what);
	snprintf(last_status, sizeof(last_status), "%s", what);
	sdnotify_send(msg);
}

/* A role, backend, sync or handover event: the line may have changed. */
static void
sdnotify_on_event(void *arg, const char *type, json_t *event)
{
	(void)type;
	(void)event;
	sdnotify_status(arg);
}

/* Connection counts and the peer's last advert move without an event. */
static void
sdnotify_on_status(evutil_socket_t fd, short what, void *arg)
{
	sdnotify_status(arg);
}

/*
 * From the loop itself: a loop that no longer runs its timers sends no
 * more, and systemd (WatchdogSignal=, then SIGKILL) ends the process.
 */
static void
sdnotify_on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	sdnotify_send("WATCHDOG=1");
	sdnotify_test_hang();
}

/*
 * TEST ONLY (tests/rig drill watchdog): while the file named by
 * $LBD_TEST_HANG_FILE exists, the event loop blocks here, as a wedged lbd
 * would (at most SDNOTIFY_HANG_MAX_S). Reached only from the watchdog
 * timer, with that variable set: the unit sets neither.
 */
static void
sdnotify_test_hang(void)
{
	const char	*path = getenv("LBD_TEST_HANG_FILE");
	int		 i;

	if (path == NULL || path[0] == '\0' || access(path, F_OK) == -1)
		return;
	log_warnx("LBD_TEST_HANG_FILE %s exists: the event loop hangs (test only)", path);
	for (i = 0; i < SDNOTIFY_HANG_MAX_S * 10 && access(path, F_OK) == 0; i++)
		usleep(100000);
	log_warnx("LBD_TEST_HANG_FILE: the event loop runs again");
}
