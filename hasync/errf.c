/*
 * errf.c - error messages of the HA layer: hasync cannot use lbd's logger
 * (its tests link it alone), so its functions fill a caller's buffer.
 */
#include <stdarg.h>
#include <stdio.h>

#include "hasync.h"

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
