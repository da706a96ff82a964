/*
 * test_key.c - unit tests for hasync/key.c: key generation, loading, and
 * refusal of unsafe or malformed key files.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "hasync.h"

#define TEST_B64_LEN	64	/* room for a base64 key and its NUL */
#define TEST_OTHER_UID	54321	/* a uid with no passwd entry: "another user" */
#define TEST_OTHER_UID_STR "54321"	/* the same, as text in messages */

static char	tmpdir[64];	/* per-run directory for key files */
static char	keypath[128];	/* the key file the tests write */

static int
group_setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_key.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(keypath, sizeof(keypath), "%s/cluster.key", tmpdir);
	return 0;
}

static int
group_teardown(void **state)
{
	unlink(keypath);
	rmdir(tmpdir);
	return 0;
}

/* Writes text to the key file with the given mode (mode set explicitly, not via umask). */
static void
write_key_file(const char *text, mode_t mode)
{
	FILE *f;

	unlink(keypath);
	f = fopen(keypath, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(keypath, mode), 0);
}

/* Loads the key file expecting failure; returns the error message in err. */
static void
load_fails(char *err, size_t errlen)
{
	uint8_t key[HASYNC_KEY_LEN];

	memset(key, 0xaa, sizeof(key));
	err[0] = '\0';
	assert_int_equal(key_load(keypath, key, err, errlen), -1);
	assert_true(err[0] != '\0');
	assert_true(sodium_is_zero(key, sizeof(key)));	/* no half-loaded key */
}

static void
test_generate_load_roundtrip(void **state)
{
	char b64[TEST_B64_LEN], line[TEST_B64_LEN + 8], err[256];
	uint8_t expect[HASYNC_KEY_LEN], key[HASYNC_KEY_LEN];
	size_t binlen = 0;

	assert_int_equal(key_generate(b64, sizeof(b64)), 0);
	assert_int_equal(strlen(b64), 44);	/* 32 bytes -> 44 base64 chars */
	assert_null(strchr(b64, '\n'));
	assert_int_equal(sodium_base642bin(expect, sizeof(expect), b64, strlen(b64),
	    NULL, &binlen, NULL, sodium_base64_VARIANT_ORIGINAL), 0);
	assert_int_equal(binlen, HASYNC_KEY_LEN);

	/* As `lbd --genkey > file` writes it: with a trailing newline. */
	snprintf(line, sizeof(line), "%s\n", b64);
	write_key_file(line, 0600);
	err[0] = '\0';
	assert_int_equal(key_load(keypath, key, err, sizeof(err)), 0);
	assert_memory_equal(key, expect, HASYNC_KEY_LEN);

	/* Leading/trailing whitespace is trimmed; 0400 is fine too. */
	snprintf(line, sizeof(line), "  %s \r\n", b64);
	write_key_file(line, 0400);
	assert_int_equal(key_load(keypath, key, err, sizeof(err)), 0);
	assert_memory_equal(key, expect, HASYNC_KEY_LEN);
}

static void
test_generate_differs(void **state)
{
	char a[HASYNC_KEY_B64_LEN], b[HASYNC_KEY_B64_LEN], small[HASYNC_KEY_B64_LEN - 1];

	assert_int_equal(key_generate(a, sizeof(a)), 0);
	assert_int_equal(key_generate(b, sizeof(b)), 0);
	assert_string_not_equal(a, b);
	/* 44 chars need 45 bytes with the NUL. */
	assert_int_equal(key_generate(small, sizeof(small)), -1);
	assert_int_equal(key_generate(NULL, 64), -1);
}

/* The fix lbd prints for a bad mode or owner: `chown ME: KEY && chmod 600 KEY`. */
static void
assert_fix(const char *err)
{
	char want[512];
	struct passwd *pw = getpwuid(geteuid());

	snprintf(want, sizeof(want), "run `chown %s: %s && chmod 600 %s`",
	    pw != NULL ? pw->pw_name : "?", keypath, keypath);
	assert_non_null(strstr(err, want));
}

static void
test_world_readable_refused(void **state)
{
	char b64[TEST_B64_LEN], err[512];

	assert_int_equal(key_generate(b64, sizeof(b64)), 0);
	write_key_file(b64, 0644);
	load_fails(err, sizeof(err));
	assert_fix(err);
	assert_non_null(strstr(err, keypath));
	assert_non_null(strstr(err, "mode 0644 lets every user read"));

	write_key_file(b64, 0620);	/* group-writable */
	load_fails(err, sizeof(err));
	assert_fix(err);

	write_key_file(b64, 0604);
	load_fails(err, sizeof(err));
	assert_fix(err);
}

/*
 * Group-readable keys are refused: the control socket's group (lbctl
 * users) must not get the key through the old root:lbd 0640 advice.
 */
