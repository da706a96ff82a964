/*
 * lbctl.c - the operator's command line for lbd: sends one command over the
 * control socket and prints the JSON reply as readable tables, or as JSON.
 *
 * It is built alone from this file and links only jansson; lbd.h is
 * included for shared constants only. Its grammar (t_main) and usage()
 * follow the daemon's command table (command.c): tests/unit/test_lbctl.c
 * fails when the two differ.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "lbd.h"

#define LBCTL_EXIT_OK		0		/* the command succeeded */
#define LBCTL_EXIT_FAILED	1		/* error reply, or bad usage */
#define LBCTL_EXIT_UNREACHABLE	2		/* no daemon, or a reply that is not JSON */
#define LBCTL_TIMEOUT_MS	5000		/* connect-to-reply deadline */
#define LBCTL_REPLY_MAX		(256U << 20)	/* largest reply accepted */
#define LBCTL_ARG_MAX		255		/* longest NAME, SERVICE or IP argument */
#define LBCTL_TABLE_COLS	16		/* columns of one table at most */

/* What a command line asks for. */
enum lbctl_action {
	ACT_NONE = 0,			/* not known yet */
	ACT_STATUS,
	ACT_BACKENDS,
	ACT_STICKY_LIST,
	ACT_STICKY_GET,
	ACT_STICKY_SET,
	ACT_STICKY_CLEAR,
	ACT_STICKY_FLUSH,
	ACT_BACKEND_ADMIN,
	ACT_FAILOVER,
	ACT_RELOAD,
	ACT_MONITOR,
	ACT_HELP
};

enum token_type {
	TOK_END = 0,			/* ends a table */
	TOK_NONE,			/* the command may stop here */
	TOK_KEYWORD,			/* a fixed word; any unique prefix matches */
	TOK_ARG				/* a free word: NAME, SERVICE, IP, BACKEND */
};

/* One word of the grammar, relayctl style: each table lists what may come next. */
struct token {
	enum token_type	 type;		/* what kind of word */
	const char	*word;		/* the keyword, or the argument's placeholder */
	enum lbctl_action action;	/* set when this word matches (ACT_NONE: unchanged) */
	const struct token *next;	/* table of the following word */
};

static const struct token t_end[] = {
	{ TOK_NONE,	NULL,		ACT_NONE,	NULL },
	{ TOK_END,	NULL,		ACT_NONE,	NULL }
};

static const struct token t_opt_service[] = {
	{ TOK_NONE,	NULL,		ACT_NONE,	NULL },
	{ TOK_ARG,	"SERVICE",	ACT_NONE,	t_end },
	{ TOK_END,	NULL,		ACT_NONE,	NULL }
};

static const struct token t_ip[] = {
	{ TOK_ARG,	"IP",		ACT_NONE,	t_opt_service },
	{ TOK_END,	NULL,		ACT_NONE,	NULL }
};

static const struct token t_set_backend[] = {
	{ TOK_ARG,	"BACKEND",	ACT_NONE,	t_opt_service },
	{ TOK_END,	NULL,		ACT_NONE,	NULL }
};

static const struct token t_set_ip[] = {
	{ TOK_ARG,	"IP",		ACT_NONE,	t_set_backend },
	{ TOK_END,	NULL,		ACT_NONE,	NULL }
};

static const struct token t_sticky[] = {
	{ TOK_KEYWORD,	"list",		ACT_STICKY_LIST,	t_opt_service },
	{ TOK_KEYWORD,	"get",		ACT_STICKY_GET,		t_ip },
	{ TOK_KEYWORD,	"set",		ACT_STICKY_SET,		t_set_ip },
	{ TOK_KEYWORD,	"clear",	ACT_STICKY_CLEAR,	t_ip },
	{ TOK_KEYWORD,	"flush",	ACT_STICKY_FLUSH,	t_opt_service },
	{ TOK_END,	NULL,		ACT_NONE,		NULL }
};

static const struct token t_admin[] = {
	{ TOK_KEYWORD,	"enable",	ACT_NONE,	t_opt_service },
	{ TOK_KEYWORD,	"disable",	ACT_NONE,	t_opt_service },
	{ TOK_KEYWORD,	"drain",	ACT_NONE,	t_opt_service },
	{ TOK_END,	NULL,		ACT_NONE,	NULL }
};

static const struct token t_backend[] = {
	{ TOK_ARG,	"NAME",		ACT_NONE,	t_admin },
	{ TOK_END,	NULL,		ACT_NONE,	NULL }
};

static const struct token t_main[] = {
	{ TOK_KEYWORD,	"status",	ACT_STATUS,		t_end },
	{ TOK_KEYWORD,	"backends",	ACT_BACKENDS,		t_end },
	{ TOK_KEYWORD,	"sticky",	ACT_NONE,		t_sticky },
	{ TOK_KEYWORD,	"backend",	ACT_BACKEND_ADMIN,	t_backend },
	{ TOK_KEYWORD,	"failover",	ACT_FAILOVER,		t_end },
	{ TOK_KEYWORD,	"reload",	ACT_RELOAD,		t_end },
	{ TOK_KEYWORD,	"monitor",	ACT_MONITOR,		t_end },
	{ TOK_KEYWORD,	"help",		ACT_HELP,		t_end },
	{ TOK_END,	NULL,		ACT_NONE,		NULL }
};

/* A parsed command line. */
struct request {
	enum lbctl_action action;		/* what to do */
	char		 line[LBD_CONTROL_LINE_MAX];	/* canonical request sent to lbd */
};

/* A text table: one header line, columns as wide as their widest cell. */
struct table {
	int		 ncols;				/* columns */
	const char	*headers[LBCTL_TABLE_COLS];	/* column titles */
	size_t		 width[LBCTL_TABLE_COLS];	/* widest cell or title */
	char		**cells;			/* nrows * ncols, owned */
	size_t		 nrows;				/* rows added */
	size_t		 cap;				/* rows allocated */
};

