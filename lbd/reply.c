/*
 * reply.c - the small JSON helpers every control reply and status object is
 * built with: quoting untrusted input, strings, errors, setting members.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lbd.h"

/*
 * Copies untrusted s into buf for quoting in a message: printable ASCII
 * only (others become '?'), cut at REPLY_ECHO_MAX bytes with "...".
 */
const char *
reply_echo(const char *s, char *buf, size_t len)
{
	size_t	 i, n = 0;

	for (i = 0; s[i] != '\0' && n + 4 < len; i++) {
		if (i == REPLY_ECHO_MAX) {
			memcpy(buf + n, "...", 3);
			n += 3;
			break;
		}
		buf[n++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	}
	buf[n] = '\0';
	return buf;
}

/* A JSON string of s; bytes that are not valid UTF-8 are replaced, never dropped. */
json_t *
reply_str(const char *s)
{
	char	 buf[REPLY_ECHO_MAX + 8];
	json_t	*j;

	if ((j = json_string(s)) != NULL)
		return j;
	return json_string(reply_echo(s, buf, sizeof(buf)));
}

/* {"error": message}, built with printf formatting. */
json_t *
reply_error(const char *fmt, ...)
{
	char	 msg[1024];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return json_pack("{s:o}", "error", reply_str(msg));
}

/* Sets key on obj to a new value; a NULL value (out of memory) is logged. */
void
reply_set(json_t *obj, const char *key, json_t *value)
{
	if (value == NULL || json_object_set_new(obj, key, value) == -1)
		log_warnx("control: cannot add \"%s\" to a reply", key);
}

void
reply_set_int(json_t *obj, const char *key, uint64_t v)
{
	reply_set(obj, key, json_integer((json_int_t)v));
}

/* Appends s to the string in buf (size len), cutting what does not fit. */
void
reply_append(char *buf, const char *s, size_t len)
{
	size_t	 n = strlen(buf);

	if (n + 1 < len)
		snprintf(buf + n, len - n, "%s", s);
}

json_t *
reply_ms(double ms)
{
	return ms < 0 ? json_null() : json_real(ms);
}
