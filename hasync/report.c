/*
 * report.c - how the HA layer reports: hasync cannot use lbd's logger (its
 * tests link it alone), so errors fill a caller's buffer and log lines go
 * through the callback lbd hands each module, rate-limited where the peer
 * or an attacker could otherwise flood the log.
 */
#include <stdarg.h>
#include <stdio.h>

#include "hasync_int.h"

void
hasync_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list	 ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

void
hasync_vlog(hasync_log_fn *fn, void *arg, int level, const char *fmt, va_list ap)
{
	char	 msg[HASYNC_MSG_MAX];

	if (fn == NULL)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	fn(arg, level, msg);
}

void
hasync_vlog_limited(hasync_log_fn *fn, void *arg, struct hasync_rlimit *rl,
    uint64_t interval_ms, int level, const char *fmt, va_list ap)
{
	char		 msg[HASYNC_MSG_MAX], line[HASYNC_MSG_MAX + 64];
	uint64_t	 now = clock_now_ms();

	if (fn == NULL)
		return;
	if (rl->last_ms != 0 && now - rl->last_ms < interval_ms) {
		rl->dropped++;
		return;
	}
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (rl->dropped > 0) {
		snprintf(line, sizeof(line), "%s (and %llu more like it)", msg,
		    (unsigned long long)rl->dropped);
		fn(arg, level, line);
	} else
		fn(arg, level, msg);
	rl->last_ms = now;
	rl->dropped = 0;
}

/*
 * A module's log line through its callback fn: each module's hb_log,
 * chan_log and their _limited forms (hasync_int.h) come here. rl NULL:
 * always; else at most one line per interval_ms for rl (hasync_vlog_limited).
 */
void
hasync_log(hasync_log_fn *fn, void *arg, struct hasync_rlimit *rl, uint64_t interval_ms,
    int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (rl == NULL)
		hasync_vlog(fn, arg, level, fmt, ap);
	else
		hasync_vlog_limited(fn, arg, rl, interval_ms, level, fmt, ap);
	va_end(ap);
}