static volatile sig_atomic_t interrupted;	/* SIGINT/SIGTERM during monitor */

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: lbctl [-s SOCKET] [--json] COMMAND [ARGS]\n"
	    "\n"
	    "commands (a unique prefix of a keyword is enough: \"lbctl sta\", \"lbctl sticky l\"):\n"
	    "  status                        node, role, VIP, peer, sync, pipe memory, connection mirroring\n"
	    "                                and each service's backends\n"
	    "  backends                      every backend: state, admin state, connections, bytes, checks\n"
	    "                                (admin \"removed\": reload took it out, its connections finish)\n"
	    "  sticky list [SERVICE]         sticky entries (client -> backend), most recently used first;\n"
	    "                                over 10000 entries: fetched and printed in pages of 10000,\n"
	    "                                each by latest expiry first\n"
	    "  sticky get IP [SERVICE]       one client's entry\n"
	    "  sticky set IP BACKEND [SERVICE]\n"
	    "                                pin a client to a backend (replicated to the peer like a\n"
	    "                                connection's pick); SERVICE is needed when several services\n"
	    "                                have a backend BACKEND; refused for a disabled backend\n"
	    "  sticky clear IP [SERVICE]     forget one client (in every service unless SERVICE is given)\n"
	    "  sticky flush [SERVICE]        empty the sticky table (of every service unless SERVICE is given)\n"
	    "  backend NAME enable|disable|drain [SERVICE]\n"
	    "                                admin state; drain keeps sticky clients but takes no new ones;\n"
	    "                                SERVICE is needed when several services have a backend NAME\n"
	    "  failover                      hand the VIP to the peer now; open connections\n"
	    "                                stay here until they end (handover_drain_s)\n"
	    "  reload                        re-read the config file and apply it without dropping\n"
	    "                                connections or sticky entries; refused (old config kept)\n"
	    "                                on an error or a change that needs a restart\n"
	    "  monitor                       print events (role, backend, sync, handover) until\n"
	    "                                interrupted; at most 16 at once\n"
	    "  help                          this text\n"
	    "\n"
	    "options:\n"
	    "  -s, --socket SOCKET   control socket (default: $LBD_SOCKET, else " LBD_DEFAULT_SOCKET ")\n"
	    "  -j, --json            print lbd's JSON reply as received, one line per reply, event\n"
	    "                        or page of sticky list\n"
	    "  -h, --help            this text\n"
	    "  -V, --version         print lbctl's version (status shows lbd's on both nodes)\n"
	    "\n"
	    "exit status: 0 success; 1 the command failed (lbd replied with an error, or bad usage);\n"
	    "             2 lbd cannot be reached or its reply is not JSON\n");
}

