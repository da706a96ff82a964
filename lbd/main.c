/*
 * main.c - the lbd process: command line, start-up in dependency order,
 * signals, and an orderly stop that releases the VIP.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "lbd.h"
#include "hasync.h"

#define SWEEP_INTERVAL_MS	1000	/* sticky expiry sweep period */
#define GARP_BURST		3	/* gratuitous ARPs sent when taking the VIP */
#define GARP_SPACING_MS		200	/* between two of the burst */
#define GARP_REFRESH_MS		5000	/* one more after this, for slow neighbours */

static struct lbd	 lbd_state;		/* the daemon; one per process */
static struct lbd_config lbd_conf;		/* its configuration */
static struct event	*ev_sweep;		/* sticky expiry timer */
static struct event	*ev_garp;		/* gratuitous ARP schedule */
static int		 garp_sent;		/* announcements sent since takeover */
static struct event	*ev_signals[3];		/* SIGTERM, SIGINT, SIGHUP */

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: lbd [-dn] [-c FILE]\n"
	    "       lbd --genkey\n"
	    "\n"
	    "  -c FILE    configuration file (default " LBD_DEFAULT_CONFIG ")\n"
	    "  -n         check the configuration, print \"configuration OK\" or\n"
	    "             FILE:LINE: what is wrong, and exit (1 on error)\n"
	    "  -d         debug logging\n"
	    "  --genkey   print a new cluster key (base64) for cluster.key_file\n"
	    "  -h         this help\n"
	    "\n"
	    "lbd runs in the foreground and logs to stderr. Control it with lbctl.\n");
}

const char *
ha_role_str(enum ha_role role)
{
	switch (role) {
	case ROLE_INIT:		return "INIT";
	case ROLE_BACKUP:	return "BACKUP";
	case ROLE_MASTER:	return "MASTER";
	case ROLE_FAULT:	return "FAULT";
	}
	return "UNKNOWN";
}

struct service *
lbd_service_by_name(struct lbd *lbd, const char *name)
{
	int	 i;

	for (i = 0; i < lbd->nservices; i++)
		if (strcmp(lbd->services[i].conf.name, name) == 0)
			return &lbd->services[i];
	return NULL;
}

/* Runtime services from the configuration: backends start up until checked. */
static int
services_init(struct lbd *lbd)
{
	struct service		*svc;
	struct backend		*be;
	int			 i, j;

	lbd->nservices = lbd->conf->nservices;
	for (i = 0; i < lbd->nservices; i++) {
		svc = &lbd->services[i];
		memset(svc, 0, sizeof(*svc));
		svc->conf = lbd->conf->services[i];
		svc->lbd = lbd;
		TAILQ_INIT(&svc->conns);
		svc->sticky = sticky_new((uint32_t)svc->conf.sticky_size,
		    (uint32_t)svc->conf.sticky_timeout_s);
		if (svc->sticky == NULL) {
			log_warnx("service %s: cannot allocate a sticky table of %d entries",
			    svc->conf.name, svc->conf.sticky_size);
			return -1;
		}
		svc->nbackends = svc->conf.nbackends;
		for (j = 0; j < svc->nbackends; j++) {
			be = &svc->backends[j];
			be->conf = svc->conf.backends[j];
			be->service = svc;
			be->index = j;
			be->admin = BACKEND_ENABLED;
			be->up = true;
		}
	}
	return 0;
}

static void
services_free(struct lbd *lbd)
{
	int	 i, j;

	for (i = 0; i < lbd->nservices; i++) {
		for (j = 0; j < lbd->services[i].nbackends; j++)
			check_stop(&lbd->services[i].backends[j]);
		sticky_free(lbd->services[i].sticky);
		lbd->services[i].sticky = NULL;
	}
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

static void
garp_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct lbd	*lbd = arg;
	struct timeval	 tv;
	char		 err[256];
	int		 ms;

	if (lbd->vip == NULL || !vip_held(lbd->vip))
		return;
	if (vip_announce(lbd->vip, err, sizeof(err)) == -1)
		log_warnx("vip: announce failed: %s", err);
	garp_sent++;
	if (garp_sent < GARP_BURST)
		ms = GARP_SPACING_MS;
	else if (garp_sent == GARP_BURST)
		ms = GARP_REFRESH_MS;
	else
		return;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(ev_garp, &tv);
}

