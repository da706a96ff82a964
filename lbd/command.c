/*
 * command.c - the control commands: one table names each command, its
 * arguments, whether a read-only peer may run it and its handler; the
 * table drives the dispatcher, the access check, the "valid commands"
 * hints and `help`.
 */
#include <stdio.h>
#include <string.h>

#include "lbd.h"

#define COMMAND_MAX_TOKENS	8		/* words in a request line */
#define COMMAND_LIST_MAX	512		/* bytes of a "backends: A, B" hint */

/* Comma-separated service names, for "services: A, B" hints. */
static const char *
command_service_names(struct lbd *lbd, char *buf, size_t len)
{
	int	 i;

	buf[0] = '\0';
	for (i = 0; i < lbd->nservices; i++) {
		if (i > 0)
			reply_append(buf, ", ", len);
		reply_append(buf, lbd->services[i].conf.name, len);
	}
	return buf;
}

/*
 * The services a command with an optional SERVICE argument acts on: one
 * named service, or all of them when name is NULL.
 * Returns: 0 and *svc set (NULL = every service), or -1 and *err set to a
 * new error reply.
 */
static int
command_service_arg(struct lbd *lbd, const char *name, struct service **svc, json_t **err)
{
	char	 buf[REPLY_ECHO_MAX + 8], names[COMMAND_LIST_MAX];

	*svc = NULL;
	if (name == NULL)
		return 0;
	if ((*svc = lbd_service_by_name(lbd, name)) != NULL)
		return 0;
	*err = reply_error("no service named %s; services: %s",
	    reply_echo(name, buf, sizeof(buf)),
	    command_service_names(lbd, names, sizeof(names)));
	return -1;
}

/* Name of backend index i of svc, or "?" for an index the table should not hold. */
static const char *
command_backend_name(struct service *svc, int i)
{
	if (i < 0 || i >= svc->nbackends)
		return "?";
	return svc->backends[i].conf.name;
}

/* The parsed IP argument of sticky get/set/clear. Returns: 0, or -1 and *err set. */
static int
command_ip_arg(const char *s, struct lbd_ip *ip, json_t **err)
{
	char	 buf[REPLY_ECHO_MAX + 8];

	if (s == NULL) {
		*err = reply_error("missing IP address");
		return -1;
	}
	if (ip_parse(s, ip) == -1) {
		*err = reply_error("not an IP address: %s", reply_echo(s, buf, sizeof(buf)));
		return -1;
	}
	return 0;
}

/* sticky get IP [SERVICE]: the entry, searched in every service when none is named. */
static json_t *
command_sticky_get(struct command_req *req, char **argv, int argc)
{
	struct lbd	*lbd = req->lbd;
	const char	*ipstr = argc >= 3 ? argv[2] : NULL, *service = argc == 4 ? argv[3] : NULL;
	struct service	*only, *svc, *found = NULL;
	struct lbd_ip	 ip;
	json_t		*err;
	char		 buf[INET6_ADDRSTRLEN], names[COMMAND_LIST_MAX];
	uint32_t	 now = now_s();
	int64_t		 left = -1, l;
	int		 i, backend = -1, b, nfound = 0;

	if (command_ip_arg(ipstr, &ip, &err) == -1 ||
	    command_service_arg(lbd, service, &only, &err) == -1)
		return err;
	names[0] = '\0';
	for (i = 0; i < lbd->nservices; i++) {
		svc = &lbd->services[i];
		if ((only != NULL && svc != only) || svc->sticky == NULL)
			continue;
		if ((b = sticky_lookup(svc->sticky, &ip, now)) == -1 ||
		    (l = sticky_expires_in(svc->sticky, &ip, now)) == -1)
			continue;
		if (nfound++ > 0)
			reply_append(names, ", ", sizeof(names));
		reply_append(names, svc->conf.name, sizeof(names));
		found = svc;
		backend = b;
		left = l;
	}
	ip_str(&ip, buf, sizeof(buf));
	if (nfound == 0)
		return reply_error("no sticky entry for %s", buf);
	if (nfound > 1)
		return reply_error("%s has sticky entries in several services (%s); "
		    "name one: sticky get %s SERVICE", buf, names, buf);
	return json_pack("{s:s, s:o, s:I, s:o}",
	    "client", buf,
	    "backend", reply_str(command_backend_name(found, backend)),
	    "expires_in_s", (json_int_t)left,
	    "service", reply_str(found->conf.name));
}