static void
lbctl_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "lbctl: message" on stderr. */
static void
lbctl_warnx(const char *fmt, ...)
{
	va_list	 ap;

	fputs("lbctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---------------------------------------------------------------- parsing */

/* "a, b, c": the keywords (or placeholders) a table accepts. */
static const char *
token_choices(const struct token *table, char *buf, size_t len)
{
	size_t	 n = 0;
	int	 i;

	buf[0] = '\0';
	for (i = 0; table[i].type != TOK_END; i++) {
		if (table[i].type == TOK_NONE)
			continue;
		n += (size_t)snprintf(buf + n, n < len ? len - n : 0, "%s%s",
		    n > 0 ? ", " : "", table[i].word);
		if (n >= len)
			break;
	}
	return buf;
}

/* A free argument must travel as one word of a one-line request. */
static int
arg_valid(const char *placeholder, const char *word)
{
	size_t	 i, len = strlen(word);

	if (len == 0 || len > LBCTL_ARG_MAX) {
		lbctl_warnx("%s must be 1 to %d characters", placeholder, LBCTL_ARG_MAX);
		return -1;
	}
	for (i = 0; i < len; i++)
		if (isspace((unsigned char)word[i]) || iscntrl((unsigned char)word[i])) {
			lbctl_warnx("%s must not contain spaces or control characters", placeholder);
			return -1;
		}
	return 0;
}

/*
 * Matches word against table: an exact keyword, else a unique keyword
 * prefix, else the table's free argument.
 * Returns: the token, or NULL with the reason printed.
 */
static const struct token *
token_match(const struct token *table, const char *word, const char *context)
{
	const struct token *match = NULL, *arg = NULL;
	char		 choices[512], candidates[512];
	size_t		 len = strlen(word), n = 0;
	int		 i, nprefix = 0;

	candidates[0] = '\0';
	for (i = 0; table[i].type != TOK_END; i++) {
		if (table[i].type == TOK_ARG)
			arg = &table[i];
		if (table[i].type != TOK_KEYWORD)
			continue;
		if (strcmp(table[i].word, word) == 0)
			return &table[i];
		if (len > 0 && strncmp(table[i].word, word, len) == 0) {
			match = &table[i];
			nprefix++;
			n += (size_t)snprintf(candidates + n, n < sizeof(candidates) ?
			    sizeof(candidates) - n : 0, "%s%s", n > 0 ? ", " : "", table[i].word);
		}
	}
	if (nprefix == 1)
		return match;
	if (nprefix > 1) {
		lbctl_warnx("ambiguous %s \"%s\": %s", context, word, candidates);
		return NULL;
	}
	if (arg != NULL)
		return arg;
	token_choices(table, choices, sizeof(choices));
	if (choices[0] == '\0')
		lbctl_warnx("unexpected argument \"%s\"", word);
	else if (table == t_main)
		lbctl_warnx("unknown command \"%s\"; valid commands: %s", word, choices);
	else
		lbctl_warnx("unknown %s \"%s\"; valid: %s", context, word, choices);
	return NULL;
}

/* Appends word to the request line. Returns: 0, or -1 when it does not fit. */
static int
request_append(struct request *req, const char *word)
{
	size_t	 n = strlen(req->line);
	int	 r;

	r = snprintf(req->line + n, sizeof(req->line) - n, "%s%s", n > 0 ? " " : "", word);
	if (r < 0 || (size_t)r >= sizeof(req->line) - n) {
		lbctl_warnx("command line too long");
		return -1;
	}
	return 0;
}

/* What a word of table is called in messages. */
static const char *
token_context(const struct token *table)
{
	if (table == t_main)
		return "command";
	if (table == t_sticky)
		return "sticky subcommand";
	if (table == t_admin)
		return "admin state";
	return "argument";
}

/*
 * Walks the token tables over argv (prefix matching keywords) and builds
 * the canonical request line.
 * Returns: 0, or -1 with the reason printed.
 */
static int
request_parse(int argc, char **argv, struct request *req)
{
	const struct token *table = t_main, *t;
	char		 choices[512];
	int		 i, j, n;

	memset(req, 0, sizeof(*req));
	for (i = 0; ; i++) {
		if (i == argc) {
			for (j = n = 0; table[j].type != TOK_END; j++) {
				if (table[j].type == TOK_NONE)
					return 0;
				n++;
			}
			token_choices(table, choices, sizeof(choices));
			if (table == t_main)
				lbctl_warnx("missing command; valid commands: %s", choices);
			else
				lbctl_warnx("%s: missing %s%s", req->line, n > 1 ? "one of " : "",
				    choices);
			return -1;
		}
		if ((t = token_match(table, argv[i], token_context(table))) == NULL)
			return -1;
		if (t->type == TOK_ARG) {
			if (arg_valid(t->word, argv[i]) == -1 || request_append(req, argv[i]) == -1)
				return -1;
		} else if (request_append(req, t->word) == -1)
			return -1;
		if (t->action != ACT_NONE)
			req->action = t->action;
		table = t->next;
	}
}

/* ---------------------------------------------------------------- talking to lbd */

static void
on_signal(int sig)
{
	interrupted = 1;
}

/* Returns: a connected socket, or -1 with the reason printed. */
static int
lbctl_connect(const char *path)
{
	struct sockaddr_un sun;
	int		 fd, saved;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		lbctl_warnx("socket path too long: %s", path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		lbctl_warnx("socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		saved = errno;
		if (saved == EACCES || saved == EPERM)
			lbctl_warnx("cannot connect to %s: %s (run as root or as a member of "
			    "the socket's group, lbdctl by default: usermod -aG lbdctl NAME)",
			    path, strerror(saved));
		else
			lbctl_warnx("cannot connect to %s: %s (is lbd running?)", path,
			    strerror(saved));
		close(fd);
		return -1;
	}
	return fd;
}

/* Writes all of buf. Returns: 0, or -1 with the reason printed. */
static int
lbctl_write(int fd, const char *buf, size_t len)
{
	ssize_t	 n;

	while (len > 0) {
		if ((n = send(fd, buf, len, MSG_NOSIGNAL)) == -1) {
			if (errno == EINTR)
				continue;
			lbctl_warnx("cannot send the request: %s", strerror(errno));
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Reads from fd into *buf (grown as needed) until stop_at_newline and a
 * newline arrived, or EOF, or the deadline (0: none).
 * Returns: 1 got data ending as asked, 0 EOF with nothing (more), -1 error
 * printed, -2 interrupted.
 */
static int
lbctl_read(int fd, char **buf, size_t *len, size_t *cap, bool stop_at_newline, uint64_t deadline)
{
	struct pollfd	 pfd = { .fd = fd, .events = POLLIN };
	struct timespec	 ts;
	uint64_t	 now;
	ssize_t		 n;
	size_t		 start = *len;
	char		*p;
	int		 timeout;

	for (;;) {
		if (stop_at_newline && *len > start && memchr(*buf + start, '\n', *len - start))
			return 1;
		if (interrupted)
			return -2;
		timeout = -1;
		if (deadline != 0) {
			clock_gettime(CLOCK_MONOTONIC, &ts);
			now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
			if (now >= deadline) {
				lbctl_warnx("no reply from lbd within %d s", LBCTL_TIMEOUT_MS / 1000);
				return -1;
			}
			timeout = (int)(deadline - now);
		}
		if ((n = poll(&pfd, 1, timeout)) == -1) {
			if (errno == EINTR)
				continue;
			lbctl_warnx("poll: %s", strerror(errno));
			return -1;
		}
		if (n == 0)
			continue;
		if (*cap - *len < 65536) {
			if (*cap >= LBCTL_REPLY_MAX) {
				lbctl_warnx("reply larger than %u MiB", LBCTL_REPLY_MAX >> 20);
				return -1;
			}
			if ((p = realloc(*buf, *cap * 2 + 65536)) == NULL) {
				lbctl_warnx("out of memory");
				return -1;
			}
			*buf = p;
			*cap = *cap * 2 + 65536;
		}
		if ((n = read(fd, *buf + *len, *cap - *len - 1)) == -1) {
			if (errno == EINTR)
				continue;
			/* Linux resets a UNIX socket closed with unread data: after a reply that is EOF. */
			if (errno == ECONNRESET && *len > start)
				return 1;
			lbctl_warnx("reading the reply: %s", strerror(errno));
			return -1;
		}
		if (n == 0)
			return *len > start ? 1 : 0;
		*len += (size_t)n;
		(*buf)[*len] = '\0';
	}
}

/* ---------------------------------------------------------------- printing */

/* A JSON scalar as text: "-" for null or missing. */
static const char *
jfmt(const json_t *v, char *buf, size_t len)
{
	switch (v == NULL ? JSON_NULL : json_typeof(v)) {
	case JSON_STRING:
		snprintf(buf, len, "%s", json_string_value(v));
		break;
	case JSON_INTEGER:
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		break;
	case JSON_REAL:
		snprintf(buf, len, "%g", json_real_value(v));
		break;
	case JSON_TRUE:
		snprintf(buf, len, "yes");
		break;
	case JSON_FALSE:
		snprintf(buf, len, "no");
		break;
	case JSON_NULL:
		snprintf(buf, len, "-");
		break;
	default: {
		char	*s = json_dumps(v, JSON_COMPACT);

		snprintf(buf, len, "%s", s != NULL ? s : "?");
		free(s);
	}
	}
	return buf;
}

/* obj[key] as text. */
static const char *
jget(const json_t *obj, const char *key, char *buf, size_t len)
{
	return jfmt(json_object_get(obj, key), buf, len);
}

/* "45s", "3m05s", "2h03m04s", "4d05h06m": a duration in seconds for people. */
static const char *
fmt_s(json_int_t s, char *buf, size_t len)
{
	if (s < 60)
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT "s", s);
	else if (s < 3600)
		snprintf(buf, len, "%dm%02ds", (int)(s / 60), (int)(s % 60));
	else if (s < 86400)
		snprintf(buf, len, "%dh%02dm%02ds", (int)(s / 3600), (int)(s % 3600 / 60),
		    (int)(s % 60));
	else
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT "d%02dh%02dm", s / 86400,
		    (int)(s % 86400 / 3600), (int)(s % 3600 / 60));
	return buf;
}

/* "350ms", "12s", "3m05s", "2h03m", "4d05h": an age or duration in ms for people. */
/* Byte count v in MiB ("12 MiB", "0.5 MiB"); "-" when v is no integer. */
static const char *
fmt_mib(const json_t *v, char *buf, size_t len)
{
	double	 mib;

	if (!json_is_integer(v)) {
		snprintf(buf, len, "-");
		return buf;
	}
	mib = (double)json_integer_value(v) / (1024 * 1024);
	snprintf(buf, len, mib == (double)(long long)mib ? "%.0f MiB" : "%.1f MiB", mib);
	return buf;
}

/* A figure in ms that may have decimals (mirror lag, rebuild time), or "-". */
static const char *
fmt_fms(const json_t *v, char *buf, size_t len)
{
	if (!json_is_number(v))
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.2fms", json_number_value(v));
	return buf;
}

static const char *
fmt_ms(const json_t *v, char *buf, size_t len)
{
	json_int_t	 ms, s;

	if (!json_is_integer(v)) {
		snprintf(buf, len, "-");
		return buf;
	}
	ms = json_integer_value(v);
	s = ms / 1000;
	if (ms < 10000)
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT "ms", ms);
	else if (s < 60)
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT "s", s);
	else if (s < 3600)
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT "m%02ds", s / 60, (int)(s % 60));
	else if (s < 86400)
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT "h%02dm", s / 3600, (int)(s % 3600 / 60));
	else
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT "d%02dh", s / 86400, (int)(s % 86400 / 3600));
	return buf;
}