static void
test_group_readable_refused(void **state)
{
	static const mode_t modes[] = { 0640, 0440, 0610, 0601 };
	char b64[TEST_B64_LEN], err[512];
	size_t i;

	assert_int_equal(key_generate(b64, sizeof(b64)), 0);
	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		write_key_file(b64, modes[i]);
		load_fails(err, sizeof(err));
		assert_fix(err);
	}
	write_key_file(b64, 0640);
	load_fails(err, sizeof(err));
	assert_non_null(strstr(err, "mode 0640 lets its group read or change the cluster key"));
	write_key_file(b64, 0600);
	assert_int_equal(key_load(keypath, (uint8_t[HASYNC_KEY_LEN]){ 0 }, err, sizeof(err)), 0);
}

/*
 * Owner checks (as root): a key owned by another non-root user is refused
 * even at mode 0600 (that user can rewrite or chmod it); root's is taken.
 * As a non-root lbd, a root-owned 0600 key cannot be opened and the
 * message says which chown makes it lbd's.
 */
static void
test_owner_checked(void **state)
{
	char b64[TEST_B64_LEN], err[512];
	uint8_t key[HASYNC_KEY_LEN];
	pid_t pid;
	int status;

	if (geteuid() != 0)
		skip();
	assert_int_equal(key_generate(b64, sizeof(b64)), 0);
	write_key_file(b64, 0600);
	assert_int_equal(chown(keypath, TEST_OTHER_UID, TEST_OTHER_UID), 0);
	load_fails(err, sizeof(err));
	assert_non_null(strstr(err, "owned by user " TEST_OTHER_UID_STR ", who could change"));
	assert_fix(err);

	assert_int_equal(chown(keypath, 0, 0), 0);
	assert_int_equal(key_load(keypath, key, err, sizeof(err)), 0);

	/* A child that is user TEST_OTHER_UID, as the unit's User= would make lbd. */
	assert_int_equal(chmod(tmpdir, 0755), 0);
	fflush(NULL);
	if ((pid = fork()) == 0) {
		if (setgid(TEST_OTHER_UID) == -1 || setuid(TEST_OTHER_UID) == -1)
			_exit(2);
		err[0] = '\0';
		if (key_load(keypath, key, err, sizeof(err)) != -1)
			_exit(3);
		/* No passwd entry: the message names the uid. */
		snprintf(b64, sizeof(b64), "run `chown %s: ", TEST_OTHER_UID_STR);
		_exit(strstr(err, "Permission denied; lbd runs as user " TEST_OTHER_UID_STR)
		    != NULL && strstr(err, b64) != NULL ? 0 : 4);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	/* Owned by that user, it is lbd's key: taken. */
	assert_int_equal(chown(keypath, TEST_OTHER_UID, TEST_OTHER_UID), 0);
	if ((pid = fork()) == 0) {
		if (setgid(TEST_OTHER_UID) == -1 || setuid(TEST_OTHER_UID) == -1)
			_exit(2);
		_exit(key_load(keypath, key, NULL, 0) == 0 ? 0 : 5);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(chmod(tmpdir, 0700), 0);
}

static void
test_bad_content_refused(void **state)
{
	static const char *const bad[] = {
		"",						/* empty */
		"   \n\n",					/* only whitespace */
		"not base64 at all!!",				/* garbage */
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",	/* 31 bytes, no padding */
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",	/* 31 bytes */
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", /* 35 bytes */
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",	/* 32 bytes, padding missing */
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=junk", /* trailing junk */
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nAAAA=", /* two lines */
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA_", /* URL-safe alphabet */
	};
	char err[256], *big;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_key_file(bad[i], 0600);
		load_fails(err, sizeof(err));
		assert_non_null(strstr(err, "not a cluster key (expected 32 bytes base64, "
		    "as made by `lbd --genkey`)"));
		assert_non_null(strstr(err, keypath));
	}

	/* A large file (not a key) is refused without reading all of it. */
	big = malloc(100000);
	assert_non_null(big);
	memset(big, 'A', 99999);
	big[99999] = '\0';
	write_key_file(big, 0600);
	free(big);
	load_fails(err, sizeof(err));
	assert_non_null(strstr(err, "not a cluster key"));
}

static void
test_missing_and_not_regular(void **state)
{
	char err[256], path[160];
	uint8_t key[HASYNC_KEY_LEN];

	snprintf(path, sizeof(path), "%s/no-such.key", tmpdir);
	err[0] = '\0';
	assert_int_equal(key_load(path, key, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot open"));
	assert_non_null(strstr(err, path));

	/* A directory is not a key file (mode 0700 passes the mode check). */
	assert_int_equal(chmod(tmpdir, 0700), 0);
	assert_int_equal(key_load(tmpdir, key, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a regular file"));

	/* A tiny error buffer is truncated, not overrun; NULL err is allowed. */
	assert_int_equal(key_load(path, key, err, 4), -1);
	assert_int_equal(strlen(err), 3);
	assert_int_equal(key_load(path, key, NULL, 0), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_generate_load_roundtrip),
		cmocka_unit_test(test_generate_differs),
		cmocka_unit_test(test_world_readable_refused),
		cmocka_unit_test(test_group_readable_refused),
		cmocka_unit_test(test_owner_checked),
		cmocka_unit_test(test_bad_content_refused),
		cmocka_unit_test(test_missing_and_not_regular),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
