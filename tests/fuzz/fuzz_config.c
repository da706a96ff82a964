/*
 * fuzz_config.c - libFuzzer harness for the configuration file: bytes ->
 * a file -> config_load, which must either fill the config or fail with a
 * "FILE[:LINE]: ..." message, never crash. Run by `make fuzz`.
 *
 * Leak detection is off for this harness (Makefile): libconfig 1.5, the
 * library itself, leaks on some syntax errors.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lbd.h"

static char		 fz_path[] = "/tmp/fuzz_config.XXXXXX";
static struct lbd_config *fz_conf;

static void
fz_cleanup(void)
{
	unlink(fz_path);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	int	 fd;

	(void)argc;
	(void)argv;
	if ((fd = mkstemp(fz_path)) == -1 || (fz_conf = malloc(sizeof(*fz_conf))) == NULL)
		abort();
	close(fd);
	atexit(fz_cleanup);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	 err[1024];
	FILE	*f;
	int	 rc;

	/* @include would read other files of /tmp: not this harness's input. */
	if (memmem(data, size, "@include", 8) != NULL)
		return 0;
	if ((f = fopen(fz_path, "w")) == NULL)
		abort();
	if (size > 0 && fwrite(data, 1, size, f) != size)
		abort();
	fclose(f);
	rc = config_load(fz_path, fz_conf, err, sizeof(err));
	/* A refusal always says where and what. */
	if (rc == -1 && strncmp(err, fz_path, strlen(fz_path)) != 0)
		abort();
	if (rc == 0 && (fz_conf->nservices < 1 || fz_conf->nservices > LBD_MAX_SERVICES))
		abort();
	return 0;
}