/*
 * The backends called name in the services a command acts on (only, or
 * every service; with sticky set, only those with a sticky table).
 * Returns: the last one found (NULL: none), their count in *nfound, the
 * names of all the backends looked at in names and the services holding
 * one called name in where (both COMMAND_LIST_MAX bytes).
 */
static struct backend *
command_backend_find(struct lbd *lbd, const char *name, struct service *only, bool sticky,
    char *names, char *where, int *nfound)
{
	struct service	*svc;
	struct backend	*b = NULL;
	int		 i, j;

	names[0] = where[0] = '\0';
	*nfound = 0;
	for (i = 0; i < lbd->nservices; i++) {
		svc = &lbd->services[i];
		if ((only != NULL && svc != only) || (sticky && svc->sticky == NULL))
			continue;
		for (j = 0; j < svc->nbackends; j++) {
			if (names[0] != '\0')
				reply_append(names, ", ", COMMAND_LIST_MAX);
			reply_append(names, svc->backends[j].conf.name, COMMAND_LIST_MAX);
			if (strcmp(svc->backends[j].conf.name, name) != 0)
				continue;
			if ((*nfound)++ > 0)
				reply_append(where, ", ", COMMAND_LIST_MAX);
			reply_append(where, svc->conf.name, COMMAND_LIST_MAX);
			b = &svc->backends[j];
		}
	}
	return b;
}

/*
 * The backend called name among the services a command acts on (only, or
 * every service with a sticky table when NULL), for `sticky set` of client.
 * Returns: the backend, or NULL and *err set to a new error reply.
 */
static struct backend *
command_sticky_backend(struct lbd *lbd, const char *name, struct service *only,
    const char *client, json_t **err)
{
	struct backend	*b;
	char		 buf[REPLY_ECHO_MAX + 8], names[COMMAND_LIST_MAX], where[COMMAND_LIST_MAX];
	int		 nfound;

	b = command_backend_find(lbd, name, only, true, names, where, &nfound);
	if (nfound == 1)
		return b;
	if (nfound == 0)
		*err = reply_error("no backend named %s%s%s; backends: %s",
		    reply_echo(name, buf, sizeof(buf)), only != NULL ? " in service " : "",
		    only != NULL ? only->conf.name : "", names[0] != '\0' ? names : "none");
	else
		*err = reply_error("backend %s exists in several services (%s); "
		    "name one: sticky set %s %s SERVICE", b->conf.name, where, client,
		    b->conf.name);
	return NULL;
}

/*
 * sticky set IP BACKEND [SERVICE]: pins a client to a backend, e.g. during
 * a migration. The entry is written as a connection's scheduler pick is
 * (sched_select -> sticky_set): versioned, marked dirty and replicated.
 */
