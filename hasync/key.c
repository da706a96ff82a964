/*
 * key.c - the cluster key shared by the two nodes: made by `lbd --genkey`
 * (32 random bytes, base64) and loaded from a file only lbd's user (or
 * root) owns and only its owner can read.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "hasync_int.h"

#define KEY_B64_VARIANT	sodium_base64_VARIANT_ORIGINAL	/* "+/" alphabet, "=" padding */
#define KEY_FILE_MAX	4096	/* a key file is ~45 bytes; anything bigger is not one */
#define KEY_BAD_MODES	(S_IRWXG | S_IRWXO)	/* any group or world permission */
#define KEY_USER_MAX	64	/* room for a user name in a message */

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

/* The name of uid for a message ("lbd"), or its number when it has none. */
static const char *
key_user_name(uid_t uid, char *buf, size_t len)
{
	struct passwd	 pw, *res = NULL;
	char		 pwbuf[1024];

	if (getpwuid_r(uid, &pw, pwbuf, sizeof(pwbuf), &res) == 0 && res != NULL)
		snprintf(buf, len, "%s", pw.pw_name);
	else
		snprintf(buf, len, "%u", (unsigned int)uid);
	return buf;
}

int
key_load(const char *path, uint8_t key[HASYNC_KEY_LEN], char *err, size_t errlen)
{
	char text[KEY_FILE_MAX + 1];
	uint8_t bin[HASYNC_KEY_LEN];
	const char *b64, *end = NULL;
	size_t used = 0, len, binlen = 0;
	char user[KEY_USER_MAX];
	struct stat st;
	ssize_t n;
	uid_t me = geteuid();
	int fd = -1, rc = -1;

	if (sodium_init() == -1) {
		hasync_errf(err, errlen, "libsodium cannot initialise");
		return -1;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		if (errno == EACCES && me != 0)
			hasync_errf(err, errlen, "%s: cannot open: %s; lbd runs as user %s, "
			    "which must own the key: run `chown %s: %s && chmod 600 %s`", path,
			    strerror(EACCES), key_user_name(me, user, sizeof(user)), user, path, path);
		else
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
	 * client IPs; whoever can write it can split the cluster.  So only
	 * lbd's own user reads it: not a group (the control socket's group
	 * must not get it), not another user who could rewrite or chmod it.
	 */
	if (st.st_uid != 0 && st.st_uid != me) {
		char owner[KEY_USER_MAX];

		key_user_name(st.st_uid, owner, sizeof(owner));
		key_user_name(me, user, sizeof(user));
		hasync_errf(err, errlen, "%s: owned by user %s, who could change the cluster "
		    "key; it must belong to %s (lbd's user) or root: run `chown %s: %s && "
		    "chmod 600 %s`", path, owner, user, user, path, path);
		goto fail;
	}
	if (st.st_mode & KEY_BAD_MODES) {
		key_user_name(me, user, sizeof(user));
		hasync_errf(err, errlen, "%s: mode %04o lets %s read or change the cluster "
		    "key; only lbd's user may: run `chown %s: %s && chmod 600 %s`", path,
		    (unsigned int)(st.st_mode & 07777),
		    (st.st_mode & S_IRWXO) ? "every user" : "its group", user, path, path);
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
