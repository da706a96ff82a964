/*
 * test_fds.c - unit tests of fds.c: what a configuration asks of
 * RLIMIT_NOFILE, the start-up line when the hard limit is too low, and
 * the run-time reserve arithmetic.
 */
#include <sys/resource.h>
#include <sys/wait.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lbd.h"
#include "testlbd.h"

/* conf with one FTPS service: ports 21, 990, 1025-1052 (30), nbackends, max_conn. */
static void
conf_ftps(struct lbd_config *conf, int max_conn, int nbackends)
{
	struct service_config	*sc = &conf->services[conf->nservices++];

	tl_ftps_ports(sc);
	sc->max_connections = max_conn;
	sc->nbackends = nbackends;
}

/* The default config under the unit's LimitNOFILE=65536 and a shell's 1024/4096. */
static void
test_plan_default(void **state)
{
	static struct lbd_config conf;
	struct fds_plan	 p;

	memset(&conf, 0, sizeof(conf));
	conf_ftps(&conf, 4096, 2);
	fds_plan(&conf, 1024, 65536, &p);
	assert_int_equal(p.connections, 4096);
	assert_int_equal(p.listeners, 30);
	assert_int_equal(p.reserve, 2 + 32);
	/* 6 per connection: client and backend sockets, a pipe each way. */
	assert_int_equal(RELAY_FDS_PER_CONN, 6);
	assert_int_equal(p.need, 4096 * 6 + 30 + 34 + 64);
	assert_int_equal(p.soft, 65536);	/* raised to the hard limit */
	assert_true(p.enough);
	assert_int_equal(p.fit, (65536 - 30 - 34 - 64) / 6);

	/* A hard limit of 4096: not enough, and what would fit. */
	fds_plan(&conf, 1024, 4096, &p);
	assert_int_equal(p.soft, 4096);
	assert_false(p.enough);
	assert_int_equal(p.fit, (4096 - 128) / 6);

	/* Already at the hard limit, or above what is needed: left alone. */
	fds_plan(&conf, 65536, 65536, &p);
	assert_int_equal(p.soft, 65536);
	assert_true(p.enough);

	/* nofile = 40 (the reproduction): nothing fits. */
	fds_plan(&conf, 40, 40, &p);
	assert_false(p.enough);
	assert_int_equal(p.fit, 0);
}

/* Every service counts: connections, ports and backends add up. */
static void
test_plan_services(void **state)
{
	static struct lbd_config conf;
	struct fds_plan	 p;

	memset(&conf, 0, sizeof(conf));
	conf_ftps(&conf, 1000, 3);
	conf_ftps(&conf, 500, 64);
	fds_plan(&conf, 9000, 9000, &p);
	assert_int_equal(p.connections, 1500);
	assert_int_equal(p.listeners, 60);
	assert_int_equal(p.reserve, 3 + 64 + 32);
	assert_int_equal(p.need, 1500 * 6 + 60 + 99 + 64);
	assert_false(p.enough);		/* 9223 > 9000 */
	assert_int_equal(p.fit, (9000 - 60 - 99 - 64) / 6);
	fds_plan(&conf, 9000, 10000, &p);
	assert_true(p.enough);
}

/*
 * fds_setup raises the soft limit to the hard one, and says so when even
 * that is too low (in a child: lowering the hard limit is for good).
 */
static void
test_setup_raises(void **state)
{
	static struct lbd_config conf;
	struct rlimit	 rl;
	pid_t		 pid;
	int		 status;

	memset(&conf, 0, sizeof(conf));
	conf_ftps(&conf, 100, 2);
	if ((pid = fork()) == 0) {
		rl.rlim_cur = 64;
		rl.rlim_max = 2048;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			_exit(10);
		if (fds_setup(&conf) != 0)		/* 100 x 6 + 158 fits 2048 */
			_exit(11);
		if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur != 2048)
			_exit(12);
		conf.services[0].max_connections = 4096;
		if (fds_setup(&conf) != 1)		/* logs LimitNOFILE=... */
			_exit(13);
		_exit(0);
	}
	assert_int_not_equal(pid, -1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* room = limit - reserve - (lbd's own + 2 per connection + pipe ends). */
static void
test_room(void **state)
{
	fds_budget_set(0, 0, 0);
	assert_true(fds_room(1000000));		/* no budget before start-up */
	fds_budget_set(100, 50, 10);
	assert_int_equal(relay_active(), 0);
	assert_true(fds_room(40));
	assert_false(fds_room(41));
	assert_int_equal(fds_reserve(), 10);
	assert_int_equal(fds_limit_now(), 100);
	fds_budget_set(0, 0, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plan_default),
		cmocka_unit_test(test_plan_services),
		cmocka_unit_test(test_setup_raises),
		cmocka_unit_test(test_room),
	};

	log_init(1, "test_fds");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