static json_t *
command_sticky_set(struct command_req *req, char **argv, int argc)
{
	struct lbd	*lbd = req->lbd;
	const char	*ipstr = argc >= 3 ? argv[2] : NULL, *backend = argc >= 4 ? argv[3] : NULL;
	const char	*service = argc == 5 ? argv[4] : NULL;
	struct service	*only, *svc;
	struct backend	*b;
	struct lbd_ip	 ip;
	json_t		*err, *r;
	char		 buf[INET6_ADDRSTRLEN];
	uint32_t	 now = now_s();
	int64_t		 left;

	if (command_ip_arg(ipstr, &ip, &err) == -1)
		return err;
	if (backend == NULL)
		return reply_error("missing backend name; usage: sticky set IP BACKEND [SERVICE]");
	if (command_service_arg(lbd, service, &only, &err) == -1)
		return err;
	if (only != NULL && only->sticky == NULL)
		return reply_error("service %s has no sticky table", only->conf.name);
	ip_str(&ip, buf, sizeof(buf));
	if ((b = command_sticky_backend(lbd, backend, only, buf, &err)) == NULL)
		return err;
	svc = b->service;
	if (reload_backend_removed(b))
		return reply_error("backend %s was removed from the configuration by the "
		    "last reload; pin %s to a backend of the current configuration",
		    b->conf.name, buf);
	if (b->admin == BACKEND_DISABLED)
		return reply_error("backend %s is disabled and would not keep the client; "
		    "enable it first (backend %s enable %s) or pick another backend",
		    b->conf.name, b->conf.name, svc->conf.name);
	sticky_set(svc->sticky, &ip, b->index, now);
	left = sticky_expires_in(svc->sticky, &ip, now);
	log_info("sticky entry for %s set to %s/%s (by lbctl)", buf, svc->conf.name,
	    b->conf.name);
	r = json_pack("{s:s, s:o, s:I, s:o}",
	    "client", buf,
	    "backend", reply_str(b->conf.name),
	    "expires_in_s", (json_int_t)(left < 0 ? 0 : left),
	    "service", reply_str(svc->conf.name));
	if (r != NULL && !b->up)
		reply_set(r, "warning", json_string("the backend is down: the client's next "
		    "connection picks another backend (and replaces this entry) unless it is "
		    "up by then"));
	return r;
}

/* sticky clear IP [SERVICE]: forgets the client in one or every service. */
static json_t *
command_sticky_clear(struct command_req *req, char **argv, int argc)
{
	struct lbd	*lbd = req->lbd;
	const char	*ipstr = argc >= 3 ? argv[2] : NULL, *service = argc == 4 ? argv[3] : NULL;
	struct service	*only, *svc;
	struct lbd_ip	 ip;
	json_t		*err;
	char		 buf[INET6_ADDRSTRLEN];
	int		 i, n = 0;

	if (command_ip_arg(ipstr, &ip, &err) == -1 ||
	    command_service_arg(lbd, service, &only, &err) == -1)
		return err;
	for (i = 0; i < lbd->nservices; i++) {
		svc = &lbd->services[i];
		if ((only != NULL && svc != only) || svc->sticky == NULL)
			continue;
		/* With a peer the delete leaves a tombstone that replicates (sticky.c). */
		n += sticky_delete(svc->sticky, &ip);
	}
	log_info("sticky entry for %s cleared in %s (%d removed, by lbctl)",
	    ip_str(&ip, buf, sizeof(buf)), only ? only->conf.name : "every service", n);
	return json_pack("{s:i}", "cleared", n);
}

/* sticky flush [SERVICE]: empties one or every table. */
static json_t *
command_sticky_flush(struct command_req *req, char **argv, int argc)
{
	struct lbd	*lbd = req->lbd;
	const char	*service = argc == 3 ? argv[2] : NULL;
	struct service	*only;
	json_t		*err;
	uint64_t	 n;

	if (command_service_arg(lbd, service, &only, &err) == -1)
		return err;
	n = replica_flush(lbd, only);	/* replicated to the peer as a Clear */
	log_info("sticky table of %s flushed (%llu entries, by lbctl)",
	    only ? only->conf.name : "every service", (unsigned long long)n);
	return json_pack("{s:I}", "flushed", (json_int_t)n);
}

/*
 * sticky list [SERVICE] [from CURSOR]: a stream to write when the caller
 * can take one, else the whole reply.
 */