static void
table_init(struct table *t, int ncols, const char **headers)
{
	int	 i;

	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
	for (i = 0; i < ncols; i++) {
		t->headers[i] = headers[i];
		t->width[i] = strlen(headers[i]);
	}
}

/*
 * Adds a row of ncols strings. Blanks inside a cell become '-' so that
 * every column stays one word for awk and cut.
 */
static void
table_add(struct table *t, const char **values)
{
	char	**p, *c;
	size_t	 len;
	int	 i;

	if (t->nrows == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		if ((p = reallocarray(t->cells, t->cap * (size_t)t->ncols, sizeof(*p))) == NULL) {
			lbctl_warnx("out of memory");
			exit(LBCTL_EXIT_FAILED);
		}
		t->cells = p;
	}
	for (i = 0; i < t->ncols; i++) {
		if ((c = strdup(values[i][0] != '\0' ? values[i] : "-")) == NULL) {
			lbctl_warnx("out of memory");
			exit(LBCTL_EXIT_FAILED);
		}
		for (len = 0; c[len] != '\0'; len++)
			if (isspace((unsigned char)c[len]))
				c[len] = '-';
		if (len > t->width[i])
			t->width[i] = len;
		t->cells[t->nrows * (size_t)t->ncols + (size_t)i] = c;
	}
	t->nrows++;
}

static void
table_print_row(const struct table *t, const char **cells)
{
	int	 i;

	for (i = 0; i < t->ncols; i++) {
		if (i == t->ncols - 1)
			printf("%s\n", cells[i]);
		else
			printf("%-*s  ", (int)t->width[i], cells[i]);
	}
}

/*
 * Prints the header (when asked) and the rows added since the last call,
 * then frees them; widths carry over, so a table printed in parts (the
 * pages of `sticky list`) lines up while no later cell is wider.
 */
