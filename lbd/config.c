/*
 * config.c - reads lbd.conf (libconfig syntax; keys in lbd.conf(5)) into
 * struct lbd_config, checking every value and reporting mistakes as
 * "FILE:LINE: where: what is wrong and how to fix it".
 */
#include <sys/stat.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libconfig.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lbd.h"

#define CONFIG_WHERE_MAX		96	/* "services[15].backends[63].address" and room */
#define CONFIG_MSG_MAX			512	/* one message before "FILE:LINE: " */

#define CONFIG_DEF_PRIORITY		100	/* node.priority */
#define CONFIG_DEF_HEARTBEAT_PORT	7411	/* cluster.heartbeat_port (UDP) */
#define CONFIG_DEF_SYNC_PORT		7412	/* cluster.sync_port (TCP) */
#define CONFIG_DEF_ADVERT_MS		100	/* cluster.advert_interval_ms */
#define CONFIG_MIN_REQUEST_MS		100	/* control/metrics.request_timeout_ms lower bound */
#define CONFIG_MAX_REQUEST_MS		60000	/* control/metrics.request_timeout_ms upper bound */
#define CONFIG_DEF_DRAIN_S		60	/* cluster.handover_drain_s */
#define CONFIG_MAX_DRAIN_S		86400	/* its upper bound: a day */
#define CONFIG_DEF_STICKY_TIMEOUT_S	1800	/* service.sticky_timeout_s */
#define CONFIG_DEF_STICKY_SIZE		262144	/* service.sticky_size */
#define CONFIG_DEF_CONNECT_MS		3000	/* service.connect_timeout_ms */
#define CONFIG_DEF_IDLE_S		1800	/* service.idle_timeout_s */
#define CONFIG_DEF_MAX_CONN		4096	/* service.max_connections */
#define CONFIG_DEF_MAX_CONN_CLIENT	128	/* service.max_connections_per_client */
#define CONFIG_DEF_CHECK_INTERVAL_MS	1000	/* check.interval_ms */
#define CONFIG_DEF_CHECK_TIMEOUT_MS	1000	/* check.timeout_ms (capped at interval_ms) */
#define CONFIG_DEF_RISE			2	/* check.rise */
#define CONFIG_DEF_FALL			2	/* check.fall */
#define CONFIG_DEF_WEIGHT		1	/* backend.weight */

/* State of one config_load() call. */
struct config_ctx {
	const char	*path;		/* file name for messages, as given */
	const char	*incdir;	/* where @include names are relative to */
	char		*err;		/* caller's message buffer */
	size_t		 errlen;	/* its size */
	struct lbd_config *conf;	/* being filled */
	int		 range_line[LBD_MAX_SERVICES][LBD_MAX_RANGES]; /* line of each ports entry */
};

/* Valid keys of each group, NULL-terminated, in the order the docs list them. */
static const char *const config_keys_root[] = {
	"node", "peer", "cluster", "vip", "control", "metrics", "log_level",
	"services", NULL
};
static const char *const config_keys_node[] = {
	"name", "address", "priority", "relay_threads", "pipe_memory_max_mb", NULL
};
static const char *const config_keys_peer[] = {
	"name", "address", NULL
};
static const char *const config_keys_cluster[] = {
	"key_file", "heartbeat_port", "sync_port", "advert_interval_ms",
	"preempt", "handover_drain_s", "mirror", "mirror_mark", NULL
};
static const char *const config_keys_vip[] = {
	"address", "interface", NULL
};
static const char *const config_keys_control[] = {
	"socket", "request_timeout_ms", "group", "readonly_group", NULL
};
static const char *const config_keys_metrics[] = {
	"listen", "request_timeout_ms", NULL
};
static const char *const config_keys_service[] = {
	"name", "ports", "mirror_ports", "scheduler", "sticky_timeout_s", "sticky_size",
	"connect_timeout_ms", "idle_timeout_s", "max_connections",
	"max_connections_per_client", "source", "check", "backends", NULL
};
static const char *const config_keys_check[] = {
	"type", "port", "interval_ms", "timeout_ms", "rise", "fall", NULL
};
static const char *const config_keys_backend[] = {
	"name", "address", "weight", NULL
};

const char *
sched_type_str(enum sched_type t)
{
	switch (t) {
	case SCHED_LEASTCONN:
		return "leastconn";
	case SCHED_ROUNDROBIN:
		return "roundrobin";
	}
	return "unknown";
}

const char *
check_type_str(enum check_type t)
{
	switch (t) {
	case CHECK_NONE:
		return "none";
	case CHECK_TCP:
		return "tcp";
	case CHECK_FTP:
		return "ftp";
	}
	return "unknown";
}

const char *
source_mode_str(enum source_mode m)
{
	switch (m) {
	case SOURCE_VIP:
		return "vip";
	case SOURCE_NODE:
		return "node";
	}
	return "unknown";
}

/*
 * Writes "FILE:LINE: message" (or "FILE: message" when s is NULL or has no
 * line) to the caller's buffer.  Returns: -1, so callers can return it.
 */
static int __attribute__((format(printf, 3, 4)))
config_error(struct config_ctx *ctx, const config_setting_t *s, const char *fmt, ...)
{
	char		 msg[CONFIG_MSG_MAX];
	const char	*file = NULL;
	unsigned int	 line = 0;
	va_list		 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (s != NULL) {
		file = config_setting_source_file(s);
		line = config_setting_source_line(s);
	}
	if (file == NULL)
		file = ctx->path;
	if (ctx->errlen == 0)
		return -1;
	if (line > 0)
		snprintf(ctx->err, ctx->errlen, "%s:%u: %s", file, line, msg);
	else
		snprintf(ctx->err, ctx->errlen, "%s: %s", file, msg);
	return -1;
}