static json_t *
command_sticky_list(struct command_req *req, char **argv, int argc)
{
	struct lbd	*lbd = req->lbd;
	struct service	*only;
	const char	*service = NULL, *cursor = NULL;
	json_t		*err = NULL;

	if (argc == 3)
		service = argv[2];
	else if (argc == 4 && strcmp(argv[2], "from") == 0)
		cursor = argv[3];
	else if (argc == 5 && strcmp(argv[3], "from") == 0) {
		service = argv[2];
		cursor = argv[4];
	} else if (argc > 3)
		return reply_error("too many arguments for sticky list; usage: "
		    "sticky list [SERVICE] [from CURSOR]");
	if (command_service_arg(lbd, service, &only, &err) == -1)
		return err;
	if (req->stream == NULL)
		return view_sticky_list(lbd, only, cursor);
	if (req->streams_full)
		return reply_error("too many sticky lists in progress; try again");
	if ((*req->stream = view_sticky_snapshot(lbd, only, cursor, &err)) == NULL)
		return err;
	return NULL;
}

/* ---------------------------------------------------------------- backend admin */

/* backend NAME enable|disable|drain [SERVICE] */
static json_t *
command_backend_admin(struct command_req *req, char **argv, int argc)
{
	struct lbd	*lbd = req->lbd;
	struct service	*only;
	struct backend	*b;
	enum backend_admin admin;
	json_t		*err, *ev;
	char		 buf[REPLY_ECHO_MAX + 8], names[COMMAND_LIST_MAX], where[COMMAND_LIST_MAX];
	int		 nfound;

	if (argc < 3 || argc > 4)
		return reply_error("usage: backend NAME enable|disable|drain [SERVICE]");
	if (strcmp(argv[2], "enable") == 0)
		admin = BACKEND_ENABLED;
	else if (strcmp(argv[2], "disable") == 0)
		admin = BACKEND_DISABLED;
	else if (strcmp(argv[2], "drain") == 0)
		admin = BACKEND_DRAIN;
	else
		return reply_error("unknown admin state \"%s\"; valid: enable, disable, drain",
		    reply_echo(argv[2], buf, sizeof(buf)));
	if (command_service_arg(lbd, argc == 4 ? argv[3] : NULL, &only, &err) == -1)
		return err;

	b = command_backend_find(lbd, argv[1], only, false, names, where, &nfound);
	if (nfound == 0)
		return reply_error("no backend named %s; backends: %s",
		    reply_echo(argv[1], buf, sizeof(buf)), names);
	if (nfound > 1)
		return reply_error("backend %s exists in several services (%s); "
		    "name one: backend %s %s SERVICE", b->conf.name, where, b->conf.name, argv[2]);

	if (reload_backend_removed(b) && admin != BACKEND_DISABLED)
		return reply_error("backend %s was removed from the configuration by the "
		    "last reload; add it back to the file and reload", b->conf.name);
	b->admin = admin;
	log_info("backend %s/%s admin state %s (by lbctl)", b->service->conf.name,
	    b->conf.name, backend_admin_str(admin));
	if ((ev = json_object()) != NULL) {
		reply_set(ev, "service", reply_str(b->service->conf.name));
		reply_set(ev, "backend", reply_str(b->conf.name));
		reply_set(ev, "state", json_string(backend_state_str(b)));
		reply_set(ev, "admin", json_string(backend_admin_str(admin)));
		bus_publish(lbd, "backend", ev);
	}
	return json_pack("{s:o, s:s, s:o, s:s}",
	    "backend", reply_str(b->conf.name),
	    "admin", backend_admin_str(admin),
	    "service", reply_str(b->service->conf.name),
	    "state", backend_state_str(b));
}

/* ---------------------------------------------------------------- failover */

/* Hands the VIP to the peer now: a priority-0 advert makes it take over at once. */
static json_t *
command_failover(struct command_req *req, char **argv, int argc)
{
	struct lbd	*lbd = req->lbd;
	const char	*why;

	if (!lbd->conf->has_peer)
		return reply_error("standalone node: there is no peer to hand the VIP to");
	if (lbd->ha == NULL)
		return reply_error("the heartbeat is not running");
	if ((why = cluster_failover(lbd)) != NULL)
		return reply_error("failover refused: %s", why);
	log_info("failover requested by lbctl: handing the VIP to %s", lbd->conf->peer_name);
	return json_pack("{s:s, s:s}", "failover", "started", "to", lbd->conf->peer_name);
}

