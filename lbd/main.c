/*
 * main.c - the lbd process: command line, start-up in dependency order,
 * signals, and an orderly stop that releases the VIP.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "lbd.h"

#define SWEEP_INTERVAL_MS	1000	/* sticky expiry sweep period */
#define DISPATCH_MAX_US		2000	/* relay callbacks before the heartbeat gets a look */
#define DISPATCH_MAX_CALLBACKS	64	/* ... or this many of them */
#define LEAVE_POLL_MS		20	/* graceful stop: how often to look at the handover */
#define LEAVE_SLACK_MS		2000	/* ... and how long past handover_drain_s to wait */

static struct lbd	 lbd_state;		/* the daemon; one per process */
static struct event	*ev_sweep;		/* sticky expiry timer */
static struct event	*ev_signals[3];		/* SIGTERM, SIGINT, SIGHUP */
static struct event	*ev_leave;		/* graceful stop: is the handover over? */
static uint64_t		 leave_deadline_ms;	/* ... stop anyway after this */
static struct metrics	*metrics;		/* Prometheus endpoint, NULL when off */

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: lbd [-dn] [-c FILE]\n"
	    "       lbd --genkey | --version\n"
	    "\n"
	    "  -c FILE    configuration file (default " LBD_DEFAULT_CONFIG ")\n"
	    "  -n         check the configuration, print \"configuration OK\" or\n"
	    "             FILE:LINE: what is wrong, and exit (1 on error)\n"
	    "  -d         debug logging, whatever log_level the file sets\n"
	    "  --genkey   print a new cluster key (base64) for cluster.key_file\n"
	    "  --version  print lbd's version and exit\n"
	    "  -h         this help\n"
	    "\n"
	    "lbd runs in the foreground and logs to stderr. Control it with lbctl.\n");
}

static void
sweep_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct lbd	*lbd = arg;
	uint32_t	 now = now_s();
	int		 i;

	for (i = 0; i < lbd->nservices; i++)
		sticky_expire(lbd->services[i].sticky, now);
}

/* Graceful stop, every LEAVE_POLL_MS: stop once the handover and drain are over. */
static void
leave_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct lbd	*lbd = arg;
	struct timeval	 tv = { 0, LEAVE_POLL_MS * 1000 };

	(void)fd;
	(void)ev;
	if (cluster_leaving(lbd) && clock_now_ms() < leave_deadline_ms) {
		event_add(ev_leave, &tv);
		return;
	}
	log_info("handover done, stopping");
	lbd->stopping = true;
	event_base_loopbreak(lbd->base);
}