/* snprintf for "where" labels; the buffers fit the longest, so truncation cannot happen. */
static void __attribute__((format(printf, 3, 4)))
config_fmt(char *buf, size_t len, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

/* Writes "where.key" (or "key" at top level) to buf. */
static const char *
config_where(char *buf, size_t len, const char *where, const char *key)
{
	if (where[0] == '\0')
		config_fmt(buf, len, "%s", key);
	else
		config_fmt(buf, len, "%s.%s", where, key);
	return buf;
}

/* Rejects any member of group whose name is not in keys. Returns: 0 or -1. */
static int
config_check_keys(struct config_ctx *ctx, const config_setting_t *group,
    const char *where, const char *const keys[])
{
	config_setting_t	*s;
	const char		*name;
	char			 valid[CONFIG_MSG_MAX / 2] = "";
	int			 i, k;

	for (i = 0; i < config_setting_length(group); i++) {
		s = config_setting_get_elem(group, (unsigned int)i);
		if ((name = config_setting_name(s)) == NULL)
			continue;
		for (k = 0; keys[k] != NULL; k++)
			if (strcmp(name, keys[k]) == 0)
				break;
		if (keys[k] != NULL)
			continue;
		for (k = 0; keys[k] != NULL; k++) {
			if (k > 0)
				strncat(valid, ", ", sizeof(valid) - strlen(valid) - 1);
			strncat(valid, keys[k], sizeof(valid) - strlen(valid) - 1);
		}
		if (where[0] == '\0')
			return config_error(ctx, s, "unknown top-level key \"%s\"; "
			    "valid keys: %s", name, valid);
		return config_error(ctx, s, "%s: unknown key \"%s\"; valid keys: %s",
		    where, name, valid);
	}
	return 0;
}

/*
 * Looks up group key, which must be a group { ... } when present.
 * Returns: 1 found (*out set), 0 absent (*out NULL), -1 wrong type.
 */
static int
config_get_group(struct config_ctx *ctx, const config_setting_t *parent,
    const char *where, const char *key, config_setting_t **out)
{
	char	 w[CONFIG_WHERE_MAX];

	*out = config_setting_get_member(parent, key);
	if (*out == NULL)
		return 0;
	if (!config_setting_is_group(*out))
		return config_error(ctx, *out, "%s: expected a group { ... }",
		    config_where(w, sizeof(w), where, key));
	return 1;
}

/*
 * Line `line` (1-based) of file `path`, in a buffer the caller frees, or
 * NULL (file gone since it was parsed, line past its end, no memory).
 */
static char *
config_source_line(const char *path, unsigned int line)
{
	FILE		*f;
	char		*buf = NULL;
	size_t		 cap = 0;
	unsigned int	 n;

	if ((f = fopen(path, "r")) == NULL)
		return NULL;
	for (n = 0; n < line; n++)
		if (getline(&buf, &cap, f) == -1) {
			free(buf);
			buf = NULL;
			break;
		}
	fclose(f);
	return buf;
}

/*
 * The end of the bare integer literal at p (libconfig: decimal, or hex
 * after 0x), or NULL when p starts none or an L suffix makes it 64-bit.
 * *big: it does not fit in 32 bits (a '-' right before it allows 2^31).
 */
static const char *
config_literal_end(const char *line, const char *p, bool *big)
{
	const char	*q = p;
	uintmax_t	 v;
	bool		 hex = p[0] == '0' && (p[1] == 'x' || p[1] == 'X') &&
			    isxdigit((unsigned char)p[2]);
	char		*end;

	if (!isdigit((unsigned char)*p) || (p > line && (isalnum((unsigned char)p[-1]) ||
	    p[-1] == '_' || p[-1] == '.')))
		return NULL;
	errno = 0;
	v = strtoumax(q, &end, hex ? 16 : 10);
	if (*end == 'L' || *end == '.' || *end == 'e' || *end == 'E')
		return NULL;	/* 64-bit (read right) or a float */
	*big = errno == ERANGE || v > (hex ? (uintmax_t)INT32_MAX :
	    (p > line && p[-1] == '-') ? (uintmax_t)INT32_MAX + 1 : (uintmax_t)INT32_MAX);
	return end;
}

/*
 * libconfig 1.5 (Debian 12's) reads an integer literal without an L
 * suffix with atoi(), so "priority = 4294967446;" reads as 150 and passes
 * any range check. The setting's source line is read back: for a named
 * setting the literal after "name =" (or ":"), for a list element every
 * bare literal on the line outside strings and comments, is refused when
 * it does not fit in 32 bits. Returns: 0, or -1 with the error set.
 */
static int
config_check_literal(struct config_ctx *ctx, const config_setting_t *s,
    const char *w, long long min, long long max)
{
	const char	*file = config_setting_source_file(s), *name, *p, *end = NULL;
	unsigned int	 line = config_setting_source_line(s);
	char		 path[PATH_MAX], *text;
	size_t		 nlen;
	bool		 big = false;
	int		 rc = 0;

	/* An @include'd file is named as written: relative to incdir. */
	if (file == NULL || strcmp(file, ctx->path) == 0 || file[0] == '/' ||
	    ctx->incdir == NULL)
		snprintf(path, sizeof(path), "%s", file != NULL ? file : ctx->path);
	else
		snprintf(path, sizeof(path), "%s/%s", ctx->incdir, file);
	if (line == 0 || (text = config_source_line(path, line)) == NULL)
		return 0;
	name = config_setting_name(s);
	nlen = name != NULL ? strlen(name) : 0;
	for (p = text; *p != '\0' && *p != '#' && !(p[0] == '/' && p[1] == '/'); p++) {
		if (*p == '"') {		/* a string: to its closing quote */
			for (p++; *p != '\0' && *p != '"'; p++)
				if (*p == '\\' && p[1] != '\0')
					p++;
			if (*p == '\0')
				break;
			continue;
		}
		if (p[0] == '/' && p[1] == '*') {
			if ((p = strstr(p + 2, "*/")) == NULL)
				break;
			p++;
			continue;
		}
		if (name != NULL) {
			const char *v = p + nlen;

			if (strncmp(p, name, nlen) != 0 || (p > text &&
			    (isalnum((unsigned char)p[-1]) || p[-1] == '_')))
				continue;
			const char *sign;

			while (*v == ' ' || *v == '\t')
				v++;
			if (*v != '=' && *v != ':')
				continue;
			for (v++; *v == ' ' || *v == '\t'; v++)
				;
			for (sign = v; *v == '-' || *v == '+'; v++)
				;
			if ((end = config_literal_end(text, v, &big)) != NULL && big)
				p = sign;
			break;
		}
		if ((end = config_literal_end(text, p, &big)) != NULL && big) {
			if (p > text && p[-1] == '-')
				p--;
			break;
		}
		if (end != NULL)
			p = end - 1;
	}
	if (end != NULL && big && name != NULL)
		rc = config_error(ctx, s, "%s: %.*s does not fit in 32 bits (libconfig "
		    "reads it as %lld); use %lld-%lld", w, (int)(end - p), p,
		    (long long)config_setting_get_int64(s), min, max);
	else if (end != NULL && big)
		rc = config_error(ctx, s, "%s: %.*s on this line does not fit in 32 "
		    "bits (libconfig misreads it); use %lld-%lld", w, (int)(end - p), p,
		    min, max);
	free(text);
	return rc;
}

/*
 * Reads integer key of group into *out when present, checking min..max.
 * Returns: 1 found, 0 absent (*out untouched), -1 wrong type or range.
 */
static int
config_get_int(struct config_ctx *ctx, const config_setting_t *group,
    const char *where, const char *key, long long min, long long max, int *out)
{
	config_setting_t	*s;
	long long		 v;
	char			 w[CONFIG_WHERE_MAX];
	int			 type;

	if ((s = config_setting_get_member(group, key)) == NULL)
		return 0;
	config_where(w, sizeof(w), where, key);
	type = config_setting_type(s);
	if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64)
		return config_error(ctx, s, "%s: expected an integer, e.g. %s = %lld;",
		    w, key, min);
	if (config_check_literal(ctx, s, w, min, max) == -1)
		return -1;
	v = config_setting_get_int64(s);
	if (v < min || v > max)
		return config_error(ctx, s, "%s: %lld is out of range; use %lld-%lld",
		    w, v, min, max);
	*out = (int)v;
	return 1;
}

/* Like config_get_int for a port number. Returns: 1, 0 or -1. */
static int
config_get_port(struct config_ctx *ctx, const config_setting_t *group,
    const char *where, const char *key, uint16_t *out)
{
	int	 v, rc;

	if ((rc = config_get_int(ctx, group, where, key, 1, 65535, &v)) == 1)
		*out = (uint16_t)v;
	return rc;
}