/* ---------------------------------------------------------------- reload */

/* Re-reads the config file and applies it live (reload.c); the old one stays on error. */
static json_t *
command_reload(struct command_req *req, char **argv, int argc)
{
	struct lbd	*lbd = req->lbd;
	char		 err[1024];

	log_info("reload requested by lbctl: %s", lbd->conf->path);
	if (reload_apply(lbd, err, sizeof(err)) == -1)
		return reply_error("%s", err);
	return json_pack("{s:o}", "reloaded", reply_str(lbd->conf->path));
}

/* ---------------------------------------------------------------- status, monitor, help */

static json_t *
command_status(struct command_req *req, char **argv, int argc)
{
	return view_status(req->lbd, req->server);
}

static json_t *
command_backends(struct command_req *req, char **argv, int argc)
{
	return view_backends(req->lbd);
}

/* The client's connection turns into an event stream (control.c). */
static json_t *
command_monitor(struct command_req *req, char **argv, int argc)
{
	req->monitor = true;
	return json_pack("{s:s}", "monitor", "started");
}

/* After the table, which it lists. */
static json_t	*command_help(struct command_req *, char **, int);

/* ---------------------------------------------------------------- the table */

/* One control command (or subcommand): the daemon's only list of them. */
struct command {
	const char	*name;		/* first word */
	const char	*sub;		/* second word, or NULL */
	const char	*args;		/* what follows, as `help` shows it ("" for nothing) */
	const char	*extra;		/* more arguments lbctl adds itself (it fetches the pages), or NULL */
	int		 maxargs;	/* words after name (and sub) allowed; -1: the handler checks */
	bool		 readonly;	/* control.readonly_group may run it: it changes nothing */
	json_t		*(*run)(struct command_req *, char **argv, int argc);	/* the handler */
};

/* In `help` order; a command's subcommands follow each other. */
static const struct command command_table[] = {
	{ "status",	NULL,	 "",		NULL,	0, true,  command_status },
	{ "backends",	NULL,	 "",		NULL,	0, true,  command_backends },
	{ "sticky",	"list",	 "[SERVICE]",	"[from CURSOR]", -1, true, command_sticky_list },
	{ "sticky",	"get",	 "IP [SERVICE]", NULL,	2, true,  command_sticky_get },
	{ "sticky",	"set",	 "IP BACKEND [SERVICE]", NULL, 3, false, command_sticky_set },
	{ "sticky",	"clear", "IP [SERVICE]", NULL,	2, false, command_sticky_clear },
	{ "sticky",	"flush", "[SERVICE]",	NULL,	1, false, command_sticky_flush },
	{ "backend",	NULL,	 "NAME enable|disable|drain [SERVICE]", NULL, -1, false,
	    command_backend_admin },
	{ "failover",	NULL,	 "",		NULL,	0, false, command_failover },
	{ "reload",	NULL,	 "",		NULL,	0, false, command_reload },
	{ "monitor",	NULL,	 "",		NULL,	0, true,  command_monitor },
	{ "help",	NULL,	 "",		NULL,	0, true,  command_help },
};

/*
 * "status, backends, sticky list|get|set|clear|flush, backend NAME
 * enable|disable|drain, ...": each command with its subcommands, or with
 * its required arguments when it has none; only the read-only ones when
 * readonly is set. For "valid commands" hints and access errors.
 */