/* Standalone node: hold the VIP for as long as we run. */
static int
vip_take(struct lbd *lbd)
{
	struct lbd_config	*conf = lbd->conf;
	char			 err[256], a[ADDR_STRLEN];
	struct timeval		 now = { 0, 0 };

	lbd->vip = vip_open(conf->vip_interface, (struct sockaddr *)&conf->vip_addr,
	    conf->vip_prefixlen, err, sizeof(err));
	if (lbd->vip == NULL) {
		log_warnx("vip: %s", err);
		return -1;
	}
	if (vip_add(lbd->vip, err, sizeof(err)) == -1) {
		log_warnx("vip: cannot add %s/%d to %s: %s",
		    addr_str((struct sockaddr *)&conf->vip_addr, a, sizeof(a)),
		    conf->vip_prefixlen, conf->vip_interface, err);
		return -1;
	}
	log_info("vip %s/%d added to %s", addr_str((struct sockaddr *)&conf->vip_addr,
	    a, sizeof(a)), conf->vip_prefixlen, conf->vip_interface);
	lbd->role = ROLE_MASTER;
	garp_sent = 0;
	evtimer_add(ev_garp, &now);
	return 0;
}

static void
vip_release(struct lbd *lbd)
{
	char	 err[256];

	if (lbd->vip == NULL)
		return;
	if (vip_held(lbd->vip)) {
		if (vip_del(lbd->vip, err, sizeof(err)) == -1)
			log_warnx("vip: cannot remove the VIP: %s", err);
		else
			log_info("vip removed from %s", lbd->conf->vip_interface);
	}
	vip_close(lbd->vip);
	lbd->vip = NULL;
}

static void
signal_cb(evutil_socket_t sig, short ev, void *arg)
{
	struct lbd	*lbd = arg;

	switch (sig) {
	case SIGTERM:
	case SIGINT:
		log_info("received %s, stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
		lbd->stopping = true;
		event_base_loopbreak(lbd->base);
		break;
	case SIGHUP:
		log_info("received SIGHUP: reload is not supported yet, ignored");
		break;
	}
}

static int
genkey(void)
{
	char	 key[128];

	if (key_generate(key, sizeof(key)) == -1) {
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
		{ NULL,		0,		NULL, 0 }
	};
	struct lbd	*lbd = &lbd_state;
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
	if (config_load(path, &lbd_conf, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (checkonly) {
		printf("configuration OK\n");
		return 0;
	}

	memset(lbd, 0, sizeof(*lbd));
	lbd->conf = &lbd_conf;
	lbd->started_ms = now_ms();
	lbd->role = ROLE_INIT;
	if (lbd_conf.has_peer)
		log_warnx("peer %s is configured, but this build has no HA layer yet: "
		    "running as a standalone node", lbd_conf.peer_name);

	signal(SIGPIPE, SIG_IGN);
	rlimit_raise_nofile();
	if ((lbd->base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	for (i = 0; i < 3; i++) {
		ev_signals[i] = evsignal_new(lbd->base, sigs[i], signal_cb, lbd);
		evsignal_add(ev_signals[i], NULL);
	}
	ev_sweep = event_new(lbd->base, -1, EV_PERSIST, sweep_cb, lbd);
	ev_garp = evtimer_new(lbd->base, garp_cb, lbd);
	{
		struct timeval tv = { SWEEP_INTERVAL_MS / 1000, 0 };
		event_add(ev_sweep, &tv);
	}

	if (services_init(lbd) == -1 || relay_init(lbd) == -1)
		goto done;
	/* Control first: a second lbd then says "another lbd is running". */
	if ((lbd->control = control_open(lbd)) == NULL)
		goto done;
	if (listener_open_all(lbd) == -1)
		goto done;
	for (i = 0; i < lbd->nservices; i++)
		for (j = 0; j < lbd->services[i].nbackends; j++)
			if (check_start(lbd, &lbd->services[i].backends[j]) == -1)
				goto done;
	if (vip_take(lbd) == -1)
		goto done;

	log_info("lbd started: node %s, %d service(s), control %s", lbd_conf.node_name,
	    lbd->nservices, lbd_conf.control_socket);
	sd_notify_ready();
	event_base_dispatch(lbd->base);
	rc = lbd->stopping ? 0 : 1;

done:
	vip_release(lbd);
	listener_close_all(lbd);
	relay_shutdown(lbd);
	if (lbd->control != NULL)
		control_close(lbd->control);
	services_free(lbd);
	event_free(ev_sweep);
	event_free(ev_garp);
	for (i = 0; i < 3; i++)
		event_free(ev_signals[i]);
	event_base_free(lbd->base);
	if (rc == 0)
		log_info("lbd stopped");
	return rc;
}