/* Reads boolean key of group when present. Returns: 1, 0 or -1. */
static int
config_get_bool(struct config_ctx *ctx, const config_setting_t *group,
    const char *where, const char *key, bool *out)
{
	config_setting_t	*s;
	char			 w[CONFIG_WHERE_MAX];

	if ((s = config_setting_get_member(group, key)) == NULL)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_BOOL)
		return config_error(ctx, s, "%s: expected true or false (no quotes)",
		    config_where(w, sizeof(w), where, key));
	*out = config_setting_get_bool(s) != 0;
	return 1;
}

/*
 * Finds string key of group; when required and absent that is an error.
 * Returns: 1 found (*out and *sp set), 0 absent, -1 error.
 */
static int
config_get_string(struct config_ctx *ctx, const config_setting_t *group,
    const char *where, const char *key, bool required, const char **out,
    config_setting_t **sp)
{
	config_setting_t	*s;
	char			 w[CONFIG_WHERE_MAX];

	config_where(w, sizeof(w), where, key);
	if ((s = config_setting_get_member(group, key)) == NULL) {
		if (required)
			return config_error(ctx, group, "%s: missing required key "
			    "\"%s\"; add %s = \"...\";", where, key, key);
		return 0;
	}
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return config_error(ctx, s, "%s: expected a string in double quotes", w);
	*out = config_setting_get_string(s);
	if (sp != NULL)
		*sp = s;
	return 1;
}

/* Copies string value v of setting s (named w) into dst. Returns: 0 or -1. */
static int
config_copy(struct config_ctx *ctx, const config_setting_t *s, const char *w,
    const char *v, char *dst, size_t dstlen)
{
	if (v[0] == '\0')
		return config_error(ctx, s, "%s: must not be empty", w);
	if (strlen(v) >= dstlen)
		return config_error(ctx, s, "%s: \"%.40s...\" is too long; at most "
		    "%zu characters", w, v, dstlen - 1);
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

/* Checks and copies a node/peer/service/backend name. Returns: 0 or -1. */
static int
config_copy_name(struct config_ctx *ctx, const config_setting_t *s, const char *w,
    const char *v, char *dst)
{
	const char	*p;

	if (config_copy(ctx, s, w, v, dst, LBD_NAME_MAX) == -1)
		return -1;
	for (p = v; *p != '\0'; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || *p == '_' || *p == '.' || *p == '-')
			continue;
		return config_error(ctx, s, "%s: \"%s\" has a bad character '%c'; "
		    "names use only A-Z a-z 0-9 _ . -", w, v, *p);
	}
	return 0;
}

/* True for 0.0.0.0, ::, and multicast: never a host's address. */
static bool
config_addr_unusable(const struct sockaddr_storage *ss)
{
	const struct sockaddr_in	*sin = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6	*sin6 = (const struct sockaddr_in6 *)ss;

	if (ss->ss_family == AF_INET)
		return sin->sin_addr.s_addr == htonl(INADDR_ANY) ||
		    IN_MULTICAST(ntohl(sin->sin_addr.s_addr));
	return IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr) ||
	    IN6_IS_ADDR_MULTICAST(&sin6->sin6_addr);
}

/* Parses host address v of setting s (named w), without port or prefix. */
static int
config_addr(struct config_ctx *ctx, const config_setting_t *s, const char *w,
    const char *v, struct sockaddr_storage *ss)
{
	if (addr_parse(v, ss) == -1) {
		if (strchr(v, '/') != NULL)
			return config_error(ctx, s, "%s: \"%s\": write the address "
			    "without a /prefix", w, v);
		if (strchr(v, '[') != NULL || (strchr(v, '.') != NULL &&
		    strchr(v, ':') != NULL))
			return config_error(ctx, s, "%s: \"%s\": write the address "
			    "without a port (the service port is used)", w, v);
		return config_error(ctx, s, "%s: \"%s\" is not an IPv4 or IPv6 "
		    "address (hostnames are not resolved)", w, v);
	}
	if (config_addr_unusable(ss))
		return config_error(ctx, s, "%s: \"%s\" is a wildcard or multicast "
		    "address; give a host address", w, v);
	return 0;
}

static int
config_parse_node(struct config_ctx *ctx, const config_setting_t *root)
{
	struct lbd_config	*conf = ctx->conf;
	config_setting_t	*g, *s;
	const char		*v;
	int			 rc;

	if ((rc = config_get_group(ctx, root, "", "node", &g)) != 1)
		return rc == 0 ? config_error(ctx, NULL, "missing required section "
		    "\"node\"; add node = { name = \"lb1\"; address = \"...\"; };") : -1;
	if (config_check_keys(ctx, g, "node", config_keys_node) == -1)
		return -1;
	if (config_get_string(ctx, g, "node", "name", true, &v, &s) == -1 ||
	    config_copy_name(ctx, s, "node.name", v, conf->node_name) == -1)
		return -1;
	if (config_get_string(ctx, g, "node", "address", true, &v, &s) == -1 ||
	    config_addr(ctx, s, "node.address", v, &conf->node_addr) == -1)
		return -1;
	conf->node_priority = CONFIG_DEF_PRIORITY;
	if (config_get_int(ctx, g, "node", "priority", 1, 254,
	    &conf->node_priority) == -1)
		return -1;
	/* Unset: relay_init picks from the CPUs online on the machine it runs on. */
	conf->relay_threads = LBD_RELAY_THREADS_AUTO;
	if (config_get_int(ctx, g, "node", "relay_threads", 0, LBD_MAX_RELAY_THREADS,
	    &conf->relay_threads) == -1)
		return -1;
	/* Unset: relay_pipe_budget sizes it from the RAM of the host it runs on. */
	conf->pipe_memory_max_mb = LBD_PIPE_MEMORY_AUTO;
	if (config_get_int(ctx, g, "node", "pipe_memory_max_mb", 0, LBD_PIPE_MEMORY_MAX_MB,
	    &conf->pipe_memory_max_mb) == -1)
		return -1;
	return 0;
}

/* Adds one peer path from setting s (named w). Returns: 0 or -1. */
static int
config_peer_path(struct config_ctx *ctx, const config_setting_t *s, const char *w)
{
	struct lbd_config	*conf = ctx->conf;
	struct sockaddr_storage	*ss = &conf->peer_addr[conf->npeer_addr];
	const char		*v;
	int			 i;

	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return config_error(ctx, s, "%s: expected an address string in "
		    "double quotes", w);
	v = config_setting_get_string(s);
	if (config_addr(ctx, s, w, v, ss) == -1)
		return -1;
	if (addr_equal((struct sockaddr *)ss, (struct sockaddr *)&conf->node_addr))
		return config_error(ctx, s, "%s: \"%s\" is node.address; give the "
		    "peer's own address", w, v);
	for (i = 0; i < conf->npeer_addr; i++)
		if (addr_equal((struct sockaddr *)ss,
		    (struct sockaddr *)&conf->peer_addr[i]))
			return config_error(ctx, s, "%s: \"%s\" is listed twice", w, v);
	conf->npeer_addr++;
	return 0;
}