static const char *
command_list(char *buf, size_t len, bool readonly)
{
	const struct command *c, *prev = NULL;
	char		 words[128];
	size_t		 i, n;

	buf[0] = '\0';
	for (i = 0; i < LBD_NELEM(command_table); i++) {
		c = &command_table[i];
		if (readonly && !c->readonly)
			continue;
		if (c->sub != NULL && prev != NULL && strcmp(prev->name, c->name) == 0) {
			reply_append(buf, "|", len);
			reply_append(buf, c->sub, len);
			continue;
		}
		if (buf[0] != '\0')
			reply_append(buf, ", ", len);
		reply_append(buf, c->name, len);
		if (c->sub != NULL) {
			reply_append(buf, " ", len);
			reply_append(buf, c->sub, len);
		} else if ((n = strcspn(c->args, "[")) > 0) {
			/* The words before the first optional one. */
			while (n > 0 && c->args[n - 1] == ' ')
				n--;
			snprintf(words, sizeof(words), " %.*s", (int)n, c->args);
			reply_append(buf, words, len);
		}
		prev = c;
	}
	return buf;
}

/* "list [SERVICE], get IP [SERVICE], ...": the subcommands of name, for its usage error. */
static const char *
command_subs(const char *name, char *buf, size_t len, bool with_args)
{
	size_t	 i;

	buf[0] = '\0';
	for (i = 0; i < LBD_NELEM(command_table); i++) {
		if (command_table[i].sub == NULL || strcmp(command_table[i].name, name) != 0)
			continue;
		if (buf[0] != '\0')
			reply_append(buf, ", ", len);
		reply_append(buf, command_table[i].sub, len);
		if (with_args && command_table[i].args[0] != '\0') {
			reply_append(buf, " ", len);
			reply_append(buf, command_table[i].args, len);
		}
	}
	return buf;
}

/* Every command's usage line, in table order. */
static json_t *
command_help(struct command_req *req, char **argv, int argc)
{
	const struct command *c;
	char		 line[256];
	json_t		*list;
	size_t		 i;

	if ((list = json_array()) == NULL)
		return NULL;
	for (i = 0; i < LBD_NELEM(command_table); i++) {
		c = &command_table[i];
		snprintf(line, sizeof(line), "%s%s%s%s%s%s%s", c->name,
		    c->sub != NULL ? " " : "", c->sub != NULL ? c->sub : "",
		    c->args[0] != '\0' ? " " : "", c->args,
		    c->extra != NULL ? " " : "", c->extra != NULL ? c->extra : "");
		json_array_append_new(list, json_string(line));
	}
	return json_pack("{s:o}", "commands", list);
}

/*
 * The entry argv names: its command and subcommand. *has_subs tells a
 * command with subcommands (and argv's sub missing or unknown: NULL).
 */
static const struct command *
command_find(char **argv, int argc, bool *has_subs)
{
	size_t	 i;

	*has_subs = false;
	for (i = 0; i < LBD_NELEM(command_table); i++) {
		if (strcmp(command_table[i].name, argv[0]) != 0)
			continue;
		if (command_table[i].sub == NULL)
			return &command_table[i];
		*has_subs = true;
		if (argc > 1 && strcmp(command_table[i].sub, argv[1]) == 0)
			return &command_table[i];
	}
	return NULL;
}

/*
 * True when argv changes nothing: what control.readonly_group may run. A
 * command with subcommands alone only gets its usage error: allowed.
 */
static bool
command_readonly(char **argv, int argc)
{
	const struct command *c;
	bool		 has_subs;

	if ((c = command_find(argv, argc, &has_subs)) != NULL)
		return c->readonly;
	return has_subs && argc == 1;
}

/*
 * The refusal for a peer whose access does not cover argv, naming the
 * group it needs. Returns: NULL when access suffices, else the error reply.
 */
