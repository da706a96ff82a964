/*
 * pacer.c - seals and sends this node's adverts, and keeps them on time
 * from a small real-time thread when lbd's event loop is late.
 *
 * lbd's loop sends every advert (heartbeat.c calls pacer_send); the pacer
 * thread only steps in when an advert is overdue by a quarter interval,
 * repeating the last one sent with a new counter. So the data plane can
 * run as an ordinary process (SCHED_OTHER batches wake-ups; as SCHED_RR the
 * relay cost 50 % more CPU per byte; main.c keeps a MASTER's main thread
 * SCHED_OTHER), while the adverts keep the SCHED_RR that keepalived's VRRP
 * process has, so a busy loop does not mean a false failover at 20 ms.
 *
 * The pacer vouches for the loop, not for itself: once the loop has sent
 * nothing for PACER_WATCHDOG_MIN_MS (or 3 intervals if longer), the pacer
 * goes quiet, so a wedged lbd loses the VIP as a crashed one would.
 *
 * The thread touches nothing but this struct, under its mutex.
 */
#include <sys/socket.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "hasync.pb-c.h"
#include "hasync_int.h"

#define PACER_GRACE_DIV		4	/* overdue = interval + interval / 4 */
#define PACER_WATCHDOG_MIN_MS	1000	/* the loop may be silent this long, at least */
#define PACER_WATCHDOG_IVS	3	/* ... or this many intervals, if longer */
#define PACER_LOG_INTERVAL_MS	1000	/* at most one send error line per second */

/* The pacer of one node. Every field below the mutex is guarded by it. */
struct pacer {
	pthread_mutex_t	 mtx;		/* guards everything below */
	pthread_cond_t	 cond;		/* wakes the thread: stop, or a first advert */
	pthread_t	 tid;		/* the thread, once started */
	bool		 running;	/* tid is valid */
	bool		 stop;		/* the thread must exit */
	bool		 realtime;	/* the thread runs SCHED_RR / SCHED_FIFO */
	int		 fd;		/* heartbeat socket (heartbeat.c owns it) */
	struct pacer_path paths[HASYNC_MAX_PEER_ADDR]; /* where adverts go */
	int		 npaths;
	uint8_t		 key[HASYNC_KEY_LEN]; /* advert subkey */
	char		 node[HASYNC_NAME_MAX]; /* our node name */
	char		 version[HASYNC_VERSION_MAX]; /* our lbd version, "" none */
	uint8_t		 node_addr16[16]; /* our node address, v4-mapped */
	uint64_t	 boot_id;	/* replay protection: grows across restarts */
	uint64_t	 counter;	/* last counter sent, by loop or thread */
	uint64_t	 session;	/* ours: random per process start */
	uint64_t	 echo_session;	/* the peer's advert we took last: its session */
	uint64_t	 echo_counter;	/* ... and its counter */
	struct {
		uint64_t counter;	/* our advert's counter, 0 = empty slot */
		uint64_t ms;		/* when it was sent */
	}		 sent_at[PACER_SENT_RING]; /* slot counter % PACER_SENT_RING */
	int		 interval_ms;	/* advert interval */
	uint64_t	 watchdog_ms;	/* loop silence the pacer covers */
	bool		 have_last;	/* last holds an advert */
	struct pacer_advert last;	/* what the loop sent last */
	uint64_t	 last_sent_ms;	/* when anyone last sent */
	uint64_t	 loop_sent_ms;	/* when the loop last sent */
	bool		 lapsed;	/* quiet: the loop is silent past the watchdog */
	uint64_t	 sent;		/* datagrams sent (one per path) */
	uint64_t	 paced;		/* adverts the thread sent for a late loop */
	uint64_t	 lapses;	/* times it went quiet for a silent loop */
	hasync_log_fn	*log;		/* lbd's log sink (thread-safe) */
	void		*log_arg;
	struct hasync_rlimit rl;	/* send errors */
};