static int
config_parse_peer(struct config_ctx *ctx, const config_setting_t *root)
{
	struct lbd_config	*conf = ctx->conf;
	config_setting_t	*g, *s, *e;
	const char		*v;
	char			 w[CONFIG_WHERE_MAX];
	int			 rc, i, n;

	if ((rc = config_get_group(ctx, root, "", "peer", &g)) != 1)
		return rc;
	conf->has_peer = true;
	if (config_check_keys(ctx, g, "peer", config_keys_peer) == -1)
		return -1;
	if (config_get_string(ctx, g, "peer", "name", true, &v, &s) == -1 ||
	    config_copy_name(ctx, s, "peer.name", v, conf->peer_name) == -1)
		return -1;
	if (strcmp(conf->peer_name, conf->node_name) == 0)
		return config_error(ctx, s, "peer.name: \"%s\" is also node.name; "
		    "the two nodes need different names", v);
	if ((s = config_setting_get_member(g, "address")) == NULL)
		return config_error(ctx, g, "peer: missing required key \"address\"; "
		    "add address = \"...\"; (or a list of up to %d addresses)",
		    LBD_MAX_PEER_PATHS);
	if (config_setting_type(s) == CONFIG_TYPE_STRING)
		return config_peer_path(ctx, s, "peer.address");
	if (!config_setting_is_array(s) && !config_setting_is_list(s))
		return config_error(ctx, s, "peer.address: expected an address string "
		    "or a list of them, e.g. [ \"10.0.0.3\", \"10.1.0.3\" ]");
	n = config_setting_length(s);
	if (n == 0)
		return config_error(ctx, s, "peer.address: the list is empty; give at "
		    "least one address");
	if (n > LBD_MAX_PEER_PATHS)
		return config_error(ctx, s, "peer.address: %d addresses; at most %d",
		    n, LBD_MAX_PEER_PATHS);
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(s, (unsigned int)i);
		snprintf(w, sizeof(w), "peer.address[%d]", i);
		if (config_peer_path(ctx, e, w) == -1)
			return -1;
	}
	return 0;
}

static int
config_parse_cluster(struct config_ctx *ctx, const config_setting_t *root)
{
	struct lbd_config	*conf = ctx->conf;
	config_setting_t	*g, *s;
	const char		*v;
	int			 rc;

	snprintf(conf->key_file, sizeof(conf->key_file), "%s", LBD_DEFAULT_KEY_FILE);
	conf->heartbeat_port = CONFIG_DEF_HEARTBEAT_PORT;
	conf->sync_port = CONFIG_DEF_SYNC_PORT;
	conf->advert_interval_ms = CONFIG_DEF_ADVERT_MS;
	conf->preempt = true;
	conf->handover_drain_s = CONFIG_DEF_DRAIN_S;
	conf->mirror = false;
	conf->mirror_mark = LBD_MIRROR_MARK_DEF;
	if ((rc = config_get_group(ctx, root, "", "cluster", &g)) != 1)
		return rc;
	if (config_check_keys(ctx, g, "cluster", config_keys_cluster) == -1)
		return -1;
	if ((rc = config_get_string(ctx, g, "cluster", "key_file", false, &v, &s)) == -1)
		return -1;
	if (rc == 1 && config_copy(ctx, s, "cluster.key_file", v, conf->key_file,
	    sizeof(conf->key_file)) == -1)
		return -1;
	if (config_get_port(ctx, g, "cluster", "heartbeat_port",
	    &conf->heartbeat_port) == -1 ||
	    config_get_port(ctx, g, "cluster", "sync_port", &conf->sync_port) == -1 ||
	    config_get_int(ctx, g, "cluster", "advert_interval_ms", LBD_ADVERT_INTERVAL_MIN,
	    LBD_ADVERT_INTERVAL_MAX, &conf->advert_interval_ms) == -1 ||
	    config_get_bool(ctx, g, "cluster", "preempt", &conf->preempt) == -1 ||
	    config_get_int(ctx, g, "cluster", "handover_drain_s", 0, CONFIG_MAX_DRAIN_S,
	    &conf->handover_drain_s) == -1 ||
	    config_get_bool(ctx, g, "cluster", "mirror", &conf->mirror) == -1 ||
	    config_get_int(ctx, g, "cluster", "mirror_mark", INT32_MIN, INT32_MAX,
	    &conf->mirror_mark) == -1)
		return -1;
	if (conf->mirror_mark < 1 || conf->mirror_mark > LBD_MIRROR_MARK_MAX)
		return config_error(ctx, config_setting_get_member(g, "mirror_mark"),
		    "cluster.mirror_mark: %d is out of range; use 1-%d (not 0: every "
		    "unmarked socket carries it; the fence also uses mirror_mark + 1, the "
		    "mark lbd gives a mirrored socket before it closes it)",
		    conf->mirror_mark, LBD_MIRROR_MARK_MAX);
	if (conf->heartbeat_port == conf->sync_port) {
		if ((s = config_setting_get_member(g, "sync_port")) == NULL)
			s = config_setting_get_member(g, "heartbeat_port");
		return config_error(ctx, s, "cluster: heartbeat_port and sync_port "
		    "are both %u; give them different ports", conf->sync_port);
	}
	return 0;
}

static int
config_parse_vip(struct config_ctx *ctx, const config_setting_t *root)
{
	struct lbd_config	*conf = ctx->conf;
	config_setting_t	*g, *s;
	const char		*v, *p;
	int			 rc;

	if ((rc = config_get_group(ctx, root, "", "vip", &g)) != 1)
		return rc == 0 ? config_error(ctx, NULL, "missing required section "
		    "\"vip\"; add vip = { address = \"a.b.c.d/len\"; interface = "
		    "\"eth0\"; };") : -1;
	if (config_check_keys(ctx, g, "vip", config_keys_vip) == -1)
		return -1;
	if (config_get_string(ctx, g, "vip", "address", true, &v, &s) == -1)
		return -1;
	if (strchr(v, '/') == NULL)
		return config_error(ctx, s, "vip.address: \"%s\" has no prefix length; "
		    "write it as on the interface, e.g. \"%s/24\"", v, v);
	if (addr_parse_prefix(v, &conf->vip_addr, &conf->vip_prefixlen) == -1)
		return config_error(ctx, s, "vip.address: \"%s\" is not an address "
		    "with a prefix length (a.b.c.d/1-32 or x::y/1-128)", v);
	if (config_addr_unusable(&conf->vip_addr))
		return config_error(ctx, s, "vip.address: \"%s\" is a wildcard or "
		    "multicast address; give a host address", v);
	if (conf->vip_addr.ss_family != conf->node_addr.ss_family)
		return config_error(ctx, s, "vip.address: \"%s\" is %s but "
		    "node.address is %s; use the same family for both", v,
		    conf->vip_addr.ss_family == AF_INET ? "IPv4" : "IPv6",
		    conf->node_addr.ss_family == AF_INET ? "IPv4" : "IPv6");
	if (addr_equal((struct sockaddr *)&conf->vip_addr,
	    (struct sockaddr *)&conf->node_addr))
		return config_error(ctx, s, "vip.address: equals node.address; the "
		    "VIP must be an address of its own");
	if (config_get_string(ctx, g, "vip", "interface", true, &v, &s) == -1 ||
	    config_copy(ctx, s, "vip.interface", v, conf->vip_interface,
	    sizeof(conf->vip_interface)) == -1)
		return -1;
	for (p = v; *p != '\0'; p++)
		if (*p == '/' || *p == ' ' || *p == '\t')
			return config_error(ctx, s, "vip.interface: \"%s\" is not an "
			    "interface name (e.g. \"eth0\")", v);
	return 0;
}