static json_t *
command_check_access(struct lbd *lbd, char **argv, int argc, enum command_access access)
{
	const struct lbd_config *conf = lbd->conf;
	char	 echo[REPLY_ECHO_MAX + 8], cmd[2 * REPLY_ECHO_MAX + 8], ro[COMMAND_LIST_MAX];
	bool	 has_subs;

	if (access == COMMAND_ACCESS_FULL ||
	    (access == COMMAND_ACCESS_READONLY && command_readonly(argv, argc)))
		return NULL;
	command_list(ro, sizeof(ro), true);
	if (access == COMMAND_ACCESS_READONLY) {
		/* "sticky flush", not just "sticky": the subcommand is what is refused. */
		snprintf(cmd, sizeof(cmd), "%s", reply_echo(argv[0], echo, sizeof(echo)));
		command_find(argv, argc, &has_subs);
		if (has_subs && argc > 1) {
			reply_append(cmd, " ", sizeof(cmd));
			reply_append(cmd, reply_echo(argv[1], echo, sizeof(echo)), sizeof(cmd));
		}
		return reply_error("permission denied: \"%s\" needs group %s; group %s "
		    "may run only %s", cmd, conf->control_group, conf->control_readonly_group, ro);
	}
	if (conf->control_readonly_group[0] != '\0')
		return reply_error("permission denied: lbctl needs group %s (every command) "
		    "or %s (%s); root can add you: usermod -aG %s NAME",
		    conf->control_group, conf->control_readonly_group, ro, conf->control_group);
	return reply_error("permission denied: lbctl needs root or group %s; root can "
	    "add you: usermod -aG %s NAME", conf->control_group[0] != '\0' ?
	    conf->control_group : LBD_DEFAULT_CONTROL_GROUP,
	    conf->control_group[0] != '\0' ? conf->control_group : LBD_DEFAULT_CONTROL_GROUP);
}

json_t *
command_run(struct command_req *req, const char *line)
{
	const struct command *c;
	char	 buf[LBD_CONTROL_LINE_MAX + 1], echo[REPLY_ECHO_MAX + 8], list[COMMAND_LIST_MAX];
	char	*argv[COMMAND_MAX_TOKENS + 1], *p, *save = NULL;
	json_t	*err;
	size_t	 len, i;
	int	 argc = 0, nargs;
	bool	 has_subs;

	req->monitor = false;
	len = strlen(line);
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	if (len > LBD_CONTROL_LINE_MAX)
		return reply_error("request too long");
	for (i = 0; i < len; i++)
		if (((unsigned char)line[i] < 0x20 && line[i] != '\t') ||
		    (unsigned char)line[i] == 0x7f)
			return reply_error("request contains control characters");
	memcpy(buf, line, len);
	buf[len] = '\0';

	for (p = strtok_r(buf, " \t", &save); p != NULL; p = strtok_r(NULL, " \t", &save)) {
		if (argc == COMMAND_MAX_TOKENS)
			return reply_error("too many words in request");
		argv[argc++] = p;
	}
	argv[argc] = NULL;

	if (argc == 0)
		return reply_error("empty request; valid commands: %s",
		    command_list(list, sizeof(list), false));
	if ((err = command_check_access(req->lbd, argv, argc, req->access)) != NULL)
		return err;
	if ((c = command_find(argv, argc, &has_subs)) == NULL) {
		if (!has_subs)
			return reply_error("unknown command \"%s\"; valid commands: %s",
			    reply_echo(argv[0], echo, sizeof(echo)),
			    command_list(list, sizeof(list), false));
		if (argc < 2)
			return reply_error("%s needs a subcommand: %s", argv[0],
			    command_subs(argv[0], list, sizeof(list), true));
		return reply_error("unknown %s subcommand \"%s\"; valid: %s", argv[0],
		    reply_echo(argv[1], echo, sizeof(echo)),
		    command_subs(argv[0], list, sizeof(list), false));
	}
	nargs = argc - (c->sub != NULL ? 2 : 1);
	if (c->maxargs >= 0 && nargs > c->maxargs) {
		if (c->sub == NULL && c->maxargs == 0)
			return reply_error("%s takes no arguments", c->name);
		return reply_error("too many arguments for %s%s%s", c->name,
		    c->sub != NULL ? " " : "", c->sub != NULL ? c->sub : "");
	}
	return c->run(req, argv, argc);
}
