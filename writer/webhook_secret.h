/*
 * Endpoint secrets: generating them, and sealing them with the server key
 * for storage, since the writer must recover them to sign a delivery.
 */

#ifndef WEBHOOK_SECRET_H
#define WEBHOOK_SECRET_H

#include <stddef.h>
#include <sodium.h>

#include "hhw_log.h"
#include "webhook_conf.h"


#define WEBHOOK_SERVER_KEY_LEN   crypto_secretbox_KEYBYTES

/* "whsec_" and the standard base64 of 32 random bytes, as Standard
 * Webhooks secrets look. */
#define WEBHOOK_SECRET_PREFIX    "whsec_"
#define WEBHOOK_SECRET_BYTES     32
#define WEBHOOK_SECRET_LEN       (6 + 44)

/* The HMAC key of a Standard Webhooks signature: the decoded secret. */
#define WEBHOOK_SECRET_KEY_MAX   64

/* A version byte, the nonce, the MAC and the secret text. */
#define WEBHOOK_SEALED_LEN                                                   \
    (1 + crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES             \
     + WEBHOOK_SECRET_LEN)


/*
 * Derives the server key from HH_WEBHOOK_KEY, or else from the file
 * HH_WEBHOOK_KEY_FILE, which contains 32 to 4096 bytes (one trailing newline
 * is not counted): a BLAKE2b-256 digest of them, personalised for this use.
 * Returns 0, 1 when the default key file does not exist (so the operator
 * set up no key), or -1 with err. err never contains key material.
 */
int webhook_server_key_load(const webhook_conf_t *conf,
    unsigned char key[WEBHOOK_SERVER_KEY_LEN], hhw_error_t *err);

/* Writes a new random secret and its NUL. */
void webhook_secret_generate(char out[WEBHOOK_SECRET_LEN + 1]);

/*
 * Seals a secret with the server key and writes it as the hex text of a
 * Postgres bytea ("\x..."), ready to be a query parameter.
 */
void webhook_secret_seal(const unsigned char key[WEBHOOK_SERVER_KEY_LEN],
    const char secret[WEBHOOK_SECRET_LEN + 1],
    char out[2 + 2 * WEBHOOK_SEALED_LEN + 1]);

/*
 * Opens a sealed secret given as hex, as encode(secret, 'hex') returns it.
 * Returns 0, or -1 with err when the text is malformed or was sealed with
 * another server key.
 */
int webhook_secret_open(const unsigned char key[WEBHOOK_SERVER_KEY_LEN],
    const char *sealed_hex, char out[WEBHOOK_SECRET_LEN + 1],
    hhw_error_t *err);

/*
 * Decodes the base64 after "whsec_" into the HMAC key of the Standard
 * Webhooks signature. Returns its length, or -1 when the secret is not of
 * that form.
 */
int webhook_secret_standard_key(const char *secret,
    unsigned char key[WEBHOOK_SECRET_KEY_MAX]);

#endif /* WEBHOOK_SECRET_H */