static int
config_parse_control(struct config_ctx *ctx, const config_setting_t *root)
{
	struct lbd_config	*conf = ctx->conf;
	config_setting_t	*g, *s;
	const char		*v;
	int			 rc;

	snprintf(conf->control_socket, sizeof(conf->control_socket), "%s",
	    LBD_DEFAULT_SOCKET);
	conf->control_request_timeout_ms = LBD_DEF_REQUEST_TIMEOUT_MS;
	snprintf(conf->control_group, sizeof(conf->control_group), "%s",
	    LBD_DEFAULT_CONTROL_GROUP);
	conf->control_group_set = false;
	conf->control_readonly_group[0] = '\0';
	if ((rc = config_get_group(ctx, root, "", "control", &g)) != 1)
		return rc;
	if (config_check_keys(ctx, g, "control", config_keys_control) == -1)
		return -1;
	if (config_get_int(ctx, g, "control", "request_timeout_ms", CONFIG_MIN_REQUEST_MS,
	    CONFIG_MAX_REQUEST_MS, &conf->control_request_timeout_ms) == -1)
		return -1;
	if ((rc = config_get_string(ctx, g, "control", "socket", false, &v, &s)) == -1)
		return -1;
	if (rc == 1 && config_copy(ctx, s, "control.socket", v, conf->control_socket,
	    sizeof(conf->control_socket)) == -1)
		return -1;
	/* Group names: the same characters as lbd's names, which useradd accepts too. */
	if ((rc = config_get_string(ctx, g, "control", "group", false, &v, &s)) == -1)
		return -1;
	if (rc == 1) {
		if (config_copy_name(ctx, s, "control.group", v, conf->control_group) == -1)
			return -1;
		conf->control_group_set = true;
	}
	if ((rc = config_get_string(ctx, g, "control", "readonly_group", false, &v, &s)) != 1)
		return rc;
	if (config_copy_name(ctx, s, "control.readonly_group", v,
	    conf->control_readonly_group) == -1)
		return -1;
	if (strcmp(conf->control_readonly_group, conf->control_group) == 0)
		return config_error(ctx, s, "control.readonly_group: \"%s\" is control.group "
		    "already (every command); name another group, or drop this key", v);
	return 0;
}

/*
 * Parses "a.b.c.d:port" or "[x::y]:port" of setting s (named w) into ss.
 * Wildcards are fine here (listen on every address), multicast is not.
 * Returns: 0 or -1.
 */
static int
config_listen_addr(struct config_ctx *ctx, const config_setting_t *s, const char *w,
    const char *v, struct sockaddr_storage *ss)
{
	char		 host[INET6_ADDRSTRLEN + 2], *end;
	const char	*colon, *port, *h = v;
	size_t		 hlen;
	long		 n;

	if (v[0] == '[') {
		if ((colon = strchr(v, ']')) == NULL || colon[1] != ':')
			goto bad;
		h = v + 1;
		hlen = (size_t)(colon - h);
		port = colon + 2;
	} else {
		if ((colon = strrchr(v, ':')) == NULL)
			goto bad;
		if (memchr(v, ':', (size_t)(colon - v)) != NULL)
			return config_error(ctx, s, "%s: \"%s\": write an IPv6 address "
			    "in brackets, e.g. \"[::1]:9187\"", w, v);
		hlen = (size_t)(colon - v);
		port = colon + 1;
	}
	if (hlen == 0 || hlen >= sizeof(host))
		goto bad;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (addr_parse(host, ss) == -1 || (v[0] == '[') != (ss->ss_family == AF_INET6))
		return config_error(ctx, s, "%s: \"%s\": \"%s\" is not an IPv4 or "
		    "IPv6 address (hostnames are not resolved)", w, v, host);
	if (port[0] < '0' || port[0] > '9')
		return config_error(ctx, s, "%s: \"%s\" has no port; write e.g. "
		    "\"%s:9187\"", w, v, v[0] == '[' ? "[::1]" : "127.0.0.1");
	errno = 0;
	n = strtol(port, &end, 10);
	if (*end != '\0' || errno != 0 || n < 1 || n > 65535)
		return config_error(ctx, s, "%s: \"%s\": port \"%s\" is not 1-65535",
		    w, v, port);
	if ((ss->ss_family == AF_INET &&
	    IN_MULTICAST(ntohl(((struct sockaddr_in *)ss)->sin_addr.s_addr))) ||
	    (ss->ss_family == AF_INET6 &&
	    IN6_IS_ADDR_MULTICAST(&((struct sockaddr_in6 *)ss)->sin6_addr)))
		return config_error(ctx, s, "%s: \"%s\" is a multicast address; give "
		    "a host address (or 0.0.0.0 / [::] for all)", w, v);
	addr_set_port(ss, (uint16_t)n);
	return 0;
 bad:
	return config_error(ctx, s, "%s: \"%s\" is not ADDRESS:PORT; write e.g. "
	    "\"127.0.0.1:9187\" or \"[::1]:9187\"", w, v);
}

/* metrics = { listen = "127.0.0.1:9187"; request_timeout_ms = 5000; }: absent, no endpoint. Returns: 0 or -1. */
static int
config_parse_metrics(struct config_ctx *ctx, const config_setting_t *root)
{
	struct lbd_config	*conf = ctx->conf;
	config_setting_t	*g, *s;
	const char		*v;
	int			 rc;

	conf->metrics_on = false;
	memset(&conf->metrics_addr, 0, sizeof(conf->metrics_addr));
	conf->metrics_request_timeout_ms = LBD_DEF_REQUEST_TIMEOUT_MS;
	if ((rc = config_get_group(ctx, root, "", "metrics", &g)) != 1)
		return rc;
	if (config_check_keys(ctx, g, "metrics", config_keys_metrics) == -1)
		return -1;
	if (config_get_int(ctx, g, "metrics", "request_timeout_ms", CONFIG_MIN_REQUEST_MS,
	    CONFIG_MAX_REQUEST_MS, &conf->metrics_request_timeout_ms) == -1)
		return -1;
	if (config_get_string(ctx, g, "metrics", "listen", true, &v, &s) == -1 ||
	    config_listen_addr(ctx, s, "metrics.listen", v, &conf->metrics_addr) == -1)
		return -1;
	conf->metrics_on = true;
	return 0;
}

/* log_level = "info"; (or "debug", "warning"): absent, info. Returns: 0 or -1. */
static int
config_parse_log_level(struct config_ctx *ctx, const config_setting_t *root)
{
	struct lbd_config	*conf = ctx->conf;
	config_setting_t	*s;
	const char		*v;
	int			 rc;

	conf->log_level = LOG_LEVEL_INFO;
	if ((rc = config_get_string(ctx, root, "", "log_level", false, &v, &s)) != 1)
		return rc;
	if (strcmp(v, "debug") == 0)
		conf->log_level = LOG_LEVEL_DEBUG;
	else if (strcmp(v, "info") == 0)
		conf->log_level = LOG_LEVEL_INFO;
	else if (strcmp(v, "warning") == 0)
		conf->log_level = LOG_LEVEL_WARNING;
	else
		return config_error(ctx, s, "log_level: unknown level \"%s\"; "
		    "valid: debug, info, warning", v);
	return 0;
}