static void
table_print_part(struct table *t, bool header)
{
	size_t	 r;

	if (header)
		table_print_row(t, t->headers);
	for (r = 0; r < t->nrows; r++)
		table_print_row(t, (const char **)&t->cells[r * (size_t)t->ncols]);
	for (r = 0; r < t->nrows * (size_t)t->ncols; r++)
		free(t->cells[r]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = t->cap = 0;
}

/* Prints the header and every row, then frees the rows. */
static void
table_print(struct table *t)
{
	int	 i;

	table_print_part(t, true);
	for (i = 0; i < t->ncols; i++)
		t->width[i] = 0;
}

/*
 * The columns of the backend tables. They are only ever appended to, never
 * reordered or renamed, so scripts that cut columns keep working.
 */
static const char *status_cols[] = {
	"BACKEND", "STATE", "ADMIN", "ACTIVE", "TOTAL", "BYTES-IN", "BYTES-OUT", "LAST-CHECK"
};
static const char *backends_cols[] = {
	"SERVICE", "BACKEND", "STATE", "ADMIN", "ACTIVE", "TOTAL", "BYTES-IN", "BYTES-OUT",
	"LAST-CHECK", "CHECK-AGE", "ADDRESS", "WEIGHT", "CONNECT-FAILURES"
};
static const char *sticky_cols[] = {
	"SERVICE", "CLIENT", "BACKEND", "EXPIRES-IN"
};
#define NCOLS(a)	((int)(sizeof(a) / sizeof((a)[0])))	/* columns of a header list */

/*
 * Both nodes' lbd versions, so that a pair half-way through an upgrade
 * shows: the peer's comes in its adverts (null: none heard yet; "": an lbd
 * from before versions).
 */
static void
print_versions(const json_t *r, const json_t *peer)
{
	const json_t	*pv = json_object_get(peer, "version");
	const char	*here = json_string_value(json_object_get(r, "version"));
	const char	*there = json_string_value(pv);

	if (here == NULL)
		return;		/* an lbd from before versions */
	if (json_is_null(json_object_get(peer, "name")) || json_object_get(peer, "name") == NULL)
		printf("version:   %s\n", here);
	else if (there == NULL)
		printf("version:   %s here, %s not heard yet\n", here,
		    json_string_value(json_object_get(peer, "name")));
	else
		printf("version:   %s here, %s on %s%s\n", here,
		    there[0] != '\0' ? there : "older (sends no version)",
		    json_string_value(json_object_get(peer, "name")),
		    strcmp(here, there) != 0 ? " (mixed versions: finish the upgrade)" : "");
}

static void
print_status(const json_t *r)
{
	const json_t	*vip = json_object_get(r, "vip"), *peer = json_object_get(r, "peer");
	const json_t	*sync = json_object_get(r, "sync"), *svc, *b, *v;
	char		 c[LBCTL_TABLE_COLS][128], ports[256];
	const char	*row[LBCTL_TABLE_COLS];
	struct table	 t;
	size_t		 i, j, k, n;
	int		 col;

	printf("node:      %s\n", jget(r, "node", c[0], sizeof(c[0])));
	printf("role:      %s\n", jget(r, "role", c[0], sizeof(c[0])));
	printf("priority:  %s\n", jget(r, "priority", c[0], sizeof(c[0])));
	printf("vip:       %s on %s, %s%s%s\n", jget(vip, "address", c[0], sizeof(c[0])),
	    jget(vip, "interface", c[1], sizeof(c[1])),
	    json_is_true(json_object_get(vip, "held")) ? "held" : "not held",
	    json_is_true(json_object_get(vip, "draining")) ?
	    ", draining (hidden on lo: serving the connections begun here)" : "",
	    json_is_true(json_object_get(vip, "forwarding")) ?
	    ", forwarding the old MASTER's connections to it" : "");
	if (json_is_null(json_object_get(peer, "name")) || json_object_get(peer, "name") == NULL)
		printf("peer:      %s\n", jget(peer, "state", c[0], sizeof(c[0])));
	else
		printf("peer:      %s, %s, priority %s, last advert %s ago\n",
		    jget(peer, "name", c[0], sizeof(c[0])),
		    jget(peer, "state", c[1], sizeof(c[1])),
		    jget(peer, "priority", c[2], sizeof(c[2])),
		    fmt_ms(json_object_get(peer, "last_advert_ms"), c[3], sizeof(c[3])));
	print_versions(r, peer);
	printf("sync:      %s, %s entries, lag %s\n", jget(sync, "state", c[0], sizeof(c[0])),
	    jget(sync, "entries", c[1], sizeof(c[1])),
	    fmt_ms(json_object_get(sync, "lag_ms"), c[2], sizeof(c[2])));
	v = json_object_get(r, "uptime_s");
	if (json_is_integer(v))
		printf("uptime:    %s\n", fmt_s(json_integer_value(v), c[0], sizeof(c[0])));
	v = json_object_get(r, "ha");
	if (json_is_object(v) && json_is_boolean(json_object_get(v, "advert_realtime")) &&
	    !json_is_null(json_object_get(peer, "name")))
		printf("adverts:   %s, %s sent for a late event loop\n",
		    json_is_true(json_object_get(v, "advert_realtime")) ?
		    "real-time pacer thread" : "pacer thread NOT real-time (see the log)",
		    jget(v, "adverts_paced", c[0], sizeof(c[0])));
	v = json_object_get(r, "relay_threads");
	if (json_is_integer(v) && json_integer_value(v) == 0)
		printf("relay:     in the main thread\n");
	else if (json_is_integer(v))
		printf("relay:     %lld worker thread%s\n", (long long)json_integer_value(v),
		    json_integer_value(v) == 1 ? "" : "s");
	v = json_object_get(r, "pipes");
	if (json_is_object(v))
		printf("pipes:     %s of %s in enlarged pipes (peak %s), %s fallbacks to "
		    "default-size pipes, %s resizes refused\n",
		    fmt_mib(json_object_get(v, "bytes"), c[0], sizeof(c[0])),
		    fmt_mib(json_object_get(v, "max"), c[1], sizeof(c[1])),
		    fmt_mib(json_object_get(v, "peak"), c[2], sizeof(c[2])),
		    jget(v, "fallbacks", c[3], sizeof(c[3])),
		    jget(v, "refused", c[4], sizeof(c[4])));
	v = json_object_get(r, "mirror");
	if (json_is_object(v) && json_is_true(json_object_get(v, "enabled"))) {
		printf("mirror:    %s connections mirrored to the peer (lag p50 %s, p99 %s), "
		    "%s of the peer's held here (%s standing by), fence %s\n",
		    jget(v, "pairs", c[0], sizeof(c[0])),
		    fmt_fms(json_object_get(v, "lag_p50_ms"), c[1], sizeof(c[1])),
		    fmt_fms(json_object_get(v, "lag_p99_ms"), c[2], sizeof(c[2])),
		    jget(v, "held", c[3], sizeof(c[3])),
		    jget(v, "standby", c[4], sizeof(c[4])),
		    json_is_true(json_object_get(v, "fence")) ? "on" : "OFF (see the log)");
		if (json_integer_value(json_object_get(v, "takeovers")) > 0)
			printf("           last takeover: %s rebuilt, %s reset, in %s\n",
			    jget(v, "rebuilt", c[0], sizeof(c[0])),
			    jget(v, "reset", c[1], sizeof(c[1])),
			    fmt_fms(json_object_get(v, "rebuild_ms"), c[2], sizeof(c[2])));
	}

	json_array_foreach(json_object_get(r, "services"), i, svc) {
		n = 0;
		ports[0] = '\0';
		json_array_foreach(json_object_get(svc, "ports"), j, v)
			n += (size_t)snprintf(ports + n, n < sizeof(ports) ? sizeof(ports) - n : 0,
			    "%s%s", j > 0 ? "," : "", jfmt(v, c[0], sizeof(c[0])));
		printf("\nservice %s: ports %s, %s, %s active, %s total, %s refused, "
		    "%s sticky entries (%s evicted)",
		    jget(svc, "name", c[0], sizeof(c[0])), ports,
		    jget(svc, "scheduler", c[1], sizeof(c[1])),
		    jget(svc, "active", c[2], sizeof(c[2])),
		    jget(svc, "total", c[3], sizeof(c[3])),
		    jget(svc, "refused", c[4], sizeof(c[4])),
		    jget(svc, "sticky_entries", c[5], sizeof(c[5])),
		    jget(svc, "sticky_evictions", c[6], sizeof(c[6])));
		/* Only when it happened: the usual line stays as it was. */
		v = json_object_get(svc, "refused_per_client");
		if (json_is_integer(v) && json_integer_value(v) > 0)
			printf(", %lld refused over max_connections_per_client",
			    (long long)json_integer_value(v));
		printf("\n");
		table_init(&t, NCOLS(status_cols), status_cols);
		json_array_foreach(json_object_get(svc, "backends"), k, b) {
			const char *keys[] = { "name", "state", "admin", "active", "total",
			    "bytes_in", "bytes_out", "last_check" };

			for (col = 0; col < NCOLS(status_cols); col++)
				row[col] = jget(b, keys[col], c[col], sizeof(c[col]));
			if (json_is_true(json_object_get(b, "removed")))
				row[2] = "removed";	/* admin: left the config, connections finish */
			table_add(&t, row);
		}
		table_print(&t);
	}
}

static void
print_backends(const json_t *r)
{
	const char	*keys[] = { "service", "name", "state", "admin", "active", "total",
			    "bytes_in", "bytes_out", "last_check", NULL, "address", "weight",
			    "connect_failures" };
	char		 c[LBCTL_TABLE_COLS][128];
	const char	*row[LBCTL_TABLE_COLS];
	const json_t	*b;
	struct table	 t;
	size_t		 i;
	int		 col;

	table_init(&t, NCOLS(backends_cols), backends_cols);
	json_array_foreach(json_object_get(r, "backends"), i, b) {
		for (col = 0; col < NCOLS(backends_cols); col++)
			row[col] = keys[col] != NULL ? jget(b, keys[col], c[col], sizeof(c[col])) :
			    fmt_ms(json_object_get(b, "last_check_age_ms"), c[col], sizeof(c[col]));
		if (json_is_true(json_object_get(b, "removed")))
			row[3] = "removed";	/* admin: left the config, connections finish */
		table_add(&t, row);
	}
	table_print(&t);
}

/*
 * One page of `sticky list` into t, printed (the header with the first
 * page). A reply with "next" is followed by more pages (lbctl_run).
 */
static void
print_sticky_page(struct table *t, const json_t *r, bool first)
{
	char		 c[4][128], num[64];
	const char	*row[4];
	const json_t	*e;
	size_t		 i;

	json_array_foreach(json_object_get(r, "entries"), i, e) {
		row[0] = jget(e, "service", c[0], sizeof(c[0]));
		row[1] = jget(e, "client", c[1], sizeof(c[1]));
		row[2] = jget(e, "backend", c[2], sizeof(c[2]));
		snprintf(c[3], sizeof(c[3]), "%ss", jget(e, "expires_in_s", num, sizeof(num)));
		row[3] = c[3];
		table_add(t, row);
	}
	table_print_part(t, first);
	/* An lbd without pages caps one reply: say so. */
	if (json_is_true(json_object_get(r, "truncated")) &&
	    !json_is_string(json_object_get(r, "next")))
		lbctl_warnx("only %zu of %s entries listed (one reply is capped); "
		    "use sticky get IP for a given client",
		    json_array_size(json_object_get(r, "entries")),
		    jget(r, "total", c[0], sizeof(c[0])));
}

static void
print_sticky_get(const json_t *r)
{
	char	 c[4][128];

	printf("%s -> %s (service %s, expires in %ss)\n", jget(r, "client", c[0], sizeof(c[0])),
	    jget(r, "backend", c[1], sizeof(c[1])), jget(r, "service", c[2], sizeof(c[2])),
	    jget(r, "expires_in_s", c[3], sizeof(c[3])));
}

static void
print_sticky_set(const json_t *r)
{
	const json_t	*w = json_object_get(r, "warning");
	char		 c[4][128];

	printf("pinned %s -> %s (service %s, expires in %ss)\n",
	    jget(r, "client", c[0], sizeof(c[0])), jget(r, "backend", c[1], sizeof(c[1])),
	    jget(r, "service", c[2], sizeof(c[2])), jget(r, "expires_in_s", c[3], sizeof(c[3])));
	if (json_is_string(w))
		lbctl_warnx("warning: %s", json_string_value(w));
}

static void
print_count(const json_t *r, const char *key, const char *verb)
{
	const json_t	*v = json_object_get(r, key);
	json_int_t	 n = json_is_integer(v) ? json_integer_value(v) : 0;

	printf("%s %" JSON_INTEGER_FORMAT " sticky %s\n", verb, n, n == 1 ? "entry" : "entries");
}

static void
print_backend_admin(const json_t *r)
{
	char	 c[4][128];

	printf("backend %s/%s: admin %s, state %s\n", jget(r, "service", c[0], sizeof(c[0])),
	    jget(r, "backend", c[1], sizeof(c[1])), jget(r, "admin", c[2], sizeof(c[2])),
	    jget(r, "state", c[3], sizeof(c[3])));
}

/* Any other reply: "key: value" per member. */
static void
print_generic(const json_t *r)
{
	const char	*key;
	json_t		*v;
	char		 buf[1024];

	json_object_foreach((json_t *)r, key, v)
		printf("%s: %s\n", key, jfmt(v, buf, sizeof(buf)));
}

/*
 * One event for people: "12:00:01 backend FTPS_VIP/FTP_SVR1 down
 * (connect refused)", other members as key=value.
 */
static void
print_event(const json_t *ev)
{
	const json_t	*v, *svc = json_object_get(ev, "service"), *be = json_object_get(ev, "backend");
	const char	*key;
	json_t		*val;
	struct tm	 tm;
	time_t		 t;
	char		 buf[1024], buf2[256];

	v = json_object_get(ev, "time_ms");
	t = json_is_integer(v) ? (time_t)(json_integer_value(v) / 1000) : time(NULL);
	localtime_r(&t, &tm);
	printf("%02d:%02d:%02d %s", tm.tm_hour, tm.tm_min, tm.tm_sec,
	    jget(ev, "event", buf, sizeof(buf)));
	if (svc != NULL && be != NULL)
		printf(" %s/%s", jfmt(svc, buf, sizeof(buf)), jfmt(be, buf2, sizeof(buf2)));
	else if (svc != NULL || be != NULL)
		printf(" %s", jfmt(svc != NULL ? svc : be, buf, sizeof(buf)));
	if ((v = json_object_get(ev, "role")) != NULL)
		printf(" %s", jfmt(v, buf, sizeof(buf)));
	if ((v = json_object_get(ev, "state")) != NULL)
		printf(" %s", jfmt(v, buf, sizeof(buf)));
	if ((v = json_object_get(ev, "reason")) != NULL)
		printf(" (%s)", jfmt(v, buf, sizeof(buf)));
	json_object_foreach((json_t *)ev, key, val) {
		if (strcmp(key, "event") == 0 || strcmp(key, "time") == 0 ||
		    strcmp(key, "time_ms") == 0 || strcmp(key, "service") == 0 ||
		    strcmp(key, "backend") == 0 || strcmp(key, "role") == 0 ||
		    strcmp(key, "state") == 0 || strcmp(key, "reason") == 0)
			continue;
		printf(" %s=%s", key, jfmt(val, buf, sizeof(buf)));
	}
	printf("\n");
}

static void
print_reply(enum lbctl_action action, const json_t *r)
{
	switch (action) {
	case ACT_STATUS:
		print_status(r);
		break;
	case ACT_BACKENDS:
		print_backends(r);
		break;
	case ACT_STICKY_GET:
		print_sticky_get(r);
		break;
	case ACT_STICKY_SET:
		print_sticky_set(r);
		break;
	case ACT_STICKY_CLEAR:
		print_count(r, "cleared", "cleared");
		break;
	case ACT_STICKY_FLUSH:
		print_count(r, "flushed", "flushed");
		break;
	case ACT_BACKEND_ADMIN:
		print_backend_admin(r);
		break;
	default:
		print_generic(r);
		break;
	}
}

/*
 * Parses one reply line. Returns: LBCTL_EXIT_OK and *out set,
 * LBCTL_EXIT_FAILED for {"error": ...} (printed, *out set), or
 * LBCTL_EXIT_UNREACHABLE when it is not a JSON object (printed).
 */
static int
reply_parse(const char *buf, size_t len, json_t **out)
{
	json_error_t	 err;
	json_t		*r, *e;

	*out = NULL;
	if ((r = json_loadb(buf, len, JSON_DISABLE_EOF_CHECK, &err)) == NULL) {
		lbctl_warnx("the reply from lbd is not JSON: %s", err.text);
		return LBCTL_EXIT_UNREACHABLE;
	}
	if (!json_is_object(r)) {
		lbctl_warnx("the reply from lbd is not a JSON object");
		json_decref(r);
		return LBCTL_EXIT_UNREACHABLE;
	}
	*out = r;
	if ((e = json_object_get(r, "error")) != NULL) {
		lbctl_warnx("%s", json_is_string(e) ? json_string_value(e) : "lbd reported an error");
		return LBCTL_EXIT_FAILED;
	}
	return LBCTL_EXIT_OK;
}

/* Streams events after the {"monitor": "started"} reply, until interrupted or lbd leaves. */
static int
monitor_loop(int fd, char **buf, size_t *len, size_t *cap, size_t done, bool json)
{
	json_t	*ev;
	char	*nl;
	int	 rc;

	for (;;) {
		while ((nl = memchr(*buf + done, '\n', *len - done)) != NULL) {
			size_t	 n = (size_t)(nl - (*buf + done));

			if (json)
				printf("%.*s\n", (int)n, *buf + done);
			else if (n > 0) {
				if ((ev = json_loadb(*buf + done, n, 0, NULL)) != NULL &&
				    json_is_object(ev))
					print_event(ev);
				else
					lbctl_warnx("event is not JSON: %.*s", (int)n, *buf + done);
				json_decref(ev);
			}
			done += n + 1;
		}
		/* Keep the unfinished tail only. */
		memmove(*buf, *buf + done, *len - done);
		*len -= done;
		done = 0;
		rc = lbctl_read(fd, buf, len, cap, true, 0);
		if (rc == -2)
			return LBCTL_EXIT_OK;
		if (rc == 0) {
			lbctl_warnx("lbd closed the connection");
			return LBCTL_EXIT_UNREACHABLE;
		}
		if (rc == -1)
			return LBCTL_EXIT_UNREACHABLE;
	}
}

/*
 * The pages of a `sticky list` after the first, r: each asked for on a
 * connection of its own with "from NEXT", and printed as it comes into t
 * (NULL: as received, for --json), so lbctl holds one page at a time
 * however big the table. Returns: the exit status.
 */
static int
sticky_list_pages(const char *path, const struct request *req, const json_t *r,
    struct table *t)
{
	struct timespec	 ts;
	char		 line[LBD_CONTROL_LINE_MAX + 2];
	char		*buf = NULL, *nl;
	size_t		 len, cap = 0, first;
	json_t		*page = NULL;
	const json_t	*next;
	uint64_t	 deadline;
	int		 fd, rc, n, status = LBCTL_EXIT_OK;

	while (status == LBCTL_EXIT_OK && json_is_string(next = json_object_get(r, "next"))) {
		n = snprintf(line, sizeof(line), "%s from %s\n", req->line, json_string_value(next));
		if (n < 0 || (size_t)n >= sizeof(line) - 1) {
			lbctl_warnx("the sticky list cursor from lbd is too long");
			status = LBCTL_EXIT_UNREACHABLE;
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &ts);
		deadline = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 +
		    LBCTL_TIMEOUT_MS;
		if ((fd = lbctl_connect(path)) == -1) {
			status = LBCTL_EXIT_UNREACHABLE;
			break;
		}
		len = 0;
		rc = lbctl_write(fd, line, (size_t)n) == -1 ? -1 :
		    lbctl_read(fd, &buf, &len, &cap, false, deadline);
		close(fd);
		if (rc <= 0) {
			if (rc == 0)
				lbctl_warnx("lbd closed the connection without a reply");
			status = rc == -2 ? LBCTL_EXIT_FAILED : LBCTL_EXIT_UNREACHABLE;
			break;
		}
		first = (nl = memchr(buf, '\n', len)) != NULL ? (size_t)(nl - buf) + 1 : len;
		json_decref(page);
		status = reply_parse(buf, first, &page);
		if (t == NULL && status != LBCTL_EXIT_UNREACHABLE)
			printf("%.*s%s", (int)first, buf, buf[first - 1] != '\n' ? "\n" : "");
		else if (status == LBCTL_EXIT_OK)
			print_sticky_page(t, page, false);
		r = page;
	}
	json_decref(page);
	free(buf);
	return status;
}

/* Sends req to lbd at path and prints the reply. Returns: the exit status. */
static int
lbctl_run(const char *path, const struct request *req, bool json)
{
	struct timespec	 ts;
	struct sigaction sa;
	struct table	 t;
	char		 line[LBD_CONTROL_LINE_MAX + 2];
	char		*buf = NULL, *nl;
	size_t		 len = 0, cap = 0, first;
	json_t		*r = NULL;
	uint64_t	 deadline;
	int		 fd, rc, status;
	bool		 monitor = req->action == ACT_MONITOR;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	clock_gettime(CLOCK_MONOTONIC, &ts);
	deadline = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 + LBCTL_TIMEOUT_MS;
	if ((fd = lbctl_connect(path)) == -1)
		return LBCTL_EXIT_UNREACHABLE;
	snprintf(line, sizeof(line), "%s\n", req->line);
	if (lbctl_write(fd, line, strlen(line)) == -1) {
		close(fd);
		return LBCTL_EXIT_UNREACHABLE;
	}

	rc = lbctl_read(fd, &buf, &len, &cap, monitor, deadline);
	if (rc == -2) {
		status = LBCTL_EXIT_OK;
		goto done;
	}
	if (rc <= 0) {
		if (rc == 0)
			lbctl_warnx("lbd closed the connection without a reply");
		status = LBCTL_EXIT_UNREACHABLE;
		goto done;
	}
	first = (nl = memchr(buf, '\n', len)) != NULL ? (size_t)(nl - buf) + 1 : len;
	status = reply_parse(buf, first, &r);
	if (json && status != LBCTL_EXIT_UNREACHABLE) {
		printf("%.*s", (int)first, buf);
		if (first == 0 || buf[first - 1] != '\n')
			printf("\n");
	} else if (status == LBCTL_EXIT_OK && req->action == ACT_STICKY_LIST) {
		table_init(&t, NCOLS(sticky_cols), sticky_cols);
		print_sticky_page(&t, r, true);
	} else if (status == LBCTL_EXIT_OK && !monitor)
		print_reply(req->action, r);
	if (status == LBCTL_EXIT_OK && req->action == ACT_STICKY_LIST) {
		/* The table is walked a page per request; the first page is printed. */
		close(fd);
		fd = -1;
		status = sticky_list_pages(path, req, r, json ? NULL : &t);
	}
	if (status == LBCTL_EXIT_OK && monitor) {
		fflush(stdout);
		if (!json && isatty(STDERR_FILENO))
			fprintf(stderr, "lbctl: monitoring %s; interrupt (Ctrl-C) to stop\n", path);
		status = monitor_loop(fd, &buf, &len, &cap, first, json);
	}
done:
	json_decref(r);
	free(buf);
	if (fd != -1)
		close(fd);
	return status;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket",	required_argument,	NULL,	's' },
		{ "json",	no_argument,		NULL,	'j' },
		{ "help",	no_argument,		NULL,	'h' },
		{ "version",	no_argument,		NULL,	'V' },
		{ NULL,		0,			NULL,	0 }
	};
	struct request	 req;
	const char	*path;
	bool		 json = false;
	int		 ch;

	if ((path = getenv("LBD_SOCKET")) == NULL || path[0] == '\0')
		path = LBD_DEFAULT_SOCKET;
	while ((ch = getopt_long(argc, argv, "s:jhV", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			path = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return LBCTL_EXIT_OK;
		case 'V':
			printf("lbctl %s\n", LBD_VERSION);
			return LBCTL_EXIT_OK;
		default:
			usage(stderr);
			return LBCTL_EXIT_FAILED;
		}
	}
	argc -= optind;
	argv += optind;

	if (argc == 0) {
		usage(stderr);
		return LBCTL_EXIT_FAILED;
	}
	if (request_parse(argc, argv, &req) == -1)
		return LBCTL_EXIT_FAILED;
	if (req.action == ACT_HELP) {
		usage(stdout);
		return LBCTL_EXIT_OK;
	}
	/* Events must show up as they happen, even through a pipe. */
	if (req.action == ACT_MONITOR)
		setvbuf(stdout, NULL, _IOLBF, 0);
	return lbctl_run(path, &req, json);
}
