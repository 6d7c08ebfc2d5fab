/*
 * Endpoint secrets: generating them, and sealing them with the server key
 * (libsodium's secretbox, XSalsa20-Poly1305) for storage in Postgres.
 */

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "webhook_secret.h"


#define WEBHOOK_SEALED_VERSION   1

#define WEBHOOK_KEY_MATERIAL_MIN  32
#define WEBHOOK_KEY_MATERIAL_MAX  4096

/* BLAKE2b personalisation: the same bytes as the pepper give another key. */
#define WEBHOOK_KEY_PERSONAL      "hh-webhook-key-1"


static int webhook_key_file_read(const char *path, unsigned char *buf,
    size_t size, ssize_t *len, hhw_error_t *err);


int
webhook_server_key_load(const webhook_conf_t *conf,
    unsigned char key[WEBHOOK_SERVER_KEY_LEN], hhw_error_t *err)
{
    int            rc;
    ssize_t        len;
    const char    *source;
    unsigned char  material[WEBHOOK_KEY_MATERIAL_MAX + 1];

    if (conf->key_text != NULL) {
        source = "HH_WEBHOOK_KEY";
        len = (ssize_t) strlen(conf->key_text);

        if (len > WEBHOOK_KEY_MATERIAL_MAX) {
            hhw_error_set(err, "HH_WEBHOOK_KEY is longer than %d bytes",
                          WEBHOOK_KEY_MATERIAL_MAX);
            return -1;
        }

        memcpy(material, conf->key_text, (size_t) len);

    } else {
        source = "HH_WEBHOOK_KEY_FILE";
        rc = webhook_key_file_read(conf->key_file, material, sizeof(material),
                                   &len, err);
        if (rc != 0) {
            return rc == 1 && conf->key_file_is_default ? 1 : -1;
        }
    }

    /* Editors and echo end the text with a newline, which is not secret. */
    if (len > 0 && material[len - 1] == '\n') {
        len--;
    }

    if (len < WEBHOOK_KEY_MATERIAL_MIN) {
        sodium_memzero(material, sizeof(material));
        hhw_error_set(err, "%s holds %zd bytes, at least %d are required; "
                      "create it with head -c 48 /dev/urandom", source, len,
                      WEBHOOK_KEY_MATERIAL_MIN);
        return -1;
    }

    crypto_generichash_blake2b_salt_personal(key, WEBHOOK_SERVER_KEY_LEN,
        material, (unsigned long long) len, NULL, 0, NULL,
        (const unsigned char *) WEBHOOK_KEY_PERSONAL);

    sodium_memzero(material, sizeof(material));

    return 0;
}


void
webhook_secret_generate(char out[WEBHOOK_SECRET_LEN + 1])
{
    unsigned char  bytes[WEBHOOK_SECRET_BYTES];

    randombytes_buf(bytes, sizeof(bytes));

    memcpy(out, WEBHOOK_SECRET_PREFIX, 6);
    sodium_bin2base64(out + 6, WEBHOOK_SECRET_LEN + 1 - 6, bytes,
                      sizeof(bytes), sodium_base64_VARIANT_ORIGINAL);

    sodium_memzero(bytes, sizeof(bytes));
}


void
webhook_secret_seal(const unsigned char key[WEBHOOK_SERVER_KEY_LEN],
    const char secret[WEBHOOK_SECRET_LEN + 1],
    char out[2 + 2 * WEBHOOK_SEALED_LEN + 1])
{
    unsigned char  sealed[WEBHOOK_SEALED_LEN];
    unsigned char  *nonce;

    sealed[0] = WEBHOOK_SEALED_VERSION;
    nonce = sealed + 1;
    randombytes_buf(nonce, crypto_secretbox_NONCEBYTES);

    crypto_secretbox_easy(nonce + crypto_secretbox_NONCEBYTES,
                          (const unsigned char *) secret, WEBHOOK_SECRET_LEN,
                          nonce, key);

    out[0] = '\\';
    out[1] = 'x';
    sodium_bin2hex(out + 2, 2 * WEBHOOK_SEALED_LEN + 1, sealed,
                   sizeof(sealed));
}


int
webhook_secret_open(const unsigned char key[WEBHOOK_SERVER_KEY_LEN],
    const char *sealed_hex, char out[WEBHOOK_SECRET_LEN + 1],
    hhw_error_t *err)
{
    size_t          len;
    unsigned char   sealed[WEBHOOK_SEALED_LEN];
    unsigned char  *nonce;

    if (strlen(sealed_hex) != 2 * WEBHOOK_SEALED_LEN
        || sodium_hex2bin(sealed, sizeof(sealed), sealed_hex,
                          2 * WEBHOOK_SEALED_LEN, NULL, &len, NULL) != 0
        || len != WEBHOOK_SEALED_LEN
        || sealed[0] != WEBHOOK_SEALED_VERSION)
    {
        hhw_error_set(err, "the stored secret is not in the sealed format");
        return -1;
    }

    nonce = sealed + 1;

    if (crypto_secretbox_open_easy((unsigned char *) out,
                                   nonce + crypto_secretbox_NONCEBYTES,
                                   WEBHOOK_SEALED_LEN - 1
                                   - crypto_secretbox_NONCEBYTES,
                                   nonce, key)
        != 0)
    {
        hhw_error_set(err, "the stored secret does not open with this "
                      "server key; HH_WEBHOOK_KEY_FILE or HH_WEBHOOK_KEY "
                      "differs from the one that sealed it");
        return -1;
    }

    out[WEBHOOK_SECRET_LEN] = '\0';

    return 0;
}


int
webhook_secret_standard_key(const char *secret,
    unsigned char key[WEBHOOK_SECRET_KEY_MAX])
{
    size_t       len;
    const char  *end;

    if (strncmp(secret, WEBHOOK_SECRET_PREFIX, 6) != 0
        || sodium_base642bin(key, WEBHOOK_SECRET_KEY_MAX, secret + 6,
                             strlen(secret + 6), NULL, &len, &end,
                             sodium_base64_VARIANT_ORIGINAL) != 0
        || *end != '\0')
    {
        return -1;
    }

    return (int) len;
}


/*
 * Reads the whole key file into buf. Returns 0 with its length in *len, 1
 * when the file does not exist, or -1 with err.
 */
static int
webhook_key_file_read(const char *path, unsigned char *buf, size_t size,
    ssize_t *len, hhw_error_t *err)
{
    int      fd, saved_errno;
    ssize_t  n, total;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        saved_errno = errno;
        hhw_error_set(err, "cannot open HH_WEBHOOK_KEY_FILE \"%s\": %s",
                      path, strerror(saved_errno));
        return saved_errno == ENOENT ? 1 : -1;
    }

    total = 0;

    do {
        n = read(fd, buf + total, size - total);
        if (n > 0) {
            total += n;
        }
    } while ((n > 0 && (size_t) total < size) || (n == -1 && errno == EINTR));

    saved_errno = errno;
    close(fd);

    if (n == -1) {
        sodium_memzero(buf, size);
        hhw_error_set(err, "cannot read HH_WEBHOOK_KEY_FILE \"%s\": %s",
                      path, strerror(saved_errno));
        return -1;
    }

    if ((size_t) total >= size) {
        sodium_memzero(buf, size);
        hhw_error_set(err, "HH_WEBHOOK_KEY_FILE \"%s\" is larger than %zu "
                      "bytes", path, size - 1);
        return -1;
    }

    *len = total;

    return 0;
}