/* Formats a range as "21" or "1025-1052". */
static const char *
config_range_str(const struct port_range *r, char *buf, size_t len)
{
	if (r->first == r->last)
		snprintf(buf, len, "%u", r->first);
	else
		snprintf(buf, len, "%u-%u", r->first, r->last);
	return buf;
}

/*
 * Parses one "ports" entry: an integer, or a string "21" or "1025-1052".
 * Returns: 0 and *r set, or -1.
 */
static int
config_parse_range(struct config_ctx *ctx, const config_setting_t *s,
    const char *w, struct port_range *r)
{
	const char	*v, *p;
	char		*end;
	long		 first, last;
	int		 type = config_setting_type(s);

	if (type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64) {
		long long n = config_setting_get_int64(s);

		if (config_check_literal(ctx, s, w, 1, 65535) == -1)
			return -1;
		if (n < 1 || n > 65535)
			return config_error(ctx, s, "%s: port %lld is out of range; "
			    "use 1-65535", w, n);
		r->first = r->last = (uint16_t)n;
		return 0;
	}
	if (type != CONFIG_TYPE_STRING)
		return config_error(ctx, s, "%s: expected a port or range string, "
		    "e.g. \"21\" or \"1025-1052\"", w);
	v = p = config_setting_get_string(s);
	while (*p == ' ')
		p++;
	if (*p < '0' || *p > '9')
		goto bad;
	first = strtol(p, &end, 10);
	for (p = end; *p == ' '; p++)
		;
	last = first;
	if (*p == '-') {
		for (p++; *p == ' '; p++)
			;
		if (*p < '0' || *p > '9')
			goto bad;
		last = strtol(p, &end, 10);
		for (p = end; *p == ' '; p++)
			;
	}
	if (*p != '\0')
		goto bad;
	if (first < 1 || first > 65535)
		return config_error(ctx, s, "%s: port %ld is out of range; use "
		    "1-65535", w, first);
	if (last < 1 || last > 65535)
		return config_error(ctx, s, "%s: port %ld is out of range; use "
		    "1-65535", w, last);
	if (first > last)
		return config_error(ctx, s, "%s: range \"%s\" is reversed; write "
		    "the lower port first: \"%ld-%ld\"", w, v, last, first);
	r->first = (uint16_t)first;
	r->last = (uint16_t)last;
	return 0;
 bad:
	return config_error(ctx, s, "%s: \"%s\" is not a port or range; write "
	    "e.g. \"21\" or \"1025-1052\"", w, v);
}

/* Parses services[si].ports and checks overlaps. Returns: 0 or -1. */
static int
config_parse_ports(struct config_ctx *ctx, const config_setting_t *g,
    const char *where, int si)
{
	struct service_config	*svc = &ctx->conf->services[si];
	const struct service_config *o;
	const struct port_range	*a, *b;
	config_setting_t	*s, *e;
	char			 w[CONFIG_WHERE_MAX], ra[16], rb[16];
	int			 i, j, k, n;

	if ((s = config_setting_get_member(g, "ports")) == NULL)
		return config_error(ctx, g, "%s: missing required key \"ports\"; add "
		    "ports = [ \"21\", \"1025-1052\" ];", where);
	if (!config_setting_is_array(s) && !config_setting_is_list(s))
		return config_error(ctx, s, "%s.ports: expected a list, e.g. "
		    "ports = [ \"21\", \"990\", \"1025-1052\" ];", where);
	if ((n = config_setting_length(s)) == 0)
		return config_error(ctx, s, "%s.ports: the list is empty; give at "
		    "least one port", where);
	if (n > LBD_MAX_RANGES)
		return config_error(ctx, s, "%s.ports: %d entries; at most %d (use "
		    "ranges like \"1025-1052\")", where, n, LBD_MAX_RANGES);
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(s, (unsigned int)i);
		config_fmt(w, sizeof(w), "%s.ports[%d]", where, i);
		a = &svc->ranges[i];
		if (config_parse_range(ctx, e, w, &svc->ranges[i]) == -1)
			return -1;
		ctx->range_line[si][i] = (int)config_setting_source_line(e);
		for (j = 0; j < i; j++) {
			b = &svc->ranges[j];
			if (a->first <= b->last && b->first <= a->last)
				return config_error(ctx, e, "%s: \"%s\" overlaps \"%s\" "
				    "(ports[%d], line %d); list each port once", w,
				    config_range_str(a, ra, sizeof(ra)),
				    config_range_str(b, rb, sizeof(rb)), j,
				    ctx->range_line[si][j]);
		}
		for (k = 0; k < si; k++) {
			o = &ctx->conf->services[k];
			for (j = 0; j < o->nranges; j++) {
				b = &o->ranges[j];
				if (a->first <= b->last && b->first <= a->last)
					return config_error(ctx, e, "%s: \"%s\" overlaps "
					    "\"%s\" of service \"%s\" (services[%d].ports[%d], "
					    "line %d); a VIP port belongs to one service",
					    w, config_range_str(a, ra, sizeof(ra)),
					    config_range_str(b, rb, sizeof(rb)), o->name,
					    k, j, ctx->range_line[k][j]);
			}
		}
		svc->nranges++;
	}
	return 0;
}

/* Whether port lies in one of the ranges. */
static bool
config_port_in(const struct port_range *r, int n, unsigned port)
{
	int	 i;

	for (i = 0; i < n; i++)
		if (port >= r[i].first && port <= r[i].last)
			return true;
	return false;
}

/*
 * Parses services[si].mirror_ports (cluster.mirror): ports of the service
 * whose connections are mirrored to the peer. Absent: the FTP control
 * ports 21 and 990 among the service's ports (data ports cost a copy of
 * every byte they carry; list them to have transfers survive too).
 * Returns: 0 or -1.
 */
static int
config_parse_mirror_ports(struct config_ctx *ctx, const config_setting_t *g,
    const char *where, struct service_config *svc)
{
	static const uint16_t	 def[] = { 21, 990 };
	struct port_range	*a;
	config_setting_t	*s, *e;
	char			 w[CONFIG_WHERE_MAX], ra[16];
	size_t			 k;
	int			 i, n;

	svc->nmirror = 0;
	if ((s = config_setting_get_member(g, "mirror_ports")) == NULL) {
		for (k = 0; k < LBD_NELEM(def); k++)
			if (config_port_in(svc->ranges, svc->nranges, def[k])) {
				a = &svc->mirror[svc->nmirror++];
				a->first = a->last = def[k];
			}
		return 0;
	}
	if (!config_setting_is_array(s) && !config_setting_is_list(s))
		return config_error(ctx, s, "%s.mirror_ports: expected a list, e.g. "
		    "mirror_ports = [ \"21\", \"990\" ]; ([ ] mirrors nothing)", where);
	if ((n = config_setting_length(s)) > LBD_MAX_RANGES)
		return config_error(ctx, s, "%s.mirror_ports: %d entries; at most %d (use "
		    "ranges like \"1025-1052\")", where, n, LBD_MAX_RANGES);
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(s, (unsigned int)i);
		config_fmt(w, sizeof(w), "%s.mirror_ports[%d]", where, i);
		a = &svc->mirror[i];
		if (config_parse_range(ctx, e, w, a) == -1)
			return -1;
		if (!config_port_in(svc->ranges, svc->nranges, a->first) ||
		    !config_port_in(svc->ranges, svc->nranges, a->last))
			return config_error(ctx, e, "%s: \"%s\" is not among the service's "
			    "ports; mirror only ports listed in %s.ports", w,
			    config_range_str(a, ra, sizeof(ra)), where);
		svc->nmirror++;
	}
	return 0;
}