static void	pacer_log(struct pacer *, int, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static void	pacer_log_limited(struct pacer *, int, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static void	pacer_emit(struct pacer *, const struct pacer_advert *, uint64_t);
static void	*pacer_main(void *);

static void
pacer_log(struct pacer *p, int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	hasync_vlog(p->log, p->log_arg, level, fmt, ap);
	va_end(ap);
}

static void
pacer_log_limited(struct pacer *p, int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	hasync_vlog_limited(p->log, p->log_arg, &p->rl, PACER_LOG_INTERVAL_MS, level, fmt, ap);
	va_end(ap);
}

/* Absolute CLOCK_MONOTONIC time of ms, for pthread_cond_timedwait. */
static struct timespec
pacer_abstime(uint64_t ms)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	return ts;
}

struct pacer *
pacer_new(const struct pacer_config *c, char *err, size_t errlen)
{
	struct pacer *p;
	pthread_mutexattr_t ma;
	pthread_condattr_t ca;
	int i, rc;

	if (c->npaths < 1 || c->npaths > HASYNC_MAX_PEER_ADDR || c->interval_ms <= 0) {
		hasync_errf(err, errlen, "pacer: %d peer paths, interval %d ms", c->npaths,
		    c->interval_ms);
		return NULL;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		hasync_errf(err, errlen, "out of memory");
		return NULL;
	}
	/*
	 * Priority inheritance: the loop (SCHED_OTHER) holds the mutex only
	 * while it seals and sends, but if it is preempted just then, the
	 * real-time thread must not wait behind every other process.
	 */
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setprotocol(&ma, PTHREAD_PRIO_INHERIT);
	rc = pthread_mutex_init(&p->mtx, &ma);
	pthread_mutexattr_destroy(&ma);
	if (rc != 0) {
		hasync_errf(err, errlen, "pacer mutex: %s", strerror(rc));
		free(p);
		return NULL;
	}
	/* Monotonic waits, as every HA timer: immune to clock steps. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	rc = pthread_cond_init(&p->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (rc != 0) {
		hasync_errf(err, errlen, "pacer condition: %s", strerror(rc));
		pthread_mutex_destroy(&p->mtx);
		free(p);
		return NULL;
	}
	p->fd = c->fd;
	for (i = 0; i < c->npaths; i++)
		p->paths[i] = c->paths[i];
	p->npaths = c->npaths;
	memcpy(p->key, c->key, sizeof(p->key));
	snprintf(p->node, sizeof(p->node), "%s", c->node);
	snprintf(p->version, sizeof(p->version), "%s", c->version);
	memcpy(p->node_addr16, c->node_addr16, sizeof(p->node_addr16));
	p->boot_id = c->boot_id;
	p->session = c->session;
	p->interval_ms = c->interval_ms;
	p->watchdog_ms = (uint64_t)c->interval_ms * PACER_WATCHDOG_IVS;
	if (p->watchdog_ms < PACER_WATCHDOG_MIN_MS)
		p->watchdog_ms = PACER_WATCHDOG_MIN_MS;
	p->log = c->log;
	p->log_arg = c->log_arg;
	return p;
}

void
pacer_free(struct pacer *p)
{
	if (p == NULL)
		return;
	pacer_stop(p);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->mtx);
	sodium_memzero(p->key, sizeof(p->key));
	free(p);
}

/*
 * The thread runs SCHED_RR at HASYNC_RT_PRIORITY: explicitly when it may
 * (root, CAP_SYS_NICE, RLIMIT_RTPRIO), else by inheriting a real-time
 * caller's policy (systemd's CPUSchedulingPolicy=rr with RestrictRealtime,
 * which refuses sched_setscheduler to RR but lets a thread inherit it),
 * else as an ordinary thread, which pacer_realtime() then reports.
 */
int
pacer_start(struct pacer *p, char *err, size_t errlen)
{
	struct sched_param sp = { .sched_priority = HASYNC_RT_PRIORITY };
	pthread_attr_t attr;
	sigset_t all, old;
	int policy, rc;
	struct sched_param cur;

	if (p->running)
		return 0;
	p->stop = false;
	/* Signals are the loop's: the thread starts with every one blocked. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	if (pthread_getschedparam(pthread_self(), &policy, &cur) == 0 &&
	    (policy == SCHED_RR || policy == SCHED_FIFO)) {
		rc = pthread_create(&p->tid, &attr, pacer_main, p);
		p->realtime = rc == 0;
	} else {
		if (pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED) != 0 ||
		    pthread_attr_setschedpolicy(&attr, SCHED_RR) != 0 ||
		    pthread_attr_setschedparam(&attr, &sp) != 0)
			rc = EINVAL;
		else
			rc = pthread_create(&p->tid, &attr, pacer_main, p);
		p->realtime = rc == 0;
		if (rc == EPERM || rc == EINVAL) {
			pthread_attr_destroy(&attr);
			pthread_attr_init(&attr);
			rc = pthread_create(&p->tid, &attr, pacer_main, p);
			p->realtime = false;
		}
	}
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		hasync_errf(err, errlen, "cannot start the advert pacer thread: %s", strerror(rc));
		return -1;
	}
	p->running = true;
	return 0;
}

void
pacer_stop(struct pacer *p)
{
	if (p == NULL || !p->running)
		return;
	pthread_mutex_lock(&p->mtx);
	p->stop = true;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->mtx);
	pthread_join(p->tid, NULL);
	p->running = false;
}

bool
pacer_realtime(const struct pacer *p)
{
	return p != NULL && p->running && p->realtime;
}

/* Seals and sends a with the next counter to every path. Called with mtx held. */
static void
pacer_emit(struct pacer *p, const struct pacer_advert *a, uint64_t now)
{
	Lbd__Advert adv = LBD__ADVERT__INIT;
	uint8_t plain[PACER_ADVERT_MAX], frame[PACER_FRAME_MAX];
	unsigned long long clen = 0;
	size_t plen, flen;
	int i, try;

	adv.node = p->node;
	if (p->version[0] != '\0')
		adv.version = p->version;	/* empty: the field is left out */
	adv.priority = a->priority;
	adv.state = a->state;
	adv.interval_ms = (uint32_t)p->interval_ms;
	adv.boot_id = p->boot_id;
	adv.counter = ++p->counter;
	adv.session = p->session;
	adv.echo_session = p->echo_session;
	adv.echo_counter = p->echo_counter;
	p->sent_at[adv.counter % PACER_SENT_RING].counter = adv.counter;
	p->sent_at[adv.counter % PACER_SENT_RING].ms = now;
	adv.vip_held = a->vip_held;
	adv.bulk_done = a->bulk_done;
	adv.draining = a->draining;
	adv.forwarding = a->forwarding;
	adv.node_addr.data = p->node_addr16;
	adv.node_addr.len = sizeof(p->node_addr16);
	plen = lbd__advert__get_packed_size(&adv);
	if (plen > sizeof(plain)) {	/* names are < 64 bytes: cannot happen */
		pacer_log_limited(p, 0, "advert too big (%zu bytes)", plen);
		return;
	}
	lbd__advert__pack(&adv, plain);
	/* The version byte is the AEAD's additional data; the nonce is random. */
	frame[0] = PACER_FRAME_VERSION;
	randombytes_buf(frame + 1, PACER_NONCE_LEN);
	crypto_aead_xchacha20poly1305_ietf_encrypt(frame + PACER_HEADER_LEN, &clen, plain,
	    plen, frame, 1, NULL, frame + 1, p->key);
	flen = PACER_HEADER_LEN + (size_t)clen;
	sodium_memzero(plain, sizeof(plain));

	for (i = 0; i < p->npaths; i++) {
		/*
		 * A pending ICMP error makes the next send fail once with it
		 * (and consumes it); the datagram was not sent, so send again.
		 * The error-queue entry itself is read by heartbeat.c.
		 */
		for (try = 0; try < 2; try++) {
			if (sendto(p->fd, frame, flen, 0, (struct sockaddr *)&p->paths[i].addr,
			    p->paths[i].len) != -1) {
				p->sent++;
				break;
			}
			if (errno == ECONNREFUSED || errno == EHOSTUNREACH ||
			    errno == ENETUNREACH || errno == EINTR)
				continue;
			pacer_log_limited(p, 0, "advert to %s: %s", p->paths[i].text,
			    strerror(errno));
			break;
		}
	}
	p->last_sent_ms = now;
}

void
pacer_send(struct pacer *p, const struct pacer_advert *a)
{
	uint64_t now = clock_now_ms();
	bool wake;

	pthread_mutex_lock(&p->mtx);
	wake = !p->have_last || p->lapsed;	/* the thread waits without a deadline */
	p->last = *a;
	p->have_last = true;
	p->lapsed = false;
	p->loop_sent_ms = now;
	pacer_emit(p, a, now);
	if (wake)
		pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->mtx);
}

/*
 * The thread: sleeps until the last advert is overdue, then repeats it,
 * as long as the loop has spoken within the watchdog.
 */
static void *
pacer_main(void *arg)
{
	struct pacer *p = arg;
	uint64_t now, due, grace = (uint64_t)p->interval_ms / PACER_GRACE_DIV;
	struct timespec ts;

	pthread_mutex_lock(&p->mtx);
	while (!p->stop) {
		if (!p->have_last || p->lapsed) {
			pthread_cond_wait(&p->cond, &p->mtx);
			continue;
		}
		now = clock_now_ms();
		due = p->last_sent_ms + (uint64_t)p->interval_ms + grace;
		if (now < due) {
			ts = pacer_abstime(due);
			pthread_cond_timedwait(&p->cond, &p->mtx, &ts);
			continue;
		}
		if (now - p->loop_sent_ms > p->watchdog_ms) {
			p->lapsed = true;
			p->lapses++;
			pacer_log(p, 0, "lbd's event loop has sent no advert for %llu ms: adverts "
			    "stop until it does, so the peer takes over",
			    (unsigned long long)(now - p->loop_sent_ms));
			continue;
		}
		p->paced++;
		pacer_emit(p, &p->last, now);
	}
	pthread_mutex_unlock(&p->mtx);
	return NULL;
}

void
pacer_set_echo(struct pacer *p, uint64_t session, uint64_t counter)
{
	pthread_mutex_lock(&p->mtx);
	p->echo_session = session;
	p->echo_counter = counter;
	pthread_mutex_unlock(&p->mtx);
}

bool
pacer_sent_at(struct pacer *p, uint64_t counter, uint64_t *ms)
{
	bool found;

	pthread_mutex_lock(&p->mtx);
	found = counter != 0 && p->sent_at[counter % PACER_SENT_RING].counter == counter;
	if (found)
		*ms = p->sent_at[counter % PACER_SENT_RING].ms;
	pthread_mutex_unlock(&p->mtx);
	return found;
}

void
pacer_get_counts(struct pacer *p, uint64_t *sent, uint64_t *paced, uint64_t *lapses)
{
	pthread_mutex_lock(&p->mtx);
	*sent = p->sent;
	*paced = p->paced;
	*lapses = p->lapses;
	pthread_mutex_unlock(&p->mtx);
}
