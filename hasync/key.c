/*
 * key.c - the cluster key shared by the two nodes: made by `lbd --genkey`
 * (32 random bytes, base64) and loaded from a file only its owner can read.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "hasync.h"

#define KEY_B64_VARIANT	sodium_base64_VARIANT_ORIGINAL	/* "+/" alphabet, "=" padding */
#define KEY_FILE_MAX	4096	/* a key file is ~45 bytes; anything bigger is not one */
#define KEY_BAD_MODES	(S_IRWXO | S_IWGRP)	/* world anything, group write */

_Static_assert(HASYNC_KEY_B64_LEN ==
    sodium_base64_ENCODED_LEN(HASYNC_KEY_LEN, KEY_B64_VARIANT),
    "HASYNC_KEY_B64_LEN must fit a base64 key and its NUL");


int
key_generate(char *buf, size_t len)
{
	uint8_t key[HASYNC_KEY_LEN];

	if (buf == NULL || len < HASYNC_KEY_B64_LEN)
		return -1;
	if (sodium_init() == -1)
		return -1;
	randombytes_buf(key, sizeof(key));
	sodium_bin2base64(buf, len, key, sizeof(key), KEY_B64_VARIANT);
	sodium_memzero(key, sizeof(key));
	return 0;
}

int
key_load(const char *path, uint8_t key[HASYNC_KEY_LEN], char *err, size_t errlen)
{
	char text[KEY_FILE_MAX + 1];
	uint8_t bin[HASYNC_KEY_LEN];
	const char *b64, *end = NULL;
	size_t used = 0, len, binlen = 0;
	struct stat st;
	ssize_t n;
	int fd = -1, rc = -1;

	if (sodium_init() == -1) {
		hasync_errf(err, errlen, "libsodium cannot initialise");
		return -1;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		hasync_errf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		goto fail;
	}
	/* fstat on the open descriptor: no window to swap the file after the check. */
	if (fstat(fd, &st) == -1) {
		hasync_errf(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		hasync_errf(err, errlen, "%s: not a regular file", path);
		goto fail;
	}
	/*
	 * Whoever can read the key can forge adverts and read the replicated
	 * client IPs; whoever can write it can split the cluster.
	 */
	if (st.st_mode & KEY_BAD_MODES) {
		hasync_errf(err, errlen, "%s: mode %04o lets other users read or change the "
		    "cluster key; run `chmod 600 %s` (or 640 with group lbd when lbd runs as user lbd)", path,
		    (unsigned int)(st.st_mode & 07777), path);
		goto fail;
	}
	for (;;) {
		n = read(fd, text + used, sizeof(text) - 1 - used);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			hasync_errf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		used += (size_t)n;
		if (used == sizeof(text) - 1)
			goto bad;	/* far too big for a key */
	}
	text[used] = '\0';

	/* Trim the whitespace editors and `echo` leave around the key. */
	b64 = text;
	while (*b64 != '\0' && isspace((unsigned char)*b64))
		b64++;
	len = strlen(b64);
	while (len > 0 && isspace((unsigned char)b64[len - 1]))
		len--;
	if (len == 0)
		goto bad;
	/* Fails (ERANGE) when the text decodes to more than 32 bytes. */
	if (sodium_base642bin(bin, sizeof(bin), b64, len, NULL, &binlen, &end,
	    KEY_B64_VARIANT) != 0)
		goto bad;
	if (end != b64 + len || binlen != HASYNC_KEY_LEN)
		goto bad;
	memcpy(key, bin, HASYNC_KEY_LEN);
	rc = 0;
	goto done;
bad:
	hasync_errf(err, errlen, "%s: not a cluster key (expected %d bytes base64, as made "
	    "by `lbd --genkey`)", path, HASYNC_KEY_LEN);
fail:
	sodium_memzero(key, HASYNC_KEY_LEN);
done:
	sodium_memzero(text, sizeof(text));
	sodium_memzero(bin, sizeof(bin));
	if (fd != -1)
		close(fd);
	return rc;
}