/* Parses services[si].check, defaults when absent. Returns: 0 or -1. */
static int
config_parse_check(struct config_ctx *ctx, const config_setting_t *sg,
    const char *where, struct service_config *svc)
{
	struct check_config	*c = &svc->check;
	config_setting_t	*g, *s;
	const char		*v;
	char			 w[CONFIG_WHERE_MAX];
	int			 rc;

	c->type = CHECK_TCP;
	c->port = svc->ranges[0].first;
	c->interval_ms = CONFIG_DEF_CHECK_INTERVAL_MS;
	c->timeout_ms = CONFIG_DEF_CHECK_TIMEOUT_MS;
	c->rise = CONFIG_DEF_RISE;
	c->fall = CONFIG_DEF_FALL;
	config_fmt(w, sizeof(w), "%s.check", where);
	if ((rc = config_get_group(ctx, sg, where, "check", &g)) != 1)
		return rc;
	if (config_check_keys(ctx, g, w, config_keys_check) == -1)
		return -1;
	if ((rc = config_get_string(ctx, g, w, "type", false, &v, &s)) == -1)
		return -1;
	if (rc == 1) {
		if (strcmp(v, "tcp") == 0)
			c->type = CHECK_TCP;
		else if (strcmp(v, "ftp") == 0)
			c->type = CHECK_FTP;
		else if (strcmp(v, "none") == 0)
			c->type = CHECK_NONE;
		else
			return config_error(ctx, s, "%s.type: unknown check type \"%s\"; "
			    "valid: tcp, ftp, none", w, v);
	}
	if (config_get_port(ctx, g, w, "port", &c->port) == -1 ||
	    config_get_int(ctx, g, w, "interval_ms", 10, 3600000,
	    &c->interval_ms) == -1 ||
	    config_get_int(ctx, g, w, "rise", 1, 100, &c->rise) == -1 ||
	    config_get_int(ctx, g, w, "fall", 1, 100, &c->fall) == -1)
		return -1;
	/* An omitted timeout follows a short interval down. */
	if (c->interval_ms < c->timeout_ms)
		c->timeout_ms = c->interval_ms;
	if ((rc = config_get_int(ctx, g, w, "timeout_ms", 10, 3600000,
	    &c->timeout_ms)) == -1)
		return -1;
	if (rc == 1 && c->timeout_ms > c->interval_ms)
		return config_error(ctx, config_setting_get_member(g, "timeout_ms"),
		    "%s.timeout_ms: %d is longer than interval_ms %d; a check must "
		    "end before the next one starts", w, c->timeout_ms, c->interval_ms);
	return 0;
}

/* Parses services[si].backends[bi] from group g. Returns: 0 or -1. */
static int
config_parse_backend(struct config_ctx *ctx, const config_setting_t *g,
    struct service_config *svc, const char *swhere, int bi)
{
	struct backend_config	*be = &svc->backends[bi];
	config_setting_t	*s;
	const char		*v;
	char			 where[CONFIG_WHERE_MAX], w[CONFIG_WHERE_MAX];
	int			 j;

	config_fmt(where, sizeof(where), "%s.backends[%d]", swhere, bi);
	be->line = (int)config_setting_source_line(g);
	if (!config_setting_is_group(g))
		return config_error(ctx, g, "%s: expected a group { name = ...; "
		    "address = ...; }", where);
	if (config_check_keys(ctx, g, where, config_keys_backend) == -1)
		return -1;
	if (config_get_string(ctx, g, where, "name", true, &v, &s) == -1 ||
	    config_copy_name(ctx, s, config_where(w, sizeof(w), where, "name"),
	    v, be->name) == -1)
		return -1;
	for (j = 0; j < bi; j++)
		if (strcmp(svc->backends[j].name, be->name) == 0)
			return config_error(ctx, s, "%s: duplicate backend name \"%s\" "
			    "(also backends[%d], line %d); give each backend its own "
			    "name", where, v, j, svc->backends[j].line);
	if (config_get_string(ctx, g, where, "address", true, &v, &s) == -1 ||
	    config_addr(ctx, s, config_where(w, sizeof(w), where, "address"), v,
	    &be->addr) == -1)
		return -1;
	if (addr_equal((struct sockaddr *)&be->addr,
	    (struct sockaddr *)&ctx->conf->vip_addr))
		return config_error(ctx, s, "%s: \"%s\" is the VIP; a backend must "
		    "be a real server's own address", w, v);
	for (j = 0; j < bi; j++)
		if (addr_equal((struct sockaddr *)&be->addr,
		    (struct sockaddr *)&svc->backends[j].addr))
			return config_error(ctx, s, "%s: \"%s\" is also the address "
			    "of backends[%d] \"%s\" (line %d); list each server once "
			    "and use weight", w, v, j, svc->backends[j].name,
			    svc->backends[j].line);
	be->weight = CONFIG_DEF_WEIGHT;
	if (config_get_int(ctx, g, where, "weight", 1, 256, &be->weight) == -1)
		return -1;
	return 0;
}

