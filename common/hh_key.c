/*
 * API keys: the hh_<mode>_<prefix>_<secret> format, random generation, and
 * the peppered argon2id hash that the module and humanhours-admin share.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "hh_key.h"


#define HH_KEY_MODE_LEN      8     /* "hh_live_" or "hh_test_" */
#define HH_KEY_SECRET_START  (HH_KEY_MODE_LEN + HH_KEY_PREFIX_LEN + 1)

/*
 * A pepper is a short secret. The bound keeps a path that names a device
 * or a large file by mistake from being read without end.
 */
#define HH_PEPPER_FILE_MAX   4096


static const char  hh_key_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";


static int hh_key_is_alnum(const char *p, size_t n);
static void hh_key_random_chars(char *out, size_t n);
static ssize_t hh_pepper_read(int fd, unsigned char *buf, size_t size);
static void hh_key_pepper(const char *key, size_t len,
    const unsigned char pepper[HH_PEPPER_LEN],
    unsigned char peppered[HH_PEPPER_LEN]);


int
hh_key_parse(const char *key, size_t len, hh_key_parts_t *parts)
{
    hh_key_mode_e  mode;

    if (key == NULL || len != HH_KEY_LEN) {
        return -1;
    }

    if (memcmp(key, "hh_live_", HH_KEY_MODE_LEN) == 0) {
        mode = HH_KEY_LIVE;

    } else if (memcmp(key, "hh_test_", HH_KEY_MODE_LEN) == 0) {
        mode = HH_KEY_TEST;

    } else {
        return -1;
    }

    if (!hh_key_is_alnum(key + HH_KEY_MODE_LEN, HH_KEY_PREFIX_LEN)
        || key[HH_KEY_SECRET_START - 1] != '_'
        || !hh_key_is_alnum(key + HH_KEY_SECRET_START, HH_KEY_SECRET_LEN))
    {
        return -1;
    }

    if (parts != NULL) {
        parts->mode = mode;
        memcpy(parts->prefix, key + HH_KEY_MODE_LEN, HH_KEY_PREFIX_LEN);
        parts->prefix[HH_KEY_PREFIX_LEN] = '\0';
    }

    return 0;
}


void
hh_key_generate(hh_key_mode_e mode, char out[HH_KEY_LEN + 1])
{
    memcpy(out, mode == HH_KEY_TEST ? "hh_test_" : "hh_live_",
           HH_KEY_MODE_LEN);

    hh_key_random_chars(out + HH_KEY_MODE_LEN, HH_KEY_PREFIX_LEN);
    out[HH_KEY_SECRET_START - 1] = '_';
    hh_key_random_chars(out + HH_KEY_SECRET_START, HH_KEY_SECRET_LEN);

    out[HH_KEY_LEN] = '\0';
}


int
hh_pepper_load(const char *path, unsigned char pepper[HH_PEPPER_LEN],
    char *err, size_t errlen)
{
    int            fd, saved_errno;
    ssize_t        n;
    unsigned char  buf[HH_PEPPER_FILE_MAX + 1];

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        snprintf(err, errlen, "cannot open pepper file \"%s\": %s",
                 path, strerror(errno));
        return -1;
    }

    n = hh_pepper_read(fd, buf, sizeof(buf));
    saved_errno = errno;
    close(fd);

    if (n == -1) {
        snprintf(err, errlen, "cannot read pepper file \"%s\": %s",
                 path, strerror(saved_errno));
        return -1;
    }

    if (n > HH_PEPPER_FILE_MAX) {
        sodium_memzero(buf, sizeof(buf));
        snprintf(err, errlen, "pepper file \"%s\" is larger than %d bytes",
                 path, HH_PEPPER_FILE_MAX);
        return -1;
    }

    /* Editors and echo end the file with a newline, which is not secret. */
    if (n > 0 && buf[n - 1] == '\n') {
        n--;
    }

    if (n < HH_PEPPER_LEN) {
        sodium_memzero(buf, sizeof(buf));
        snprintf(err, errlen, "pepper file \"%s\" holds %zd bytes, "
                 "at least %d are required", path, n, HH_PEPPER_LEN);
        return -1;
    }

    crypto_generichash(pepper, HH_PEPPER_LEN, buf, (size_t) n, NULL, 0);
    sodium_memzero(buf, sizeof(buf));

    return 0;
}


int
hh_key_hash(const char *key, size_t len,
    const unsigned char pepper[HH_PEPPER_LEN], char out[HH_KEY_HASH_MAX])
{
    int            rc;
    unsigned char  peppered[HH_PEPPER_LEN];

    hh_key_pepper(key, len, pepper, peppered);

    rc = crypto_pwhash_str_alg(out, (const char *) peppered, sizeof(peppered),
                               crypto_pwhash_OPSLIMIT_INTERACTIVE,
                               crypto_pwhash_MEMLIMIT_INTERACTIVE,
                               crypto_pwhash_ALG_ARGON2ID13);

    sodium_memzero(peppered, sizeof(peppered));

    return rc == 0 ? 0 : -1;
}


int
hh_key_verify(const char *hash, const char *key, size_t len,
    const unsigned char pepper[HH_PEPPER_LEN])
{
    int            rc;
    unsigned char  peppered[HH_PEPPER_LEN];

    if (hash == NULL) {
        return -1;
    }

    hh_key_pepper(key, len, pepper, peppered);

    rc = crypto_pwhash_str_verify(hash, (const char *) peppered,
                                  sizeof(peppered));

    sodium_memzero(peppered, sizeof(peppered));

    return rc == 0 ? 0 : -1;
}


static int
hh_key_is_alnum(const char *p, size_t n)
{
    size_t  i;
    char    c;

    for (i = 0; i < n; i++) {
        c = p[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
              || (c >= '0' && c <= '9')))
        {
            return 0;
        }
    }

    return 1;
}


/*
 * randombytes_uniform() rejects out-of-range samples, so every character of
 * the alphabet is equally likely; "% 62" on a random byte would not be.
 */
static void
hh_key_random_chars(char *out, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        out[i] = hh_key_alphabet[randombytes_uniform(
                                     sizeof(hh_key_alphabet) - 1)];
    }
}


/*
 * Reads until end of file or until size bytes are in buf. Returns the byte
 * count, which equals size when the file may be longer, or -1 with errno.
 */
static ssize_t
hh_pepper_read(int fd, unsigned char *buf, size_t size)
{
    size_t   total;
    ssize_t  n;

    total = 0;

    while (total < size) {
        n = read(fd, buf + total, size - total);

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }

            sodium_memzero(buf, total);
            return -1;
        }

        if (n == 0) {
            break;
        }

        total += (size_t) n;
    }

    return (ssize_t) total;
}


/* Computes the 32-byte BLAKE2b of the raw key, keyed with the pepper key. */
static void
hh_key_pepper(const char *key, size_t len,
    const unsigned char pepper[HH_PEPPER_LEN],
    unsigned char peppered[HH_PEPPER_LEN])
{
    crypto_generichash(peppered, HH_PEPPER_LEN, (const unsigned char *) key,
                       len, pepper, HH_PEPPER_LEN);
}
