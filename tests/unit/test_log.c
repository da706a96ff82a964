/*
 * test_log.c - log.c's level filter: which lines reach stderr at warning,
 * info and debug, and that -d (log_init debug) keeps debug over the config.
 */
#include <sys/wait.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lbd.h"

#define OUT_MAX		4096	/* captured stderr of one test */

/* stderr redirected to a temporary file for one test. */
struct capture {
	char		 path[64];	/* /tmp/test_log.XXXXXX */
	int		 fd;		/* the file */
	int		 saved;		/* the real stderr */
	char		 out[OUT_MAX];	/* what was written, NUL-terminated */
};

static int
setup(void **state)
{
	struct capture	*c;

	c = calloc(1, sizeof(*c));
	assert_non_null(c);
	snprintf(c->path, sizeof(c->path), "/tmp/test_log.XXXXXX");
	c->fd = mkstemp(c->path);
	assert_int_not_equal(c->fd, -1);
	fflush(stderr);
	c->saved = dup(STDERR_FILENO);
	assert_int_not_equal(c->saved, -1);
	assert_int_not_equal(dup2(c->fd, STDERR_FILENO), -1);
	log_init(0, "test_log");
	*state = c;
	return 0;
}

static int
teardown(void **state)
{
	struct capture	*c = *state;

	fflush(stderr);
	dup2(c->saved, STDERR_FILENO);
	close(c->saved);
	close(c->fd);
	unlink(c->path);
	free(c);
	log_init(0, "test_log");
	return 0;
}

/* Everything written to stderr since setup. Returns: c->out. */
static const char *
captured(struct capture *c)
{
	ssize_t	 n;

	fflush(stderr);
	n = pread(c->fd, c->out, sizeof(c->out) - 1, 0);
	assert_true(n >= 0);
	c->out[n] = '\0';
	return c->out;
}

/* One line of each kind, errno set for log_warn. */
static void
log_all(void)
{
	log_warnx("W1 warnx");
	errno = ENOENT;
	log_warn("W2 warn");
	log_info("I1 info");
	log_hasync(NULL, 1, "I2 hasync info");
	log_hasync(NULL, 0, "W3 hasync warn");
	log_debug("D1 debug");
	log_hasync(NULL, 2, "D2 hasync debug");
}

static void
test_default_info(void **state)
{
	struct capture	*c = *state;
	const char	*out;

	assert_int_equal(log_getlevel(), LOG_LEVEL_INFO);
	log_all();
	out = captured(c);
	assert_non_null(strstr(out, "test_log: W1 warnx\n"));
	assert_non_null(strstr(out, "test_log: W2 warn: No such file or directory\n"));
	assert_non_null(strstr(out, "test_log: W3 hasync warn\n"));
	assert_non_null(strstr(out, "test_log: I1 info\n"));
	assert_non_null(strstr(out, "test_log: I2 hasync info\n"));
	assert_null(strstr(out, "D1"));
	assert_null(strstr(out, "D2"));
}

static void
test_warning(void **state)
{
	struct capture	*c = *state;
	const char	*out;

	log_setlevel(LOG_LEVEL_WARNING);
	assert_int_equal(log_getlevel(), LOG_LEVEL_WARNING);
	log_all();
	out = captured(c);
	assert_non_null(strstr(out, "W1 warnx"));
	assert_non_null(strstr(out, "W2 warn: No such file or directory"));
	assert_non_null(strstr(out, "W3 hasync warn"));
	assert_null(strstr(out, "I1"));
	assert_null(strstr(out, "I2"));
	assert_null(strstr(out, "D1"));
	assert_null(strstr(out, "D2"));
}

static void
test_debug(void **state)
{
	struct capture	*c = *state;
	const char	*out;

	log_setlevel(LOG_LEVEL_DEBUG);
	log_all();
	out = captured(c);
	assert_non_null(strstr(out, "W1 warnx"));
	assert_non_null(strstr(out, "I1 info"));
	assert_non_null(strstr(out, "test_log: debug: D1 debug\n"));
	assert_non_null(strstr(out, "test_log: debug: D2 hasync debug\n"));
}

/* lbd -d: a config's warning or info (start-up or reload) keeps debug. */
static void
test_forced_debug(void **state)
{
	struct capture	*c = *state;
	const char	*out;

	log_init(1, "test_log");
	log_setlevel(LOG_LEVEL_WARNING);
	assert_int_equal(log_getlevel(), LOG_LEVEL_DEBUG);
	log_setlevel(LOG_LEVEL_INFO);
	assert_int_equal(log_getlevel(), LOG_LEVEL_DEBUG);
	log_all();
	out = captured(c);
	assert_non_null(strstr(out, "I1 info"));
	assert_non_null(strstr(out, "debug: D1 debug"));
	/* Without -d the config's level applies again. */
	log_setverbose(0);
	log_setlevel(LOG_LEVEL_WARNING);
	assert_int_equal(log_getlevel(), LOG_LEVEL_WARNING);
}

/* Back and forth, as reloads do: each level takes effect at once. */
static void
test_level_changes(void **state)
{
	struct capture	*c = *state;
	const char	*out;

	log_setlevel(LOG_LEVEL_WARNING);
	log_info("A hidden");
	log_setlevel(LOG_LEVEL_INFO);
	log_info("B shown");
	log_debug("C hidden");
	log_setlevel(LOG_LEVEL_DEBUG);
	log_debug("D shown");
	log_setlevel(LOG_LEVEL_WARNING);
	log_debug("E hidden");
	log_info("F hidden");
	out = captured(c);
	assert_string_equal(out, "test_log: B shown\ntest_log: debug: D shown\n");
}

/* fatalx prints at the warning level too, then exits 1. */
static void
test_fatal_always(void **state)
{
	struct capture	*c = *state;
	pid_t		 pid;
	int		 status;

	fflush(stdout);
	pid = fork();
	assert_int_not_equal(pid, -1);
	if (pid == 0) {
		log_setlevel(LOG_LEVEL_WARNING);
		fatalx("F1 broken");
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	assert_non_null(strstr(captured(c), "test_log: fatal: F1 broken\n"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_default_info, setup, teardown),
		cmocka_unit_test_setup_teardown(test_warning, setup, teardown),
		cmocka_unit_test_setup_teardown(test_debug, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forced_debug, setup, teardown),
		cmocka_unit_test_setup_teardown(test_level_changes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fatal_always, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