/* Parses services[si] from group g. Returns: 0 or -1. */
static int
config_parse_service(struct config_ctx *ctx, const config_setting_t *g, int si)
{
	struct service_config	*svc = &ctx->conf->services[si];
	config_setting_t	*s, *e;
	const char		*v;
	char			 where[CONFIG_WHERE_MAX], w[CONFIG_WHERE_MAX];
	int			 i, n, rc;

	snprintf(where, sizeof(where), "services[%d]", si);
	svc->line = (int)config_setting_source_line(g);
	if (!config_setting_is_group(g))
		return config_error(ctx, g, "%s: expected a group { name = ...; "
		    "ports = ...; backends = ...; }", where);
	if (config_check_keys(ctx, g, where, config_keys_service) == -1)
		return -1;
	if (config_get_string(ctx, g, where, "name", true, &v, &s) == -1 ||
	    config_copy_name(ctx, s, config_where(w, sizeof(w), where, "name"),
	    v, svc->name) == -1)
		return -1;
	for (i = 0; i < si; i++)
		if (strcmp(ctx->conf->services[i].name, svc->name) == 0)
			return config_error(ctx, s, "%s: duplicate service name \"%s\" "
			    "(also services[%d], line %d); give each service its own "
			    "name", where, v, i, ctx->conf->services[i].line);
	if (config_parse_ports(ctx, g, where, si) == -1 ||
	    config_parse_mirror_ports(ctx, g, where, svc) == -1)
		return -1;

	svc->sched = SCHED_LEASTCONN;
	if ((rc = config_get_string(ctx, g, where, "scheduler", false, &v, &s)) == -1)
		return -1;
	if (rc == 1) {
		if (strcmp(v, "leastconn") == 0)
			svc->sched = SCHED_LEASTCONN;
		else if (strcmp(v, "roundrobin") == 0)
			svc->sched = SCHED_ROUNDROBIN;
		else
			return config_error(ctx, s, "%s.scheduler: unknown scheduler "
			    "\"%s\"; valid: leastconn, roundrobin", where, v);
	}
	svc->source = SOURCE_VIP;
	if ((rc = config_get_string(ctx, g, where, "source", false, &v, &s)) == -1)
		return -1;
	if (rc == 1) {
		if (strcmp(v, "vip") == 0)
			svc->source = SOURCE_VIP;
		else if (strcmp(v, "node") == 0)
			svc->source = SOURCE_NODE;
		else
			return config_error(ctx, s, "%s.source: unknown source \"%s\"; "
			    "valid: vip, node", where, v);
	}
	svc->sticky_timeout_s = CONFIG_DEF_STICKY_TIMEOUT_S;
	svc->sticky_size = CONFIG_DEF_STICKY_SIZE;
	svc->connect_timeout_ms = CONFIG_DEF_CONNECT_MS;
	svc->idle_timeout_s = CONFIG_DEF_IDLE_S;
	svc->max_connections = CONFIG_DEF_MAX_CONN;
	svc->max_connections_per_client = CONFIG_DEF_MAX_CONN_CLIENT;
	if (config_get_int(ctx, g, where, "sticky_timeout_s", 1, 604800,
	    &svc->sticky_timeout_s) == -1 ||
	    config_get_int(ctx, g, where, "sticky_size", 16, 16777216,
	    &svc->sticky_size) == -1 ||
	    config_get_int(ctx, g, where, "connect_timeout_ms", 10, 600000,
	    &svc->connect_timeout_ms) == -1 ||
	    config_get_int(ctx, g, where, "idle_timeout_s", 1, 604800,
	    &svc->idle_timeout_s) == -1 ||
	    config_get_int(ctx, g, where, "max_connections", 1, 1000000,
	    &svc->max_connections) == -1 ||
	    config_get_int(ctx, g, where, "max_connections_per_client", 0, 1000000,
	    &svc->max_connections_per_client) == -1)
		return -1;
	if (config_parse_check(ctx, g, where, svc) == -1)
		return -1;

	if ((s = config_setting_get_member(g, "backends")) == NULL)
		return config_error(ctx, g, "%s: missing required key \"backends\"; "
		    "add backends = ( { name = \"SRV1\"; address = \"...\"; } );",
		    where);
	if (!config_setting_is_list(s))
		return config_error(ctx, s, "%s.backends: expected a list of groups, "
		    "e.g. backends = ( { name = \"SRV1\"; address = \"...\"; } );",
		    where);
	if ((n = config_setting_length(s)) == 0)
		return config_error(ctx, s, "%s.backends: the list is empty; give at "
		    "least one backend", where);
	if (n > LBD_MAX_BACKENDS)
		return config_error(ctx, config_setting_get_elem(s, LBD_MAX_BACKENDS),
		    "%s.backends: %d backends; at most %d", where, n, LBD_MAX_BACKENDS);
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(s, (unsigned int)i);
		if (config_parse_backend(ctx, e, svc, where, i) == -1)
			return -1;
		svc->nbackends++;
	}
	return 0;
}

static int
config_parse_services(struct config_ctx *ctx, const config_setting_t *root)
{
	config_setting_t	*s;
	int			 i, n;

	if ((s = config_setting_get_member(root, "services")) == NULL)
		return config_error(ctx, NULL, "missing required section \"services\"; "
		    "add services = ( { name = ...; ports = ...; backends = ...; } );");
	if (!config_setting_is_list(s))
		return config_error(ctx, s, "services: expected a list of groups, "
		    "e.g. services = ( { name = \"FTPS_VIP\"; ... } );");
	if ((n = config_setting_length(s)) == 0)
		return config_error(ctx, s, "services: the list is empty; give at "
		    "least one service");
	if (n > LBD_MAX_SERVICES)
		return config_error(ctx, config_setting_get_elem(s, LBD_MAX_SERVICES),
		    "services: %d services; at most %d", n, LBD_MAX_SERVICES);
	for (i = 0; i < n; i++) {
		if (config_parse_service(ctx, config_setting_get_elem(s,
		    (unsigned int)i), i) == -1)
			return -1;
		ctx->conf->nservices++;
	}
	return 0;
}

int
config_load(const char *path, struct lbd_config *conf, char *err, size_t errlen)
{
	struct config_ctx	 ctx;
	config_t		 cfg;
	config_setting_t	*root;
	struct stat		 st;
	char			 dir[PATH_MAX];
	const char		*efile, *etext;
	int			 fd, rc = -1;

	memset(conf, 0, sizeof(*conf));
	memset(&ctx, 0, sizeof(ctx));
	ctx.path = path;
	ctx.err = err;
	ctx.errlen = errlen;
	ctx.conf = conf;
	if (errlen > 0)
		err[0] = '\0';

	if (strlen(path) >= sizeof(conf->path))
		return config_error(&ctx, NULL, "path is too long");
	memcpy(conf->path, path, strlen(path) + 1);

	/* libconfig reports a missing file as a bare "file I/O error". */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return config_error(&ctx, NULL, "cannot open: %s", strerror(errno));
	if (fstat(fd, &st) == -1) {
		config_error(&ctx, NULL, "cannot open: %s", strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	if (S_ISDIR(st.st_mode))
		return config_error(&ctx, NULL, "cannot open: %s", strerror(EISDIR));

	config_init(&cfg);
	/* @include "x.conf" is relative to the including file's directory. */
	snprintf(dir, sizeof(dir), "%s", path);
	ctx.incdir = dirname(dir);
	config_set_include_dir(&cfg, ctx.incdir);
	if (config_read_file(&cfg, path) == CONFIG_FALSE) {
		efile = config_error_file(&cfg);
		etext = config_error_text(&cfg);
		if (efile == NULL)
			efile = path;
		if (config_error_type(&cfg) == CONFIG_ERR_FILE_IO ||
		    config_error_line(&cfg) <= 0)
			snprintf(err, errlen, "%s: cannot read: %s", efile, etext);
		else if (strcmp(etext, "syntax error") == 0)
			snprintf(err, errlen, "%s:%d: syntax error (look for a missing "
			    "';', '=', quote or bracket here or on the line before)",
			    efile, config_error_line(&cfg));
		else
			snprintf(err, errlen, "%s:%d: %s", efile,
			    config_error_line(&cfg), etext);
		goto fail;
	}
	root = config_root_setting(&cfg);
	if (config_check_keys(&ctx, root, "", config_keys_root) == -1 ||
	    config_parse_node(&ctx, root) == -1 ||
	    config_parse_peer(&ctx, root) == -1 ||
	    config_parse_cluster(&ctx, root) == -1 ||
	    config_parse_vip(&ctx, root) == -1 ||
	    config_parse_control(&ctx, root) == -1 ||
	    config_parse_metrics(&ctx, root) == -1 ||
	    config_parse_log_level(&ctx, root) == -1 ||
	    config_parse_services(&ctx, root) == -1)
		goto fail;
	rc = 0;
 fail:
	config_destroy(&cfg);
	return rc;
}