static void
signal_cb(evutil_socket_t sig, short ev, void *arg)
{
	struct lbd	*lbd = arg;
	char		 err[1024];

	switch (sig) {
	case SIGTERM:
	case SIGINT:
		/*
		 * A MASTER with a live peer hands over first, so that no client
		 * sees the VIP unanswered and (steering) the connections begun
		 * here run to their end; a second signal stops at once.
		 */
		if (ev_leave != NULL && !event_pending(ev_leave, EV_TIMEOUT, NULL) &&
		    cluster_leave(lbd)) {
			struct timeval tv = { 0, LEAVE_POLL_MS * 1000 };

			leave_deadline_ms = clock_now_ms() + (uint64_t)lbd->conf->handover_drain_s *
			    1000 + LEAVE_SLACK_MS;
			log_info("received %s: handing the VIP to %s, then stopping once the "
			    "connections begun here have ended (at most %d s; send it again to "
			    "stop now)", sig == SIGTERM ? "SIGTERM" : "SIGINT",
			    lbd->conf->peer_name, lbd->conf->handover_drain_s);
			sdnotify_stopping(lbd, "stopping: handing the VIP over, draining the "
			    "connections begun here");
			event_add(ev_leave, &tv);
			break;
		}
		log_info("received %s, stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
		lbd->stopping = true;
		event_base_loopbreak(lbd->base);
		break;
	case SIGHUP:
		/* reload_apply logs "configuration reloaded" or "reload refused: why". */
		log_info("received SIGHUP, reloading %s", lbd->conf->path);
		(void)reload_apply(lbd, err, sizeof(err));
		break;
	}
}

static int
genkey(void)
{
	char	 key[128];

	if (cluster_key_generate(key, sizeof(key)) == -1) {
		fprintf(stderr, "lbd: cannot generate a key\n");
		return 1;
	}
	printf("%s\n", key);
	return 0;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "genkey",	no_argument,	NULL, 'g' },
		{ "help",	no_argument,	NULL, 'h' },
		{ "version",	no_argument,	NULL, 'V' },
		{ NULL,		0,		NULL, 0 }
	};
	struct lbd	*lbd = &lbd_state;
	struct event_config *evcfg;
	/*
	 * Relay callbacks (priority 1) give way to the heartbeat (priority 0)
	 * after this long or this many callbacks, so a busy data plane delays
	 * an advert by a few ms at most, never by a whole loop iteration.
	 */
	const struct timeval dispatch_max = { 0, DISPATCH_MAX_US };
	const char	*path = LBD_DEFAULT_CONFIG;
	const int	 sigs[3] = { SIGTERM, SIGINT, SIGHUP };
	char		 err[1024];
	int		 ch, debug = 0, checkonly = 0, i, j, rc = 1;

	while ((ch = getopt_long(argc, argv, "c:dnh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'd':
			debug = 1;
			break;
		case 'n':
			checkonly = 1;
			break;
		case 'g':
			return genkey();
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("lbd %s\n", LBD_VERSION);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 1;
	}

	log_init(debug, "lbd");
	memset(lbd, 0, sizeof(*lbd));
	/* On the heap: a reload replaces it (reload_apply). */
	if ((lbd->conf = malloc(sizeof(*lbd->conf))) == NULL)
		fatal("malloc");
	if (config_load(path, lbd->conf, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s\n", err);
		free(lbd->conf);
		return 1;
	}
	log_setlevel(lbd->conf->log_level);	/* -d keeps debug */
	if (checkonly) {
		printf("configuration OK\n");
		free(lbd->conf);
		return 0;
	}
	lbd->started_ms = clock_now_ms();

	signal(SIGPIPE, SIG_IGN);
	/* Before anything is open: the limit and, if too low, what to change. */
	(void)fds_setup(lbd->conf);
	/*
	 * Precise timers: libevent's default coarse clock fires a 1 ms timer
	 * 4-10 ms late, which shows up as replication lag and advert jitter.
	 */
	if ((evcfg = event_config_new()) == NULL ||
	    event_config_set_flag(evcfg, EVENT_BASE_FLAG_PRECISE_TIMER) == -1 ||
	    event_config_set_max_dispatch_interval(evcfg, &dispatch_max,
	    DISPATCH_MAX_CALLBACKS, 1) == -1 ||
	    (lbd->base = event_base_new_with_config(evcfg)) == NULL)
		fatalx("cannot create the event loop");
	event_config_free(evcfg);
	/*
	 * Two priorities: the heartbeat's events use 0 and run before relay
	 * traffic (priority 1, the default) when both are ready, so a busy
	 * data plane cannot delay adverts into a false failover.
	 */
	if (event_base_priority_init(lbd->base, 2) == -1)
		fatalx("event_base_priority_init failed");
	for (i = 0; i < 3; i++) {
		ev_signals[i] = evsignal_new(lbd->base, sigs[i], signal_cb, lbd);
		evsignal_add(ev_signals[i], NULL);
	}
	ev_leave = evtimer_new(lbd->base, leave_cb, lbd);
	ev_sweep = event_new(lbd->base, -1, EV_PERSIST, sweep_cb, lbd);
	{
		struct timeval tv = { SWEEP_INTERVAL_MS / 1000, 0 };
		event_add(ev_sweep, &tv);
	}

	if (reload_services_init(lbd) == -1 || relay_init(lbd) == -1)
		goto done;
	/* Control first: a second lbd then says "another lbd is running". */
	if ((lbd->control = control_open(lbd)) == NULL)
		goto done;
	/* The fence before any connection, and before this node can become MASTER. */
	{
		struct mirror_ops ops = {
			.threaded = relay_threads() > 0,
			.send = replica_send_pairs,
			.up = replica_sync_up,
			.resync_all = relay_mirror_resync_all,
		};

		if (mirror_peer_init(lbd) == -1 || kick_init(lbd->base) == -1 || mirror_init(lbd, &ops) == -1)
			goto done;
	}
	if (lbd->conf->metrics_on && (lbd->metrics = metrics = metrics_open(lbd)) == NULL) {
		log_warnx("cannot start the metrics endpoint (metrics.listen); not starting");
		goto done;
	}
	if (listener_open_all(lbd) == -1)
		goto done;
	for (i = 0; i < lbd->nservices; i++)
		for (j = 0; j < lbd->services[i].nbackends; j++)
			if (check_start(lbd, &lbd->services[i].backends[j]) == -1)
				goto done;
	if (cluster_open(lbd) == -1 || sdnotify_open(lbd) == -1)
		goto done;

	fds_start(lbd->conf);
	log_info("lbd %s started: node %s, %d service(s), control %s", LBD_VERSION,
	    lbd->conf->node_name, lbd->nservices, lbd->conf->control_socket);
	sdnotify_ready(lbd);
	event_base_dispatch(lbd->base);
	rc = lbd->stopping ? 0 : 1;

done:
	sdnotify_stopping(lbd, "stopping: releasing the VIP");
	sdnotify_close(lbd);
	cluster_close(lbd);	/* priority-0 advert first: the peer takes over */
	listener_close_all(lbd);
	relay_shutdown(lbd);
	kick_shutdown();
	mirror_shutdown();	/* every mark lifted by now: the fence comes down */
	mirror_peer_free();
	lbd->metrics = NULL;
	metrics_close(metrics);
	if (lbd->control != NULL)
		control_close(lbd->control);
	reload_services_free(lbd);
	event_free(ev_sweep);
	event_free(ev_leave);
	for (i = 0; i < 3; i++)
		event_free(ev_signals[i]);
	event_base_free(lbd->base);
	free(lbd->conf);
	if (rc == 0)
		log_info("lbd stopped");
	return rc;
}
