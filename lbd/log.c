/*
 * log.c - one-line log messages to stderr (journald adds the time), with
 * errno text for the _warn variants, rate-limited lines for what can
 * repeat per connection, and fatal exits for broken invariants.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lbd.h"

#define LOG_LINE_MAX	1024	/* longest message, before the prefixes */

/* Lines below it are dropped; relay worker threads read it: relaxed atomics. */
static enum log_level log_level = LOG_LEVEL_INFO;
static int	 log_forced;		/* 1: -d given, debug whatever the config says */
static int	 log_stamp;		/* 1: prefix a timestamp (stderr is a tty) */
static const char *log_name = "lbd";	/* program name in front of each line */

void
log_init(int debug, const char *progname)
{
	log_setverbose(debug);
	log_stamp = isatty(STDERR_FILENO);
	if (progname != NULL)
		log_name = progname;
}

/* 1: debug, as lbd -d, and no config level lowers it; 0: back to info. */
void
log_setverbose(int verbose)
{
	log_forced = verbose;
	__atomic_store_n(&log_level, verbose ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO,
	    __ATOMIC_RELAXED);
}

/* The configuration's log_level (start-up and reload); -d wins. */
void
log_setlevel(enum log_level level)
{
	__atomic_store_n(&log_level, log_forced ? LOG_LEVEL_DEBUG : level, __ATOMIC_RELAXED);
}

enum log_level
log_getlevel(void)
{
	return __atomic_load_n(&log_level, __ATOMIC_RELAXED);
}

const char *
log_level_str(enum log_level level)
{
	switch (level) {
	case LOG_LEVEL_WARNING:
		return "warning";
	case LOG_LEVEL_INFO:
		return "info";
	case LOG_LEVEL_DEBUG:
		return "debug";
	}
	return "unknown";
}

static void
log_vwrite(const char *level, int errnum, const char *fmt, va_list ap)
{
	char		 msg[LOG_LINE_MAX], stamp[32] = "", ebuf[128];
	struct timespec	 ts;
	struct tm	 tm;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (log_stamp) {
		clock_gettime(CLOCK_REALTIME, &ts);
		localtime_r(&ts.tv_sec, &tm);
		snprintf(stamp, sizeof(stamp), "%02d:%02d:%02d.%03ld ",
		    tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
	}
	/* GNU strerror_r: thread-safe (relay workers log too), returns the text. */
	if (errnum != 0)
		fprintf(stderr, "%s%s: %s%s: %s\n", stamp, log_name, level, msg,
		    strerror_r(errnum, ebuf, sizeof(ebuf)));
	else
		fprintf(stderr, "%s%s: %s%s\n", stamp, log_name, level, msg);
}

void
log_warn(const char *fmt, ...)
{
	int	 saved = errno;
	va_list	 ap;

	va_start(ap, fmt);
	log_vwrite("", saved, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
log_warnx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vwrite("", 0, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list	 ap;

	if (log_getlevel() < LOG_LEVEL_INFO)
		return;
	va_start(ap, fmt);
	log_vwrite("", 0, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list	 ap;

	if (log_getlevel() < LOG_LEVEL_DEBUG)
		return;
	va_start(ap, fmt);
	log_vwrite("debug: ", 0, fmt, ap);
	va_end(ap);
}

/* A line at level: dropped below the level in force, as log_info/log_debug. */
static void __attribute__((format(printf, 2, 3)))
log_at(enum log_level level, const char *fmt, ...)
{
	va_list	 ap;

	if (log_getlevel() < level)
		return;
	va_start(ap, fmt);
	log_vwrite(level == LOG_LEVEL_DEBUG ? "debug: " : "", 0, fmt, ap);
	va_end(ap);
}

/*
 * At most one line per interval_ms for l (now: the caller's clock_now_ms(), so
 * log.c needs no clock); a line after dropped ones says how many. l is the
 * caller's (one per thread that logs through it). A line below the level
 * in force still counts as logged.
 */
void
log_limited(struct log_limit *l, uint64_t now, uint64_t interval_ms, enum log_level level,
    const char *fmt, ...)
{
	char		 msg[LOG_LINE_MAX];
	va_list		 ap;

	if (l->last_ms != 0 && now - l->last_ms < interval_ms) {
		l->dropped++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (l->dropped > 0)
		log_at(level, "%s (and %llu more like it)", msg,
		    (unsigned long long)l->dropped);
	else
		log_at(level, "%s", msg);
	l->last_ms = now;
	l->dropped = 0;
}

/* The HA layer's log sink (hasync_log_fn): 0 warn, 1 info, 2 debug. */
void
log_hasync(void *arg, int level, const char *msg)
{
	if (level == 0)
		log_warnx("%s", msg);
	else if (level == 1)
		log_info("%s", msg);
	else
		log_debug("%s", msg);
}

void
fatal(const char *fmt, ...)
{
	int	 saved = errno;
	va_list	 ap;

	va_start(ap, fmt);
	log_vwrite("fatal: ", saved, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vwrite("fatal: ", 0, fmt, ap);
	va_end(ap);
	exit(1);
}
